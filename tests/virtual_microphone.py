"""A microphone with no sound card: a private PulseAudio daemon whose default source the caller feeds.

Used by the tests (the ``virtual_microphone`` fixture of conftest.py wraps it) and by bench/live.py.
:meth:`VirtualMicrophone.start` runs ``pulseaudio --daemonize`` with its own runtime folder and a null
sink "virt" (16 kHz mono) whose monitor "virt.monitor" is the default source, so PyAudio's ALSA
"default" device (through libasound2-plugins) records whatever is played into "virt". Ways to make sound:

- ``play(path)``: paplay into the sink, in real time. Start recording first: the first read blocks
  0.1-1.9 s, and the first ~0.1 s of a clip can be lost.
- ``pipe(signal)``: a module-pipe-source as the default source: bit-exact, starts with the first
  sample, faster than real time. Silence flows until ``feed.start()`` (call it when the recorder is
  live, e.g. from on_start); after the clip, silence flows again (or nothing at all, with
  ``stall_after=True``: a microphone unplugged mid-stream).
- ``pipe_source()``: the same source with its FIFO for the caller to write into (bench/live.py paces it).
- ``dead_pipe()``: a pipe source nobody writes to: the device opens but never delivers a sample.

The calling process is not switched to the daemon: pass :attr:`VirtualMicrophone.env` (PULSE_SERVER,
PULSE_RUNTIME_PATH) to a client's environment. Reading past the end of a pipe's data blocks forever,
so every reader needs a deadline.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal as posix_signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

#: Sample rate in Hz of the sink and of every pipe source.
RATE = 16000


def installed() -> bool:
    """True if pulseaudio, pactl, paplay and ALSA's PulseAudio plugin (libasound2-plugins) are there."""
    tools = all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "paplay"))
    return tools and bool(glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"))


def has_sound_card() -> bool:
    """True if this machine has a real capture device (then 'no microphone' cannot be arranged)."""
    return bool(glob.glob("/dev/snd/pcmC*D*c"))


class VirtualMicrophone:
    """Handle on a private PulseAudio daemon (see the module); :meth:`close` stops it."""

    def __init__(self, folder: Path, env: dict, pid_file: Path) -> None:
        self.folder = folder
        self.env = env  # what a client (PyAudio, paplay, pactl) needs to reach this daemon
        self._pid_file = pid_file
        self._pipes = 0

    @classmethod
    def start(cls, folder: Path) -> "VirtualMicrophone":
        """Start the daemon with its runtime files under ``folder``; RuntimeError (with its stderr) if it fails."""
        runtime = folder / "run"
        runtime.mkdir(mode=0o700)
        daemon_env = dict(os.environ, HOME=str(folder), XDG_RUNTIME_DIR=str(runtime),
                          XDG_CONFIG_HOME=str(folder / "config"), PULSE_RUNTIME_PATH=str(runtime / "pulse"))
        daemon_env.pop("PULSE_SERVER", None)
        started = subprocess.run(
            ["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n", "--log-target=stderr",
             "--load=module-native-protocol-unix auth-anonymous=1",
             f"--load=module-null-sink sink_name=virt rate={RATE} channels=1"],
            env=daemon_env, capture_output=True, text=True, timeout=30,
        )
        socket = runtime / "pulse" / "native"
        deadline = time.monotonic() + 10
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if started.returncode != 0 or not socket.exists():
            raise RuntimeError(f"PulseAudio did not start (exit status {started.returncode}): "
                               f"{started.stderr.strip()[-500:]}")
        microphone = cls(folder, {"PULSE_SERVER": f"unix:{socket}", "PULSE_RUNTIME_PATH": str(runtime / "pulse")},
                         runtime / "pulse" / "pid")
        try:
            microphone.pactl("set-default-sink", "virt")
            microphone.pactl("set-default-source", "virt.monitor")
        except BaseException:
            microphone.close()
            raise
        return microphone

    def close(self) -> None:
        """Stop the daemon (SIGTERM to the pid it wrote)."""
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(self._pid_file.read_text().strip()), posix_signal.SIGTERM)

    def pactl(self, *arguments) -> str:
        done = subprocess.run(["pactl", *arguments], env=dict(os.environ, **self.env),
                              capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(arguments)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def play(self, path) -> subprocess.Popen:
        """Start playing a WAV file into the sink (the default microphone hears it); returns paplay."""
        return subprocess.Popen(["paplay", "--device=virt", str(path)], env=dict(os.environ, **self.env),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @contextlib.contextmanager
    def pipe_source(self):
        """A pipe source (s16le mono at :data:`RATE`) as the default microphone for the block; yields its FIFO."""
        self._pipes += 1
        name = f"fakemic{self._pipes}"
        fifo = self.folder / f"{name}.fifo"
        module = self.pactl("load-module", "module-pipe-source", f"source_name={name}", f"file={fifo}",
                            "format=s16le", f"rate={RATE}", "channels=1")
        self.pactl("set-default-source", name)
        try:
            yield fifo
        finally:
            self.pactl("set-default-source", "virt.monitor")
            self.pactl("unload-module", module)

    @contextlib.contextmanager
    def pipe(self, signal: np.ndarray, *, stall_after: bool = False):
        """Make a pipe source the default microphone for the block; yields a feed with start().

        ``stall_after``: nothing at all flows after the clip (a microphone unplugged mid-stream).
        """
        with self.pipe_source() as fifo:
            feed = PipeFeed(fifo, signal, stall_after=stall_after)
            try:
                yield feed
            finally:
                feed.stop()

    @contextlib.contextmanager
    def dead_pipe(self):
        """A pipe source that nobody writes to as the default microphone: open, but not one sample."""
        with self.pipe_source():
            yield


def as_int16(signal: np.ndarray) -> np.ndarray:
    """float32 samples in [-1, 1] as the 16-bit samples a pipe source takes."""
    return np.round(np.clip(signal, -1, 32767 / 32768) * 32768).astype(np.int16)


class PipeFeed:
    """Writes paced silence into a pipe source, the clip after start(), then silence (or nothing) until stop()."""

    BLOCK = np.zeros(RATE // 20, dtype=np.int16).tobytes()  # 50 ms

    def __init__(self, fifo: Path, signal: np.ndarray, *, stall_after: bool = False) -> None:
        self.clip = as_int16(signal)
        self.stall_after = stall_after
        self.started = threading.Event()
        self.clip_written = threading.Event()
        self._stopped = threading.Event()
        self._handle = open(fifo, "wb", buffering=0)  # the daemon holds the reading end open
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def start(self) -> None:
        self.started.set()

    def _run(self) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError, OSError):
            while not self.started.is_set() and not self._stopped.is_set():
                self._handle.write(self.BLOCK)
                time.sleep(0.05)  # real time: silence before start() is not piled up
            if not self._stopped.is_set():
                self._handle.write(self.clip.tobytes())
                self.clip_written.set()
            while not self._stopped.is_set() and self.stall_after:
                time.sleep(0.01)
            while not self._stopped.is_set():
                self._handle.write(self.BLOCK)
                time.sleep(0.01)  # five times real time: a reader never waits for long

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._handle.close()

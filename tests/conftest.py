"""Fixtures shared by the tests: real audio made with espeak-ng, the EmoDB corpus, scratch folders.

Modules append their own fixtures below the marked sections; keep this file the one conftest.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EMODB = SHARED / "data" / "emodb"
RAVDESS = SHARED / "data" / "ravdess"
LIBRISPEECH = SHARED / "data" / "librispeech"
PYTHON = sys.executable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def speak(text: str, path: Path, *, voice: str = "de+m1", pitch: int = 50, speed: int = 160) -> Path:
    """Write ``text`` spoken by espeak-ng to ``path`` (22,050 Hz mono 16-bit WAV)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (run 'make test', which installs it)")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
        check=True, capture_output=True,
    )
    return path


def one_line(error, *words) -> str:
    """The message of ``error``, asserted to be the one line a person reads: no line break, no stray
    spaces, and each of ``words`` (a file name, the fix) in it."""
    message = str(error)
    assert message and "\n" not in message and "\r" not in message and message.strip() == message, message
    for word in words:
        assert str(word) in message, message
    return message


def assert_one_line_failure(done: subprocess.CompletedProcess, *words, status: int = 1) -> str:
    """A stage run that failed with ``status`` and said why in one line on stderr holding each of
    ``words``, with no traceback and no ALSA noise; that line."""
    assert done.returncode == status, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "ALSA lib" not in done.stderr, done.stderr
    return one_line(done.stderr.strip(), *words)


def run_stage(script: str, *arguments, cwd: Path = ROOT, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """Run a stage script as a person does: ``python script args`` from the repository root."""
    environment = dict(os.environ, **(env or {}))
    return subprocess.run(
        [PYTHON, str(ROOT / script), *map(str, arguments)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment,
    )


def shared_corpus(folder: Path, name: str) -> Path:
    """``folder`` if it holds the corpus (its labels.csv); else the test is skipped, saying where it was looked for."""
    if not (folder / "labels.csv").exists():
        pytest.skip(f"{name} is not beside the repository ({folder}); it exists in CI and in ../shared")
    return folder


# --- child processes: Ctrl-C and deadlines ------------------------------------------------------
#: Runs ``argv[2:]`` with SIGINT set to ``argv[1]`` (SIG_DFL or SIG_IGN) by exec'ing it.
_SIGINT_TRAMPOLINE = ("import os, signal, sys; signal.signal(signal.SIGINT, getattr(signal, sys.argv[1])); "
                      "os.execvp(sys.argv[2], sys.argv[2:])")


def with_sigint(command, disposition: str = "SIG_DFL") -> list:
    """``command`` started with SIGINT at ``disposition``: "SIG_DFL" (Ctrl-C stops it) or "SIG_IGN".

    A child inherits an ignored SIGINT from a test run that ignores it (``make test &``, nohup, a CI
    runner), and Python then never raises KeyboardInterrupt: tests that send SIGINT start their child
    through this. A one-line exec trampoline, because ``preexec_fn`` is unsafe in a process with threads.
    """
    return [PYTHON, "-c", _SIGINT_TRAMPOLINE, disposition, *map(str, command)]


class OutputLines:
    """A child's stdout read in a thread, so that every wait for a line has a deadline."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list = []
        self._queue: "queue.Queue" = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put("")  # end of output

    def readline(self, timeout: float) -> str:
        """The next line ("" at the end of the output); AssertionError after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout:g} s from {self.process.args!r}; "
                                 f"so far: {''.join(self.lines)!r}") from None

    def text(self, timeout: float = 10) -> str:
        """All of the output once the child closed it (waits at most ``timeout`` seconds)."""
        self._thread.join(timeout=timeout)
        return "".join(self.lines)


def stop_child(process: subprocess.Popen, timeout: float = 30) -> int:
    """Wait at most ``timeout`` seconds for ``process``; kill it if it is still running; its exit status."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"{process.args!r} did not exit within {timeout:g} s; killed it") from None


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    return shared_corpus(EMODB, "EmoDB")


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    return shared_corpus(RAVDESS, "RAVDESS")


@pytest.fixture(scope="session")
def librispeech_dir() -> Path:
    return shared_corpus(LIBRISPEECH, "LibriSpeech")


@pytest.fixture(scope="session")
def spoken_clips(tmp_path_factory) -> dict:
    """Two real espeak-ng clips of the workshop sentence: {"male": path, "female": path}."""
    folder = tmp_path_factory.mktemp("spoken")
    return {
        "male": speak("Guten Morgen, wie geht es Ihnen", folder / "male.wav", voice="de+m3", pitch=40),
        "female": speak("Guten Morgen, wie geht es Ihnen", folder / "female.wav", voice="de+f2", pitch=60),
    }


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# --- microphone fixtures (PulseAudio virtual source) below -------------------------------------
#
# ``virtual_microphone`` (session): a private PulseAudio daemon with a null sink "virt" (16 kHz mono)
# whose monitor "virt.monitor" is the default source, so PyAudio's ALSA "default" device (through
# libasound2-plugins) records whatever is played into "virt". Two ways to make sound:
#   play(path)          paplay into the sink, in real time. Start recording first: the first read
#                       blocks 0.1-1.9 s, and the first ~0.1 s of a clip can be lost.
#   pipe(signal)        a module-pipe-source as the default source: bit-exact, starts with the first
#                       sample, faster than real time. Silence flows until feed.start() (call it when
#                       the recorder is live, e.g. from on_start); after the clip, silence flows again
#                       (or nothing at all, with stall_after=True: a microphone unplugged mid-stream).
#   dead_pipe()         a pipe source nobody writes to: the device opens but never delivers a sample.
# The test process is not switched to it: use the ``microphone_env`` fixture in-process, or pass
# ``virtual_microphone.env`` (PULSE_SERVER, PULSE_RUNTIME_PATH) to a subprocess (run_stage(env=...)).
# ``no_microphone_env``: environment variables under which no input device exists.
import contextlib
import glob

VIRTUAL_RATE = 16000


class VirtualMicrophone:
    """Handle on the private PulseAudio daemon; see the comment above."""

    def __init__(self, folder: Path, env: dict) -> None:
        self.folder = folder
        self.env = env  # what a client (PyAudio, paplay, pactl) needs to reach this daemon
        self._pipes = 0

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
    def _pipe_source(self):
        """Load a pipe source as the default microphone for the block; yields its FIFO."""
        self._pipes += 1
        name = f"fakemic{self._pipes}"
        fifo = self.folder / f"{name}.fifo"
        module = self.pactl("load-module", "module-pipe-source", f"source_name={name}", f"file={fifo}",
                            "format=s16le", f"rate={VIRTUAL_RATE}", "channels=1")
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
        with self._pipe_source() as fifo:
            feed = _PipeFeed(fifo, signal, stall_after=stall_after)
            try:
                yield feed
            finally:
                feed.stop()

    @contextlib.contextmanager
    def dead_pipe(self):
        """A pipe source that nobody writes to as the default microphone: open, but not one sample."""
        with self._pipe_source():
            yield


class _PipeFeed:
    """Writes paced silence into a pipe source, the clip after start(), then silence (or nothing) until stop()."""

    BLOCK = np.zeros(VIRTUAL_RATE // 20, dtype=np.int16).tobytes()  # 50 ms

    def __init__(self, fifo: Path, signal: np.ndarray, *, stall_after: bool = False) -> None:
        self.clip = np.round(np.clip(signal, -1, 32767 / 32768) * 32768).astype(np.int16)
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


def _has_sound_card() -> bool:
    """True if this machine has a real capture device (then 'no microphone' cannot be arranged)."""
    return bool(glob.glob("/dev/snd/pcmC*D*c"))


def pulseaudio_missing() -> str:
    """Why no private PulseAudio can run here ("" when it can): the tools or the ALSA plugin are missing."""
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay") if shutil.which(tool) is None]
    if missing or not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"):
        return ("PulseAudio is not installed (run 'make test': apt packages pulseaudio, pulseaudio-utils, "
                "libasound2-plugins)")
    return ""


@contextlib.contextmanager
def private_pulseaudio(folder: Path):
    """Start a private PulseAudio daemon with files under ``folder`` (see the comment above), yield its
    :class:`VirtualMicrophone`, stop it. RuntimeError if it does not start. Also used by bench/faults.py."""
    runtime = folder / "run"
    runtime.mkdir(mode=0o700)
    daemon_env = dict(os.environ, HOME=str(folder), XDG_RUNTIME_DIR=str(runtime), XDG_CONFIG_HOME=str(folder / "config"),
                      PULSE_RUNTIME_PATH=str(runtime / "pulse"))
    daemon_env.pop("PULSE_SERVER", None)
    started = subprocess.run(
        ["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n", "--log-target=stderr",
         "--load=module-native-protocol-unix auth-anonymous=1",
         f"--load=module-null-sink sink_name=virt rate={VIRTUAL_RATE} channels=1"],
        env=daemon_env, capture_output=True, text=True, timeout=30,
    )
    socket = runtime / "pulse" / "native"
    pid_file = runtime / "pulse" / "pid"
    deadline = time.monotonic() + 10
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if started.returncode != 0 or not socket.exists():
        raise RuntimeError(f"PulseAudio did not start (exit status {started.returncode}): {started.stderr.strip()[-500:]}")
    microphone = VirtualMicrophone(folder, {"PULSE_SERVER": f"unix:{socket}", "PULSE_RUNTIME_PATH": str(runtime / "pulse")})
    try:
        microphone.pactl("set-default-sink", "virt")
        microphone.pactl("set-default-source", "virt.monitor")
        yield microphone
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), 15)


@pytest.fixture(scope="session")
def virtual_microphone(tmp_path_factory):
    if pulseaudio_missing():
        pytest.skip(pulseaudio_missing())
    pytest.importorskip("pyaudio", reason="PyAudio is not installed (run 'make install')")
    try:
        with private_pulseaudio(tmp_path_factory.mktemp("pulse")) as microphone:
            yield microphone
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture
def microphone_env(virtual_microphone, monkeypatch):
    """The virtual microphone as this test process's default input device (for this test only)."""
    for name, value in virtual_microphone.env.items():
        monkeypatch.setenv(name, value)
    return virtual_microphone


@pytest.fixture
def no_microphone_env(tmp_path) -> dict:
    """Environment variables under which PortAudio finds no input device: no reachable sound server."""
    if _has_sound_card():
        pytest.skip("this machine has a sound card, so a machine without a microphone cannot be arranged")
    client_config = tmp_path / "pulse-client.conf"
    client_config.write_text("autospawn = no\n")
    return {"PULSE_SERVER": f"unix:{tmp_path}/no-such-socket", "PULSE_CLIENTCONFIG": str(client_config),
            "PULSE_RUNTIME_PATH": str(tmp_path / "no-pulse")}


# --- model fixtures below ----------------------------------------------------------------------
MODEL_SENTENCES = ("Guten Morgen, wie geht es Ihnen", "Das Wetter ist heute schön", "Ich lese gern ein gutes Buch")
#: Synthetic speakers for the model tests: (voice, pitch, speed); male pitch <= 50, female >= 55.
MODEL_SPEAKERS = {
    "male": [("de+m1", 35, 150), ("de+m2", 45, 170), ("de+m3", 30, 140), ("de+m4", 50, 160),
             ("de+m5", 40, 180), ("de+m6", 25, 150), ("de+m7", 45, 145), ("de+m1", 20, 175)],
    "female": [("de+f1", 60, 160), ("de+f2", 70, 150), ("de+f3", 65, 175), ("de+f4", 75, 140),
               ("de+f5", 55, 165), ("de+f1", 80, 150), ("de+f2", 62, 180), ("de+f3", 72, 145)],
}
#: The model tests' settings: the defaults with two noisy variants instead of four (faster).
MODEL_SNRS = (10.0, 0.0)


@pytest.fixture(scope="session")
def model_clips(tmp_path_factory) -> list:
    """Real espeak-ng clips: 8 synthetic speakers per sex x 3 sentences, as dicts (speaker, sex, path)."""
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path_factory.mktemp("model_clips")
    jobs = []
    for sex, voices in MODEL_SPEAKERS.items():
        for number, (voice, pitch, speed) in enumerate(voices, start=1):
            for sentence_number, sentence in enumerate(MODEL_SENTENCES, start=1):
                path = folder / f"{sex}{number}_{sentence_number}.wav"
                jobs.append(({"speaker": f"{sex}{number}", "sex": sex, "path": path}, sentence, voice, pitch, speed))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda job: speak(job[1], job[0]["path"], voice=job[2], pitch=job[3], speed=job[4]), jobs))
    return [job[0] for job in jobs]


def build_feature_database(path: Path, clips: list, settings=None, *, n_mfcc_stored=None) -> Path:
    """A real feature database at ``path`` from ``clips``: clean + noise at the settings' SNRs.

    ``n_mfcc_stored`` keeps only that many coefficients of each matrix (to fake inconsistent features).
    """
    import hashlib

    from acoustics import audio, features
    from acoustics.database import FeatureDatabase, create_database
    from acoustics.settings import Settings

    settings = settings or Settings(snrs_db=MODEL_SNRS)
    create_database(path, settings)
    rng = np.random.default_rng(settings.seed)
    noise = audio.synthetic_room_noise(10.0, settings.sample_rate, rng)
    items = []
    with FeatureDatabase(path) as database:
        noise_id = database.add_noise(name="room", kind="synthetic", sha256="room-noise-for-tests",
                                      duration_seconds=10.0, level_dbfs=audio.level_dbfs(noise))
        for clip in clips:
            signal, info = audio.load_audio(clip["path"], settings.sample_rate)
            speech = audio.trim_silence(signal, settings.trim_top_db)
            variants = [("clean", None, None, features.mfcc(speech, settings))]
            for snr in settings.snrs_db:
                mixed = audio.mix_at_snr(speech, noise, snr, rng)
                variants.append((f"snr{snr:g}", noise_id, snr, features.mfcc(mixed, settings)))
            if n_mfcc_stored:
                variants = [(name, noise, snr, matrix[:, :n_mfcc_stored]) for name, noise, snr, matrix in variants]
            items.append({
                "speaker": clip["speaker"], "sex": clip["sex"], "source": "espeak-test", "synthetic": True,
                "path": str(clip["path"]), "sha256": hashlib.sha256(Path(clip["path"]).read_bytes()).hexdigest(),
                "duration_seconds": info.duration_seconds, "speech_seconds": speech.size / settings.sample_rate,
                "original_sample_rate": info.sample_rate, "original_channels": info.channels, "variants": variants,
            })
        database.add_recordings(items)
    return path


@pytest.fixture(scope="session")
def model_database(model_clips, tmp_path_factory) -> Path:
    """A feature database of all ``model_clips`` (48 recordings x 3 variants). Copy it before writing."""
    return build_feature_database(tmp_path_factory.mktemp("model_db") / "features.db", model_clips)


@pytest.fixture
def model_database_copy(model_database, tmp_path) -> Path:
    """A private copy of ``model_database`` that a test may change (split, runs)."""
    copy = tmp_path / "features.db"
    shutil.copyfile(model_database, copy)
    return copy

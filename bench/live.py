#!/usr/bin/env python3
"""Live benchmark of stage 5 (implement_model.py) through a virtual microphone, in real time.

    python bench/live.py [--model best.h5 --db features.db] [--utterances 50] [--startup-runs 3]

A private PulseAudio daemon gets a pipe source as its default microphone; this script writes into the
pipe, paced by a clock at exactly real time (10 ms blocks), so the script under test hears what a
person's microphone would deliver. Without --model it first trains a small model (train_models.py
--model cnn --epochs 6 on the espeak-ng demo corpus with one SNR, in a temporary folder, under a minute).

Measured:

- start-up: wall time from starting ``python implement_model.py`` (one utterance mode) until
  "Speak now" appears on its stdout (imports, model check, microphone open, first chunk heard).
- latency: ``--stream`` with N utterances (espeak-ng voices, male and female, 1.2 s of silence
  between them). For each, "the last speech sample" is the end of the last 30 ms frame that the
  voice activity detector counts as speech (found by running the same detector offline over the same
  samples), and its delivery time is when the block holding it was written into the pipe. The
  detector can only know that the utterance ended once ``pause_seconds`` of non-speech followed
  (17 frames = 0.51 s): that moment is "the end of the pause". Latency is the time from each of the
  two moments until the verdict line arrives on stdout. **The goal (< 100 ms) is the latency after
  the end of the pause**: the processing delay once the system can know the utterance is over.
- CPU: utime+stime of the --stream process (/proc/PID/stat) over wall time, as a fraction of one
  core, for 5 s of idle listening (silence) and for the stretch with the utterances (listening
  plus classifying). ``stream_cpu_fraction`` is the latter, the larger one.

Reference figures printed too: ``import keras`` alone, the model load, one prediction with
``predict_on_batch`` and with ``model(x, training=False)``, the MFCCs of a 2 s utterance.

The last line is one JSON object {"startup_seconds", "latency_ms_p50", "latency_ms_p95",
"stream_cpu_fraction"} (latencies after the end of the pause). Goals: start-up < 5 s, latency
< 100 ms, --stream < 20 % of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE = 16000
BLOCK = RATE // 100  # 10 ms
SENTENCES = ("Guten Morgen, wie geht es Ihnen", "Das Wetter ist heute schön", "Ich komme gleich zurück",
             "Können Sie mir helfen")
VOICES = (("de+m3", 40, "male"), ("de+f2", 62, "female"), ("de+m6", 30, "male"), ("de+f4", 72, "female"))
GAP_SECONDS = 1.2
IDLE_SECONDS = 5.0


# A private PulseAudio daemon whose default source is a pipe this script writes into ----------------
class VirtualMicrophone:
    """pulseaudio --daemonize with a null sink and a module-pipe-source as the default source."""

    def __init__(self, folder: Path) -> None:
        missing = [tool for tool in ("pulseaudio", "pactl") if shutil.which(tool) is None]
        if missing:
            raise SystemExit(f"Skipped: {', '.join(missing)} not installed (apt packages pulseaudio pulseaudio-utils).")
        runtime = folder / "run"
        runtime.mkdir(mode=0o700)
        daemon_env = dict(os.environ, HOME=str(folder), XDG_RUNTIME_DIR=str(runtime),
                          XDG_CONFIG_HOME=str(folder / "config"), PULSE_RUNTIME_PATH=str(runtime / "pulse"))
        daemon_env.pop("PULSE_SERVER", None)
        subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n", "--log-target=stderr",
                        "--load=module-native-protocol-unix auth-anonymous=1",
                        f"--load=module-null-sink sink_name=virt rate={RATE} channels=1"],
                       env=daemon_env, capture_output=True, text=True, timeout=30, check=True)
        socket = runtime / "pulse" / "native"
        deadline = time.monotonic() + 10
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.pid_file = runtime / "pulse" / "pid"
        self.env = {"PULSE_SERVER": f"unix:{socket}", "PULSE_RUNTIME_PATH": str(runtime / "pulse")}
        self.fifo = folder / "mic.fifo"
        self.pactl("load-module", "module-pipe-source", "source_name=benchmic", f"file={self.fifo}", "format=s16le",
                   f"rate={RATE}", "channels=1")
        self.pactl("set-default-source", "benchmic")

    def pactl(self, *arguments) -> str:
        return subprocess.run(["pactl", *arguments], env=dict(os.environ, **self.env), capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(self.pid_file.read_text().strip()), signal.SIGTERM)


class PacedFeed:
    """Writes silence into the pipe in real time; ``play(signal)`` then writes ``signal`` paced by the clock.

    ``delivered(sample)`` is the monotonic time at which the 10 ms block holding ``sample`` (an index into
    the played signal) had been written.
    """

    def __init__(self, fifo: Path) -> None:
        self._handle = open(fifo, "wb", buffering=0)
        self._signal = None
        self._go = threading.Event()
        self._stop = threading.Event()
        self.done = threading.Event()
        self.block_times: list = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def play(self, signal_float: np.ndarray) -> None:
        self._signal = np.round(np.clip(signal_float, -1, 32767 / 32768) * 32768).astype(np.int16)
        self._go.set()

    def _run(self) -> None:
        silence = np.zeros(BLOCK, np.int16).tobytes()
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            start = time.monotonic()
            index = 0
            while not self._stop.is_set():
                if self._go.is_set() and self._signal is not None:
                    break
                index += 1
                self._sleep_until(start + index * BLOCK / RATE)
                self._handle.write(silence)
            if self._stop.is_set():
                return
            clip, start = self._signal, time.monotonic()
            for index in range(-(-clip.size // BLOCK)):
                if self._stop.is_set():
                    return
                self._sleep_until(start + index * BLOCK / RATE)
                self._handle.write(clip[index * BLOCK:(index + 1) * BLOCK].tobytes())
                self.block_times.append(time.monotonic())
            self.done.set()
            index = 0
            start = time.monotonic()
            while not self._stop.is_set():  # silence after the clip, still in real time
                index += 1
                self._sleep_until(start + index * BLOCK / RATE)
                self._handle.write(silence)

    @staticmethod
    def _sleep_until(moment: float) -> None:
        delay = moment - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def delivered(self, sample: int) -> float:
        return self.block_times[sample // BLOCK]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._handle.close()


class Lines:
    """Reads a process's stdout in a thread; keeps (monotonic time, line) of each line."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self.lines.append((time.monotonic(), None))
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float, count: int = 1):
        """The time of the ``count``-th line matching ``pattern``; None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = [moment for moment, line in self.lines if line is not None and re.search(pattern, line)]
                if len(matches) >= count:
                    return matches[count - 1]
                if (self.lines and self.lines[-1][1] is None) or time.monotonic() > deadline:
                    return None
                self._changed.wait(timeout=0.05)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines if line is not None)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


# The model ------------------------------------------------------------------------------------------
def stage(script: str, *arguments, env: dict) -> None:
    done = subprocess.run([sys.executable, str(ROOT / script), *map(str, arguments)], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, **env), timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{script} failed: {done.stderr.strip()[-500:]}")


def train_small_model(folder: Path) -> tuple:
    """A CNN trained for 6 epochs on the demo corpus (one SNR): (model path, database path)."""
    env = {"ACOUSTICS_DATA": str(folder)}
    started = time.perf_counter()
    stage("set_up_sql.py", "--snrs", "10", env=env)
    stage("collect_background_noise.py", "--synthetic", env=env)
    stage("speech_prep.py", "--demo", "--no-picture", env=env)
    stage("train_models.py", "--model", "cnn", "--epochs", "6", env=env)
    print(f"Trained a small CNN on the demo corpus in {time.perf_counter() - started:.0f} s.", flush=True)
    return folder / "models" / "best.h5", folder / "features.db"


# The utterances -------------------------------------------------------------------------------------
def utterances(folder: Path) -> list:
    """The espeak-ng clips at 16 kHz: [(signal, sex)]."""
    from acoustics import audio

    clips = []
    for number, sentence in enumerate(SENTENCES):
        for voice, pitch, sex in VOICES:
            path = folder / f"{voice}-{pitch}-{number}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(path), sentence], check=True,
                           capture_output=True)
            clips.append((audio.load_audio(path, RATE)[0], sex))
    return clips


def last_speech_sample(clip: np.ndarray) -> int:
    """Index after the last sample of the last frame the detector counts as speech (clip in silence)."""
    from acoustics.microphone import VoiceActivityDetector

    detector = VoiceActivityDetector(RATE)
    padded = np.concatenate([np.zeros(RATE // 2, np.float32), clip, np.zeros(RATE, np.float32)])
    found = detector.feed(padded) + detector.flush()
    if len(found) != 1:
        raise SystemExit(f"the detector finds {len(found)} utterances in one clip; choose other sentences.")
    tail = detector.tail_frames * detector.frame_samples
    return int(round(found[0].end_seconds * RATE)) - tail - RATE // 2


# Measurements --------------------------------------------------------------------------------------
def command(model: Path, database: Path, *extra) -> list:
    return [sys.executable, str(ROOT / "implement_model.py"), "--model", str(model), "--db", str(database), "--no-save",
            *extra]


def measure_startup(microphone: VirtualMicrophone, model: Path, database: Path, env: dict) -> float:
    feed = PacedFeed(microphone.fifo)
    try:
        started = time.monotonic()
        process = subprocess.Popen(command(model, database), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=env)
        lines = Lines(process)
        moment = lines.wait_for("Speak now", timeout=60)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        if moment is None:
            raise SystemExit(f"no 'Speak now' within 60 s: {lines.text()} {process.stderr.read()}")
        return moment - started
    finally:
        feed.close()


def measure_stream(microphone: VirtualMicrophone, model: Path, database: Path, env: dict, clips: list,
                   count: int) -> dict:
    order = [clips[index % len(clips)] for index in range(count)]
    gap = np.zeros(int(GAP_SECONDS * RATE), np.float32)
    pieces, ends, sexes, position = [np.zeros(int(IDLE_SECONDS * RATE), np.float32)], [], [], int(IDLE_SECONDS * RATE)
    for clip, sex in order:
        pieces += [clip, gap]
        ends.append(position + last_speech_sample(clip) - 1)  # index of the last speech sample
        sexes.append(sex)
        position += clip.size + gap.size
    schedule = np.concatenate(pieces)
    feed = PacedFeed(microphone.fifo)
    process = subprocess.Popen(command(model, database, "--stream"), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = Lines(process)
        if lines.wait_for("^Listening", timeout=60) is None:
            raise SystemExit(f"--stream did not start listening: {lines.text()} {process.stderr.read()}")
        if lines.wait_for("^Loaded the", timeout=120) is None:  # the model loads in the background
            raise SystemExit(f"--stream did not load the model: {lines.text()} {process.stderr.read()}")
        time.sleep(0.5)
        feed.play(schedule)
        while len(feed.block_times) < 1:
            time.sleep(0.001)
        time.sleep(1.0)  # idle: from 1 s to IDLE_SECONDS - 1 s into the silence
        idle_cpu, idle_wall = cpu_seconds(process.pid), time.monotonic()
        time.sleep(IDLE_SECONDS - 2.0)
        idle = (cpu_seconds(process.pid) - idle_cpu) / (time.monotonic() - idle_wall)
        time.sleep(1.0)
        busy_cpu, busy_wall = cpu_seconds(process.pid), time.monotonic()
        last = lines.wait_for(r"utterance \d+ \(", timeout=schedule.size / RATE + 30, count=count)
        busy = (cpu_seconds(process.pid) - busy_cpu) / (time.monotonic() - busy_wall)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: the threads' stacks on stderr
            process.wait(timeout=10)
            raise SystemExit(f"--stream did not stop 30 s after SIGINT:\n{lines.text()}\n{process.stderr.read()[-3000:]}")
        if last is None:
            raise SystemExit(f"--stream reported fewer than {count} utterances:\n{lines.text()}\n{process.stderr.read()}")
    finally:
        feed.close()
        if process.poll() is None:
            process.kill()
    verdicts = [(moment, line) for moment, line in lines.lines if line and re.search(r"utterance \d+ \(", line)]
    after_speech = np.array([(moment - feed.delivered(end)) * 1000 for (moment, _), end in zip(verdicts, ends)])
    pause_ms = 17 * 480 / RATE * 1000  # the detector's pause: 17 frames of 30 ms
    correct = sum(line.split("): ", 1)[-1].startswith(sex) for (_, line), sex in zip(verdicts, sexes))
    return {"after_speech_ms": after_speech, "after_pause_ms": after_speech - pause_ms, "idle_cpu": idle,
            "busy_cpu": busy, "correct": correct, "count": len(verdicts), "exit": process.returncode,
            "stopped": "Stopped listening after" in lines.text()}


def reference_figures(model: Path) -> None:
    """Import, load and prediction costs in this process (the parts of start-up and latency)."""
    started = time.perf_counter()
    from acoustics import features, models  # imports Keras, its start-up notices kept off stderr

    imported = time.perf_counter() - started

    started = time.perf_counter()
    network, metadata = models.load_model(model)
    loaded = time.perf_counter() - started
    settings = metadata["settings"]
    signal_2s = (np.random.default_rng(0).standard_normal(2 * RATE) * 0.1).astype(np.float32)
    started = time.perf_counter()
    for _ in range(20):
        matrix = features.mfcc(signal_2s, settings)
    mfcc_ms = (time.perf_counter() - started) / 20 * 1000
    windows = features.windows(matrix, settings.frames)
    timings = {}
    for name, call in (("predict_on_batch (padded to 64)", lambda: models.predict_windows(network, windows)),
                       ("model(x, training=False)", lambda: network(windows, training=False))):
        call()
        started = time.perf_counter()
        for _ in range(20):
            call()
        timings[name] = (time.perf_counter() - started) / 20 * 1000
    print(f"Reference: import Keras (acoustics.models) {imported:.2f} s; load_model {loaded:.2f} s; MFCCs of 2 s {mfcc_ms:.1f} ms; "
          + "; ".join(f"{name} {value:.1f} ms" for name, value in timings.items()) + f" ({len(windows)} windows).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model .h5 (default: train a small one)")
    parser.add_argument("--db", type=Path, help="feature database the model belongs to (default: none)")
    parser.add_argument("--utterances", type=int, default=50)
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip the reference figures")
    arguments = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None or not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"):
        print("Skipped: needs espeak-ng, pulseaudio and libasound2-plugins ('make install').")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if arguments.model:
            model, database = arguments.model, arguments.db or scratch / "no-database.db"
        else:
            model, database = train_small_model(scratch / "data")
        microphone = VirtualMicrophone(scratch)
        env = dict(os.environ, **microphone.env, ACOUSTICS_DATA=str(scratch / "data"), PYTHONUNBUFFERED="1",
                   PYTHONFAULTHANDLER="1")
        try:
            startups = [measure_startup(microphone, model, database, env) for _ in range(arguments.startup_runs)]
            print("Start-up to 'Speak now': " + ", ".join(f"{value:.2f}" for value in startups)
                  + f" s (median {np.median(startups):.2f} s; goal < 5 s).", flush=True)
            (scratch / "clips").mkdir()
            result = measure_stream(microphone, model, database, env, utterances(scratch / "clips"), arguments.utterances)
        finally:
            microphone.close()
        if not arguments.no_reference:
            reference_figures(model)
    after_pause, after_speech = result["after_pause_ms"], result["after_speech_ms"]
    print(f"--stream: {result['count']} utterances reported ({result['correct']} with the right sex), exit status "
          f"{result['exit']}, {'stopped cleanly' if result['stopped'] else 'NOT stopped cleanly'} by SIGINT.")
    print(f"Latency after the end of the pause (the goal, < 100 ms): median {np.median(after_pause):.0f} ms, "
          f"95th percentile {np.percentile(after_pause, 95):.0f} ms, max {after_pause.max():.0f} ms.")
    print(f"Latency after the last speech sample (includes the detector's 510 ms pause): median "
          f"{np.median(after_speech):.0f} ms, 95th percentile {np.percentile(after_speech, 95):.0f} ms.")
    print(f"--stream CPU, fraction of one core: idle listening {result['idle_cpu']:.3f}, with utterances "
          f"{result['busy_cpu']:.3f} (goal < 0.20).")
    print(json.dumps({"startup_seconds": round(float(np.median(startups)), 2),
                      "latency_ms_p50": round(float(np.median(after_pause)), 1),
                      "latency_ms_p95": round(float(np.percentile(after_pause, 95)), 1),
                      "stream_cpu_fraction": round(float(result["busy_cpu"]), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

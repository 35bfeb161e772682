#!/usr/bin/env python3
"""Live benchmark of stage 5 (implement_model.py) through a virtual microphone, in real time, with its
live view on a pseudo-terminal and with plain lines on a pipe.

    python bench/live.py [--model best.h5 --db features.db] [--utterances 50] [--startup-runs 3] [--plain-only]

A private PulseAudio daemon (tests/virtual_microphone.py, shared with the tests) gets a pipe source as
its default microphone; this script writes into the pipe, paced by a clock at exactly real time (10 ms
blocks), so the script under test hears what a person's microphone would deliver. Without --model it
first trains a small model (train_models.py --model cnn --epochs 6 on the espeak-ng demo corpus with
one SNR, in a temporary folder, under a minute).

Each measurement runs twice: with stage 5's stdout on a pipe (plain lines, as in a log) and on a
pseudo-terminal (``os.openpty``, 40 x 200), where stage 5 draws its live view (level meter, state,
verdict bar, redrawn 12 times a second) as it does for a person; --plain-only skips the second.
Lines are read from the terminal without its escape sequences.

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
  core, for 3 s of idle listening (silence) and for the stretch with the utterances (listening
  plus classifying). ``stream_cpu_fraction`` is the latter, the larger one.

Reference figures printed too: importing Keras, the model load, one prediction with
``predict_on_batch`` and with ``model(x, training=False)``, the MFCCs of a 2 s utterance.

The last line is one JSON object {"startup_seconds", "latency_ms_p50", "latency_ms_p95",
"stream_cpu_fraction", "live_view"}: the first four with plain lines (latencies after the end of the
pause), "live_view" the same four keys with the live view (null with --plain-only). Goals, for both:
start-up < 2 s, latency < 100 ms, --stream < 20 % of one core.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import ROOT, stage  # also puts the project on sys.path

sys.path.insert(0, str(ROOT / "tests"))
from virtual_microphone import VirtualMicrophone, as_int16, installed as pulseaudio_installed  # noqa: E402

RATE = 16000
BLOCK = RATE // 100  # 10 ms
SENTENCES = ("Guten Morgen, wie geht es Ihnen", "Das Wetter ist heute schön", "Ich komme gleich zurück",
             "Können Sie mir helfen")
VOICES = (("de+m3", 40, "male"), ("de+f2", 62, "female"), ("de+m6", 30, "male"), ("de+f4", 72, "female"))
GAP_SECONDS = 1.2
IDLE_SECONDS = 5.0
#: The pseudo-terminal of the live view: rows, columns.
TERMINAL = (40, 200)
#: Escape sequences of a terminal (colours, cursor moves, OSC titles), cut from the lines read.
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
VIEW_NAMES = {False: "plain lines", True: "live view"}
GOALS = "goals: start-up < 2 s, latency < 100 ms, --stream < 0.20 of a core"


# Feeding the virtual microphone in real time ------------------------------------------------------
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
        self.block_times: list = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def play(self, signal_float: np.ndarray) -> None:
        self._signal = as_int16(signal_float)
        self._go.set()

    def _run(self) -> None:
        silence = np.zeros(BLOCK, np.int16).tobytes()
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):  # the daemon unloaded the source
            self._write_paced(lambda index: None if self._go.is_set() else silence)
            if self._stop.is_set():
                return
            clip = self._signal
            self._write_paced(lambda index: clip[index * BLOCK:(index + 1) * BLOCK].tobytes()
                              if index * BLOCK < clip.size else None, self.block_times)
            self._write_paced(lambda index: silence)  # silence after the clip, still in real time

    def _write_paced(self, block_at, times: list = None) -> None:
        """Write ``block_at(0)``, ``block_at(1)``, ... one per 10 ms until it gives None or close()."""
        start, index = time.monotonic(), 0
        while not self._stop.is_set():
            block = block_at(index)
            if block is None:
                return
            delay = start + index * BLOCK / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._handle.write(block)
            if times is not None:
                times.append(time.monotonic())
            index += 1

    def delivered(self, sample: int) -> float:
        return self.block_times[sample // BLOCK]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._handle.close()


# Stage 5 under test: stdout on a pipe (plain lines) or on a pseudo-terminal (the live view) -------
class Lines:
    """Text from ``chunks`` (an iterator, read in a thread) as lines, split at CR and LF and without
    escape sequences; keeps (monotonic time, line) of each."""

    def __init__(self, chunks) -> None:
        self.lines: list = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(chunks,), daemon=True)
        self._thread.start()

    def _run(self, chunks) -> None:
        pending = ""
        for chunk in chunks:
            *complete, pending = re.split(r"[\r\n]", pending + chunk)
            moment = time.monotonic()
            with self._changed:
                self.lines += [(moment, ESCAPES.sub("", line)) for line in complete]
                self._changed.notify_all()
        with self._changed:
            self.lines += [(time.monotonic(), ESCAPES.sub("", pending)), (time.monotonic(), None)]
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float, count: int = 1):
        """The time of the ``count``-th line matching ``pattern``; None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = self.matching(pattern)
                if len(matches) >= count:
                    return matches[count - 1][0]
                if (self.lines and self.lines[-1][1] is None) or time.monotonic() > deadline:
                    return None
                self._changed.wait(timeout=0.05)

    def matching(self, pattern: str) -> list:
        """(time, line) of the first occurrence of each distinct line matching ``pattern`` (the live
        view can write a line twice: the last verdict again as it stops)."""
        seen, found = set(), []
        for moment, line in self.lines:
            if line is not None and line not in seen and re.search(pattern, line):
                seen.add(line)
                found.append((moment, line))
        return found

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines if line)


def terminal_chunks(master: int):
    """What a process writes to the pseudo-terminal whose master side is ``master``, decoded, until it closes it."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            return
        if not data:
            return
        yield decoder.decode(data)


class Stage5:
    """``implement_model.py ARGUMENTS`` running, its stdout on a pipe or (``live``) on a pseudo-terminal."""

    def __init__(self, arguments: list, env: dict, *, live: bool) -> None:
        command = [sys.executable, str(ROOT / "implement_model.py"), *map(str, arguments)]
        self._master = None
        if live:
            import fcntl  # POSIX only, like the pseudo-terminal itself: main() runs this bench on Linux alone
            import termios

            self._master, slave = os.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *TERMINAL, 0, 0))
            env = dict(env, TERM="xterm-256color", LINES=str(TERMINAL[0]), COLUMNS=str(TERMINAL[1]))
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=slave, stderr=subprocess.PIPE,
                                            stdin=subprocess.DEVNULL, text=True, env=env)
            os.close(slave)
            self.lines = Lines(terminal_chunks(self._master))
        else:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            stdin=subprocess.DEVNULL, text=True, env=env)
            self.lines = Lines(iter(self.process.stdout))

    def expect(self, pattern: str, timeout: float, count: int = 1) -> float:
        """The time of the ``count``-th line matching ``pattern``; the bench stops if it does not come."""
        moment = self.lines.wait_for(pattern, timeout, count)
        if moment is None:
            raise self.failure(f"no {pattern!r} (x{count}) within {timeout:g} s")
        return moment

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as a person stops it; its exit status."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: the threads' stacks on stderr
            raise self.failure(f"did not stop {timeout:g} s after SIGINT") from None

    def failure(self, what: str) -> SystemExit:
        """Stop the process; the bench's exit with ``what``, its output and the end of its stderr."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        return SystemExit(f"implement_model.py {what}:\n{self.lines.text()[-3000:]}\n{self.process.stderr.read()[-3000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self._master is not None:
            os.close(self._master)
            self._master = None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


# The model ------------------------------------------------------------------------------------------
def train_small_model(folder: Path) -> tuple:
    """A CNN trained for 6 epochs on the demo corpus (one SNR): (model path, database path)."""
    env = dict(os.environ, ACOUSTICS_DATA=str(folder))
    started = time.perf_counter()
    stage("set_up_sql.py", "--snrs", "10", env=env, timeout=900)
    stage("collect_background_noise.py", "--synthetic", env=env, timeout=900)
    stage("speech_prep.py", "--demo", "--no-picture", env=env, timeout=900)
    stage("train_models.py", "--model", "cnn", "--epochs", "6", env=env, timeout=900)
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


def stream_detector():
    """The voice activity detector of stage 5 --stream (its default pause, one 30 ms frame per read)."""
    from acoustics.utterances import STREAM_PAUSE_SECONDS, VoiceActivityDetector

    return VoiceActivityDetector(RATE, pause_seconds=STREAM_PAUSE_SECONDS, frame_seconds=0.03)


def last_speech_sample(clip: np.ndarray) -> int:
    """Index after the last sample of the last frame the detector counts as speech (clip in silence)."""
    detector = stream_detector()
    padded = np.concatenate([np.zeros(RATE // 2, np.float32), clip, np.zeros(RATE, np.float32)])
    found = detector.feed(padded) + detector.flush()
    if len(found) != 1:
        raise SystemExit(f"the detector finds {len(found)} utterances in one clip; choose other sentences.")
    tail = detector.tail_frames * detector.frame_samples
    return int(round(found[0].end_seconds * RATE)) - tail - RATE // 2


@dataclass(frozen=True)
class Plan:
    """What --stream hears: ``signal`` (idle silence, then the utterances with gaps), the index of each
    utterance's last speech sample in it, and each speaker's sex."""

    signal: np.ndarray
    ends: list
    sexes: list


def plan(clips: list, count: int) -> Plan:
    gap = np.zeros(int(GAP_SECONDS * RATE), np.float32)
    pieces, ends, sexes, position = [np.zeros(int(IDLE_SECONDS * RATE), np.float32)], [], [], int(IDLE_SECONDS * RATE)
    for clip, sex in (clips[index % len(clips)] for index in range(count)):
        pieces += [clip, gap]
        ends.append(position + last_speech_sample(clip) - 1)  # index of the last speech sample
        sexes.append(sex)
        position += clip.size + gap.size
    return Plan(np.concatenate(pieces), ends, sexes)


# Measurements --------------------------------------------------------------------------------------
def model_arguments(model: Path, database: Path, *extra) -> list:
    return ["--model", model, "--db", database, "--no-save", *extra]


def measure_startup(fifo: Path, arguments: list, env: dict, *, live: bool) -> float:
    feed = PacedFeed(fifo)
    started = time.monotonic()
    running = Stage5(arguments, env, live=live)
    try:
        moment = running.expect("Speak now", timeout=60)
        running.interrupt()
        return moment - started
    finally:
        running.close()
        feed.close()


def cpu_fraction(pid: int, seconds: float) -> float:
    """The CPU of process ``pid`` over the next ``seconds`` (sleeps), as a fraction of one core."""
    cpu, wall = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / (time.monotonic() - wall)


def measure_stream(fifo: Path, arguments: list, env: dict, heard: Plan, *, live: bool) -> dict:
    """Run --stream over ``heard``: idle and busy CPU, and the verdict lines with the feed's clock."""
    feed = PacedFeed(fifo)
    running = Stage5([*arguments, "--stream"], env, live=live)
    try:
        running.expect("^Listening", timeout=60)
        running.expect("^Loaded the", timeout=120)  # the model loads in the background
        time.sleep(0.5)
        feed.play(heard.signal)
        while not feed.block_times:
            time.sleep(0.001)
        time.sleep(1.0)  # idle: from 1 s to IDLE_SECONDS - 1 s into the silence
        idle = cpu_fraction(running.process.pid, IDLE_SECONDS - 2.0)
        time.sleep(1.0)
        busy_cpu, busy_wall = cpu_seconds(running.process.pid), time.monotonic()
        running.expect(r"utterance \d+ \(", timeout=heard.signal.size / RATE + 30, count=len(heard.ends))
        busy = (cpu_seconds(running.process.pid) - busy_cpu) / (time.monotonic() - busy_wall)
        status = running.interrupt()
    finally:
        running.close()
        feed.close()
    return summary(running.lines, feed, heard) | {"idle_cpu": idle, "busy_cpu": busy, "exit": status}


def summary(lines: Lines, feed: PacedFeed, heard: Plan) -> dict:
    """Latencies and right answers of the verdict lines of one --stream run."""
    detector = stream_detector()
    pause_ms = detector.pause_frames * detector.frame_seconds * 1000
    verdicts = lines.matching(r"utterance \d+ \(")
    after_speech = np.array([(moment - feed.delivered(end)) * 1000 for (moment, _), end in zip(verdicts, heard.ends)])
    correct = sum(line.split("): ", 1)[-1].startswith(sex) for (_, line), sex in zip(verdicts, heard.sexes))
    return {"after_speech_ms": after_speech, "after_pause_ms": after_speech - pause_ms, "pause_ms": pause_ms,
            "correct": correct, "count": len(verdicts), "stopped": bool(lines.matching("Stopped listening after"))}


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


# Running and reporting ------------------------------------------------------------------------------
def startups(fifo: Path, arguments: list, env: dict, runs: int, views: tuple) -> dict:
    """Start-up times, ``runs`` for each view (False: plain lines, True: the live view), taken in turns so
    that both meet the same load of the machine; printed and returned."""
    found = {live: [] for live in views}
    for _ in range(runs):
        for live in views:
            found[live].append(measure_startup(fifo, arguments, env, live=live))
    for live, values in found.items():
        print(f"[{VIEW_NAMES[live]}] start-up to 'Speak now': " + ", ".join(f"{value:.2f}" for value in values)
              + f" s (median {np.median(values):.2f} s).", flush=True)
    return found


def stream_figures(fifo: Path, arguments: list, env: dict, heard: Plan, *, live: bool) -> dict:
    """--stream with the live view or plain lines: latencies and CPU, printed and returned."""
    name = VIEW_NAMES[live]
    result = measure_stream(fifo, arguments, env, heard, live=live)
    after_pause, after_speech = result["after_pause_ms"], result["after_speech_ms"]
    print(f"[{name}] --stream: {result['count']} utterances reported ({result['correct']} with the right sex), exit "
          f"status {result['exit']}, {'stopped cleanly' if result['stopped'] else 'NOT stopped cleanly'} by SIGINT.")
    print(f"[{name}] latency after the end of the pause: median {np.median(after_pause):.0f} ms, 95th percentile "
          f"{np.percentile(after_pause, 95):.0f} ms, max {after_pause.max():.0f} ms; after the last speech sample "
          f"(includes the detector's {result['pause_ms']:.0f} ms pause): median {np.median(after_speech):.0f} ms.")
    print(f"[{name}] --stream CPU, fraction of one core: idle listening {result['idle_cpu']:.3f}, with utterances "
          f"{result['busy_cpu']:.3f}.", flush=True)
    return {"latency_ms_p50": round(float(np.median(after_pause)), 1),
            "latency_ms_p95": round(float(np.percentile(after_pause, 95)), 1),
            "stream_cpu_fraction": round(float(result["busy_cpu"]), 3)}


def measure(fifo: Path, arguments: list, env: dict, heard: Plan, runs: int, views: tuple) -> dict:
    """The figures of each view: {live: {"startup_seconds", "latency_ms_p50", "latency_ms_p95", "stream_cpu_fraction"}}."""
    started = startups(fifo, arguments, env, runs, views)
    return {live: {"startup_seconds": round(float(np.median(started[live])), 2)}
            | stream_figures(fifo, arguments, env, heard, live=live) for live in views}


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model .h5 (default: train a small one)")
    parser.add_argument("--db", type=Path, help="feature database the model belongs to (default: none)")
    parser.add_argument("--utterances", type=int, default=50)
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--plain-only", action="store_true", help="skip the runs with the live view")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference figures")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    if not sys.platform.startswith("linux"):
        print("Skipped: this bench plays speech through a PulseAudio virtual microphone and watches stage 5 in a "
              "pseudo-terminal, which it does on Linux only.")
        return 2
    if shutil.which("espeak-ng") is None or not pulseaudio_installed():
        print("Skipped: needs espeak-ng, pulseaudio, pulseaudio-utils and libasound2-plugins ('make install').")
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)  # so that stage 5 inherits a working Ctrl-C
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model, database = ((arguments.model, arguments.db or scratch / "no-database.db") if arguments.model
                           else train_small_model(scratch / "data"))
        (scratch / "clips").mkdir()
        heard = plan(utterances(scratch / "clips"), arguments.utterances)
        microphone = VirtualMicrophone.start(scratch)
        env = dict(os.environ, **microphone.env, ACOUSTICS_DATA=str(scratch / "data"), PYTHONUNBUFFERED="1",
                   PYTHONFAULTHANDLER="1")
        stage_arguments = model_arguments(model, database)
        print(f"Load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores).", flush=True)
        try:
            with microphone.pipe_source() as fifo:
                views = (False,) if arguments.plain_only else (False, True)
                figures = measure(fifo, stage_arguments, env, heard, arguments.startup_runs, views)
        finally:
            microphone.close()
        if not arguments.no_reference:
            reference_figures(model)
    plain, live = figures[False], figures.get(True)
    print(f"Load average after: {os.getloadavg()[0]:.1f}. Plain lines: {plain}; live view: {live} ({GOALS}).")
    print(json.dumps(dict(plain, live_view=live)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

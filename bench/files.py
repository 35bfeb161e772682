#!/usr/bin/env python3
"""Many-files benchmark: how fast stage 5 classifies a folder of short recordings.

Builds, once and seeded, FILES recordings of 3-4 s of real speech (pieces of the EmoDB, RAVDESS and
LibriSpeech clips in ../shared/data, 16-bit WAV, in bench/results/files/), then classifies them as
``implement_model.py FOLDER`` does (``acoustics.fileverdicts.file_verdicts`` with the reference model
that answers out of the box), after start-up (the model loaded, TensorFlow warm):

- the pipeline as stage 5 runs it (threads read ahead, the windows of many files in one prediction,
  the model predicting through XLA: ``models.load_model(..., xla=True)``);
- the same pipeline with the model's plain prediction path (without XLA), in the same runs;
- the baseline in the same run: one file at a time (one reading thread, one prediction per file, without XLA).

Each is timed --repeats times; the figures are medians with the range. A last check runs the real
script (``implement_model.py FOLDER --json``) and counts its JSON lines.

    python bench/files.py [--files 1000] [--repeats 3]

Last line: one JSON object {"files", "files_per_second", "plain_files_per_second", "baseline_files_per_second",
"speedup", "script_seconds", "cores"}. Goal: >= 200 files per second on 2 cores, after start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import CORPORA, DATA, RESULTS, ROOT  # also puts the project on sys.path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from acoustics import audio, corpus, fileverdicts, verdict  # noqa: E402

FOLDER = RESULTS / "files"
RATE = 16000


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="recordings to classify (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each way (default 3)")
    parser.add_argument("--baseline-files", type=int, default=200, help="files the one-at-a-time baseline takes (default 200)")
    parser.add_argument("--compare", type=Path, metavar="MODEL",
                        help="also time the pipeline with this model in the same runs (e.g. the ConvNet ensemble)")
    return parser.parse_args(argv)


def make_files(count: int) -> list:
    """``count`` WAV files of 3-4 s of speech cut from the corpora's clips (cached in :data:`FOLDER`)."""
    import soundfile

    folder = FOLDER / str(count)
    existing = sorted(folder.glob("*.wav"))
    if len(existing) == count:
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    recordings = [recording for name in CORPORA if (DATA / name / "labels.csv").exists()
                  for recording in corpus.read_manifest(DATA / name / "labels.csv")[0]]
    if not recordings:
        sys.exit(f"No corpora in {DATA}: this bench needs ../shared/data.")
    rng = np.random.default_rng(0)
    for number in range(count):
        recording = recordings[int(rng.integers(len(recordings)))]
        signal = audio.trim_silence(audio.load_audio(recording.path, RATE)[0], 30.0)
        length = min(len(signal), int(rng.uniform(3.0, 4.0) * RATE))
        start = int(rng.integers(0, len(signal) - length + 1))
        soundfile.write(folder / f"{number:04d}_{recording.sex}.wav", signal[start:start + length], RATE, subtype="PCM_16")
    return sorted(folder.glob("*.wav"))


def timed(model, metadata, paths, *, files_per_prediction: int, threads: int) -> float:
    """Seconds to classify ``paths`` with these batch and thread counts (every file must get a verdict)."""
    started = time.perf_counter()
    results = [result for _, result in fileverdicts.file_verdicts(model, metadata, paths, threads=threads,
                                                                  files_per_prediction=files_per_prediction)]
    seconds = time.perf_counter() - started
    unanswered = sum(result.label is None for result in results)
    if unanswered:
        print(f"  ({unanswered} files got no verdict)")
    return seconds


def rate(seconds: list, count: int) -> tuple:
    """(median, lowest, highest) files per second."""
    rates = sorted(count / value for value in seconds)
    return statistics.median(rates), rates[0], rates[-1]


def run_script(folder) -> tuple:
    """(seconds, JSON lines) of ``implement_model.py FOLDER --json`` as a person runs it."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "implement_model.py"), str(folder), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0 and not (done.returncode == 1 and "got no verdict" in done.stderr):  # 1: some files unanswered
        sys.exit(f"implement_model.py failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started, len(done.stdout.splitlines())


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    paths = make_files(arguments.files)
    print(f"{len(paths)} files of 3-4 s in {paths[0].parent}; {os.cpu_count()} cores.", flush=True)
    choice = verdict.choose_model(None, ROOT / "data" / "models")
    from acoustics import models

    model, metadata = models.load_model(choice.path, xla=True)
    plain_model = models.load_model(choice.path)[0]
    print(f"Model: {choice.path} ({metadata['model_name']}).", flush=True)
    for network in (model, plain_model):  # warm TensorFlow, XLA and the caches, the last batch's size too
        timed(network, metadata, paths[:64], files_per_prediction=64, threads=4)
        timed(network, metadata, paths[:len(paths) % fileverdicts.FILES_PER_PREDICTION or 64], files_per_prediction=64, threads=4)
    other = models.load_model(arguments.compare, xla=True) if arguments.compare else None
    if other:
        print(f"Compared with: {arguments.compare} ({other[1]['model_name']}).", flush=True)
        timed(*other, paths[:64], files_per_prediction=64, threads=4)
    baseline_paths = paths[: arguments.baseline_files]
    pipeline, plain, baseline, compared = [], [], [], []
    for repeat in range(arguments.repeats):
        pipeline.append(timed(model, metadata, paths, files_per_prediction=fileverdicts.FILES_PER_PREDICTION,
                              threads=fileverdicts.READ_THREADS))
        plain.append(timed(plain_model, metadata, paths, files_per_prediction=fileverdicts.FILES_PER_PREDICTION,
                           threads=fileverdicts.READ_THREADS))
        baseline.append(timed(plain_model, metadata, baseline_paths, files_per_prediction=1, threads=1))
        if other:
            compared.append(timed(*other, paths, files_per_prediction=fileverdicts.FILES_PER_PREDICTION,
                                  threads=fileverdicts.READ_THREADS))
        print(f"  run {repeat + 1}: pipeline {len(paths) / pipeline[-1]:.0f} files/s, without XLA {len(paths) / plain[-1]:.0f} files/s, "
              f"one at a time {len(baseline_paths) / baseline[-1]:.0f} files/s"
              + (f", {arguments.compare.name} {len(paths) / compared[-1]:.0f} files/s" if other else ""), flush=True)
    fast, slow, without = rate(pipeline, len(paths)), rate(baseline, len(baseline_paths)), rate(plain, len(paths))
    extra = {}
    if other:
        third = rate(compared, len(paths))
        extra = {"compare_files_per_second": round(third[0], 1), "compare_time_ratio": round(third[0] / fast[0], 2)}
        print(f"{arguments.compare.name}: {third[0]:.0f} files/s (range {third[1]:.0f}-{third[2]:.0f}); "
              f"{metadata['model_name']} takes {third[0] / fast[0]:.1f}x its time.")
    script_seconds, lines = run_script(paths[0].parent)
    print(f"Pipeline: {fast[0]:.0f} files/s (range {fast[1]:.0f}-{fast[2]:.0f}); one file at a time: {slow[0]:.0f} files/s "
          f"(range {slow[1]:.0f}-{slow[2]:.0f}); {fast[0] / slow[0]:.1f}x. Without XLA: {without[0]:.0f} files/s "
          f"(range {without[1]:.0f}-{without[2]:.0f}); XLA {fast[0] / without[0]:.2f}x.")
    print(f"implement_model.py FOLDER --json: {lines} lines in {script_seconds:.1f} s, start-up included.")
    print(json.dumps({"files": len(paths), "files_per_second": round(fast[0], 1),
                      "plain_files_per_second": round(without[0], 1), "baseline_files_per_second": round(slow[0], 1),
                      "speedup": round(fast[0] / slow[0], 2), "script_seconds": round(script_seconds, 1),
                      "cores": os.cpu_count()} | extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())

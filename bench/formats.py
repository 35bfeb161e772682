#!/usr/bin/env python3
"""Formats benchmark: the same speech as WAV, FLAC, Ogg Vorbis, MP3, Opus, m4a/AAC, mp4 and webm gets the same verdict.

Takes --clips real clips per corpus in ../shared/data (seeded, one per speaker as far as they go), writes each in
the eight formats of ``tests/formats.py`` (as phones, messengers and video calls write them), and classifies every
file as ``implement_model.py FOLDER`` does (``acoustics.fileverdicts.file_verdicts``) with the reference model.
The baseline, measured in the same run, is the 16-bit WAV of each clip: for every other format the figures are
how far P(male) moves from it (median, 95th percentile, largest), how often the verdict differs from it, the
accuracy against the speakers' labels, and the files per second.

    python bench/formats.py [--clips 25] [--seed 0]

Last line: one JSON object {"clips", "formats", "answered", "max_p_male_shift", "p95_p_male_shift",
"verdict_agreement", "per_format"}. Goal: every file answered, P(male) within 0.05 of the WAV's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import CORPORA, DATA, ROOT  # also puts the project on sys.path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

import formats  # noqa: E402  (tests/formats.py)
from acoustics import audio, corpus, fileverdicts, models  # noqa: E402

RATE = 16000
GOAL_SHIFT = 0.05


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=25, help="clips per corpus (default 25)")
    parser.add_argument("--seed", type=int, default=0, help="which clips (default 0)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "reference.h5", help="model (default the reference)")
    return parser.parse_args(argv)


def pick_clips(per_corpus: int, seed: int) -> list:
    """``[(corpus, Recording)]``: ``per_corpus`` clips of each corpus, one per speaker while speakers last."""
    rng = np.random.default_rng(seed)
    picked = []
    for name in CORPORA:
        if not (DATA / name / "labels.csv").exists():
            continue
        recordings = corpus.read_manifest(DATA / name / "labels.csv")[0]
        order = [recordings[i] for i in rng.permutation(len(recordings))]
        seen, chosen = set(), []
        for recording in order + order:
            if len(chosen) == per_corpus:
                break
            if recording.speaker not in seen or len(seen) >= len({r.speaker for r in recordings}):
                seen.add(recording.speaker)
                if recording not in chosen:
                    chosen.append(recording)
        picked += [(name, recording) for recording in chosen]
    return picked


def shifts_of(p_male: dict, name: str) -> np.ndarray:
    """|P(male) of format ``name`` - P(male) of the WAV| for the clips both answered."""
    pairs = [(p_male[name][i], p_male["wav"][i]) for i in range(len(p_male["wav"]))
             if p_male[name][i] is not None and p_male["wav"][i] is not None]
    return np.abs(np.array([a - b for a, b in pairs])) if pairs else np.zeros(0)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    clips = pick_clips(arguments.clips, arguments.seed)
    if not clips:
        print(f"Skipped: no corpora in {DATA}.")
        return 2
    model, metadata = models.load_model(arguments.model)
    print(f"{len(clips)} clips from {len({name for name, _ in clips})} corpora, each written in {len(formats.FORMATS)} "
          f"formats; model {arguments.model} ({metadata['model_name']}); {os.cpu_count()} cores.", flush=True)
    p_male, right, seconds = {}, {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        written = {name: [] for name in formats.FORMATS}
        for number, (_, recording) in enumerate(clips):
            signal, _ = audio.load_audio(recording.path, RATE)
            for name, path in formats.write_all(signal, RATE, folder / f"{number:03d}", "clip").items():
                written[name].append(path)
        fileverdicts.file_verdicts(model, metadata, written["wav"][:8]).__next__()  # warm TensorFlow
        for name, paths in written.items():
            started = time.perf_counter()
            results = [result for _, result in fileverdicts.file_verdicts(model, metadata, paths)]
            seconds[name] = time.perf_counter() - started
            p_male[name] = [result.probability_male for result in results]
            right[name] = [result.label == recording.sex for result, (_, recording) in zip(results, clips) if result.label]
    per_format, answered = {}, True
    print(f"{'format':<11} {'answered':>8} {'accuracy':>8} {'median':>7} {'p95':>6} {'largest':>7} {'verdict':>7} {'files/s':>7}")
    print(f"{'':<11} {'':>8} {'':>8} {'P(male) shift from the WAV':>22} {'same':>7}")
    for name in formats.FORMATS:
        shift = shifts_of(p_male, name)
        count = sum(value is not None for value in p_male[name])
        answered &= count == len(clips)
        same = float(np.mean([(a >= 0.5) == (b >= 0.5) for a, b in zip(p_male[name], p_male["wav"])
                              if a is not None and b is not None]))
        per_format[name] = {"answered": count, "accuracy": round(float(np.mean(right[name])), 3),
                            "median_shift": round(float(np.median(shift)), 4), "p95_shift": round(float(np.percentile(shift, 95)), 4),
                            "max_shift": round(float(shift.max()), 4), "verdict_agreement": round(same, 3),
                            "files_per_second": round(len(clips) / seconds[name], 1)}
        row = per_format[name]
        print(f"{name:<11} {count:>4}/{len(clips):<3} {row['accuracy']:>8.3f} {row['median_shift']:>7.3f} {row['p95_shift']:>6.3f} "
              f"{row['max_shift']:>7.3f} {row['verdict_agreement']:>7.3f} {row['files_per_second']:>7.0f}")
    others = [name for name in formats.FORMATS if name != "wav"]
    largest = max(per_format[name]["max_shift"] for name in others)
    p95 = max(per_format[name]["p95_shift"] for name in others)
    agreement = min(per_format[name]["verdict_agreement"] for name in others)
    print(f"Every file answered: {'yes' if answered else 'no'}. Largest P(male) shift from the WAV: {largest:.3f} "
          f"(95th percentile, worst format: {p95:.3f}; goal {GOAL_SHIFT}). Same verdict as the WAV: at least {agreement:.1%}.")
    print(json.dumps({"clips": len(clips), "formats": len(formats.FORMATS), "answered": answered,
                      "max_p_male_shift": largest, "p95_p_male_shift": p95, "verdict_agreement": agreement,
                      "per_format": per_format}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

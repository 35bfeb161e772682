#!/usr/bin/env python3
"""Training benchmark: stage 3 on EmoDB into a temporary database, then the ConvNet+LSTM (stage 4).

Runs the stages as a person does: set_up_sql.py, a synthetic room noise (mixing.synthetic_room_noise),
speech_prep.py --manifest EmoDB, then train_models.py --model cnnlstm with the project's defaults
(speaker split 70/15/15 by sex: 3 training, 1 validation and 1 test speaker per sex; a fixed 10 epochs).
Prints the wall seconds of stage 3 and of the training, and the test accuracy.

    python bench/train.py [--epochs 30]

The last line is one JSON object: {"seconds", "epochs", "accuracy", "test_speakers"} (seconds: the
training; accuracy: the test speakers' clips, clean and noisy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import EMODB, stage  # also puts the project on sys.path

from acoustics import audio, mixing  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as folder:
        folder = Path(folder)
        database, noise = folder / "features.db", folder / "noise.wav"
        started = time.perf_counter()
        stage("set_up_sql.py", "--db", database)
        audio.write_wav(noise, mixing.synthetic_room_noise(10.0, 16000, np.random.default_rng(42)), 16000)
        (folder / "no_svd").mkdir()
        stage("speech_prep.py", "--db", database, "--noise", noise, "--manifest", EMODB / "labels.csv",
              "--svd", folder / "no_svd", "--no-picture")
        prep_seconds = time.perf_counter() - started
        started = time.perf_counter()
        result = stage("train_models.py", "--db", database, "--model", "cnnlstm", "--out", folder / "models",
                       "--epochs", arguments.epochs)
        stage_seconds = time.perf_counter() - started
        from acoustics import models

        _, metadata = models.load_model(folder / "models" / "cnnlstm.h5")
    scores = metadata["scores"]
    test = scores["test"]
    print("\n".join(line for line in result.stdout.splitlines() if not line.startswith(("Epoch", "  ")) or "clips" in line)[-1500:])
    print(f"stage 3 (EmoDB, clean + 4 SNRs): {prep_seconds:.1f} s; stage 4 process: {stage_seconds:.1f} s; "
          f"training: {scores['training_seconds']:.1f} s, {scores['epochs']} epochs (the last kept); test accuracy {test['accuracy']:.3f} on {test['speakers']} speakers "
          f"({test['clips']} clips); per variant {json.dumps({k: round(v, 3) for k, v in test['per_variant'].items()})}")
    print(json.dumps({"seconds": scores["training_seconds"], "epochs": scores["epochs"], "accuracy": round(test["accuracy"], 4),
                      "test_speakers": test["speakers"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Accuracy benchmark: leave-speakers-out on EmoDB, three models against two baselines, clean and in noise.

EmoDB has 5 male and 5 female speakers. Each of the 5 folds holds out one male and one female speaker
for testing and trains on the other eight (optionally plus the synthetic demo corpus, ``--demo``).
A network that stops early (one not in ``models.FIXED_EPOCHS``; by default none) trains on six and
stops on the validation loss of one more pair (the next fold's). Every recording is
processed the way stage 3 does it (``acoustics.preparation.clean_and_noisy``: load, trim, mix at a
power SNR; ``acoustics.features.mfcc``), but in memory instead of through SQLite. The models are the
project's (builders, normalisation, windows, class weights, ``fit_model``, the loudness-weighted
mean of a clip's windows) with their defaults.

- Training data: clean + a synthetic room noise (``audio.synthetic_room_noise``, seed A) at the
  settings' SNRs, as ``make demo`` stores them.
- Test conditions: clean; a *different* room noise (seed B) and babble (six espeak-ng talkers of other
  languages, three male and three female, ``audio.babble_noise``) at 20, 10, 5 and 0 dB SNR.
- Baselines, fitted on the same training speakers: the median F0 (librosa.pyin) against a threshold
  fitted on the clean training clips, and a logistic regression on per-clip MFCC means and stds.
- ``ensemble``: as train_models.py's ensemble.h5, the mean P(male) of ``models.ENSEMBLE_SIZE``
  ConvNets (``models.ENSEMBLE_MODEL``) trained with the seeds seed, seed + 1, ...; its seed spread
  compares ensembles that start at each of the ``--seeds`` seeds (they share members).
- Seed spread: every fold is trained with ``--seeds`` seeds; the spread is max - min over the seeds of
  the accuracy pooled over the folds (the table's rows are the first seed, the pipeline's default).
- ``synthetic_only``: the default model trained on the demo corpus alone, tested on all of EmoDB.

Accuracy is per clip, pooled over the folds, with Wilson 95 % intervals (clips of one speaker are not
independent: the intervals are optimistic). The table goes to bench/results/accuracy.csv; the last
line is one JSON object. F0 values are cached in bench/results/ (pyin is the slowest part).

    python bench/accuracy.py                 # everything (about an hour on 2 cores)
    python bench/accuracy.py --folds 0 1 --models cnnlstm --seeds 1 --no-baselines
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EMODB = ROOT.parent / "shared" / "data" / "emodb"
RESULTS = ROOT / "bench" / "results"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from acoustics import audio, corpus, features, preparation, training  # noqa: E402
from acoustics.settings import Settings  # noqa: E402

MODELS = ("cnn", "lstm", "cnnlstm")
TRAIN_NOISE_SEED, TEST_NOISE_SEED, BABBLE_SEED = 0, 1000, 2000
F0_RANGE = (60.0, 400.0)


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, nargs="+", default=list(range(5)), help="folds to run (0-4; default all)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--seeds", type=int, default=2,
                        help="every fold is trained with this many seeds (settings.seed, +1, ...) for the spread (default 2)")
    parser.add_argument("--epochs", type=int, default=30, help="epoch cap; each network's fixed schedule is shorter (default 30)")
    parser.add_argument("--cmn", type=int, choices=(0, 1), default=None, help=f"override training.CMN ({training.CMN})")
    parser.add_argument("--coefficients", type=int, default=None,
                        help=f"override training.COEFFICIENTS ({training.COEFFICIENTS}): how many MFCCs the networks see")
    parser.add_argument("--babble", type=float, default=None,
                        help=f"override training.BABBLE_PROBABILITY ({training.BABBLE_PROBABILITY})")
    parser.add_argument("--demo", type=int, choices=(0, 1), default=1, help="add the demo corpus to training (default 1)")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--no-synthetic-only", action="store_true")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--csv", type=Path, default=RESULTS / "accuracy.csv")
    parser.add_argument("--tag", default="", help="a label for this run in the log")
    return parser.parse_args(argv)


# Features -----------------------------------------------------------------------------------------
_worker: dict = {}


def _init(settings, noises, babble_voice_paths, want_f0):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    _worker.update(settings=settings, noises=noises, want_f0=want_f0)


def median_f0(signal: np.ndarray, sample_rate: int) -> float:
    """Median F0 in Hz over the voiced frames (librosa.pyin, 40 ms hop); NaN if nothing is voiced."""
    import librosa

    f0, voiced, _ = librosa.pyin(signal, fmin=F0_RANGE[0], fmax=F0_RANGE[1], sr=sample_rate, frame_length=1024,
                                 hop_length=640)
    f0 = f0[voiced & np.isfinite(f0)]
    return float(np.median(f0)) if f0.size else float("nan")


def _features_of(job):
    """(key, {condition: mfcc}, {condition: f0}) of one recording, as stage 3 computes them."""
    task, conditions, f0_conditions = job
    settings = _worker["settings"]
    mfccs, f0s = {}, {}
    speech = None
    for noise_name in {condition.split("@")[0] for condition in conditions if condition != "clean"} | {None}:
        if noise_name is None:
            continue
        speech, mixed = preparation.clean_and_noisy(task, _worker["noises"][noise_name], settings)
        for snr, signal in mixed.items():
            condition = f"{noise_name}@{snr:g}"
            if condition in conditions:
                mfccs[condition] = features.mfcc(signal, settings)
            if condition in f0_conditions:
                f0s[condition] = median_f0(signal, settings.sample_rate)
    if speech is None:
        speech, _ = preparation.clean_and_noisy(task, _worker["noises"]["train"], settings.replace(snrs_db=()))
    mfccs["clean"] = features.mfcc(speech, settings)
    if "clean" in f0_conditions:
        f0s["clean"] = median_f0(speech, settings.sample_rate)
    return task.sha256, mfccs, f0s


def load_corpus(manifest, settings, noises, conditions, f0_conditions, f0_cache, workers, synthetic=False):
    """Recordings of ``manifest`` with their features: list of dicts (speaker, label, mfcc, f0)."""
    recordings, skipped = corpus.read_manifest(manifest, synthetic=synthetic)
    tasks = [preparation.make_task(recording) for recording in recordings]
    jobs = []
    for task in tasks:
        missing = tuple(c for c in f0_conditions if f"{task.sha256}|{c}" not in f0_cache)
        jobs.append((task, conditions, missing))
    with ProcessPoolExecutor(max_workers=workers, initializer=_init,
                             initargs=(settings, noises, None, bool(f0_conditions))) as pool:
        results = list(pool.map(_features_of, jobs, chunksize=4))
    clips = []
    for task, (sha, mfccs, f0s) in zip(tasks, results):
        for condition, value in f0s.items():
            f0_cache[f"{sha}|{condition}"] = value
        clips.append({"speaker": task.recording.speaker, "label": int(task.recording.sex == "male"),
                      "mfcc": mfccs, "f0": {c: f0_cache.get(f"{sha}|{c}", float("nan")) for c in f0_conditions}})
    return clips


def make_noises(settings):
    rate = settings.sample_rate
    voices = [audio.trim_silence(audio.load_audio(path, rate)[0], settings.trim_top_db)
              for path in corpus.make_babble_voices(RESULTS / "babble_voices")]
    return {
        "train": audio.synthetic_room_noise(10.0, rate, np.random.default_rng(TRAIN_NOISE_SEED)),
        "room": audio.synthetic_room_noise(10.0, rate, np.random.default_rng(TEST_NOISE_SEED)),
        "babble": audio.babble_noise(voices, 20.0, rate, np.random.default_rng(BABBLE_SEED), talkers=6),
    }


# Scores -------------------------------------------------------------------------------------------
def wilson(correct: int, total: int, z: float = 1.96) -> tuple:
    if total == 0:
        return float("nan"), float("nan")
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def folds_of(clips):
    males = sorted({c["speaker"] for c in clips if c["label"] == 1})
    females = sorted({c["speaker"] for c in clips if c["label"] == 0})
    pairs = list(zip(males, females))
    return [{"test": set(pairs[i]), "validation": set(pairs[(i + 1) % len(pairs)])} for i in range(len(pairs))]


def training_rows(clips, speakers, conditions):
    rows = [(clip["mfcc"][condition], clip["label"]) for clip in clips if clip["speaker"] in speakers
            for condition in conditions]
    return [row[0] for row in rows], np.array([row[1] for row in rows])


def train_model(name, train, validation, settings, seed, epochs, normalisation_options, babble):
    """Train one network as stage 4 does: ``(model, normalisation, fit)``; ``normalisation_options``
    is ``{"cmn": bool, "coefficients": int}``."""
    from acoustics import models

    (train_x, train_y), (val_x, val_y) = train, validation
    normalisation = training.matrix_statistics(train_x, settings, **normalisation_options)
    counts = training.window_counts([len(m) for m in train_x], settings.frames)
    weights = training.balanced_class_weights(train_y, counts)
    batches = models.ArrayBatches(train_x, train_y, settings, normalisation, shuffle=True, seed=seed,
                                  class_weights=weights, babble=babble)
    val_batches = models.ArrayBatches(val_x, val_y, settings, normalisation, batch_size=256)
    model = models.build_model(name, settings, seed)
    fit = models.fit_model(model, batches, val_batches, epochs=epochs, verbose=0)
    return model, normalisation, fit


def predict(model, clips, conditions, settings, normalisation):
    """{condition: P(male) of each clip}."""
    from acoustics import models

    return {condition: models.predict_matrices(model, [clip["mfcc"][condition] for clip in clips], settings,
                                               normalisation)
            for condition in conditions}


def clip_stats(matrix):
    return np.concatenate([matrix.mean(axis=0), matrix.std(axis=0)])


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    cmn = training.CMN if arguments.cmn is None else bool(arguments.cmn)
    coefficients = min(training.COEFFICIENTS if arguments.coefficients is None else arguments.coefficients, settings.n_mfcc)
    normalisation_options = {"cmn": cmn, "coefficients": coefficients}
    babble = training.BABBLE_PROBABILITY if arguments.babble is None else arguments.babble
    snrs = settings.snrs_db
    train_conditions = ["clean"] + [f"train@{snr:g}" for snr in snrs]
    test_conditions = ["clean"] + [f"{noise}@{snr:g}" for noise in ("room", "babble") for snr in snrs]
    f0_conditions = [] if arguments.no_baselines else test_conditions
    noises = make_noises(settings)
    f0_cache_path = RESULTS / f"f0_cache_{hashlib.sha256(settings.to_json().encode()).hexdigest()[:10]}.json"
    f0_cache = json.loads(f0_cache_path.read_text()) if f0_cache_path.exists() else {}
    emodb = load_corpus(EMODB / "labels.csv", settings, noises, train_conditions + test_conditions, f0_conditions,
                        f0_cache, arguments.workers)
    f0_cache_path.write_text(json.dumps(f0_cache))
    use_demo = bool(arguments.demo) or not arguments.no_synthetic_only
    demo = (load_corpus(corpus.make_demo_corpus(RESULTS / "demo_corpus"), settings, noises, train_conditions, [], {},
                        arguments.workers, synthetic=True) if use_demo else [])
    print(f"features: {len(emodb)} EmoDB clips x {len(set(train_conditions + test_conditions))} conditions, "
          f"{len(demo)} demo clips, {time.perf_counter() - started:.0f} s; cmn={cmn} coefficients={coefficients} demo_in_training={arguments.demo}",
          flush=True)

    from acoustics import models  # imports Keras: after the feature workers are done

    folds = folds_of(emodb)
    correct = {}  # (system, condition) -> list of bool arrays
    per_seed = {}  # (system, seed, condition) -> list of bool arrays, one per fold
    seeds = [settings.seed + k for k in range(max(1, arguments.seeds))]

    def log_line(fold_number, name, seed, fit, probabilities, labels):
        accuracies = {c: float(((probabilities[c] >= 0.5).astype(int) == labels).mean()) for c in probabilities}
        trained = f"epochs {fit['epochs']} (best {fit['best_epoch']}), {fit['seconds']:.0f} s; " if fit else ""
        print(f"fold {fold_number} {name} seed {seed}: {trained}clean {accuracies['clean']:.3f} room5 {accuracies['room@5']:.3f} "
              f"babble5 {accuracies['babble@5']:.3f} babble0 {accuracies['babble@0']:.3f} [{time.perf_counter() - started:.0f} s]",
              flush=True)
    for fold_number in arguments.folds:
        fold = folds[fold_number]
        test = [clip for clip in emodb if clip["speaker"] in fold["test"]]
        train_speakers = {clip["speaker"] for clip in emodb} - fold["test"] - fold["validation"]
        train = training_rows(emodb, train_speakers, train_conditions)
        if arguments.demo:
            demo_x, demo_y = training_rows(demo, {clip["speaker"] for clip in demo}, train_conditions)
            train = (train[0] + demo_x, np.concatenate([train[1], demo_y]))
        validation = training_rows(emodb, fold["validation"], train_conditions)
        train_and_validation = (train[0] + validation[0], np.concatenate([train[1], validation[1]]))
        labels = np.array([clip["label"] for clip in test])
        if not arguments.no_baselines:
            fit_speakers = train_speakers | fold["validation"]
            # median-F0 threshold: the cut between the sexes that is best on the clean training clips
            f0 = np.array([c["f0"]["clean"] for c in emodb if c["speaker"] in fit_speakers])
            y = np.array([c["label"] for c in emodb if c["speaker"] in fit_speakers])
            ok = np.isfinite(f0)
            candidates = np.unique(f0[ok])
            balanced = [0.5 * (np.mean(f0[ok & (y == 1)] < t) + np.mean(f0[ok & (y == 0)] >= t)) for t in candidates]
            threshold = float(candidates[int(np.argmax(balanced))])
            for condition in test_conditions:
                values = np.array([c["f0"][condition] for c in test])
                predicted = np.where(np.isfinite(values), values < threshold, 0)
                correct.setdefault(("f0", condition), []).append(predicted.astype(int) == labels)
            # logistic regression on per-clip MFCC means and stds
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            x, y = training_rows(emodb, fit_speakers, train_conditions)
            classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
            classifier.fit(np.stack([clip_stats(m) for m in x]), y)
            for condition in test_conditions:
                predicted = classifier.predict(np.stack([clip_stats(c["mfcc"][condition]) for c in test]))
                correct.setdefault(("logreg", condition), []).append(predicted == labels)
        trained = {}  # (name, seed) -> {condition: P(male)}; the ensemble reuses the ConvNets trained here

        def probabilities_of(name, seed):
            if (name, seed) not in trained:
                # A network on a fixed schedule does not stop on the validation speakers: it learns from them.
                rows = train_and_validation if name in models.FIXED_EPOCHS else train
                model, normalisation, fit = train_model(name, rows, validation, settings, seed, arguments.epochs,
                                                        normalisation_options, babble)
                trained[(name, seed)] = predict(model, test, test_conditions, settings, normalisation)
                log_line(fold_number, name, seed, fit, trained[(name, seed)], labels)
                models.keras.backend.clear_session()
            return trained[(name, seed)]

        for seed in seeds:
            fold_probabilities = {name: probabilities_of(name, seed) for name in arguments.models}
            if models.ENSEMBLE_MODEL in arguments.models:
                members = [probabilities_of(models.ENSEMBLE_MODEL, seed + k) for k in range(models.ENSEMBLE_SIZE)]
                fold_probabilities["ensemble"] = {condition: np.mean([member[condition] for member in members], axis=0)
                                                  for condition in test_conditions}
                log_line(fold_number, "ensemble", seed, None, fold_probabilities["ensemble"], labels)
            for name, probabilities in fold_probabilities.items():
                for condition, values in probabilities.items():
                    hits = (values >= 0.5).astype(int) == labels
                    per_seed.setdefault((name, seed, condition), []).append(hits)
                    if seed == settings.seed:
                        correct.setdefault((name, condition), []).append(hits)

    synthetic_only = {}
    if not arguments.no_synthetic_only:
        speakers = sorted({clip["speaker"] for clip in demo})
        validation_speakers = set(speakers[::5])
        train = training_rows(demo, set(speakers) - validation_speakers, train_conditions)
        validation = training_rows(demo, validation_speakers, train_conditions)
        model, normalisation, fit = train_model("cnnlstm", train, validation, settings, settings.seed, arguments.epochs, normalisation_options, babble)
        labels = np.array([clip["label"] for clip in emodb])
        result = predict(model, emodb, test_conditions, settings, normalisation)
        synthetic_only = {c: float(((v >= 0.5).astype(int) == labels).mean()) for c, v in result.items()}
        print(f"synthetic only (cnnlstm, demo corpus -> all EmoDB): clean {synthetic_only['clean']:.3f} "
              f"room5 {synthetic_only['room@5']:.3f} babble5 {synthetic_only['babble@5']:.3f}", flush=True)

    # Table ----------------------------------------------------------------------------------------
    import pandas

    rows = []
    for (system, condition), arrays in correct.items():
        values = np.concatenate(arrays)
        low, high = wilson(int(values.sum()), len(values))
        noise, snr = ("none", "clean") if condition == "clean" else condition.split("@")
        rows.append({"system": system, "noise": noise, "snr_db": snr, "accuracy": values.mean(), "low": low,
                     "high": high, "clips": len(values), "folds": len(arrays)})
    for condition, value in synthetic_only.items():
        noise, snr = ("none", "clean") if condition == "clean" else condition.split("@")
        low, high = wilson(int(round(value * len(emodb))), len(emodb))
        rows.append({"system": "synthetic_only_cnnlstm", "noise": noise, "snr_db": snr, "accuracy": value, "low": low,
                     "high": high, "clips": len(emodb), "folds": 0})
    table = pandas.DataFrame(rows)
    table.to_csv(arguments.csv, index=False, float_format="%.4f")

    def cell(system, condition):
        values = np.concatenate(correct[(system, condition)]) if (system, condition) in correct else None
        return float(values.mean()) if values is not None else float("nan")

    columns = ["clean"] + [f"{noise}@{snr:g}" for noise in ("room", "babble") for snr in snrs]
    models_run = list(arguments.models) + (["ensemble"] if models.ENSEMBLE_MODEL in arguments.models else [])
    systems = models_run + ([] if arguments.no_baselines else ["logreg", "f0"])
    for noise in ("room", "babble"):
        print(f"\nAccuracy (clips pooled over folds {arguments.folds}; seed {settings.seed}; Wilson 95 % interval), noise = {noise}:")
        shown = pandas.DataFrame({
            system: {condition.split("@")[-1] + ("" if condition == "clean" else " dB"):
                     "{:.3f} [{:.3f}, {:.3f}]".format(*_with_interval(correct.get((system, condition))))
                     for condition in ["clean"] + [c for c in columns if c.startswith(noise)]}
            for system in systems}).T
        print(shown.to_string())
    spread = {}
    print(f"\nSeed spread (accuracy pooled over folds {arguments.folds}, for each of the seeds {seeds}):")
    for name in models_run:
        pooled = {condition: [float(np.concatenate(per_seed[(name, seed, condition)]).mean()) for seed in seeds]
                  for condition in ("clean", "babble@5")}
        for condition, values in pooled.items():
            spread[f"{name}_{condition}"] = round(max(values) - min(values), 4)
        print(f"  {name:<9} " + "; ".join(f"{condition}: " + ", ".join(f"{value:.3f}" for value in values)
                                          + f" (spread {max(values) - min(values):.3f})" for condition, values in pooled.items()))
    best = max(models_run, key=lambda name: (cell(name, "clean") + cell(name, "babble@5")))
    at_low_snr = [c for c in columns if c != "clean" and float(c.split("@")[1]) <= 5]
    if not arguments.no_baselines:
        beaten = {name: all(cell(name, c) > max(cell("logreg", c), cell("f0", c)) for c in at_low_snr) for name in models_run}
        print(f"beats both baselines in every condition at 5 dB and below: {json.dumps(beaten)}")
    print(f"seed spread (max - min, accuracy): {json.dumps(spread)}")
    print(f"table: {arguments.csv}; {time.perf_counter() - started:.0f} s in all; cmn={cmn} coefficients={coefficients} babble={babble} demo={arguments.demo} {arguments.tag}")
    summary = {
        "best_model": best, "best_clean": round(cell(best, "clean"), 4), "best_5db_babble": round(cell(best, "babble@5"), 4),
        "f0_clean": round(cell("f0", "clean"), 4), "f0_5db_babble": round(cell("f0", "babble@5"), 4),
        "logreg_clean": round(cell("logreg", "clean"), 4), "logreg_5db_babble": round(cell("logreg", "babble@5"), 4),
        "synthetic_only_clean": round(synthetic_only.get("clean", float("nan")), 4),
        "best_seed_spread_clean": spread.get(f"{best}_clean"), "best_seed_spread_5db_babble": spread.get(f"{best}_babble@5"),
    }
    # Strict JSON: a figure that was not measured (--no-baselines, --no-synthetic-only) is null, not NaN.
    print(json.dumps({key: None if isinstance(value, float) and np.isnan(value) else value for key, value in summary.items()}))
    return 0


def _with_interval(arrays):
    if not arrays:
        return float("nan"), float("nan"), float("nan")
    values = np.concatenate(arrays)
    return (values.mean(), *wilson(int(values.sum()), len(values)))


if __name__ == "__main__":
    sys.exit(main())

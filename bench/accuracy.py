#!/usr/bin/env python3
"""Accuracy benchmark across corpora: leave one corpus out, the networks against three baselines.

For each of EmoDB (10 German actors), RAVDESS (24 English actors), LibriSpeech (261 English readers)
and speechocean762 (128 adults of Mandarin-accented English) in ../shared/data: train on the other three
plus the espeak-ng demo corpus, and test on every clip of the held-out one. A few speakers of each
training corpus (2 per sex) are kept out of training to fit the calibration temperature, as stage 4
does with its validation speakers. Every recording is prepared as stage 3 does
(``preparation.clean_and_noisy``: load, trim, room noise at the settings' SNRs; ``features.mfcc``) but
in memory, and every network trains through ``models.train_network``
with the project's :class:`~acoustics.recipe.Recipe` (``--recipe NAME=VALUE`` changes it).

Test conditions (mixed at a power SNR with ``mixing.mix_at_snr``): clean; white noise at 5 and 0 dB;
babble of six real voices of the held-out corpus that are not the test clip's speaker (``real
babble``) at 5 and 0 dB; six espeak-ng talkers of other languages (``espeak babble``) at 5 dB; a room
noise the training never heard at 0 dB; and the first 1.0 s of speech only.

Baselines fitted on the same training clips: the median F0 (``librosa.yin`` over the louder frames)
against the threshold best on them, a logistic regression on per-clip MFCC means and stds, and the
published way of using the pretrained speaker encoder (``encoder_logreg``): a logistic regression on
the clean training clips' utterance embeddings (:func:`acoustics.encoder.embed_clips`).
Accuracy is per clip, with Wilson 95 % intervals (clips of one speaker are not independent, so the
intervals are optimistic) and per-sex recall. The headline is the *worst* held-out corpus.

    python bench/accuracy.py            # the networks, and the ensemble with 2 seeds: about 40 minutes on 2 cores
    python bench/accuracy.py --quick    # 1 seed, the ensemble only, fewer conditions: under 10 minutes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from common import CORPORA, DATA, RESULTS  # also puts the project on sys.path
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from acoustics import audio, augment, corpus, democorpus, features, mixing, outputs, preparation, training  # noqa: E402
from acoustics.errors import AcousticsError, BadParameterError  # noqa: E402
from acoustics.recipe import Recipe  # noqa: E402
from acoustics.settings import Settings  # noqa: E402

CONDITIONS = ("clean", "white@5", "white@0", "realbabble@5", "realbabble@0", "espeakbabble@5", "room@0", "reverb@0.6",
              "first1s")
QUICK_CONDITIONS = ("clean", "white@5", "realbabble@5", "room@0", "reverb@0.6", "first1s")
TRAIN_NOISE_SEED, TEST_NOISE_SEED = 0, 1000
F0_RANGE = (60.0, 400.0)
BASELINES = ("f0", "logreg", "encoder_logreg")
#: Speakers whose label the corpus probably has wrong: every system, the pitch threshold too, calls every
#: clip of theirs the other sex, and their median F0 (the values, in Hz) is far on the other side
#: (bench/README.md, "Transfer learning"):
#: labelled male at 220-250 Hz, labelled female at 105-127 Hz. They stay in every figure; the summary
#: also gives the best model's clean accuracy without them.
SUSPECT_LABELS = {"speechocean762/so762_2355": 220, "speechocean762/so762_2917": 236, "speechocean762/so762_3023": 250,
                  "speechocean762/so762_2380": 127, "speechocean762/so762_2430": 113, "speechocean762/so762_2451": 105}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, the ensemble only, fewer conditions")
    parser.add_argument("--held-out", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--folds", nargs="+", choices=CORPORA, default=None,
                        help="run only these of the --held-out folds (the features stay those of --held-out: the "
                             "cached features of every fold serve a run of some of them)")
    parser.add_argument("--models", nargs="+", default=None, help="networks besides the ensemble (default: the recipe's)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per fold (default 2; --quick 1)")
    parser.add_argument("--first-seed", type=int, default=None,
                        help="the networks' first seed (default: the settings' seed); the calibration speakers stay "
                             "those of the settings' seed, so that runs with other seeds add to one another")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--settings", action="append", default=[], metavar="NAME=VALUE",
                        help="a feature setting other than the default (an experiment: n_mels=80 n_mfcc=80)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--csv", type=Path, default=RESULTS / "accuracy.csv")
    parser.add_argument("--tag", default="")
    parser.add_argument("--without-demo", action="store_true",
                        help="train without the espeak-ng demo corpus (real voices only), as a check of what it adds")
    arguments = parser.parse_args(argv)
    if arguments.folds and not set(arguments.folds) <= set(arguments.held_out):
        parser.error("--folds must be some of --held-out")
    arguments.folds = arguments.folds or arguments.held_out
    return arguments


# Features -----------------------------------------------------------------------------------------
_worker: dict = {}


def _init(settings, noises):
    _worker.update(settings=settings, noises=noises)


def median_f0(signal: np.ndarray, sample_rate: int) -> float:
    """Median F0 (Hz) of the frames within 20 dB of the loudest (librosa.yin); NaN if none."""
    import librosa

    f0 = librosa.yin(signal, fmin=F0_RANGE[0], fmax=F0_RANGE[1], sr=sample_rate, frame_length=1024, hop_length=320)
    rms = librosa.feature.rms(y=signal, frame_length=1024, hop_length=320)[0][: len(f0)]
    loud = rms >= rms.max() * 0.1
    return float(np.median(f0[loud])) if loud.any() else float("nan")


def _features_of(job):
    """{condition: mfcc} and {condition: F0} of one recording."""
    task, conditions, babble_key = job
    settings, noises = _worker["settings"], _worker["noises"]
    try:
        speech, mixed = preparation.clean_and_noisy(task, noises["train"], settings)
    except AcousticsError as error:  # refused by stage 3's check: reported, left out
        return str(error)
    mfccs = {"clean": features.mfcc(speech, settings)}
    mfccs.update({f"train@{snr:g}": features.mfcc(signal, settings) for snr, signal in mixed.items()})
    signals = {"clean": speech}
    rng = np.random.default_rng(int(task.sha256[:8], 16))
    for condition in conditions:
        if condition == "clean":
            continue
        if condition == "first1s":
            signals[condition] = speech[: settings.sample_rate]
            continue
        noise_name, snr = condition.split("@")
        if noise_name == "reverb":
            signals[condition] = reverberate(speech, float(snr), settings.sample_rate, rng)
            continue
        noise = noises[babble_key] if noise_name == "realbabble" else noises[noise_name]
        signals[condition] = mixing.mix_at_snr(speech, noise, float(snr), rng)
    for condition, signal in signals.items():
        mfccs[condition] = features.mfcc(signal, settings)
    f0 = {condition: median_f0(signals[condition], settings.sample_rate) for condition in conditions}
    return mfccs, f0


def reverberate(speech: np.ndarray, rt60_seconds: float, sample_rate: int, rng: np.random.Generator,
                drr_db: float = 0.0) -> np.ndarray:
    """``speech`` as a microphone across a room hears it: convolved with a synthetic impulse response
    (the direct sound, then from 3 ms on a tail of noise decaying by 60 dB in ``rt60_seconds``, holding
    ``drr_db`` dB less energy than the direct sound), at the same RMS level."""
    import scipy.signal

    length = int(rt60_seconds * sample_rate)
    start = int(0.003 * sample_rate)
    times = np.arange(length - start) / sample_rate
    tail = rng.standard_normal(length - start) * 10 ** (-3 * times / rt60_seconds)
    response = np.zeros(length)
    response[0] = 1.0
    response[start:] = tail * np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    wet = scipy.signal.fftconvolve(speech, response)[: len(speech)]
    return (wet * np.sqrt(np.mean(speech**2) / max(np.mean(wet**2), 1e-20))).astype(np.float32)


def load_corpus(name, settings, noises, conditions, workers):
    """The recordings of corpus ``name`` with their features (the test ``conditions`` too where it is held
    out: where ``noises`` has its babble): a list of dicts."""
    manifest = (democorpus.make_demo_corpus(RESULTS / "demo_corpus") if name == "demo" else DATA / name / "labels.csv")
    recordings, _ = corpus.read_manifest(manifest, synthetic=name == "demo")
    tasks = [preparation.make_task(recording) for recording in recordings]
    babble_speakers = noises.get(f"{name}_babble_speakers", set())
    tested = f"{name}_babble_a" in noises
    jobs = [(task, conditions if tested else ("clean",),
             f"{name}_babble_b" if task.recording.speaker in babble_speakers else f"{name}_babble_a") for task in tasks]
    with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(settings, noises)) as pool:
        results = list(pool.map(_features_of, jobs, chunksize=4))
    for refusal in (result for result in results if isinstance(result, str)):
        print(f"left out (stage 3 refuses it): {refusal}", flush=True)
    return [{"corpus": name, "speaker": f"{name}/{task.recording.speaker}", "label": int(task.recording.sex == "male"),
             "mfcc": result[0], "f0": result[1]} for task, result in zip(tasks, results) if not isinstance(result, str)]


def real_babble(name, settings, rng):
    """Two six-talker babbles of corpus ``name`` (3 male, 3 female each) from disjoint speakers, and the
    speakers of the first: clips of those speakers get the second babble, so nobody babbles over himself."""
    recordings, _ = corpus.read_manifest(DATA / name / "labels.csv")
    by_sex = {sex: sorted({r.speaker for r in recordings if r.sex == sex}) for sex in ("male", "female")}
    groups = []
    for group in range(2):
        speakers = [speaker for sex in ("male", "female") for speaker in by_sex[sex][group * 3 : group * 3 + 3]]
        voices = [audio.trim_silence(audio.load_audio(next(r.path for r in recordings if r.speaker == speaker),
                                                      settings.sample_rate)[0], settings.trim_top_db) for speaker in speakers]
        groups.append((set(speakers), mixing.babble_noise(voices, 20.0, settings.sample_rate, rng, talkers=6)))
    return groups


def make_noises(settings, held_out):
    rate, rng = settings.sample_rate, np.random.default_rng(TEST_NOISE_SEED)
    voices = [audio.trim_silence(audio.load_audio(path, rate)[0], settings.trim_top_db)
              for path in democorpus.make_babble_voices(RESULTS / "babble_voices")]
    noises = {
        "train": mixing.synthetic_room_noise(10.0, rate, np.random.default_rng(TRAIN_NOISE_SEED)),
        "room": mixing.synthetic_room_noise(10.0, rate, rng) + 0.3 * augment.coloured_noise("brown", 10 * rate, rng) * 10 ** (-45 / 20),
        "white": augment.coloured_noise("white", 10 * rate, rng) * 0.05,
        "espeakbabble": mixing.babble_noise(voices, 20.0, rate, rng, talkers=6),
    }
    for name in held_out:
        (speakers_a, babble_a), (_, babble_b) = real_babble(name, settings, rng)
        noises.update({f"{name}_babble_a": babble_a, f"{name}_babble_b": babble_b, f"{name}_babble_speakers": speakers_a})
    return noises


def cached_features(settings, conditions, arguments):
    """Every corpus's clips with their features, computed once per settings, conditions and held-out
    corpora and kept in bench/results/ (the features do not depend on the recipe)."""
    import hashlib

    key = json.dumps([settings.to_json(), list(conditions), sorted(arguments.held_out), 2])
    cache = RESULTS / f"features_{hashlib.sha256(key.encode()).hexdigest()[:12]}.pickle"
    if cache.exists():
        with open(cache, "rb") as handle:
            return pickle.load(handle)
    noises = make_noises(settings, arguments.held_out)
    clips = [clip for name in ("demo",) + CORPORA for clip in load_corpus(name, settings, noises, conditions, arguments.workers)]
    with outputs.replaced_atomically(cache) as temporary, open(temporary, "wb") as handle:
        pickle.dump(clips, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return clips


# Training and scoring -----------------------------------------------------------------------------
def split_training(clips, seed):
    """(train, calibration) clips: 2 speakers of each sex of each real training corpus calibrate."""
    rng = np.random.default_rng(seed)
    calibration = set()
    for name in sorted({clip["corpus"] for clip in clips} - {"demo"}):
        for label in (0, 1):
            speakers = sorted({c["speaker"] for c in clips if c["corpus"] == name and c["label"] == label})
            calibration |= set(rng.choice(speakers, size=min(2, len(speakers) - 1), replace=False))
    return [c for c in clips if c["speaker"] not in calibration], [c for c in clips if c["speaker"] in calibration]


def variant_rows(clips, settings):
    """Every stored-like variant (clean, room noise at the settings' SNRs) of each clip: (matrices, labels, recordings)."""
    conditions = ["clean"] + [f"train@{snr:g}" for snr in settings.snrs_db]
    rows = [(clip["mfcc"][condition], clip["label"], position) for position, clip in enumerate(clips) for condition in conditions]
    return [row[0] for row in rows], np.array([row[1] for row in rows]), np.array([row[2] for row in rows])


def train_network(name, train, calibration, settings, recipe, seed):
    """One network as stage 4 trains it, calibrated on the calibration speakers: a predict function."""
    from acoustics import models, trainer

    matrices, labels, recordings = variant_rows(train, settings)
    model, normalisation, fit = trainer.train_in_memory(name, matrices, labels, recordings, settings, recipe, seed)

    def predict(clips, condition):
        return models.predict_matrices(model, [clip["mfcc"][condition] for clip in clips], settings, normalisation, recipe=recipe)
    return model, predict, fit


def calibrated(probabilities, calibration_probabilities, calibration_labels, recipe):
    temperature = training.fit_temperature(calibration_probabilities, calibration_labels) if recipe.calibrate else 1.0
    return {condition: training.calibrate(values, temperature) for condition, values in probabilities.items()}, temperature


def encoder_baseline(train, test, conditions, settings):
    """{condition: P(male)} of a logistic regression on the clean training clips' GE2E utterance embeddings."""
    from sklearn.linear_model import LogisticRegression

    from acoustics import encoder

    ge2e = encoder.build_ge2e()
    classifier = LogisticRegression(max_iter=2000, class_weight="balanced")
    classifier.fit(encoder.embed_clips([clip["mfcc"]["clean"] for clip in train], settings, ge2e),
                   np.array([clip["label"] for clip in train]))
    return {c: classifier.predict_proba(encoder.embed_clips([clip["mfcc"][c] for clip in test], settings, ge2e))[:, 1]
            for c in conditions}


def baselines(train, test, conditions):
    """{"f0": {condition: P(male)}, "logreg": {...}} fitted on the clean training clips (and the room-noise variants)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f0 = np.array([clip["f0"].get("clean", np.nan) for clip in train])
    labels = np.array([clip["label"] for clip in train])
    usable = np.isfinite(f0)
    candidates = np.unique(f0[usable])
    balanced = [0.5 * (np.mean(f0[usable & (labels == 1)] < t) + np.mean(f0[usable & (labels == 0)] >= t)) for t in candidates]
    threshold = float(candidates[int(np.argmax(balanced))])
    stats = lambda matrix: np.concatenate([matrix.mean(axis=0), matrix.std(axis=0)])  # noqa: E731
    rows = [(stats(m), clip["label"]) for clip in train for key, m in clip["mfcc"].items() if key == "clean" or key.startswith("train@")]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    classifier.fit(np.stack([row[0] for row in rows]), np.array([row[1] for row in rows]))
    return {
        "f0": {c: np.array([float(clip["f0"][c] < threshold) if np.isfinite(clip["f0"][c]) else 0.5 for clip in test])
               for c in conditions},
        "logreg": {c: classifier.predict_proba(np.stack([stats(clip["mfcc"][c]) for clip in test]))[:, 1] for c in conditions},
    }


def wilson(correct: int, total: int, z: float = 1.96) -> tuple:
    if total == 0:
        return float("nan"), float("nan")
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def score_rows(system, seed, held_out, probabilities, labels):
    rows = []
    for condition, values in probabilities.items():
        right = (np.asarray(values) >= 0.5).astype(int) == labels
        low, high = wilson(int(right.sum()), len(right))
        rows.append({"system": system, "seed": seed, "held_out": held_out, "condition": condition,
                     "accuracy": right.mean(), "low": low, "high": high, "clips": len(right),
                     "female_recall": right[labels == 0].mean(), "male_recall": right[labels == 1].mean()})
    return rows


def run_fold(held_out, clips, settings, recipe, networks, seeds, conditions, log):
    """Train on every corpus but ``held_out``; test on all its clips. Returns (rows, {system: clean P with the
    first seed}, labels, speakers of the test clips)."""
    from acoustics import models

    test = [clip for clip in clips if clip["corpus"] == held_out]
    labels = np.array([clip["label"] for clip in test])
    train, calibration = split_training([clip for clip in clips if clip["corpus"] != held_out], settings.seed)
    calibration_labels = np.array([clip["label"] for clip in calibration])
    rows = []
    for system, probabilities in baselines(train + calibration, test, conditions).items():
        rows += score_rows(system, seeds[0], held_out, probabilities, labels)
    rows += score_rows("encoder_logreg", seeds[0], held_out, encoder_baseline(train + calibration, test, conditions, settings), labels)
    log(f"{held_out} held out: baselines done")
    trained, clean = {}, {}

    def probabilities_of(name, seed):
        if (name, seed) not in trained:
            model, predict, fit = train_network(name, train, calibration, settings, recipe, seed)
            trained[(name, seed)] = ({c: predict(test, c) for c in conditions}, predict(calibration, "clean"))
            log(f"{held_out} held out, {name} seed {seed}: {fit['seconds']:.0f} s, clean "
                f"{np.mean((trained[(name, seed)][0]['clean'] >= 0.5) == labels):.3f}")
            models.keras.backend.clear_session()
        return trained[(name, seed)]

    for seed in seeds:  # the single networks with the first seed; the ensemble with each (its seed spread)
        systems = {name: probabilities_of(name, seed) for name in networks} if seed == seeds[0] else {}
        members = [probabilities_of(network, seed + k) for k, network in enumerate(recipe.ensemble_members())]
        systems["ensemble"] = mean_of(members, conditions)
        if "encoder" in recipe.ensemble_members() and "cnn" in networks:  # the ConvNets alone, as many, for comparison
            systems["cnn_ensemble"] = mean_of([probabilities_of("cnn", seed + k) for k in range(recipe.ensemble_size)], conditions)
        for system, (probabilities, calibration_probabilities) in systems.items():
            final, temperature = calibrated(probabilities, calibration_probabilities, calibration_labels, recipe)
            rows += score_rows(system, seed, held_out, final, labels)
            if seed == seeds[0]:
                clean[system] = final["clean"]
    speakers = [clip["speaker"] for clip in test]
    with open(RESULTS / f"probabilities_{held_out}.pickle", "wb") as handle:  # for later analysis of other ensembles
        pickle.dump({"labels": labels, "calibration_labels": calibration_labels, "networks": trained,
                     "speakers": speakers}, handle)
    return rows, clean, labels, speakers


def mean_of(members, conditions):
    """The ensemble of ``members`` ((test P by condition, calibration P) each): their mean P(male)."""
    return ({c: np.mean([m[0][c] for m in members], axis=0) for c in conditions}, np.mean([m[1] for m in members], axis=0))


def confidence_words(p_male, labels) -> dict:
    """{word: (clips, accuracy)} for stage 5's words ("sure", "fairly sure", "a close call")."""
    from acoustics.verdict import Verdict

    said = {}
    for probability, label in zip(p_male, labels):
        verdict = Verdict("male" if probability >= 0.5 else "female", float(probability), 0.0, 0.0)
        said.setdefault(verdict.confidence, []).append(int(verdict.label == "male") == label)
    return {word: (len(said.get(word, [])), float(np.mean(said[word])) if said.get(word) else float("nan"))
            for word in ("sure", "fairly sure", "a close call")}


# Report ---------------------------------------------------------------------------------------------
def report(table, started, seeds, quick):
    first = table[table["seed"] == seeds[0]]
    shown = first.assign(cell=first.apply(lambda r: f"{r.accuracy:.3f} [{r.low:.2f},{r.high:.2f}]", axis=1))
    for held_out, rows in shown.groupby("held_out"):
        print(f"\nHeld out: {held_out} ({int(rows['clips'].iloc[0])} clips), seed {seeds[0]}; accuracy [Wilson 95 %]:")
        print(rows.pivot(index="system", columns="condition", values="cell").to_string())
        recalls = rows[rows["condition"] == "clean"].set_index("system")[["female_recall", "male_recall"]]
        print("clean, per-sex recall:\n" + recalls.to_string(float_format=lambda v: f"{v:.3f}"))
    networks = sorted(set(first["system"]) - set(BASELINES))
    worst = first.groupby(["system", "condition"])["accuracy"].min().unstack()
    best = max(networks, key=lambda name: worst.loc[name, "clean"] + worst.loc[name].get("realbabble@5", 0))
    print("\nWorst held-out corpus per system and condition:\n" + worst.to_string(float_format=lambda v: f"{v:.3f}"))
    spread_of = best if table[table["system"] == best]["seed"].nunique() > 1 else "ensemble"  # trained with every seed
    ensemble_clean = table[(table["system"] == spread_of) & (table["condition"] == "clean")]
    pooled = ensemble_clean.groupby("seed").apply(lambda rows: np.average(rows["accuracy"], weights=rows["clips"]))
    cell = lambda system, condition: round(float(worst.loc[system].get(condition, float("nan"))), 4)  # noqa: E731
    per_corpus = {held_out: {row.condition: round(float(row.accuracy), 4) for row in rows.itertuples()}
                  for held_out, rows in first[first["system"] == best].groupby("held_out")}
    summary = {"best_model": best, "worst_clean": cell(best, "clean"), "worst_5db_babble": cell(best, "realbabble@5"),
               "worst_5db_white": cell(best, "white@5"), "f0_worst_clean": cell("f0", "clean"),
               "f0_worst_5db_babble": cell("f0", "realbabble@5"), "logreg_worst_clean": cell("logreg", "clean"),
               "logreg_worst_5db_babble": cell("logreg", "realbabble@5"),
               "encoder_logreg_worst": {condition: cell("encoder_logreg", condition) for condition in worst.columns},
               "worst": {condition: cell(best, condition) for condition in worst.columns},
               "seed_spread_clean": round(float(pooled.max() - pooled.min()), 4) if len(pooled) > 1 else None,
               "seconds": round(time.perf_counter() - started), "quick": quick, "per_corpus": per_corpus}
    return summary


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    missing = [name for name in CORPORA if not (DATA / name / "labels.csv").exists()]
    if missing:
        print(f"bench/accuracy.py needs {', '.join(missing)} in {DATA}; they come with ../shared.", file=sys.stderr)
        return 1
    try:
        settings, recipe = Settings().with_overrides(arguments.settings), Recipe().with_overrides(arguments.recipe)
    except BadParameterError as error:
        print(f"bench/accuracy.py: {error}", file=sys.stderr)
        return 2
    first_seed = settings.seed if arguments.first_seed is None else arguments.first_seed
    seeds = [first_seed + k for k in range(arguments.seeds or (1 if arguments.quick else 2))]
    networks = [] if arguments.quick and arguments.models is None else list(arguments.models or recipe.networks)
    conditions = QUICK_CONDITIONS if arguments.quick else CONDITIONS
    log = lambda text: print(f"[{time.perf_counter() - started:5.0f} s] {text}", flush=True)  # noqa: E731
    clips = cached_features(settings, conditions, arguments)
    if arguments.without_demo:
        clips = [clip for clip in clips if clip["corpus"] != "demo"]
    log(f"features of {len(clips)} clips; recipe {recipe.to_json()} {arguments.tag}")
    import pandas

    rows, probabilities, labels, speakers = [], {}, {}, {}
    for held_out in arguments.folds:
        fold_rows, clean, labels[held_out], speakers[held_out] = run_fold(held_out, clips, settings, recipe, networks, seeds,
                                                                          conditions, log)
        rows += fold_rows
        probabilities[held_out] = clean
    table = pandas.DataFrame(rows)
    table.to_csv(arguments.csv, index=False, float_format="%.4f")
    summary = report(table, started, seeds, arguments.quick)
    best = np.concatenate([probabilities[held_out][summary["best_model"]] for held_out in arguments.folds])
    every_label = np.concatenate([labels[held_out] for held_out in arguments.folds])
    summary["ece"] = round(training.expected_calibration_error(best, every_label), 4)
    summary["clean_without_suspect_labels"] = {}
    for held_out in arguments.folds:
        right = (probabilities[held_out][summary["best_model"]] >= 0.5) == labels[held_out]
        kept = ~np.isin(speakers[held_out], list(SUSPECT_LABELS))
        summary["clean_without_suspect_labels"][held_out] = round(float(right[kept].mean()), 4)
    words = confidence_words(best, every_label)
    print(f"\nThe best model ({summary['best_model']}): ECE {summary['ece']:.3f}; its words on the held-out corpora, clean: "
          + "; ".join(f"'{word}' {count} clips, right {right:.3f}" for word, (count, right) in words.items()))
    summary["sure_right"] = round(words["sure"][1], 4) if words["sure"][0] else None
    figures = RESULTS / ("accuracy_quick.json" if arguments.quick else "accuracy.json")
    figures.write_text(json.dumps({"accuracy": summary, "recipe": recipe.to_dict(), "settings": settings.to_dict(),
                                   "tag": arguments.tag}, indent=1))
    print(f"table: {arguments.csv}; figures: {figures} (make reference stores bench/accuracy.json's in the model); "
          f"{summary['seconds']} s")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

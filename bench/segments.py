#!/usr/bin/env python3
"""Segmentation benchmark: who speaks when in made-up conversations of real voices (stage 5's --segments).

Conversations are built, seeded, from the voices of one corpus of ../shared/data (--held-out; default
RAVDESS): turns of 1-8 s by several speakers of both sexes (4 per conversation, 2 of each sex; the next
turn's sex is drawn at random, each turn by another speaker than the last), pauses of 0.2-2 s between
turns (--pauses), 0.5-1.5 s of room before and after, each turn at -26 +-3 dBFS, and pink noise at 20-30 dB SNR
(against the speech's power) over all of it. The model has not heard those voices: the reference
model's network (REFERENCE_NETWORKS: the encoder network, acoustics.trainer.train_in_memory with the
project's Recipe) trained here on the espeak-ng demo corpus and the four corpora without the
conversations' speakers, with
bench/accuracy.py's features and calibration speakers (two of each sex of each corpus), in a process of
its own (all cores; about 5 minutes), cached in bench/results/segments/ (--model FILE uses another
model instead; --retrain trains again). Which voices are kept out:

- ``--speakers 6`` (the default): 6 speakers of each sex of the corpus, drawn with a fixed seed; the
  model has heard the corpus's other speakers, as the reference model has heard all three corpora
  when it meets a new person;
- ``--speakers 0``: the whole corpus (leave one corpus out): new people *and* a recording setup and
  speaking style the model never heard, the harder figure.

Truth per 10 ms frame: no_speech in the pauses and in silences inside a turn of at least
MIN_PAUSE_SECONDS (frames of the clean turn more than TRUTH_BELOW_PEAK_DB below its loudest), else the
speaker's sex. Scores: frame accuracy over every frame (no_speech included); the median distance from
each true boundary (a change of the truth's label: speech/pause and so speaker changes) to the nearest
predicted one, in seconds; and the speed, seconds of audio per second of CPU time of this process
(TensorFlow and BLAS pinned to one thread), reading the files from disk as implement_model.py does, the
model predicting through XLA as stage 5's --segments does; the same model without XLA, on the same
files in turns, is the baseline (``plain_realtime_factor``).

Each draw (``--draws``, seeds ``--seed`` on) casts its own conversations from the unheard speakers;
which of them talk most moves a draw's frame accuracy by several points, so the figure is the median
of the draws, with their range.

    python bench/segments.py                      # 5 draws of 20 conversations of about 60 s: a few minutes
    python bench/segments.py --speakers 0             # the whole corpus unheard
    python bench/segments.py --held-out librispeech --draws 2

    python bench/segments.py --pauses 0 0           # each change of speaker without a pause
    python bench/segments.py --hop-fractions 0.5 0.75  # two hops between windows, on the same files in turns

Last line: one JSON object {"frame_accuracy" (median of the draws), "frame_accuracy_interval" (lowest,
highest), "boundary_median_seconds", "sex_changes_within_half_second" (the share of the truth's changes of
sex, pauses skipped, with a predicted one within 0.5 s), "realtime_factor", "plain_realtime_factor"}, with
"by_hop_fraction" (the same figures for each hop) where --hop-fractions names more than one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: Thread settings that hold the measured process to one core (the training's own process takes all).
PINNED = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
if "--train-only" not in sys.argv:
    os.environ.update(dict.fromkeys(PINNED, "1"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import DATA, RESULTS as ALL_RESULTS  # also puts the project on sys.path

RESULTS = ALL_RESULTS / "segments"
#: What ``make reference`` ships: the networks trained (seeds seed, seed + 1, ...) and averaged.
REFERENCE_NETWORKS = ("encoder",)
CORPORA = ("emodb", "ravdess", "librispeech")
RATE = 16000
FRAME = 0.01
#: Seconds of pause between turns, drawn uniformly (--pauses).
PAUSE_SECONDS = (0.2, 2.0)
#: Truth: a silence inside a turn of at least this long is no_speech ...
MIN_PAUSE_SECONDS = 0.2
#: ... where the clean turn's 10 ms frames are this many dB below its loudest (95th percentile).
TRUTH_BELOW_PEAK_DB = 35.0

from acoustics import audio, augment, corpus, training  # noqa: E402
from acoustics.recipe import Recipe  # noqa: E402
from acoustics.settings import Settings  # noqa: E402


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held-out", choices=CORPORA, default="ravdess", help="the corpus the voices come from")
    parser.add_argument("--speakers", type=int, default=6, metavar="N",
                        help="N speakers of each sex of that corpus are kept out of training and talk (default 6); "
                             "0: the whole corpus is kept out")
    parser.add_argument("--model", type=Path, help="a model file to use instead of training one")
    parser.add_argument("--retrain", action="store_true", help="train the model again even if it is cached")
    parser.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)  # the training's own process
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each conversation's speech and pauses")
    parser.add_argument("--seed", type=int, default=0, help="the first draw's seed")
    parser.add_argument("--draws", type=int, default=5, metavar="N",
                        help="N sets of conversations, seeded --seed, --seed + 1, ... (default 5): the speakers a draw "
                             "casts move its figure by several points, so the median and the range are printed")
    parser.add_argument("--pauses", type=float, nargs=2, default=PAUSE_SECONDS, metavar=("LOW", "HIGH"),
                        help="seconds of pause between turns, drawn uniformly (default 0.2 2.0; 0 0: each speaker "
                             "change without a pause)")
    parser.add_argument("--hop-fractions", type=float, nargs="+", metavar="F",
                        help="hops between the model's windows, as fractions of a window, each measured through XLA "
                             "on the same files in turns (default: the shipped one); the first is also timed without XLA")
    arguments = parser.parse_args(argv)
    if arguments.draws < 1 or arguments.conversations < 1:
        parser.error("--draws and --conversations need at least 1")
    if not 0 <= arguments.pauses[0] <= arguments.pauses[1]:
        parser.error("--pauses needs 0 <= LOW <= HIGH")
    if arguments.hop_fractions and not all(0 < fraction <= 1 for fraction in arguments.hop_fractions):
        parser.error("--hop-fractions must lie in (0, 1]")
    return arguments


def pin_one_thread() -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


# The model ------------------------------------------------------------------------------------------
def recordings_of(name: str) -> list:
    return corpus.read_manifest(DATA / name / "labels.csv")[0]


def held_out_speakers(name: str, per_sex: int) -> set:
    """``per_sex`` speakers of each sex of corpus ``name``, drawn with a fixed seed (as ``name/speaker``)."""
    recordings = recordings_of(name)
    rng = np.random.default_rng(7)
    chosen = set()
    for sex in ("female", "male"):
        speakers = sorted({recording.speaker for recording in recordings if recording.sex == sex})
        chosen |= {f"{name}/{speaker}" for speaker in rng.choice(speakers, size=per_sex, replace=False)}
    return chosen


def train_model(held_out: str, per_sex: int, path: Path) -> None:
    """The reference model's network (:data:`REFERENCE_NETWORKS`) and recipe trained on the demo corpus and the
    other corpora without the voices of the conversations: all of corpus ``held_out`` (``per_sex`` 0) or
    ``per_sex`` speakers of each sex of it; calibrated on two other speakers of each sex of each corpus,
    saved to ``path``.
    The features are bench/accuracy.py's (computed once, cached in bench/results/), so are the split
    and the training (``acoustics.trainer.train_in_memory``)."""
    import accuracy
    from acoustics import models, networks, trainer

    settings, recipe = Settings(), Recipe()
    options = argparse.Namespace(held_out=list(accuracy.CORPORA), workers=min(2, os.cpu_count() or 1))
    unheard = held_out_speakers(held_out, per_sex) if per_sex else None
    clips = [clip for clip in accuracy.cached_features(settings, accuracy.QUICK_CONDITIONS, options)
             if (clip["speaker"] not in unheard if unheard else clip["corpus"] != held_out)]
    train, calibration = accuracy.split_training(clips, settings.seed)
    matrices, labels, recordings = accuracy.variant_rows(train, settings)
    members, started = [], time.perf_counter()
    for position, network in enumerate(REFERENCE_NETWORKS):
        members.append(trainer.train_in_memory(network, matrices, labels, recordings, settings, recipe, settings.seed + position))
    model = members[0][0] if len(members) == 1 else networks.combine_models([member[0] for member in members], settings)
    normalisation = members[0][1]
    raw = models.predict_matrices(model, [clip["mfcc"]["clean"] for clip in calibration], settings, normalisation, recipe=recipe)
    truth = np.array([clip["label"] for clip in calibration])
    temperature = training.fit_temperature(raw, truth)
    accuracy_now = float(np.mean((training.calibrate(raw, temperature) >= 0.5) == truth))
    print(f"trained {len(members)} networks ({', '.join(REFERENCE_NETWORKS)}) on {len(train)} recordings in "
          f"{time.perf_counter() - started:.0f} s; calibration speakers' clips: accuracy {accuracy_now:.3f}, "
          f"temperature {temperature:.2f}", flush=True)
    name = "ensemble" if len(members) > 1 else REFERENCE_NETWORKS[0]
    models.save_model(model, path, {"model_name": name, "settings": settings, "normalisation": normalisation,
                                    "recipe": recipe, "temperature": temperature,
                                    "provenance": {"corpora": sorted({clip["corpus"] for clip in train})}})


# Conversations -----------------------------------------------------------------------------------
def truth_speech(turn: np.ndarray) -> np.ndarray:
    """Speech (True) per 10 ms frame of a clean turn: silences of MIN_PAUSE_SECONDS or more, quieter than
    TRUTH_BELOW_PEAK_DB under its loud frames, are not speech."""
    from acoustics.noisefloor import runs

    hop = int(FRAME * RATE)
    count = turn.size // hop
    power = np.mean(turn[: count * hop].astype(np.float64).reshape(count, hop) ** 2, axis=1)
    level = 10 * np.log10(np.maximum(power, 1e-12))
    speech = level > np.percentile(level, 95) - TRUTH_BELOW_PEAK_DB
    for start, stop in runs(~speech):
        if stop - start < MIN_PAUSE_SECONDS / FRAME:
            speech[start:stop] = True
    return speech


def voices(name: str, per_sex: int, rng: np.random.Generator) -> dict:
    """{speaker: (sex, [trimmed clips])} of corpus ``name`` (of its :func:`held_out_speakers` if ``per_sex``),
    at most 6 clips per speaker."""
    unheard = held_out_speakers(name, per_sex) if per_sex else None
    by_speaker = {}
    for recording in recordings_of(name):
        if unheard and f"{name}/{recording.speaker}" not in unheard:
            continue
        by_speaker.setdefault(recording.speaker, (recording.sex, []))[1].append(recording.path)
    chosen = {}
    for speaker, (sex, paths) in sorted(by_speaker.items()):
        picked = rng.choice(len(paths), size=min(6, len(paths)), replace=False)
        clips = [audio.trim_silence(audio.load_audio(paths[i], RATE)[0], 30) for i in picked]
        chosen[speaker] = (sex, [clip for clip in clips if clip.size > 0.5 * RATE])
    return chosen


def conversation(voices_by_speaker: dict, seconds: float, rng: np.random.Generator, pauses=PAUSE_SECONDS) -> tuple:
    """One conversation: ``(signal, truth)``; truth per 10 ms frame: 0 female, 1 male, 2 no_speech; ``pauses``:
    the range of seconds between turns."""
    speakers = {sex: [s for s, (x, clips) in voices_by_speaker.items() if x == sex and clips] for sex in ("male", "female")}
    cast = {sex: list(rng.choice(speakers[sex], size=2, replace=False)) for sex in speakers}
    pieces, truth = [], []

    def pause(length: float) -> None:
        frames = int(round(length / FRAME))
        pieces.append(np.zeros(frames * int(FRAME * RATE), np.float32))
        truth.append(np.full(frames, 2, np.int8))

    pause(rng.uniform(0.5, 1.5))
    total, last = 0.0, None
    while total < seconds:
        sex = str(rng.choice(["male", "female"]))
        speaker = next(s for s in rng.permutation(cast[sex]) if s != last)
        last = speaker
        clips = voices_by_speaker[speaker][1]
        wanted = rng.uniform(1.0, 8.0)
        length = int(round(wanted / FRAME)) * int(FRAME * RATE)  # whole 10 ms frames
        turn = np.zeros(0, np.float32)
        while turn.size < length:
            turn = np.concatenate([turn, clips[int(rng.integers(len(clips)))]])
        turn = turn[:length]
        turn = turn * 10 ** ((-26 + rng.uniform(-3, 3) - audio.level_dbfs(turn)) / 20)
        pieces.append(turn.astype(np.float32))
        truth.append(np.where(truth_speech(turn), int(sex == "male"), 2).astype(np.int8))
        pause(rng.uniform(*pauses))
        total += wanted + pieces[-1].size / RATE
    pause(rng.uniform(0.3, 1.0))
    signal = np.concatenate(pieces)
    truth = np.concatenate(truth)
    speech = np.repeat(truth != 2, int(FRAME * RATE))
    snr = rng.uniform(20, 30)
    noise = augment.coloured_noise("pink", signal.size, rng)
    noise *= np.sqrt(np.mean(signal[speech].astype(np.float64) ** 2) / 10 ** (snr / 10))
    return np.clip(signal + noise, -1, 1).astype(np.float32), truth


# Scores -------------------------------------------------------------------------------------------
def predicted_frames(segmentation, count: int) -> np.ndarray:
    """The predicted label of each 10 ms frame [i * 0.01, (i + 1) * 0.01) by its middle."""
    labels = np.full(count, 2, np.int8)
    middles = (np.arange(count) + 0.5) * FRAME
    for segment in segmentation.segments:
        if segment.label != "no_speech":
            labels[(middles >= segment.start) & (middles < segment.stop)] = int(segment.label == "male")
    return labels


def boundaries(labels: np.ndarray) -> np.ndarray:
    return (np.flatnonzero(np.diff(labels)) + 1) * FRAME


def nearest(true: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Seconds from each of the ``true`` times to the nearest ``found`` one (inf if none was found)."""
    if found.size == 0:
        return np.full(true.size, np.inf)
    return np.min(np.abs(true[:, None] - found[None, :]), axis=1)


def boundary_errors(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Seconds from each true boundary to the nearest predicted one (inf if none was predicted)."""
    return nearest(boundaries(truth), boundaries(predicted))


def sex_changes(labels: np.ndarray) -> np.ndarray:
    """Seconds at which the sex changes from one speech frame to the next speech frame (pauses skipped)."""
    speech = np.flatnonzero(labels != 2)
    changed = np.flatnonzero(np.diff(labels[speech]) != 0) + 1
    return speech[changed] * FRAME


def sex_change_errors(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Seconds from each true change of sex to the nearest predicted one (inf if none was predicted)."""
    return nearest(sex_changes(truth), sex_changes(predicted))


def write_conversations(speakers: dict, arguments, folder: Path, rng: np.random.Generator) -> tuple:
    """``arguments.conversations`` conversations of ``speakers`` written as WAV files into ``folder``:
    ``(paths, truths)``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, truths = [], []
    for number in range(arguments.conversations):
        signal, truth = conversation(speakers, arguments.seconds, rng, tuple(arguments.pauses))
        paths.append(audio.write_wav(folder / f"conversation-{number:02d}.wav", signal, RATE))
        truths.append(truth)
    return paths, truths


def usable(model_path: Path) -> bool:
    """True if the cached model reads and was trained with today's feature settings and recipe (an older
    version's file, without a checksum, or one of other settings, is trained again)."""
    from acoustics.errors import BadModelError
    from acoustics.modelfile import read_metadata

    try:
        metadata = read_metadata(model_path)
    except BadModelError:
        return False
    return metadata["settings"] == Settings() and metadata["recipe"] == Recipe()


def cached_model(held_out: str, unheard: str) -> Path:
    """Where the model trained without ``held_out`` (and its ``unheard`` speakers) is kept between runs."""
    return RESULTS / f"{'+'.join(REFERENCE_NETWORKS)}-without-{held_out}-{unheard}.h5"


def ready_model(arguments, unheard: str) -> Path:
    """The model to segment with: --model, or this held-out corpus's cached one, trained first in a child
    process (without the one-thread pinning of the measurement) where it is missing, unreadable or --retrain."""
    model_path = arguments.model or cached_model(arguments.held_out, unheard)
    if arguments.model is None and (arguments.retrain or not usable(model_path)):
        subprocess.run([sys.executable, __file__, "--held-out", arguments.held_out, "--speakers", str(arguments.speakers),
                        "--train-only"], check=True,
                       env={key: value for key, value in os.environ.items() if key not in PINNED})
    return model_path


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    unheard = f"{arguments.speakers}-per-sex" if arguments.speakers else "all"
    if arguments.train_only:
        train_model(arguments.held_out, arguments.speakers, cached_model(arguments.held_out, unheard))
        return 0
    model_path = ready_model(arguments, unheard)
    pin_one_thread()
    from acoustics import models, segments

    model, metadata = models.load_model(model_path, xla=True)
    plain_model = models.load_model(model_path)[0]
    print(f"model {model_path} ({metadata['provenance']}), temperature {metadata['temperature']:.2f}", flush=True)
    fractions = arguments.hop_fractions or [segments.WINDOW_HOP_FRACTION]
    scores = {fraction: {"accuracies": [], "errors": [], "changes": [], "cpu": 0.0, "wall": 0.0} for fraction in fractions}
    audio_seconds, plain_cpu = 0.0, 0.0
    for seed in range(arguments.seed, arguments.seed + arguments.draws):
        rng = np.random.default_rng(seed)
        speakers = voices(arguments.held_out, arguments.speakers, rng)
        folder = RESULTS / f"conversations-{arguments.held_out}-{unheard}-{seed}"
        paths, truths = write_conversations(speakers, arguments, folder, rng)
        if not audio_seconds:  # warm-up: TensorFlow builds its functions, XLA compiles the batch sizes a pass uses
            for network in (model, plain_model):
                segments.segment_file(network, metadata, paths[0])
            for count in 2 ** np.arange(int(np.log2(segments.CHUNK_WINDOWS)) + 1):  # predict_windows pads to these
                models.predict_windows(model, np.zeros((count, *model.input_shape[1:]), np.float32),
                                       multiple=segments.CHUNK_WINDOWS)
        correct = dict.fromkeys(fractions, 0)
        frames = 0
        for path, truth in zip(paths, truths):
            for fraction in fractions:
                score = scores[fraction]
                started_cpu, started_wall = time.process_time(), time.perf_counter()
                segmentation = segments.segment_file(model, metadata, path, window_hop_fraction=fraction)
                score["cpu"] += time.process_time() - started_cpu
                score["wall"] += time.perf_counter() - started_wall
                predicted = predicted_frames(segmentation, truth.size)
                correct[fraction] += int(np.sum(predicted == truth))
                score["errors"].append(boundary_errors(truth, predicted))
                score["changes"].append(sex_change_errors(truth, predicted))
            started_cpu = time.process_time()
            segments.segment_file(plain_model, metadata, path, window_hop_fraction=fractions[0])
            plain_cpu += time.process_time() - started_cpu
            audio_seconds += segmentation.duration
            frames += truth.size
        for fraction in fractions:
            scores[fraction]["accuracies"].append(correct[fraction] / frames)
            print(f"draw with seed {seed}: {arguments.conversations} conversations, windows every {fraction:g} of a window: "
                  f"frame accuracy {scores[fraction]['accuracies'][-1]:.3f}, boundary median "
                  f"{np.median(np.concatenate(scores[fraction]['errors'][-len(paths):])):.3f} s", flush=True)
    voices_heard = f"{2 * arguments.speakers} unheard {arguments.held_out} speakers" if arguments.speakers else f"{arguments.held_out} voices (corpus unheard)"
    by_fraction = {}
    for fraction in fractions:
        score = scores[fraction]
        accuracies, errors, changes = score["accuracies"], np.concatenate(score["errors"]), np.concatenate(score["changes"])
        by_fraction[fraction] = {
            "frame_accuracy": round(float(np.median(accuracies)), 4),
            "frame_accuracy_interval": [round(float(min(accuracies)), 4), round(float(max(accuracies)), 4)],
            "boundary_median_seconds": round(float(np.median(errors)), 3),
            "sex_changes_within_half_second": round(float(np.mean(changes <= 0.5)), 3) if changes.size else None,
            "realtime_factor": round(audio_seconds / score["cpu"], 1)}
        print(f"{arguments.draws} draws of {arguments.conversations} conversations, {audio_seconds / 60:.1f} minutes of "
              f"{voices_heard}, windows every {fraction:g} of a window: frame accuracy median "
              f"{by_fraction[fraction]['frame_accuracy']:.3f} (draws {min(accuracies):.3f} to {max(accuracies):.3f}), boundary "
              f"error median {by_fraction[fraction]['boundary_median_seconds']:.3f} s (90th percentile "
              f"{np.percentile(errors, 90):.3f} s), changes of sex found within 0.5 s: "
              f"{np.mean(changes <= 0.5) if changes.size else float('nan'):.3f} of {changes.size}, "
              f"{by_fraction[fraction]['realtime_factor']:.0f}x real time on one core "
              f"({audio_seconds / score['wall']:.0f}x by the wall clock)", flush=True)
    result = dict(by_fraction[fractions[0]], plain_realtime_factor=round(audio_seconds / plain_cpu, 1))
    print(f"without XLA, windows every {fractions[0]:g} of a window: {result['plain_realtime_factor']:.0f}x real time on one core")
    if len(fractions) > 1:
        result["by_hop_fraction"] = {f"{fraction:g}": by_fraction[fraction] for fraction in fractions}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

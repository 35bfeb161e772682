"""Stage 3's work on one recording, and the worker pool that does it for a whole corpus.

For each recording: load (any format, resampled to mono at the settings' rate), trim leading and
trailing silence, check it is usable speech (``speechcheck.usable_speech``: speech is judged against the
recording's own noise floor; quiet, noisy or mildly clipped speech is kept, with a note), then compute
the clean MFCCs and, for each SNR in the settings, the MFCCs of the speech with the background noise mixed in at that SNR (power-based over the
trimmed speech; the noise offset is drawn from a generator seeded by the settings' seed and the
recording's content hash, so a rerun gives the same numbers whatever the order).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import audio, features, mixing, speechcheck
from .corpus import LabelledRecording, Skipped
from .errors import AcousticsError, reason_of
from .settings import Settings


@dataclass(frozen=True)
class Task:
    """A recording that passed the header check and is not stored yet."""

    recording: LabelledRecording
    sha256: str
    info: audio.AudioInfo


def variant_name(snr_db) -> str:
    """'clean' for no noise, else 'snr20', 'snr7.5' ..."""
    return "clean" if snr_db is None else f"snr{snr_db:g}"


def file_hash(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_task(recording: LabelledRecording) -> Task:
    """Check the header (refusing huge files unread) and hash the file; raise AcousticsError if unusable."""
    info = audio.probe(recording.path)
    try:
        sha256 = file_hash(recording.path)
    except OSError as error:
        raise AcousticsError(f"{recording.path}: cannot be read ({error.strerror}).") from None
    return Task(recording, sha256, info)


def noise_generator(settings: Settings, sha256: str) -> np.random.Generator:
    return np.random.default_rng([settings.seed, int(sha256[:15], 16)])


def usable(task: Task, settings: Settings) -> speechcheck.Speech:
    """The trimmed speech of one recording and its note (see speechcheck.usable_speech); raises BadAudioError."""
    signal, _ = audio.load_audio(task.recording.path, settings.sample_rate)
    return speechcheck.usable_speech(signal, settings.sample_rate, settings.trim_top_db, task.recording.path)


def noisy_variants(speech: np.ndarray, task: Task, noise: np.ndarray, settings: Settings) -> dict:
    """``{snr_db: mixed_signal}``: ``speech`` with the noise mixed in at each of the settings' SNRs."""
    generator = noise_generator(settings, task.sha256)
    return {snr: mixing.mix_at_snr(speech, noise, snr, generator) for snr in settings.snrs_db}


def clean_and_noisy(task: Task, noise: np.ndarray, settings: Settings) -> tuple:
    """Return ``(speech, {snr_db: mixed_signal})`` for one recording (raises BadAudioError)."""
    speech = usable(task, settings).samples
    return speech, noisy_variants(speech, task, noise, settings)


def prepare(task: Task, noise: np.ndarray, noise_id: int, settings: Settings) -> dict:
    """The database item (see FeatureDatabase.add_recordings) for one recording, with its ``note``
    on a poor input ("" if none; not stored)."""
    speech = usable(task, settings)
    mixed = noisy_variants(speech.samples, task, noise, settings)
    variants = [("clean", None, None, features.mfcc(speech.samples, settings))]
    variants += [(variant_name(snr), noise_id, snr, features.mfcc(signal, settings)) for snr, signal in mixed.items()]
    recording = task.recording
    return {
        "speaker": recording.speaker, "sex": recording.sex, "source": recording.source,
        "synthetic": recording.synthetic, "path": str(recording.path), "sha256": task.sha256,
        "duration_seconds": task.info.duration_seconds, "speech_seconds": speech.samples.size / settings.sample_rate,
        "original_sample_rate": task.info.sample_rate, "original_channels": task.info.channels,
        "variants": variants, "note": speech.note,
    }


# Worker pool -----------------------------------------------------------------------------------
#: Recordings per task sent to a worker (a chunk is about 25 ms of work) ...
CHUNK_SIZE = 4
#: ... and chunks per worker given out ahead of the results taken.
CHUNKS_AHEAD = 4
_worker_state: dict = {}


def _initialise_worker(noise: np.ndarray, noise_id: int, settings: Settings) -> None:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    _worker_state.update(noise=noise, noise_id=noise_id, settings=settings)


def _initialise_pool_worker(noise: np.ndarray, noise_id: int, settings: Settings) -> None:
    _initialise_worker(noise, noise_id, settings)
    # A worker waits for tasks forever: if the main process is killed (SIGKILL), end with it.
    parent = multiprocessing.parent_process()
    threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()


def _prepare_or_skip(task: Task):
    try:
        return prepare(task, _worker_state["noise"], _worker_state["noise_id"], _worker_state["settings"])
    except AcousticsError as error:
        return Skipped(str(task.recording.path), reason_of(error, task.recording.path))


def _prepare_chunk(tasks: list) -> list:
    return [_prepare_or_skip(task) for task in tasks]


def prepare_all(tasks: list, noise: np.ndarray, noise_id: int, settings: Settings, *, workers: int = 1):
    """Yield a database item or a :class:`Skipped` for each task, in order.

    With ``workers > 1`` the recordings are processed by that many processes while this one writes.
    They get the tasks in chunks of :data:`CHUNK_SIZE`, and at most :data:`CHUNKS_AHEAD` chunks per
    worker are given out before their results are taken: memory stays flat however long the corpus,
    even when the caller is slower than the workers.
    """
    if workers <= 1 or len(tasks) < 16:
        _initialise_worker(noise, noise_id, settings)
        yield from map(_prepare_or_skip, tasks)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_initialise_pool_worker,
                             initargs=(noise, noise_id, settings)) as executor:
        pending = deque()
        try:
            for start in range(0, len(tasks), CHUNK_SIZE):
                pending.append(executor.submit(_prepare_chunk, tasks[start : start + CHUNK_SIZE]))
                if len(pending) >= workers * CHUNKS_AHEAD:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise

"""Stage 3's run around the work on each recording: the feature database opened under the requested
SNRs, the background noise checked and registered, the listed recordings sorted into tasks, and the
prepared recordings stored in batches with a tally of what happened.

The per-recording work and the worker pool are :mod:`acoustics.preparation`'s; which listing is which
person and which content is new is :mod:`acoustics.identity`'s. Nothing here prints: ``speech_prep.py``
reports what these return.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from . import audio, identity, preparation
from .corpus import Skipped
from .database import FeatureDatabase
from .dbfile import create_database
from .errors import AcousticsError, reason_of

#: Recordings per database transaction.
BATCH_SIZE = 32


def open_database(path, *, snrs: Optional[Sequence[float]] = None, start_over: bool = False) -> FeatureDatabase:
    """The feature database at ``path``, its stored SNRs checked against ``snrs`` (if given); with
    ``start_over``, every stored feature deleted first and the database remade under ``snrs``."""
    feature_database = FeatureDatabase(path)
    requested = feature_database.settings
    if snrs:
        requested = requested.replace(snrs_db=tuple(snrs))
    if start_over:
        feature_database.close()
        create_database(path, requested, reset=True)
        return FeatureDatabase(path)
    try:
        feature_database.check_settings(requested)
    except AcousticsError:
        feature_database.close()
        raise
    return feature_database


def load_noise(path, feature_database: FeatureDatabase) -> tuple:
    """The background noise at ``path`` at the database's sample rate, registered in the database as the
    room's: ``(samples, noise_id)``. A missing or digitally silent file raises :class:`AcousticsError`."""
    settings = feature_database.settings
    if not os.path.exists(path):
        raise AcousticsError(f"{path}: no background noise yet; run 'python collect_background_noise.py' "
                             "(or with --synthetic) first.")
    noise, _ = audio.load_audio(path, settings.sample_rate)
    level = audio.level_dbfs(noise)
    if level < audio.NO_SOUND_DBFS:
        raise AcousticsError(f"{path}: the background noise is digital silence; record it again with "
                             "'python collect_background_noise.py'.")
    noise_id = feature_database.add_noise(name=os.path.basename(path), kind="room", sha256=preparation.file_hash(path),
                                          duration_seconds=noise.size / settings.sample_rate, level_dbfs=level)
    return noise, noise_id


def sort_recordings(recordings: Iterable, feature_database: FeatureDatabase) -> tuple:
    """``(reconciled, unreadable)``: the listed ``recordings`` sorted by :func:`acoustics.identity.reconcile`
    against what the database holds (its ``new`` tasks each content once, under one speaker per person),
    and a :class:`Skipped` for each file whose header cannot be read."""
    tasks, unreadable = [], []
    for recording in recordings:
        try:
            tasks.append(preparation.make_task(recording))
        except AcousticsError as error:
            unreadable.append(Skipped(str(recording.path), reason_of(error, recording.path)))
    reconciled = identity.reconcile(tasks, feature_database.stored_labels(), feature_database.speaker_sexes())
    return reconciled, unreadable


@dataclass
class Tally:
    """What a run stored: recordings, seconds of audio over all variants, files skipped (:class:`Skipped`)
    and ``(path, note)`` of files kept despite a poor input (quiet, noisy, mildly clipped)."""

    stored: int = 0
    seconds_of_audio: float = 0.0
    skipped: list = field(default_factory=list)
    noted: list = field(default_factory=list)

    def store_all(self, results: Iterable, feature_database: FeatureDatabase, *, batch_size: int = BATCH_SIZE) -> None:
        """Store the database items of ``results`` (from :func:`acoustics.preparation.prepare_all`) in
        transactions of ``batch_size`` recordings, counting as it goes (so an interruption leaves the
        tally of what is stored), and count the skipped ones."""
        batch = []
        for result in results:
            if isinstance(result, Skipped):
                self.skipped.append(result)
                continue
            batch.append(result)
            if result["note"]:
                self.noted.append((result["path"], result["note"]))
            if len(batch) >= batch_size:
                self._store(batch, feature_database)
                batch = []
        self._store(batch, feature_database)

    def _store(self, batch: list, feature_database: FeatureDatabase) -> None:
        self.stored += feature_database.add_recordings(batch)
        self.seconds_of_audio += sum(item["speech_seconds"] * len(item["variants"]) for item in batch)


def example(tasks: Sequence, noise: np.ndarray, settings, *, tries: int = 5) -> Optional[tuple]:
    """``(task, speech, {snr_db: mixed})`` of the first usable recording among the first ``tries`` tasks,
    for stage 3's picture; None if none is usable."""
    for task in tasks[:tries]:
        try:
            speech, mixed = preparation.clean_and_noisy(task, noise, settings)
        except AcousticsError:
            continue
        return task, speech, mixed
    return None

"""The SQLite feature database: what is stored in it and read from it, in transactions and batches
(its file, schema and creation: :mod:`acoustics.dbfile`).

Tables (open the file in DB Browser for SQLite to see them):

- ``settings``   key/value: ``features`` (the Settings as JSON), ``schema_version``, ``created_at``
- ``speakers``   one row per speaker: name, sex (male/female), source corpus, synthetic flag
- ``recordings`` one row per audio file: path, SHA-256 of its bytes, durations, original format
- ``noises``     the background noises that were mixed in
- ``features``   one row per recording and variant (``clean``, ``snr20`` ...): MFCC matrix as a
                 float32 blob of ``frame_count`` x ``n_mfcc`` values, row-major
- ``splits``     the speaker-disjoint train/validation/test assignment every model uses
- ``runs``       the scores of every training run
- view ``feature_overview`` joins them into readable rows.

A recording and all its variants are written in one transaction, so a crash or Ctrl-C never leaves a
half-written recording, and a rerun skips every recording whose content hash is stored.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import numpy as np

from .dbfile import explain, now, open_ours
from .errors import BadDatabaseError, BadParameterError
from .settings import DATABASE_FIELDS, Settings

SEXES = ("male", "female")
SUBSETS = ("train", "validation", "test")


def _plain(value, kind):
    """``None`` or ``kind(value)``: numpy scalars would be stored as BLOBs of their bytes; NaN and
    infinite numbers are stored as NULL (no score), never as a number."""
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return None
    return kind(value)


def _json_default(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _finite(value):
    """``value`` (nested dicts and lists of scores) with NaN and infinite numbers as None (JSON null)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def _sentence(error) -> str:
    """The message of ``error`` without its final full stop, cut to 200 characters."""
    text = str(error).rstrip(".")
    return text if len(text) <= 200 else text[:197] + "..."


class FeatureDatabase:
    """An open feature database. Use as a context manager; every method raises BadDatabaseError."""

    def __init__(self, path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.connection = open_ours(self.path, readonly=readonly)
        self._settings = None

    # Life cycle --------------------------------------------------------------------------------
    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "FeatureDatabase":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self):
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception (Ctrl-C included)."""
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise explain(self.path, error) from None
        try:
            yield self.connection
            self.connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback()
            raise explain(self.path, error) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.connection.execute("ROLLBACK")

    def _query(self, sql: str, parameters=()) -> list:
        try:
            return self.connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise explain(self.path, error) from None

    # Settings ----------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The feature settings the database was created with."""
        if self._settings is None:
            rows = self._query("SELECT value FROM settings WHERE key = 'features'")
            if not rows:
                raise BadDatabaseError(f"{self.path}: the settings row is missing; run 'python set_up_sql.py --reset'.")
            try:
                self._settings = Settings.from_json(rows[0][0])
            except BadParameterError as error:
                raise BadDatabaseError(f"{self.path}: the stored settings are damaged or tampered with ({_sentence(error)}); "
                                       f"run 'python set_up_sql.py --db {self.path} --reset' to rebuild it.") from None
        return self._settings

    def check_settings(self, settings: Settings, *, fields=DATABASE_FIELDS) -> None:
        """Raise SettingsMismatchError unless ``settings`` agree with the stored ones."""
        self.settings.check_same(
            settings, this=f"the features stored in {self.path}", that="This run", fields=fields,
            fix="Run without changing the settings, or add --start-over to delete the stored features (or use another --db).",
        )

    # Writing -----------------------------------------------------------------------------------
    def known_hashes(self) -> set:
        return {row[0] for row in self._query("SELECT sha256 FROM recordings")}

    def stored_labels(self) -> dict:
        """``{sha256: (source, speaker name, sex)}`` of every stored recording."""
        return {sha256: (source, name, sex) for sha256, source, name, sex in self._query(
            "SELECT recordings.sha256, speakers.source, speakers.name, speakers.sex FROM recordings "
            "JOIN speakers ON speakers.id = recordings.speaker_id")}

    def speaker_sexes(self) -> dict:
        """``{(source, speaker name): sex}`` of every stored speaker."""
        return {(source, name): sex for source, name, sex in self._query("SELECT source, name, sex FROM speakers")}

    def add_noise(self, *, name: str, kind: str, sha256: str, duration_seconds: float, level_dbfs: float) -> int:
        """Store a background noise (once per content hash) and return its id."""
        with self.transaction() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO noises (name, kind, sha256, duration_seconds, level_dbfs) VALUES (?, ?, ?, ?, ?)",
                (name, kind, sha256, float(duration_seconds), float(level_dbfs)),
            )
            return connection.execute("SELECT id FROM noises WHERE sha256 = ?", (sha256,)).fetchone()[0]

    def add_recordings(self, items: list) -> int:
        """Store recordings with all their variants in one transaction; return how many were new.

        Each item is a dict with keys ``speaker``, ``sex``, ``source``, ``synthetic``, ``path``,
        ``sha256``, ``duration_seconds``, ``speech_seconds``, ``original_sample_rate``,
        ``original_channels`` and ``variants``: a list of ``(variant, noise_id, snr_db, matrix)``.
        A recording whose hash is already stored (by an earlier or a concurrent run) is skipped whole.
        """
        added = 0
        with self.transaction() as connection:
            for item in items:
                if item["sex"] not in SEXES:
                    raise BadParameterError(f"{item['path']}: sex must be 'male' or 'female', not {item['sex']!r}.")
                if connection.execute("SELECT 1 FROM recordings WHERE sha256 = ?", (item["sha256"],)).fetchone():
                    continue
                connection.execute(
                    "INSERT OR IGNORE INTO speakers (name, sex, source, synthetic) VALUES (?, ?, ?, ?)",
                    (item["speaker"], item["sex"], item["source"], int(bool(item["synthetic"]))),
                )
                speaker_id, stored_sex = connection.execute(
                    "SELECT id, sex FROM speakers WHERE source = ? AND name = ?", (item["source"], item["speaker"])
                ).fetchone()
                if stored_sex != item["sex"]:
                    raise BadParameterError(
                        f"{item['path']}: speaker {item['speaker']!r} is stored as {stored_sex} but labelled "
                        f"{item['sex']} here; fix the labels of the corpus."
                    )
                cursor = connection.execute(
                    "INSERT INTO recordings (speaker_id, path, sha256, duration_seconds, speech_seconds, "
                    "original_sample_rate, original_channels, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (speaker_id, str(item["path"]), item["sha256"], float(item["duration_seconds"]),
                     float(item["speech_seconds"]), int(item["original_sample_rate"]),
                     int(item["original_channels"]), now()),
                )
                recording_id = cursor.lastrowid
                connection.executemany(
                    "INSERT INTO features (recording_id, variant, noise_id, snr_db, frame_count, n_mfcc, mfcc) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (recording_id, variant, noise_id, None if snr is None else float(snr),
                         int(matrix.shape[0]), int(matrix.shape[1]),
                         np.ascontiguousarray(matrix, dtype=np.float32).tobytes())
                        for variant, noise_id, snr, matrix in item["variants"]
                    ],
                )
                added += 1
        return added

    # Reading -----------------------------------------------------------------------------------
    def counts(self) -> dict:
        """Speakers, recordings and feature rows per sex: ``{"male": {...}, "female": {...}}``."""
        result = {sex: {"speakers": 0, "recordings": 0, "features": 0} for sex in SEXES}
        for sex, speakers in self._query("SELECT sex, count(*) FROM speakers GROUP BY sex"):
            result[sex]["speakers"] = speakers
        for sex, recordings in self._query(
            "SELECT speakers.sex, count(*) FROM recordings JOIN speakers ON speakers.id = recordings.speaker_id GROUP BY speakers.sex"
        ):
            result[sex]["recordings"] = recordings
        for sex, rows in self._query(
            "SELECT speakers.sex, count(*) FROM features JOIN recordings ON recordings.id = features.recording_id "
            "JOIN speakers ON speakers.id = recordings.speaker_id GROUP BY speakers.sex"
        ):
            result[sex]["features"] = rows
        return result

    def speakers(self):
        """DataFrame of speakers: id, name, sex, source, synthetic, recordings."""
        import pandas

        rows = self._query(
            "SELECT speakers.id, speakers.name, speakers.sex, speakers.source, speakers.synthetic, count(recordings.id) "
            "FROM speakers LEFT JOIN recordings ON recordings.speaker_id = speakers.id GROUP BY speakers.id ORDER BY speakers.id"
        )
        return pandas.DataFrame(rows, columns=["id", "name", "sex", "source", "synthetic", "recordings"])

    def feature_index(self):
        """DataFrame of every feature row without its matrix.

        Columns: feature_id, recording_id, speaker_id, sex, source, synthetic, variant, snr_db, frame_count.
        """
        import pandas

        rows = self._query(
            "SELECT features.id, recordings.id, speakers.id, speakers.sex, speakers.source, speakers.synthetic, "
            "features.variant, features.snr_db, features.frame_count FROM features "
            "JOIN recordings ON recordings.id = features.recording_id "
            "JOIN speakers ON speakers.id = recordings.speaker_id ORDER BY features.id"
        )
        return pandas.DataFrame(
            rows,
            columns=["feature_id", "recording_id", "speaker_id", "sex", "source", "synthetic", "variant", "snr_db", "frame_count"],
        )

    def load_features(self, feature_ids, batch_size: int = 500) -> dict:
        """Return ``{feature_id: matrix}`` for the given ids, read ``batch_size`` rows per query."""
        feature_ids = [int(feature_id) for feature_id in feature_ids]
        result = {}
        for start in range(0, len(feature_ids), batch_size):
            batch = feature_ids[start : start + batch_size]
            placeholders = ",".join("?" * len(batch))
            for feature_id, frames, n_mfcc, blob in self._query(
                f"SELECT id, frame_count, n_mfcc, mfcc FROM features WHERE id IN ({placeholders})", batch
            ):
                result[feature_id] = np.frombuffer(blob, dtype=np.float32).reshape(frames, n_mfcc)
        return result

    def check_finite(self, feature_ids, batch_size: int = 500) -> None:
        """Raise BadDatabaseError, naming a recording and the fix, if any of the given feature rows holds a
        value that is not a finite number (NaN or infinite: a damaged or hand-edited blob). One read of
        the rows, ``batch_size`` at a time."""
        feature_ids = [int(feature_id) for feature_id in feature_ids]
        bad = []
        for start in range(0, len(feature_ids), batch_size):
            batch = feature_ids[start : start + batch_size]
            bad += [feature_id for feature_id, blob in self._query(
                f"SELECT id, mfcc FROM features WHERE id IN ({','.join('?' * len(batch))})", batch)
                if not np.isfinite(np.frombuffer(blob, dtype=np.float32)).all()]
        if not bad:
            return
        path, variant = self._query("SELECT recordings.path, features.variant FROM features JOIN recordings "
                                    "ON recordings.id = features.recording_id WHERE features.id = ?", (bad[0],))[0]
        raise BadDatabaseError(
            f"{self.path}: {len(bad)} feature row{'s' if len(bad) != 1 else ''} hold{'' if len(bad) != 1 else 's'} values "
            f"that are not finite numbers (NaN or infinite), the first of {path} ({variant}); the database is damaged "
            f"or was edited: run 'python speech_prep.py --db {self.path} --start-over' to extract the features again."
        )

    # Splits and runs ---------------------------------------------------------------------------
    def save_split(self, assignment: dict, seed: int) -> None:
        """Replace the stored split with ``{speaker_id: 'train'|'validation'|'test'}``."""
        for subset in assignment.values():
            if subset not in SUBSETS:
                raise BadParameterError(f"split subset must be one of {SUBSETS}, not {subset!r}.")
        with self.transaction() as connection:
            connection.execute("DELETE FROM splits")
            connection.executemany(
                "INSERT INTO splits (speaker_id, subset, seed) VALUES (?, ?, ?)",
                [(int(speaker), subset, int(seed)) for speaker, subset in assignment.items()],
            )

    def load_split(self) -> dict:
        """The stored split as ``{speaker_id: subset}`` (empty if none)."""
        return {speaker: subset for speaker, subset in self._query("SELECT speaker_id, subset FROM splits")}

    def record_run(self, *, model: str, path, scores: dict, test_accuracy=None, balanced_accuracy=None,
                   test_speakers=None, epochs=None, training_seconds=None, parameters=None) -> int:
        """Store one training run's scores (NaN and infinite numbers as NULL); return its id."""
        with self.transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO runs (finished_at, model, path, test_accuracy, balanced_accuracy, test_speakers, epochs, "
                "training_seconds, parameters, scores_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now(), model, str(path), _plain(test_accuracy, float), _plain(balanced_accuracy, float),
                 _plain(test_speakers, int), _plain(epochs, int), _plain(training_seconds, float),
                 _plain(parameters, int), json.dumps(_finite(scores), sort_keys=True, default=_json_default)),
            )
            return cursor.lastrowid

    def runs(self):
        """DataFrame of stored training runs, newest last."""
        import pandas

        rows = self._query(
            "SELECT id, finished_at, model, path, test_accuracy, balanced_accuracy, test_speakers, epochs, "
            "training_seconds, parameters FROM runs ORDER BY id"
        )
        return pandas.DataFrame(
            rows,
            columns=["id", "finished_at", "model", "path", "test_accuracy", "balanced_accuracy", "test_speakers",
                     "epochs", "training_seconds", "parameters"],
        )

"""The feature database's file: its schema, opening it (ours, of this version, or one line saying why
not), creating and resetting it, and SQLite's errors as the line a person reads. The tables and what is
read from and written to them are described in :mod:`acoustics.database`.

A new database is written under a temporary name and renamed into place, so it appears whole or not
at all; a reset never deletes a file that is not one of ours, nor one that a training reads.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
from pathlib import Path

from .errors import BadDatabaseError
from .locks import hold_database_for_reset
from .settings import Settings

SCHEMA_VERSION = 1
#: PRAGMA application_id of our files ("DLAC"), so that a foreign SQLite file is recognised.
APPLICATION_ID = 0x444C4143
BUSY_TIMEOUT_SECONDS = 120

SCHEMA = """
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE speakers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    sex TEXT NOT NULL CHECK (sex IN ('male', 'female')),
    source TEXT NOT NULL,
    synthetic INTEGER NOT NULL DEFAULT 0 CHECK (synthetic IN (0, 1)),
    UNIQUE (source, name)
);
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY,
    speaker_id INTEGER NOT NULL REFERENCES speakers(id),
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    duration_seconds REAL NOT NULL,
    speech_seconds REAL NOT NULL,
    original_sample_rate INTEGER NOT NULL,
    original_channels INTEGER NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE noises (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    duration_seconds REAL NOT NULL,
    level_dbfs REAL NOT NULL
);
CREATE TABLE features (
    id INTEGER PRIMARY KEY,
    recording_id INTEGER NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    variant TEXT NOT NULL,
    noise_id INTEGER REFERENCES noises(id),
    snr_db REAL,
    frame_count INTEGER NOT NULL CHECK (frame_count > 0),
    n_mfcc INTEGER NOT NULL CHECK (n_mfcc > 0),
    mfcc BLOB NOT NULL CHECK (length(mfcc) = 4 * frame_count * n_mfcc),
    UNIQUE (recording_id, variant)
);
CREATE INDEX features_recording ON features(recording_id);
CREATE INDEX recordings_speaker ON recordings(speaker_id);
CREATE TABLE splits (
    speaker_id INTEGER PRIMARY KEY REFERENCES speakers(id),
    subset TEXT NOT NULL CHECK (subset IN ('train', 'validation', 'test')),
    seed INTEGER NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    finished_at TEXT NOT NULL,
    model TEXT NOT NULL,
    path TEXT NOT NULL,
    test_accuracy REAL,
    balanced_accuracy REAL,
    test_speakers INTEGER,
    epochs INTEGER,
    training_seconds REAL,
    parameters INTEGER,
    scores_json TEXT NOT NULL
);
CREATE VIEW feature_overview AS
SELECT features.id AS feature_id, speakers.name AS speaker, speakers.sex, speakers.source,
       speakers.synthetic, recordings.path, features.variant, features.snr_db, features.frame_count,
       round(features.frame_count * 0.01, 2) AS approx_seconds
FROM features
JOIN recordings ON recordings.id = features.recording_id
JOIN speakers ON speakers.id = recordings.speaker_id;
"""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def explain(path, error: sqlite3.Error) -> BadDatabaseError:
    """Turn an sqlite3 error into the one line a person reads."""
    text = str(error).lower()
    if "readonly" in text or "read-only" in text:
        return BadDatabaseError(f"{path}: the database is read-only; make it writable (chmod u+w) or choose another --db.")
    if "disk is full" in text or "disk i/o" in text:
        return BadDatabaseError(f"{path}: the disk is full (or failed) while writing; free some space and run the stage again. Nothing half-written was kept.")
    if "not a database" in text or "malformed" in text or "encrypted" in text:
        return BadDatabaseError(f"{path}: not a feature database (not SQLite, or damaged); choose another --db, or move it away and run 'python set_up_sql.py'.")
    if "locked" in text or "busy" in text:
        return BadDatabaseError(f"{path}: the database stayed busy for {BUSY_TIMEOUT_SECONDS} s (another stage is writing); wait for it to finish and run again.")
    if "unable to open" in text:
        return BadDatabaseError(f"{path}: cannot open the database file; check that its folder exists and is writable.")
    return BadDatabaseError(f"{path}: database error ({error}); run 'python set_up_sql.py --reset' to start over.")


def _connect(path: Path, *, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
    """A connection to ``path``; BadDatabaseError if it cannot be opened.

    Read-only, a database in WAL mode needs its ``-shm`` file, which SQLite cannot make in a folder it
    cannot write (a read-only medium, a shared folder): there the database is opened as immutable, as
    nothing can change it.
    """
    uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}{'&immutable=1' if immutable else ''}"
    connection = None
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        connection.execute("PRAGMA foreign_keys = ON")
        if readonly:
            connection.execute("PRAGMA schema_version").fetchone()  # the first read of the file
        return connection
    except sqlite3.Error as error:
        if connection is not None:
            connection.close()
        if readonly and not immutable and not os.access(path.resolve().parent, os.W_OK):
            return _connect(path, readonly=True, immutable=True)
        raise explain(path, error) from None


def _is_ours(connection: sqlite3.Connection) -> int:
    """Return our schema version, or raise if the file is not one of our databases."""
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    if application_id != APPLICATION_ID:
        raise BadDatabaseError("foreign")
    return connection.execute("PRAGMA user_version").fetchone()[0]


def open_ours(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A connection to our database at ``path``, of this schema version; one-line BadDatabaseError otherwise."""
    if not path.exists():
        raise BadDatabaseError(f"{path}: no feature database here; run 'python set_up_sql.py --db {path}' first.")
    if not readonly and not os.access(path, os.W_OK):
        raise BadDatabaseError(f"{path}: the database is read-only; make it writable (chmod u+w) or choose another --db.")
    connection = _connect(path, readonly=readonly)
    try:
        version = _is_ours(connection)
        if not readonly:
            connection.execute("PRAGMA synchronous = NORMAL")
    except BadDatabaseError:
        connection.close()
        raise BadDatabaseError(
            f"{path}: not a feature database of this project; choose another --db, or move it away and run 'python set_up_sql.py'."
        ) from None
    except sqlite3.Error as error:
        connection.close()
        raise explain(path, error) from None
    if version != SCHEMA_VERSION:
        connection.close()
        raise BadDatabaseError(
            f"{path}: database schema version {version}, this version of the project reads {SCHEMA_VERSION}; "
            "run 'python set_up_sql.py --reset' to rebuild it (the features are extracted again)."
        )
    return connection


def _check_ours_any_version(path: Path) -> None:
    """Raise BadDatabaseError unless ``path`` is one of our databases, of whatever schema version."""
    try:
        connection = _connect(path, readonly=True)
        try:
            _is_ours(connection)
        finally:
            connection.close()
    except (BadDatabaseError, sqlite3.Error):
        raise BadDatabaseError(
            f"{path}: not a feature database of this project, so it is left alone; choose another --db."
        ) from None


def create_database(path, settings: Settings, *, reset: bool = False) -> str:
    """Create the feature database at ``path``; return ``"created"``, ``"kept"`` or ``"reset"``.

    An existing database of ours is kept as it is (its data and its settings) unless ``reset``. A file
    that is not one of our databases is never touched, nor one that a training reads (``reset``
    raises :class:`acoustics.locks.BusyError`: see :func:`acoustics.locks.hold_database_for_training`).
    """
    path = Path(path)
    if path.exists() and reset:
        with hold_database_for_reset(path):  # BusyError while train_models.py reads it
            return _create(path, settings, reset=True)
    return _create(path, settings, reset=reset)


def _create(path: Path, settings: Settings, *, reset: bool) -> str:
    """:func:`create_database` without the lock."""
    outcome = "created"
    if path.exists():
        if not reset:
            open_ours(path, readonly=True).close()  # raises for a foreign, damaged or other-version file
            return "kept"
        _check_ours_any_version(path)
        try:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        except OSError as error:
            raise BadDatabaseError(f"{path}: cannot delete the old database ({error.strerror}); "
                                   "check the folder's permissions, or choose another --db.") from None
        outcome = "reset"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.creating")
    temporary.unlink(missing_ok=True)
    try:
        connection = sqlite3.connect(str(temporary), isolation_level=None)
        try:
            connection.executescript(
                "BEGIN;" + SCHEMA
                + f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
            )
            connection.executemany(
                "INSERT INTO settings (key, value) VALUES (?, ?)",
                [("features", settings.to_json()), ("schema_version", str(SCHEMA_VERSION)), ("created_at", now())],
            )
            connection.execute("COMMIT")
            connection.execute("PRAGMA journal_mode = WAL")
        finally:
            connection.close()
        os.replace(temporary, path)  # SQLite wrote and synced it (its COMMIT); renamed, it appears whole or not at all
    except sqlite3.Error as error:
        temporary.unlink(missing_ok=True)
        raise explain(path, error) from None
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise BadDatabaseError(f"{path}: cannot write the database ({error.strerror}); choose another --db.") from None
    return outcome

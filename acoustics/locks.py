"""Advisory locks on small lock files, so that two stages never undo each other's work.

The locks are taken with portalocker: ``flock`` on Linux and macOS, ``LockFileEx`` on Windows (shared locks there
need pywin32, which requirements.txt installs on Windows only).

- :func:`hold_output_folder`: one ``train_models.py`` at a time writes into an ``--out`` folder, so
  that ``best.h5`` and the split stored in the database always belong to the same run. A second run
  into the same folder is refused at once (a training takes minutes; a silent wait looks like a hang).
- :func:`hold_database_for_training` (shared: several trainings may read one database) against
  :func:`hold_database_for_reset` (exclusive, at once): ``speech_prep.py --start-over`` and
  ``set_up_sql.py --reset`` never delete a database that a training is reading.

The lock files are hidden, beside what they guard (``.train_models.lock`` in the folder,
``.NAME.db.lock`` beside the database), and are removed by the last holder. A lock dies with its
process, so a killed run never blocks the next one. Where a lock file cannot be made (a read-only
folder), nothing is locked: nothing there can be written either.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path
from typing import Iterator, Optional

import portalocker

from .errors import AcousticsError, BadDatabaseError

SHARED = portalocker.LockFlags.SHARED
EXCLUSIVE = portalocker.LockFlags.EXCLUSIVE

#: Seconds a training waits for a reset of its database (which deletes and creates it: milliseconds).
RESET_WAIT_SECONDS = 30.0


class BusyError(AcousticsError):
    """Another process holds the lock on a folder or a database."""


def database_lock_path(database) -> Path:
    """The lock file that guards the feature database at ``database``."""
    database = Path(database)
    return database.with_name(f".{database.name}.lock")


def _open_locked(path: Path, mode: int, *, wait_seconds: float = 0.0) -> Optional[int]:
    """A descriptor of ``path`` (created if missing) locked with ``mode`` (:data:`SHARED` or :data:`EXCLUSIVE`);
    None if another process holds a conflicting lock for longer than ``wait_seconds``. Raises OSError
    when the file cannot be made (EACCES, EROFS: callers treat that as nothing to guard).

    A lock taken on a file that its last holder removed meanwhile is dropped and taken again on the new
    file, so that two processes never hold conflicting locks on two generations of one path.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            while True:
                try:
                    portalocker.lock(descriptor, mode | portalocker.LockFlags.NON_BLOCKING)
                    break
                except portalocker.AlreadyLocked:
                    if time.monotonic() >= deadline:
                        os.close(descriptor)
                        return None
                    time.sleep(0.05)
            held = os.fstat(descriptor)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
                return descriptor
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)  # removed (or replaced) by its last holder while we waited: take the new one


def _release(path: Path, descriptor: int) -> None:
    """Drop the lock; the last holder (the one that can take it exclusively) removes the file.
    A descriptor of -1 (nothing was locked) is skipped."""
    if descriptor < 0:
        return
    try:
        portalocker.lock(descriptor, EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
    except portalocker.AlreadyLocked:
        pass  # others still hold it (shared): the last of them removes it
    else:
        with contextlib.suppress(OSError):
            if os.path.samestat(os.stat(path), os.fstat(descriptor)):
                os.unlink(path)
    finally:
        os.close(descriptor)


def _cannot_lock(error: OSError) -> bool:
    """True for the errors of a folder where no lock file can be made (read-only, not ours)."""
    return error.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def _try_lock(database, path: Path, mode: int, wait_seconds: float) -> Optional[int]:
    """:func:`_open_locked` for the lock of a database; -1 where no lock file can be made (a read-only
    folder: nothing resets the database there; a missing one: opening the database says so)."""
    try:
        return _open_locked(path, mode, wait_seconds=wait_seconds)
    except OSError as error:
        if _cannot_lock(error) or error.errno in (errno.ENOENT, errno.ENOTDIR):
            return -1
        raise BadDatabaseError(f"{database}: cannot make its lock file {path} ({error.strerror}); "
                               "check the folder's permissions, or choose another --db.") from None


def _holder(path: Path) -> str:
    """``" (pid N)"`` from the lock file at ``path``, or "" when it names none."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text(encoding="ascii").strip() or "x")
        return f" (pid {pid})"
    return ""


@contextlib.contextmanager
def hold_output_folder(folder) -> Iterator[None]:
    """Hold ``folder`` (created if missing) for one ``train_models.py`` run; :class:`BusyError` at once
    if another run holds it. Folders this made are removed again if the run leaves them empty."""
    folder = Path(folder)
    created = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AcousticsError(f"--out {folder}: cannot make the folder ({error.strerror}); choose another --out.") from None
    path = folder / ".train_models.lock"
    try:
        descriptor = _open_locked(path, EXCLUSIVE)
    except OSError as error:
        if not _cannot_lock(error):
            raise AcousticsError(f"--out {folder}: cannot write there ({error.strerror}); choose another --out.") from None
        descriptor = -1  # a read-only folder: the saves there fail with their own message
    if descriptor is None:
        raise BusyError(f"Another train_models.py is writing to {folder}{_holder(path)}; wait for it or choose another --out.")
    try:
        if descriptor >= 0:
            try:
                os.ftruncate(descriptor, 0)
                os.lseek(descriptor, 0, os.SEEK_SET)
                os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
            except OSError as error:  # a full disk: better said now than after the training
                raise AcousticsError(f"--out {folder}: cannot write there ({error.strerror}); free some space there "
                                     "or choose another --out.") from None
        yield
    finally:
        _release(path, descriptor)
        for made in created:
            with contextlib.suppress(OSError):
                made.rmdir()  # only if empty


@contextlib.contextmanager
def hold_database_for_training(database, *, wait_seconds: float = RESET_WAIT_SECONDS) -> Iterator[None]:
    """Hold the feature database at ``database`` for reading (shared with other trainings) while a
    training runs, so that no reset deletes it meanwhile; waits up to ``wait_seconds`` for a reset
    under way."""
    path = database_lock_path(database)
    descriptor = _try_lock(database, path, SHARED, wait_seconds)
    if descriptor is None:
        raise BusyError(f"{database}: it is being rebuilt (speech_prep.py --start-over or set_up_sql.py --reset) "
                        f"for more than {wait_seconds:g} s; wait for that to finish and run train_models.py again.")
    try:
        yield
    finally:
        _release(path, descriptor)


@contextlib.contextmanager
def hold_database_for_reset(database) -> Iterator[None]:
    """Hold the feature database at ``database`` alone while it is deleted and made anew;
    :class:`BusyError` at once if a training reads it."""
    path = database_lock_path(database)
    descriptor = _try_lock(database, path, EXCLUSIVE, 0.0)
    if descriptor is None:
        raise BusyError(f"{database}: train_models.py is training on this database, so its features are not deleted; "
                        "wait for the training to finish, or start over into another --db.")
    try:
        yield
    finally:
        _release(path, descriptor)


@contextlib.contextmanager
def hold_for_training(folder, database) -> Iterator[None]:
    """What one ``train_models.py`` run holds from start to end: its ``--out`` folder alone
    (:func:`hold_output_folder`) and its database against resets (:func:`hold_database_for_training`)."""
    if Path(folder).exists() and not Path(folder).is_dir():
        raise AcousticsError(f"--out {folder} is a file, not a folder; choose another folder.")
    with hold_output_folder(folder), hold_database_for_training(database):
        yield

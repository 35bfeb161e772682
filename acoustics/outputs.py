"""Checks of the files a stage is told to write, made before any work: no output may overwrite an
input, the feature database, a model, or a file that holds another kind of data; and atomic writes
(:func:`write_atomically`), so that an output is either the old file or the whole new one.

A file's kind comes from its first bytes where it exists and they say (SQLite, WAV, FLAC, HDF5, PNG,
...), else from its suffix; files of neither (text, CSV) have no kind and may be overwritten.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from .errors import AcousticsError, BadParameterError

#: Kinds of file by their first bytes (magic numbers).
MAGIC = (
    (b"SQLite format 3\x00", "SQLite database"),
    (b"\x89HDF\r\n\x1a\n", "HDF5 file (a model)"),
    (b"fLaC", "FLAC audio file"),
    (b"OggS", "Ogg audio file"),
    (b"ID3", "MP3 audio file"),
    (b"\x89PNG\r\n\x1a\n", "PNG picture"),
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "zip archive"),
)
#: Kinds of file by their suffix, for paths that do not exist yet (or whose first bytes say nothing).
SUFFIXES = {
    ".db": "SQLite database", ".sqlite": "SQLite database", ".sqlite3": "SQLite database",
    ".h5": "HDF5 file (a model)", ".hdf5": "HDF5 file (a model)", ".keras": "zip archive",
    ".wav": "WAV audio file", ".flac": "FLAC audio file", ".ogg": "Ogg audio file", ".mp3": "MP3 audio file",
    ".png": "PNG picture", ".pdf": "PDF document", ".zip": "zip archive", ".csv": "CSV table",
}
#: What the picture options may name: formats matplotlib writes (it picks one by the suffix), and their kinds.
PICTURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
PICTURE_KINDS = ("PNG picture", "PDF document")


def file_kind(path) -> Optional[str]:
    """What ``path`` holds ("SQLite database", "WAV audio file", ...) by its first bytes, else by its
    suffix; None when neither says (text, an unknown suffix)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        head = b""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV audio file"
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    return SUFFIXES.get(path.suffix.lower())


def same_file(first, second) -> bool:
    """True if the two paths name one file (after links and ``..``), whether or not it exists yet."""
    try:
        return os.path.samefile(first, second)
    except OSError:
        return os.path.realpath(first) == os.path.realpath(second)


def check_output_path(path, option: str, writes: str, protected=(), *,
                      accepts: Iterable[str] = (), suffixes: Iterable[str] = ()) -> None:
    """Refuse, with one line naming the file and the fix, an output ``path`` given with ``option``
    (e.g. "--csv") that would overwrite one of the ``protected`` files ({"the feature database": path},
    or (label, path) pairs; None paths are skipped), or whose kind (:func:`file_kind`) is another than ``writes`` or one of
    ``accepts``. With ``suffixes``, ``path`` must also end in one of them."""
    for label, other in protected.items() if isinstance(protected, Mapping) else protected:
        if other is not None and same_file(path, other):
            raise BadParameterError(f"{option} {path} would overwrite {label} {other}; choose another file.")
    if Path(path).is_dir():
        raise BadParameterError(f"{option} {path} is a folder; name a file in it instead.")
    suffixes = tuple(suffixes)
    if suffixes and Path(path).suffix.lower() not in suffixes:
        raise BadParameterError(f"{option} {path}: a {writes} needs a name ending in {', '.join(suffixes)}; "
                                "choose another file.")
    kind = file_kind(path)
    if kind is not None and kind not in (writes, *accepts):
        if Path(path).exists():
            raise BadParameterError(f"{option} {path} would overwrite the {kind} {path} with a {writes}; "
                                    "choose another file.")
        raise BadParameterError(f"{option} {path} would write a {writes} under the name of a {kind}; "
                                "choose another file.")


def check_picture_path(path, option: str, protected=()) -> None:
    """:func:`check_output_path` for a picture: a name ending in one of :data:`PICTURE_SUFFIXES`."""
    check_output_path(path, option, "picture", protected, accepts=PICTURE_KINDS, suffixes=PICTURE_SUFFIXES)


#: Seconds after which a temporary file of an atomic save is taken for a leftover of a killed run.
STALE_TEMPORARY_SECONDS = 600


def remove_stale_temporaries(folder, names: Iterable[str], *, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
    """Remove the temporary files that an atomic save of ``NAME.h5`` (for each of ``names``) leaves when
    it is killed (SIGKILL, power loss): plain files named exactly ``.NAME.h5.XXXXXXXX.tmp.h5`` (as
    ``tempfile.mkstemp`` names them) in ``folder``, last written more than ``older_than`` seconds ago,
    so a save in progress is left alone. Nothing else is touched. Returns how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    patterns = [re.compile(rf"\.{re.escape(name)}\.h5\.[A-Za-z0-9_]{{8}}\.tmp\.h5") for name in set(names)]
    removed, now = 0, time.time()
    for entry in os.scandir(folder):
        if not any(pattern.fullmatch(entry.name) for pattern in patterns):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass  # removed meanwhile
    return removed


def check_writable(path, option: str) -> None:
    """Refuse, before any work, an output ``path`` (given with ``option``) whose folder is missing or
    read-only, or which exists and cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadParameterError(f"Cannot write {path} (there is no folder {folder}); choose another {option} path.")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise BadParameterError(f"Cannot write {path} (not writable); choose another {option} path.")


def write_atomically(path, write: Callable[[str], None], option: str) -> None:
    """``write(temporary)`` writes the whole file to ``PATH.tmp``, which then replaces ``path`` at once,
    so a reader never sees half a file; a disk that refuses is one line naming ``option``."""
    temporary = f"{path}.tmp"
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise AcousticsError(f"Cannot write {path} ({error.strerror or error}); choose another {option} path.") from None


def save_warning(what: str, error: OSError) -> str:
    """The line that says ``what`` (e.g. "the picture P") could not be saved, why, and the way out."""
    return f"Warning: could not save {what} ({error.strerror or error}); use --no-save, or free the disk."

"""Checks of the files a stage is told to write, made before any work: no output may overwrite an
input, the feature database, a model, or a file that holds another kind of data; and no path given to
a stage may be longer than the system takes (:func:`check_path_lengths`). Files are written atomically
(:func:`replaced_atomically`, :func:`write_atomically`), so that an output is either the old file or
the whole new one.

A file's kind comes from its first bytes where it exists and they say (SQLite, WAV, FLAC, HDF5, PNG,
...), else from its suffix; files of neither (text, CSV) have no kind and may be overwritten.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional

from .errors import AcousticsError, BadParameterError, printable

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


def is_stream(path) -> bool:
    """True for an output that is not a plain file: a device (``/dev/null``), a FIFO, a socket, ``/dev/stdout``
    or a process substitution (``/dev/fd/N``). It is written to directly, never renamed over, never read."""
    text = os.fspath(path)
    if text.startswith(("/dev/", "/proc/")):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_output_path(path, option: str, writes: str, protected=(), *, accepts: Iterable[str] = (),
                      suffixes: Iterable[str] = (), replaces: Iterable[str] = (), overwrite: bool = False) -> None:
    """Refuse, with one line naming the file and the fix, an output ``path`` given with ``option``
    (e.g. "--csv") that would overwrite one of the ``protected`` files ({"the feature database": path},
    or (label, path) pairs; None paths are skipped), or whose kind (:func:`file_kind`) is another than ``writes`` or one of
    ``accepts``. With ``suffixes``, ``path`` must also end in one of them; with ``replaces``, an existing file
    must end in one of them unless ``overwrite`` (so ``--csv notes.json`` does not replace notes). A name
    ending in a slash names a folder. A stream (:func:`is_stream`) is neither read nor checked for its kind."""
    for label, other in protected.items() if isinstance(protected, Mapping) else protected:
        if other is not None and same_file(path, other):
            raise BadParameterError(f"{option} {path} would overwrite {label} {other}; choose another file.")
    if os.fspath(path).endswith(("/", os.sep)):
        raise BadParameterError(f"{option} {path} names a folder (it ends in a slash); name a file in it instead.")
    if is_stream(path):
        return
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
    replaces = tuple(replaces)
    if replaces and not overwrite and Path(path).exists() and Path(path).suffix.lower() not in replaces:
        raise BadParameterError(f"{option} {path} exists and is not a {writes} (its name does not end in "
                                f"{', '.join(replaces)}); choose another file, or add --overwrite to replace it.")


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


@contextlib.contextmanager
def replaced_atomically(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (named ``.NAME.XXXXXXXX.tmp.h5`` for ``NAME.h5``, as
    :func:`remove_stale_temporaries` knows it) to write; when the block ends normally, flush it to disk,
    make it readable by all (a model is meant to be shared) and rename it over ``path``, so ``path`` is
    whole or unchanged whatever stops the process. An exception removes the temporary and goes on."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def copy_atomically(source, destination) -> None:
    """Copy the file ``source`` to ``destination`` through :func:`replaced_atomically`; a disk that refuses
    (full, read-only) is one line (:class:`AcousticsError`), and ``destination`` stays as it was."""
    try:
        with replaced_atomically(destination) as temporary:
            shutil.copyfile(source, temporary)
    except OSError as error:
        raise AcousticsError(f"Cannot write {destination} ({error.strerror or error}); free some space there and run "
                             f"again. {source} is complete and can be used as it is.") from None


#: Longest file name (one component) and whole path, in bytes, where the system does not say.
NAME_MAX, PATH_MAX = 255, 4096


def shortened(text, limit: int = 60) -> str:
    """``text`` (a path) printable, cut in the middle to about ``limit`` characters: its start and its end."""
    text = printable(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...{text[-(limit // 2 - 3):]} ({len(text)} characters)"


def _limit(path: str, name: str, default: int) -> int:
    """The file system's ``PC_NAME_MAX`` or ``PC_PATH_MAX`` at the nearest existing folder of ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(64):
        try:
            return int(os.pathconf(folder, name))
        except (OSError, ValueError):
            if folder == os.path.dirname(folder):
                break
            folder = os.path.dirname(folder)
    return default


def path_length_problem(path) -> Optional[tuple]:
    """``(why, fix)`` in words where ``path`` is longer than the system takes (ENAMETOOLONG: a name over
    NAME_MAX bytes, 255 on most file systems, or a whole path over PATH_MAX, 4096); None where it is not."""
    text = os.fspath(path)
    longest = max((len(os.fsencode(part)) for part in text.split(os.sep)), default=0)
    name_max = _limit(text, "PC_NAME_MAX", NAME_MAX)
    if longest > name_max:
        return (f"a name in this path is {longest} bytes long, more than the {name_max} the file system allows",
                "rename the file (or folder), or give another path")
    whole = max(len(os.fsencode(text)), len(os.fsencode(os.path.abspath(text))))
    path_max = _limit(text, "PC_PATH_MAX", PATH_MAX)
    if whole >= path_max:
        return f"the path is {whole} bytes long, more than the {path_max - 1} the system allows", "move the file to a shorter path"
    return None


def check_path_lengths(named) -> None:
    """Refuse, with one line naming the path (shortened) and the fix, a path longer than the system
    takes (:func:`path_length_problem`): ``named`` holds ``(option, value)`` pairs, ``value`` a path, a
    list of paths or None."""
    for option, value in named:
        for path in value if isinstance(value, (list, tuple)) else [value]:
            problem = None if path is None else path_length_problem(path)
            if problem:
                raise BadParameterError(f"{option} {shortened(os.fspath(path))}: {problem[0]}; {problem[1]}.")


def check_path_arguments(arguments, *names: str) -> None:
    """:func:`check_path_lengths` for the path options ``names`` of parsed ``arguments`` (attribute
    names: ``"csv"`` is ``--csv``; ``"files"``, the positional files, is ``file``)."""
    check_path_lengths([("file" if name == "files" else "--" + name.replace("_", "-"), getattr(arguments, name, None))
                        for name in names])


def check_writable(path, option: str) -> None:
    """Refuse, before any work, an output ``path`` (given with ``option``) whose folder is missing or
    read-only, or which exists and cannot be written."""
    if is_stream(path):
        if not os.access(path, os.W_OK):
            raise BadParameterError(f"Cannot write {path} (not writable); choose another {option} path.")
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadParameterError(f"Cannot write {path} (there is no folder {folder}); choose another {option} path.")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise BadParameterError(f"Cannot write {path} (not writable); choose another {option} path.")


def write_atomically(path, write: Callable[[str], None], option: str) -> None:
    """``write(temporary)`` writes the whole file beside ``path``, which it then replaces at once
    (:func:`replaced_atomically`), so a reader never sees half a file; a stream (:func:`is_stream`: a
    device, a FIFO, standard output) is written to directly. A disk that refuses is one line naming ``option``."""
    try:
        if is_stream(path):
            write(os.fspath(path))
            return
        with replaced_atomically(path) as temporary:
            write(os.fspath(temporary))
    except OSError as error:
        raise AcousticsError(f"Cannot write {path} ({error.strerror or error}); choose another {option} path.") from None


def check_free_space(folder, needed_bytes: int, what: str, fix: str) -> None:
    """Raise :class:`AcousticsError` in one line when the disk of ``folder`` has fewer than ``needed_bytes``
    free for ``what``; ``fix`` says what to do. Checked before writing where a library cannot fail cleanly
    on a full disk (HDF5 can crash the process); where the space cannot be measured, nothing is said."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed_bytes:
        raise AcousticsError(f"{folder}: the disk is too full for {what} (it needs about {needed_bytes / 1e6:.1f} MB, "
                             f"{free / 1e6:.1f} MB are free); {fix}.")


def save_warning(what: str, error: OSError) -> str:
    """The line that says ``what`` (e.g. "the picture P") could not be saved, why, and the way out."""
    return f"Warning: could not save {what} ({error.strerror or error}); use --no-save, or free the disk."

"""Input files that can be read to their end: a table or a JSON file is a regular file of bounded size.

A FIFO, a character device (``/dev/zero``, ``/dev/stdin``) or a socket never ends, or ends when its writer
says so; read as a manifest or a bench file it would block the stage or fill the memory. They are refused
before anything is read, with one line naming the option, the file and the fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import BadParameterError

#: The largest manifest (a CSV of paths, a few hundred bytes a row: about 300,000 rows) or JSON file read, in bytes.
MAX_TABLE_BYTES = 64 * 1024 * 1024


def check_readable_file(path, option: str, what: str, *, max_bytes: int = MAX_TABLE_BYTES) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a regular file (after links) of at most ``max_bytes``; else
    :class:`BadParameterError` naming ``option`` (e.g. "--manifest"), the file, and ``what`` it should be
    (e.g. "a CSV manifest"). A missing file is left to the reader, which says so in its own words."""
    path = Path(path)
    try:
        status = os.stat(path)
    except OSError:
        return path
    if stat.S_ISDIR(status.st_mode):
        return path  # the reader names a folder as such
    if not stat.S_ISREG(status.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(status.st_mode) else "a device" if stat.S_ISCHR(status.st_mode)
                or stat.S_ISBLK(status.st_mode) else "a socket" if stat.S_ISSOCK(status.st_mode) else "not a regular file")
        raise BadParameterError(f"{option} {path} is {kind}, which may never end; save {what} to a file and give that.")
    if status.st_size > max_bytes:
        raise BadParameterError(f"{option} {path} is {status.st_size / 1e6:.0f} MB, more than {what} can be "
                                f"({max_bytes / 1e6:.0f} MB); split it, or check that it is the right file.")
    return path

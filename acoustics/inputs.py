"""Inputs that can be read to their end: a table or a JSON file is a regular file of bounded size, and stored
JSON (a model's provenance, settings, recipe, history, scores; a bench file) is bounded in size and nesting.

A FIFO, a character device (``/dev/zero``, ``/dev/stdin``) or a socket never ends, or ends when its writer
says so; read as a manifest or a bench file it would block the stage or fill the memory. They are refused
before anything is read, with one line naming the option, the file and the fix. JSON nested thousands deep
would make ``json.loads`` raise RecursionError: :func:`bounded_json` measures the nesting without recursion
first, so a damaged model is one line (and a damaged ``best.h5`` is passed over), never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from .errors import BadParameterError

#: The largest manifest (a CSV of paths, a few hundred bytes a row: about 300,000 rows) or JSON file read, in bytes.
MAX_TABLE_BYTES = 64 * 1024 * 1024
#: Stored JSON longer than this (characters) or nested deeper than this is damaged: ours is a few KB, 6 deep.
MAX_JSON_CHARACTERS = 8 * 1024 * 1024
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def bounded_json(text, *, max_characters: int = MAX_JSON_CHARACTERS, max_depth: int = MAX_JSON_DEPTH):
    """``json.loads(text)``, after checking that ``text`` is at most ``max_characters`` long and nested at
    most ``max_depth`` deep (counted over the brackets outside strings, without recursion). Raises ValueError
    (``json.JSONDecodeError`` is one) for text that is too long, too deep or not JSON."""
    text = str(text)
    if len(text) > max_characters:
        raise ValueError(f"{len(text)} characters of JSON, more than {max_characters}")
    depth = deepest = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if bracket.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > max_depth:
            raise ValueError(f"JSON nested more than {max_depth} deep")
    try:
        return json.loads(text)
    except RecursionError:  # cannot happen within max_depth; kept so that no JSON ever gives a traceback
        raise ValueError("JSON nested too deep") from None


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

"""Errors of the project. The message of each is the one line a person reads.

Stage scripts catch :class:`AcousticsError`, print its message and exit with status 1;
any other exception is a bug and keeps its traceback.
"""

import unicodedata


class AcousticsError(Exception):
    """Base class: something the person can fix. ``str(error)`` says what and how, in one line whose file
    names cannot write to the terminal (:func:`shown`)."""

    def __init__(self, *args) -> None:
        super().__init__(*(shown(arg) if isinstance(arg, str) else arg for arg in args))


class BadParameterError(AcousticsError, ValueError):
    """A parameter (a setting, an argument) is out of range or of the wrong type."""


class BadAudioError(AcousticsError):
    """An audio file cannot be used: unreadable, empty, silent, clipped, too short or too long."""


class NoSpeechError(BadAudioError):
    """An audio file holds sound but no speech: only silence, a steady tone or steady noise."""


class BadDatabaseError(AcousticsError):
    """The feature database is missing, foreign, from another schema version, read-only or full."""


class SettingsMismatchError(AcousticsError):
    """Two files (database, model) were made with different feature settings."""


class BadModelError(AcousticsError):
    """A model file is missing, unreadable, or not one of this project's models."""


class NoInputDeviceError(AcousticsError):
    """No microphone can be opened (no device, PortAudio missing, device busy)."""


class NotEnoughDataError(AcousticsError):
    """The database holds too little data for the requested step (e.g. one sex only)."""


def reason_of(error: Exception, path) -> str:
    """The message of ``error`` without its leading ``"<path>: "`` (for lists that name the file already)."""
    message, prefix = str(error), f"{shown(path)}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def shown(text) -> str:
    """``text`` (a file name, a message that holds one) as it may reach a terminal, escaped as ``ls -b`` does:
    control and format characters (ESC, carriage return, newlines, bidi overrides) as Python writes them
    (``\\x1b``, ``\\r``, ``\\u202e``), and each byte of a name that is not UTF-8 (which Python holds as a
    surrogate escape) as ``\\xff``. So a file named to look like a verdict line prints as what it is."""
    characters = []
    for character in str(text):
        code = ord(character)
        if 0xDC80 <= code <= 0xDCFF:  # a byte of a name that is not UTF-8 (os.fsdecode's surrogateescape)
            characters.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(character)[0] == "C":
            characters.append(character.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            characters.append(character)
    return "".join(characters)


def printable(text) -> str:
    """``text`` without control and format characters (the ESC of ANSI escape codes, newlines, bidi
    overrides): strings stored in a file reach the terminal through this."""
    return "".join(character for character in str(text) if unicodedata.category(character)[0] != "C")

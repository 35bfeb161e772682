"""Every feature parameter of the pipeline, in one frozen object.

The settings are written into the feature database by stage 1, checked by stages 3 and 4, copied into
every ``.h5`` model by stage 4 and read back from the model by stage 5. No other module declares these
numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BadParameterError, SettingsMismatchError
from .inputs import bounded_json

#: Bumped whenever the meaning of a stored feature changes; part of every settings comparison.
FEATURE_VERSION = 1

#: Upper bounds, the same for the command line, a database's settings row and a model's settings: mel
#: bands, frames per model input (10 s at 10 ms), noise levels (each adds a feature row per recording).
#: ``sample_rate`` (4000-48000 Hz), ``window_ms`` (<= 200 ms) and ``seed`` (< 2**32) are bounded in
#: :meth:`Settings.__post_init__`.
MAX_MELS = 256
MAX_FRAMES = 1000
MAX_SNRS = 12

#: The fields that decide what a stored MFCC matrix means. A model can only use features that agree
#: on all of them.
FEATURE_FIELDS = (
    "feature_version",
    "sample_rate",
    "n_mfcc",
    "n_mels",
    "window_ms",
    "hop_ms",
    "fmin",
    "fmax",
    "trim_top_db",
    "frames",
)

#: The fields that must also agree before new features are added to an existing database.
DATABASE_FIELDS = FEATURE_FIELDS + ("snrs_db",)


@dataclass(frozen=True)
class Settings:
    """Feature and randomness parameters.

    Parameters
    ----------
    sample_rate : int
        Sampling rate in Hz that every recording is resampled to.
    n_mfcc : int
        Number of mel-frequency cepstral coefficients per frame.
    n_mels : int
        Number of mel bands the coefficients are computed from.
    window_ms, hop_ms : float
        Analysis window and hop in milliseconds (25 ms and 10 ms: 400 and 160 samples at 16 kHz).
    fmin, fmax : float
        Lowest and highest frequency of the mel filter bank in Hz.
    trim_top_db : float
        Leading and trailing parts quieter than this many dB below the peak are trimmed as silence.
    frames : int
        Number of frames (of ``hop_ms`` each) in one model input window: 160 frames is 1.6 s, the
        length of the partial utterances the pretrained speaker encoder learnt on.
    snrs_db : tuple of float
        Signal-to-noise ratios in dB at which background noise is mixed into each recording.
    seed : int
        Seed of every random generator (noise offsets, splits, weight initialisation).
    """

    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 40
    window_ms: float = 25.0
    hop_ms: float = 10.0
    fmin: float = 0.0
    fmax: float = 8000.0
    trim_top_db: float = 30.0
    frames: int = 160
    snrs_db: tuple = (20.0, 10.0, 5.0, 0.0)
    seed: int = 42
    feature_version: int = FEATURE_VERSION

    def __post_init__(self) -> None:
        problems = [f"{name} must be an integer, not {getattr(self, name)!r}"
                    for name in ("sample_rate", "n_mfcc", "n_mels", "frames", "seed", "feature_version")
                    if not is_integer(getattr(self, name))]
        problems += [f"{name} must be a finite number, not {getattr(self, name)!r}"
                     for name in ("window_ms", "hop_ms", "fmin", "fmax", "trim_top_db")
                     if not is_number(getattr(self, name))]
        if isinstance(self.snrs_db, (list, tuple)) and all(is_number(snr) for snr in self.snrs_db):
            object.__setattr__(self, "snrs_db", tuple(float(snr) for snr in self.snrs_db))
        else:
            problems.append(f"snrs_db must be a list of numbers in dB (empty: no noise), not {self.snrs_db!r}")
        if problems:
            raise BadParameterError("Bad settings: " + "; ".join(problems) + ".")
        if not 4000 <= self.sample_rate <= 48000:
            problems.append(f"sample_rate must be between 4000 and 48000 Hz, not {self.sample_rate!r}")
        if not 1 <= self.n_mels <= MAX_MELS:
            problems.append(f"n_mels must be between 1 and {MAX_MELS}, not {self.n_mels!r}")
        if not 1 <= self.n_mfcc <= self.n_mels:
            problems.append(f"n_mfcc must be between 1 and n_mels ({self.n_mels}), not {self.n_mfcc!r}")
        if not 0 < self.hop_ms <= self.window_ms <= 200:
            problems.append(f"need 0 < hop_ms <= window_ms <= 200 ms, not hop {self.hop_ms} and window {self.window_ms}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(f"need 0 <= fmin < fmax <= sample_rate/2, not fmin {self.fmin} and fmax {self.fmax}")
        if not 8 <= self.frames <= MAX_FRAMES:
            problems.append(f"frames must be between 8 and {MAX_FRAMES}, not {self.frames!r}")
        if not 0 < self.trim_top_db <= 120:
            problems.append(f"trim_top_db must be between 0 and 120 dB, not {self.trim_top_db}")
        if not 0 <= self.seed < 2**32:
            problems.append(f"seed must be between 0 and 2**32 - 1, not {self.seed}")
        if (any(not -30 <= snr <= 60 for snr in self.snrs_db) or len(set(self.snrs_db)) != len(self.snrs_db)
                or len(self.snrs_db) > MAX_SNRS):
            problems.append(f"snrs_db must be at most {MAX_SNRS} distinct values between -30 and 60 dB, not {_show(self.snrs_db)[:80]}")
        if not problems:
            from .features import empty_mel_bands

            empty = empty_mel_bands(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)
            if empty:
                problems.append(f"{empty} of the {self.n_mels} mel bands from fmin {self.fmin:g} to fmax {self.fmax:g} Hz "
                                f"hold no frequency of the {self.window_ms:g} ms window (always silent): lower n_mels, "
                                "widen fmin to fmax, or lengthen window_ms")
        if problems:
            raise BadParameterError("Bad settings: " + "; ".join(problems) + ".")

    # Derived sizes -----------------------------------------------------------------------------
    @property
    def n_fft(self) -> int:
        """Analysis window length in samples."""
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def hop_length(self) -> int:
        """Hop between frames in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def window_seconds(self) -> float:
        """Duration in seconds covered by one model input window of ``frames`` frames."""
        return ((self.frames - 1) * self.hop_length + self.n_fft) / self.sample_rate

    # JSON form ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["snrs_db"] = list(self.snrs_db)
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        return from_stored_json(cls, text, "settings")

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def with_overrides(self, assignments) -> "Settings":
        """These settings with ``NAME=VALUE`` texts applied (values in JSON: ``n_mels=80``,
        ``snrs_db=[10, 0]``), as ``bench/accuracy.py --settings`` takes them; raises
        BadParameterError naming a bad one."""
        return self.replace(**parse_overrides(assignments, [item.name for item in dataclasses.fields(self)], "--settings"))

    # Comparison --------------------------------------------------------------------------------
    def differences(self, other: "Settings", fields=FEATURE_FIELDS) -> list:
        """Human-readable list of the fields in ``fields`` where they differ: "name: mine vs other's"."""
        return [
            f"{name}: {_show(getattr(self, name))} vs {_show(getattr(other, name))}"
            for name in fields
            if getattr(self, name) != getattr(other, name)
        ]

    def check_same(self, other: "Settings", *, this: str, that: str, fix: str, fields=FEATURE_FIELDS) -> None:
        """Raise :class:`SettingsMismatchError` naming both sources when the settings differ.

        ``this`` names where ``self`` comes from and ``that`` where ``other`` comes from.
        """
        differences = other.differences(self, fields)
        if differences:
            raise SettingsMismatchError(
                f"{that} and {this} use different feature settings ({'; '.join(differences)}). {fix}"
            )


def parse_overrides(assignments, names, option: str) -> dict:
    """``{name: value}`` of ``NAME=VALUE`` texts given with ``option``: ``NAME`` one of ``names`` (``-``
    read as ``_``), ``VALUE`` in JSON (``20``, ``true``, ``[-10, 5]``) or a bare word (a string).
    Raises :class:`BadParameterError` naming the form for anything else."""
    changes = {}
    for assignment in assignments:
        name, equals, text = str(assignment).partition("=")
        name = name.strip().replace("-", "_")
        if not equals or name not in names:
            raise BadParameterError(f"{option} {assignment!r}: write NAME=VALUE with NAME one of {', '.join(sorted(names))}.")
        try:
            changes[name] = json.loads(text)
        except json.JSONDecodeError:
            changes[name] = text.strip()
    return changes


def is_integer(value) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for a finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _show(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{item:g}" if isinstance(item, float) else str(item) for item in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Paths:
    """Where the stages read and write; everything lives under ``data_dir``."""

    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("ACOUSTICS_DATA", "data")))

    @property
    def database(self) -> Path:
        return self.data_dir / "features.db"

    @property
    def background_noise(self) -> Path:
        return self.data_dir / "background_noise.wav"

    @property
    def demo_corpus(self) -> Path:
        return self.data_dir / "demo_corpus"

    @property
    def models(self) -> Path:
        return self.data_dir / "models"

    @property
    def recordings(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def pictures(self) -> Path:
        return self.data_dir / "pictures"

    def picture(self, name: str, database=None) -> Path:
        """Where a stage saves its picture ``name``: ``pictures/NAME.png`` for the default database, and
        ``pictures/DB_NAME.png`` for another one (``DB`` its file name without the suffix), so that runs on
        different databases keep their own pictures."""
        stem = Path(database).stem if database is not None else self.database.stem
        prefix = "" if stem == self.database.stem else f"{stem}_"
        return self.pictures / f"{prefix}{name}.png"


def non_negative_integer(text: str) -> int:
    """An argparse type: a whole number of 0 or more (``--seed``, ``--limit``)."""
    return _whole_number(text, minimum=0, refusal="must not be negative")


def positive_integer(text: str) -> int:
    """An argparse type: a whole number of 1 or more (``--epochs``, ``--batch-size``)."""
    return _whole_number(text, minimum=1, refusal="must be at least 1")


def _whole_number(text: str, *, minimum: int, refusal: str) -> int:
    """``text`` as a whole number; below ``minimum``, argparse's error with ``refusal`` and the number."""
    import argparse

    value = int(text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{refusal}, not {value}")
    return value


def corpus_name(text: str) -> str:
    """An argparse type: a corpus name (``--corpus``), non-empty, printable, at most 100 characters."""
    import argparse

    name = text.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise argparse.ArgumentTypeError(f"must be a short printable name, not {text!r}")
    return name


def plain_file_name(text: str) -> str:
    """An argparse type: a file name without folder or ``.h5`` (``--name reference``), not hidden."""
    import argparse

    name = text[:-3] if text.endswith(".h5") else text
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise argparse.ArgumentTypeError(f"must be a plain file name such as 'reference', not {text!r}")
    return name


def command_line(script: str, *options) -> str:
    """``python SCRIPT`` and the options a person gave that differ from the defaults, quoted for a shell.

    Each option is ``(flag, value, default)``: ``True`` adds the flag alone, a list adds it once per item,
    ``None``, ``False``, an empty list and a value equal to the default add nothing.
    """
    import shlex

    words = ["python", script]
    for flag, value, default in options:
        if value is None or value is False or value == [] or str(value) == str(default):
            continue
        if value is True:
            words.append(flag)
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            words += [flag, shlex.quote(str(item))]
    return " ".join(words)


def from_stored_json(cls, text: str, what: str, *, retired=()):
    """An instance of the frozen dataclass ``cls`` (:class:`Settings`, :class:`acoustics.recipe.Recipe`)
    from its JSON form ``text``, bounded in size and depth; fields named in ``retired`` are dropped.
    Raises :class:`BadParameterError` in one line naming ``what`` for text that is not such an object."""
    try:
        values = bounded_json(text)
    except ValueError as error:  # json.JSONDecodeError too
        raise BadParameterError(f"Stored {what}: not valid JSON ({error}).") from None
    if not isinstance(values, dict):
        raise BadParameterError(f"Stored {what}: must be a JSON object, not {type(values).__name__}.")
    values = {key: value for key, value in values.items() if key not in retired}
    unknown = sorted(set(values) - {item.name for item in dataclasses.fields(cls)})
    if unknown:
        raise BadParameterError(f"Stored {what}: fields this version does not know: {', '.join(unknown)}; "
                                "made by a newer version of the project.")
    try:
        return cls(**values)
    except BadParameterError:
        raise
    except (TypeError, ValueError) as error:
        raise BadParameterError(f"Stored {what}: malformed ({error}).") from None

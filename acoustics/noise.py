"""Stage 2's background noise of the room: the settings it is made for, the noise from a file or
synthesised, the checks of its level, and the WAV file stage 3 mixes into every recording.

The microphone is :mod:`acoustics.microphone`'s; the signal processing (loading, levels, the synthetic
noise) is :mod:`acoustics.audio`'s. Nothing here prints: ``collect_background_noise.py`` reports what
these return and raise.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from . import audio, mixing
from .errors import AcousticsError, BadParameterError
from .settings import Settings


def settings_for(database_path) -> tuple:
    """The settings of the feature database if it exists, else the defaults; and where they came from."""
    from .database import FeatureDatabase

    if os.path.exists(database_path):
        with FeatureDatabase(database_path, readonly=True) as feature_database:
            return feature_database.settings, f"the settings of {database_path}"
    return Settings(), "the default settings"


def synthetic(seconds: float, settings: Settings) -> tuple:
    """``(signal, source)``: room-like noise (pink noise and mains hum) seeded by the settings' seed."""
    signal = mixing.synthetic_room_noise(seconds, settings.sample_rate, np.random.default_rng(settings.seed))
    return signal, f"synthetic room noise (pink noise and 50 Hz hum, seed {settings.seed})"


def from_file(path, sample_rate: int, seconds: Optional[float] = None) -> tuple:
    """``(signal, source)``: the audio file ``path`` as mono at ``sample_rate``, its first ``seconds`` if given."""
    signal, info = audio.load_audio(path, sample_rate)
    if seconds is not None:
        signal = signal[: int(round(seconds * sample_rate))]
    return signal, (f"the file {path} ({info.sample_rate} Hz, {info.channels} channel"
                    f"{'s' if info.channels != 1 else ''}, converted to {sample_rate} Hz mono)")


def refuse_silence(level: float, source: str) -> None:
    """Raise :class:`BadParameterError` if ``level`` (dBFS) is digital silence: it cannot be mixed into speech."""
    if level < audio.NO_SOUND_DBFS:
        raise BadParameterError(
            f"The noise from {source} is digital silence ({level:.0f} dBFS), which cannot be mixed into speech; "
            "nothing was saved. Record again with the microphone unmuted, or use --from-file PATH (another file) or --synthetic."
        )


def nearly_silent(level: float) -> bool:
    """True if ``level`` (dBFS) is below :data:`acoustics.audio.SILENCE_DBFS`: a muted or turned-down microphone."""
    return level < audio.SILENCE_DBFS


def existing_level(path, sample_rate: int) -> Optional[float]:
    """Level in dBFS of a usable (not silent) noise file at ``path``, or None if there is none."""
    if not os.path.exists(path):
        return None
    try:
        signal, _ = audio.load_audio(path, sample_rate)
    except AcousticsError:
        return None
    level = audio.level_dbfs(signal)
    return level if level >= audio.SILENCE_DBFS else None


def refuse_to_replace(path, sample_rate: int) -> None:
    """Raise :class:`BadParameterError` if ``path`` holds usable noise that a nearly silent one would replace."""
    kept = existing_level(path, sample_rate)
    if kept is not None:
        raise BadParameterError(
            f"Kept the existing {path} (level {kept:.1f} dBFS) instead of overwriting it with a "
            "silent recording; record again after checking the microphone, or add --force to replace it."
        )


def save(path, signal: np.ndarray, sample_rate: int):
    """Write the noise to ``path`` as 16-bit WAV; return the path written. A failure raises
    :class:`AcousticsError` naming the file and the fix (another --out)."""
    try:
        return audio.write_wav(path, signal, sample_rate)
    except OSError as error:
        raise AcousticsError(f"{path}: cannot write the noise ({error.strerror or error}); choose another --out.") from None

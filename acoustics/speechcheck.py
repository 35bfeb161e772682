"""Does a recording hold speech a person can hear, and what is poor about it: stage 3's and stage 5's
check of every recording (:func:`usable_speech`).

Speech is judged against the recording's own noise floor, not against an absolute level, so quiet, noisy
and mildly clipped speech is kept with a note; a recording that holds no sound, only a steady sound (a
tone, noise, a constant value), too little speech or badly clipped speech is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from .audio import CLIP_FRACTION, NO_SOUND_DBFS, clipped_fraction, level_dbfs, trim_silence
from .errors import BadAudioError, NoSpeechError

#: Less speech than this (in seconds, after trimming silence) is refused as too short.
MIN_SPEECH_SECONDS = 0.25
#: Speech whose RMS level (after trimming) is below this (dBFS) gets the note "quiet".
QUIET_DBFS = -55.0
#: Speech with more than this fraction of clipped samples (audio.CLIP_LEVEL) is refused.
CLIP_REFUSED_FRACTION = 0.05
#: Speech is judged on the power between these frequencies (Hz: voicing and the first formant) in
#: Hann-windowed frames of SPEECH_FRAME_SECONDS, one every SPEECH_HOP_SECONDS, averaged over SPEECH_SMOOTHING frames ...
SPEECH_BAND_HZ = (150.0, 1000.0)
SPEECH_FRAME_SECONDS = 0.032
SPEECH_HOP_SECONDS = 0.016
SPEECH_SMOOTHING = 3
#: ... against the recording's own noise floor: this percentile of those frame levels (dB) ...
FLOOR_PERCENTILE = 10
#: ... a frame more than this above the floor (dB) is voiced (steady noise stays within about 2 dB of it; --segments
#: judges its frames band by band, another measure with its own margin: acoustics.noisefloor) ...
VOICED_MARGIN_DB = 6.0
#: ... and a recording needs at least this many seconds of such frames to hold speech.
MIN_VOICED_SECONDS = 0.1
#: Speech whose loud frames (95th percentile) stand less than this above the floor (dB) gets the note "noisy".
NOISY_DB = 17.0


def check_speech(signal: np.ndarray, sample_rate: int, name, *, allow_clipped: bool = False) -> None:
    """Raise :class:`BadAudioError` when ``signal`` (trimmed speech) holds no sound, is clipped in more
    than :data:`CLIP_REFUSED_FRACTION` of its samples, or is shorter than :data:`MIN_SPEECH_SECONDS`."""
    level = level_dbfs(signal)
    if level < NO_SOUND_DBFS:
        raise BadAudioError(
            f"{name}: silent (level {level:.0f} dBFS); check that the microphone was on and not muted."
        )
    fraction = clipped_fraction(signal)
    if not allow_clipped and fraction > CLIP_REFUSED_FRACTION:
        raise BadAudioError(
            f"{name}: clipped ({fraction:.1%} of samples at full scale); record again with lower input gain."
        )
    seconds = signal.size / sample_rate
    if seconds < MIN_SPEECH_SECONDS:
        raise BadAudioError(
            f"{name}: only {seconds * 1000:.0f} ms of sound, below the minimum of "
            f"{MIN_SPEECH_SECONDS * 1000:.0f} ms; record a whole sentence."
        )


def speech_band_levels(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """Level in dB (re full scale) of :data:`SPEECH_BAND_HZ` in each frame of ``signal`` (see the
    constants), smoothed over :data:`SPEECH_SMOOTHING` frames; a signal shorter than a frame is padded."""
    length = int(round(SPEECH_FRAME_SECONDS * sample_rate))
    hop = int(round(SPEECH_HOP_SECONDS * sample_rate))
    if signal.size < length:
        signal = np.pad(signal, (0, length - signal.size))
    frames = np.lib.stride_tricks.sliding_window_view(signal, length)[::hop]
    window = np.hanning(length).astype(np.float32)  # float32 frames: scipy's FFT stays in float32
    frequencies = np.fft.rfftfreq(length, 1 / sample_rate)
    band = (frequencies >= SPEECH_BAND_HZ[0]) & (frequencies <= SPEECH_BAND_HZ[1])
    scale = np.sum(window.astype(np.float64) ** 2) * length / 2  # a full-scale sine in the band: about 0 dB
    power = np.concatenate([  # in blocks of frames, so that a 10-minute file needs a few MB
        np.sum(np.abs(scipy.fft.rfft(frames[start : start + 4096] * window, axis=1)[:, band]) ** 2, axis=1) / scale
        for start in range(0, frames.shape[0], 4096)
    ])
    if power.size >= SPEECH_SMOOTHING:
        power = np.convolve(power, np.ones(SPEECH_SMOOTHING) / SPEECH_SMOOTHING, mode="same")
    return 10 * np.log10(np.maximum(power, 1e-20))


def voiced_seconds(levels: np.ndarray) -> float:
    """Seconds of the frames of ``levels`` (from :func:`speech_band_levels`) that stand more than
    :data:`VOICED_MARGIN_DB` above the recording's floor (their :data:`FLOOR_PERCENTILE`-th percentile):
    0.0 for silence, a constant value, a steady tone or steady noise."""
    floor = np.percentile(levels, FLOOR_PERCENTILE)
    return float(np.count_nonzero(levels > floor + VOICED_MARGIN_DB) * SPEECH_HOP_SECONDS)


def quality_note(speech: np.ndarray, levels: np.ndarray) -> str:
    """What is poor about usable ``speech`` (trimmed), given the band ``levels`` of the whole recording:
    e.g. "clipped 1.0 %, quiet: -58 dBFS, noisy"; "" for a good recording."""
    notes = []
    fraction = clipped_fraction(speech)
    if fraction > CLIP_FRACTION:
        notes.append(f"clipped {100 * fraction:.1f} %")
    level = level_dbfs(speech)
    if level < QUIET_DBFS:
        notes.append(f"quiet: {level:.0f} dBFS")
    if np.percentile(levels, 95) - np.percentile(levels, FLOOR_PERCENTILE) < NOISY_DB:
        notes.append("noisy")
    return ", ".join(notes)


@dataclass(frozen=True)
class Speech:
    """The speech of a recording: its samples with silence trimmed, and a note on a poor input ("" if none)."""

    samples: np.ndarray
    note: str = ""


def usable_speech(signal: np.ndarray, sample_rate: int, top_db: float, name) -> Speech:
    """Trim ``signal`` (a whole recording) and decide whether it holds speech a person can hear.

    Speech is judged against the recording's own noise floor (:func:`voiced_seconds`), not against an
    absolute level, so quiet, noisy and mildly clipped speech is kept, with a note (:func:`quality_note`).
    Raises :class:`NoSpeechError` when it holds only a steady sound (a tone, noise, a constant value),
    :class:`BadAudioError` when it holds no sound, is badly clipped or too short.
    """
    speech = trim_silence(signal, top_db)
    check_speech(speech, sample_rate, name)
    levels = speech_band_levels(signal, sample_rate)
    if voiced_seconds(levels) < MIN_VOICED_SECONDS:
        raise NoSpeechError(f"{name}: no speech detected (only silence or steady noise); "
                            "speak a sentence, closer to the microphone.")
    return Speech(speech, quality_note(speech, levels))

"""Whether an utterance came from the person at the microphone or from the room (stage 5 --stream).

The voice activity detector (:mod:`acoustics.utterances`) cuts out anything louder than the noise
floor, so a room full of talk (babble) gives utterances too. :class:`SpeakerGate` ignores an
utterance when it is

- **not one voice**: its loudness hardly moves. One person's speech rises and falls by syllables and
  words, so the 30 ms frame levels of an utterance spread widely (90th minus 10th percentile: 14 dB
  for a voice 12 dB above six-talker babble, 80+ dB in a quiet room); the talk of many people at once
  fills each other's gaps (6 to 9 dB for six talkers), and so does steady noise;
- **too quiet**: its speech level (the power mean of its louder half of frames) lies more than
  :data:`RELATIVE_DB` below the loudest utterance accepted so far (the person at the microphone is
  closer than the room), or less than :data:`MIN_SNR_DB` above the detector's noise floor.

Levels are in dBFS (RMS 1.0 is 0 dBFS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .utterances import FRAME_SECONDS  # the level measurements use the detector's frame

#: An utterance this many dB below the loudest accepted one is the room, not the person at the microphone.
RELATIVE_DB = 15.0
#: Below this spread of frame levels (90th - 10th percentile, dB) an utterance is many voices or noise.
MIN_SPREAD_DB = 11.0
#: Frames this far below the speech level at an utterance's ends are its surroundings, not part of it (dB).
CORE_DB = 30.0
#: An utterance must be this many dB above the noise floor the detector measured.
MIN_SNR_DB = 10.0


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one utterance: ``reason`` is empty when accepted, else a few words."""

    accepted: bool
    reason: str
    level_dbfs: float
    spread_db: float


def frame_levels_dbfs(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Level in dBFS of each whole :data:`FRAME_SECONDS` frame of ``samples`` (-120 for digital silence)."""
    size = max(1, int(round(FRAME_SECONDS * sample_rate)))
    if samples.size < size:
        samples = np.pad(samples, (0, size - samples.size))
    count = samples.size // size
    powers = np.mean(np.square(samples[:count * size].reshape(count, size), dtype=np.float64), axis=1)
    return 10 * np.log10(np.maximum(powers, 1e-12))


def speech_level_dbfs(levels: np.ndarray) -> float:
    """Speech level of frame ``levels``: the power mean of the louder half of them, in dB."""
    louder = np.sort(levels)[levels.size // 2:]
    return float(10 * np.log10(np.mean(10 ** (louder / 10))))


def spread_db(levels: np.ndarray) -> float:
    """How far the frame ``levels`` spread between the first and the last frame at most :data:`CORE_DB`
    below the speech level (so the silence of a pre-roll or tail does not count): 90th minus 10th
    percentile, in dB."""
    loud = np.flatnonzero(levels >= speech_level_dbfs(levels) - CORE_DB)
    core = levels[loud[0]:loud[-1] + 1]
    return float(np.percentile(core, 90) - np.percentile(core, 10))


class SpeakerGate:
    """Accepts the utterances of the person at the microphone and ignores the room's (see the module)."""

    def __init__(self, sample_rate: int, *, relative_db: float = RELATIVE_DB, min_spread_db: float = MIN_SPREAD_DB,
                 min_snr_db: float = MIN_SNR_DB) -> None:
        self.sample_rate = sample_rate
        self.relative_db = relative_db
        self.min_spread_db = min_spread_db
        self.min_snr_db = min_snr_db
        self.loudest_dbfs: Optional[float] = None

    def judge(self, samples: np.ndarray, noise_floor_dbfs: Optional[float] = None) -> Decision:
        """Decide on one utterance; an accepted one may raise :attr:`loudest_dbfs`."""
        levels = frame_levels_dbfs(np.asarray(samples, dtype=np.float32), self.sample_rate)
        level, spread = speech_level_dbfs(levels), spread_db(levels)
        reason = self._reason(level, spread, noise_floor_dbfs)
        if not reason:
            self.loudest_dbfs = level if self.loudest_dbfs is None else max(self.loudest_dbfs, level)
        return Decision(not reason, reason, level, spread)

    def _reason(self, level: float, spread: float, noise_floor_dbfs: Optional[float]) -> str:
        if spread < self.min_spread_db:
            return f"not one voice (its loudness varies by only {spread:.0f} dB: many voices or noise)"
        if self.loudest_dbfs is not None and level < self.loudest_dbfs - self.relative_db:
            return f"too quiet ({level:.0f} dBFS, {self.loudest_dbfs - level:.0f} dB below the speaker heard)"
        if noise_floor_dbfs is not None and level < noise_floor_dbfs + self.min_snr_db:
            return f"too quiet ({level:.0f} dBFS, {level - noise_floor_dbfs:.0f} dB above the room's noise)"
        return ""

"""Where the speech is in a recording, judged against its own noise: the steps of ``--segments``
(:mod:`acoustics.segments`) that find speech.

Each 10 ms frame gives the levels in dB of :data:`BANDS` groups of neighbouring mel bands (read back from
its MFCCs, :func:`band_levels`). Each band has its own noise floor, a low percentile of its levels around
the frame (:class:`NoiseFloor`, which streams and holds about a minute of levels), so coloured noise (pink,
hum) is judged band by band; a frame's loudness is how far its bands stand on average above their floors.
A frame is speech when that loudness, smoothed over :data:`LEVEL_SMOOTHING` frames, reaches
:data:`SPEECH_MARGIN_DB`, with :data:`HYSTERESIS_DB` of hysteresis; pauses shorter than
:data:`MIN_PAUSE_SECONDS` are filled and speech shorter than :data:`MIN_SPEECH_SECONDS` dropped
(:func:`speech_frames`). Stage 5's live detector is :mod:`acoustics.utterances`; stage 3's check that a
file holds speech is :func:`acoustics.speechcheck.usable_speech`.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from . import features

#: Frame levels (dB) are averaged over this many frames before the speech decision.
LEVEL_SMOOTHING = 3
#: The noise floor around a frame: this percentile of the levels within NOISE_FLOOR_SECONDS either side ...
NOISE_FLOOR_PERCENTILE = 10
NOISE_FLOOR_SECONDS = 30.0
#: ... a frame this many dB above it starts speech, and speech goes on down to HYSTERESIS_DB less.
SPEECH_MARGIN_DB = 3.0
HYSTERESIS_DB = 2.0
#: Frames are judged in this many groups of neighbouring mel bands ...
BANDS = 8
#: ... a band's floor is never taken below this (dB; about -80 dBFS noise), so digital silence is no floor.
LOWEST_FLOOR_DB = -75.0
#: Pauses shorter than this (seconds) stay inside speech; speech shorter than this is dropped.
MIN_PAUSE_SECONDS = 0.2
MIN_SPEECH_SECONDS = 0.3
#: The steps after a pass over a recording work on this many frames at a time (about 44 minutes of 10 ms frames).
CHUNK_FRAMES = 1 << 18


def smoothed(values: np.ndarray, width: int) -> np.ndarray:
    """``values`` averaged over ``width`` neighbouring frames (the edges over fewer); float32."""
    values = np.asarray(values, dtype=np.float32)
    if width <= 1 or values.size < 2:
        return values.copy()
    kernel = np.ones(width, np.float32)
    result = np.convolve(values, kernel, mode="same")
    if values.size <= 2 * width:
        return result / np.convolve(np.ones(values.size, np.float32), kernel, mode="same")
    counts = np.convolve(np.ones(2 * width, np.float32), kernel, mode="same")  # only the ends have fewer neighbours
    result /= width
    result[:width] *= width / counts[:width]
    result[-width:] *= width / counts[-width:]
    return result


def band_levels(matrix: np.ndarray, settings) -> np.ndarray:
    """The level in dB of :data:`BANDS` groups of neighbouring mel bands in each frame, (frames, BANDS):
    the log-mel spectrum read back from the MFCCs (the inverse of their orthonormal DCT; smoothed where
    ``n_mfcc < n_mels``) and averaged per group."""
    log_mel = features.mfcc_to_mel_db(matrix, settings.n_mels)
    groups = np.array_split(np.arange(settings.n_mels), min(BANDS, settings.n_mels))
    return np.stack([log_mel[:, group].mean(axis=1) for group in groups], axis=1)


class NoiseFloor:
    """Step 2 of :mod:`acoustics.segments`, streamed: feed it the band levels (dB, frames x bands) of
    consecutive frames in blocks of any size; each call returns how far each frame whose floor is known by
    then stands above it (dB, the mean over bands, 0 where a band is below), and :meth:`finish` the rest.
    The same frames give the same values however they are split into blocks.

    A band's floor for the frames of one second is the median, over the :data:`NOISE_FLOOR_SECONDS` either
    side, of each second's :data:`NOISE_FLOOR_PERCENTILE`-th percentile of its levels. A frame's value is
    therefore known once the levels of NOISE_FLOOR_SECONDS after its second have arrived, and the object
    holds about twice that many seconds of levels. Levels below :data:`LOWEST_FLOOR_DB` (digital silence)
    count as that for the floor.
    """

    def __init__(self, frames_per_second: float) -> None:
        self.block = max(1, int(round(frames_per_second)))
        self.reach = max(1, int(NOISE_FLOOR_SECONDS))
        self._pending: Optional[np.ndarray] = None  # levels of the frames not yet returned
        self._returned = 0  # seconds returned; _pending starts at the first frame of the next
        self._percentiles: Optional[np.ndarray] = None  # per second and band, from second _first on
        self._first = 0

    def feed(self, levels: np.ndarray) -> np.ndarray:
        """Add the next frames' band levels; return the values of the frames whose floor is now known."""
        levels = np.asarray(levels, dtype=np.float32)
        if self._pending is None:
            self._pending, self._percentiles = levels[:0], np.zeros((0, levels.shape[1]), np.float32)
        self._pending = np.concatenate([self._pending, levels])
        complete = self._returned + self._pending.shape[0] // self.block
        self._add_percentiles(complete)
        return self._release(complete - self.reach)

    def finish(self) -> np.ndarray:
        """The values of every frame not yet returned (the recording has ended)."""
        if self._pending is None:
            return np.zeros(0, np.float32)
        last = self._returned + -(-self._pending.shape[0] // self.block)  # a last second may be short
        self._add_percentiles(last)
        return self._release(last, final=True)

    def _add_percentiles(self, stop: int) -> None:
        """Work out the percentile of every second before ``stop`` not yet worked out."""
        known = self._first + self._percentiles.shape[0]
        added = [np.percentile(np.maximum(self._frames_of(second), LOWEST_FLOOR_DB), NOISE_FLOOR_PERCENTILE, axis=0)
                 for second in range(known, stop)]
        if added:
            self._percentiles = np.concatenate([self._percentiles, np.asarray(added, np.float32)])

    def _frames_of(self, second: int) -> np.ndarray:
        begin = (second - self._returned) * self.block
        return self._pending[begin : begin + self.block]

    def _release(self, stop: int, final: bool = False) -> np.ndarray:
        """Return the values of the frames of the seconds before ``stop`` (at the end: of every frame left)."""
        begin = self._returned
        if stop <= begin:
            return np.zeros(0, np.float32)
        floors = self._floors(begin, stop)
        frames = self._pending.shape[0] if final else (stop - begin) * self.block
        part = self._pending[:frames] - floors[np.arange(frames) // self.block]
        above = np.maximum(part, 0).mean(axis=1, dtype=np.float32)
        self._pending = self._pending[frames:]
        self._returned = stop
        keep = max(0, stop - self.reach - self._first)  # earlier seconds no longer fall within anyone's reach
        self._percentiles, self._first = self._percentiles[keep:], self._first + keep
        return above

    def _floors(self, begin: int, stop: int) -> np.ndarray:
        """The floors (seconds, bands) of the seconds ``begin`` to ``stop``: per band, the median of the known
        percentiles within reach (seconds before the start or after the end do not count)."""
        low, high = begin - self.reach, stop + self.reach
        known_low, known_high = self._first, self._first + self._percentiles.shape[0]
        around = np.full((high - low, self._percentiles.shape[1]), np.nan, np.float32)
        around[max(low, known_low) - low : min(high, known_high) - low] = \
            self._percentiles[max(low, known_low) - known_low : min(high, known_high) - known_low]
        windows = np.lib.stride_tricks.sliding_window_view(around, 2 * self.reach + 1, axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column cannot occur: each second knows itself
            return np.nanmedian(windows, axis=-1)


def runs(mask: np.ndarray) -> np.ndarray:
    """The (start, stop) frame indices of each run of True in ``mask``, shape (count, 2)."""
    edges = np.diff(np.concatenate([np.zeros(1, np.int8), mask.astype(np.int8), np.zeros(1, np.int8)]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def speech_frames(loudness: np.ndarray, frames_per_second: float) -> np.ndarray:
    """True for each frame that is speech (step 4 of :mod:`acoustics.segments`), from each frame's
    ``loudness``: how far, in dB, its bands stand on average above their noise floors (:class:`NoiseFloor`)."""
    high, low = np.empty(loudness.size, bool), np.empty(loudness.size, bool)
    for begin in range(0, loudness.size, CHUNK_FRAMES):  # smoothed a chunk at a time, with its neighbours
        end = min(loudness.size, begin + CHUNK_FRAMES)
        context = max(0, begin - LEVEL_SMOOTHING)
        level = smoothed(loudness[context : end + LEVEL_SMOOTHING], LEVEL_SMOOTHING)[begin - context :][: end - begin]
        high[begin:end] = level > SPEECH_MARGIN_DB
        low[begin:end] = level > SPEECH_MARGIN_DB - HYSTERESIS_DB
    speech = np.zeros(loudness.size, dtype=bool)
    for start, stop in runs(low):
        if high[start:stop].any():
            speech[start:stop] = True
    for start, stop in runs(~speech):  # short pauses inside speech
        if 0 < start and stop < speech.size and stop - start < MIN_PAUSE_SECONDS * frames_per_second:
            speech[start:stop] = True
    for start, stop in runs(speech):
        if stop - start < MIN_SPEECH_SECONDS * frames_per_second:
            speech[start:stop] = False
    return speech

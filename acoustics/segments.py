"""Who speaks when: a recording split into ``male``, ``female`` and ``no_speech`` segments (stage 5's --segments).

One pass over the recording, streamed from disk in blocks (soundfile) and resampled block by block
(soxr's stream), keeps 4 bytes per 10 ms frame (1.4 MB an hour) beside the work of one chunk (some
tens of MB), instead of the 230 MB an hour of samples would take; the steps after it hold about 8 bytes a
frame and work a chunk of frames at a time (tests/test_segments.py holds a 20-minute file to less than
3 MB above a 2-minute one; bench/faults.py measures 30 hours). The pass works on chunks of
:data:`CHUNK_WINDOWS` window hops; nothing depends on where a chunk ends, because every step of it is local:

1. Frames: the MFCCs of the model's settings (one frame per ``hop_ms``, 10 ms), computed chunk by chunk
   with the samples a frame needs carried over; each frame keeps its peak sample.
2. Loudness above the noise (:mod:`acoustics.noisefloor`): each frame keeps how far its groups of mel
   bands stand on average above their own noise floors (float16).
3. Windows: the model's windows of ``settings.frames`` frames (1.6 s) start every half window (0.8 s)
   at fixed places from the first frame (the last one aligned to the end), predicted in batches; the
   frames a window needs are carried over between chunks.

Then, on those arrays:

4. Speech: a frame is speech when its loudness above the noise is high enough, with hysteresis, short
   pauses filled and short bursts dropped (:func:`acoustics.noisefloor.speech_frames`).
5. P(male) per frame: the mean of the calibrated log-odds of the windows that cover the frame's
   neighbourhood (the middle :data:`WINDOW_CENTRE` of each window), each weighted by the fraction
   of its frames that are speech.
6. Labels: a two-state (male, female) Viterbi over the speech frames: each frame's evidence is its
   log-odds times the frame's hop in seconds (a second of speech weighs one window's log-odds, whatever
   the window's length), and switching costs :data:`SWITCH_IN_SPEECH` nats inside speech
   but :data:`SWITCH_AT_PAUSE` across a pause. Each resulting turn is then labelled by its mean
   log-odds (its ``p_male``); neighbours with the same label are merged.

Kept free of TensorFlow; the model (anything with Keras' ``predict_on_batch``) is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from . import audio, features, noisefloor
from .errors import BadAudioError

#: Samples read from the file at a time, in seconds of the file.
BLOCK_SECONDS = 5.0
#: Window hops turned into MFCCs and windows at a time (51 s at the defaults; bounds the memory of a pass): a
#: chunk's windows fill one batch of :func:`acoustics.models.predict_windows` (``multiple=64``), which pads a
#: batch to the next power of two, so no prediction is spent on padding, and a batch of 64 windows costs the
#: encoder network less per window than one of 32 (bench/README.md, bench/segments.py).
CHUNK_WINDOWS = 64
#: Hop between the starts of the model's windows, as a fraction of a window: half, as in training. The
#: encoder network's three LSTM layers make each window costly, and a shorter hop bought no accuracy; a longer
#: one places a change of speaker without a pause later (bench/README.md, bench/segments.py --pauses 0 0).
WINDOW_HOP_FRACTION = 0.5
#: A window's log-odds count for the frames of its middle this fraction (1.0: all its frames).
WINDOW_CENTRE = 0.6
#: Switching between male and female costs this many nats inside speech, and this many across a pause.
SWITCH_IN_SPEECH = 1.0
SWITCH_AT_PAUSE = 0.1
LABELS = ("female", "male", "no_speech")


@dataclass(frozen=True)
class Segment:
    """One stretch of a recording: its label, start and stop in seconds, and P(male) (None for no_speech)."""

    label: str
    start: float
    stop: float
    p_male: Optional[float] = None

    @property
    def seconds(self) -> float:
        return self.stop - self.start


@dataclass(frozen=True, eq=False)
class Track:
    """What one pass over a recording leaves: per frame and per window values, a few bytes each.

    ``speech`` (bool, :func:`acoustics.noisefloor.speech_frames`) and ``peaks`` (largest sample magnitude in the frame's hop,
    float16: for the picture) per frame; the model's windows as their first frames ``window_starts`` and
    their uncalibrated log-odds ``window_logits``; ``duration`` in seconds.
    """

    speech: np.ndarray
    peaks: np.ndarray
    window_starts: np.ndarray
    window_logits: np.ndarray
    duration: float


@dataclass(frozen=True, eq=False)
class Segmentation:
    """The segments of a recording (in order, covering it from 0 to ``duration`` seconds), and per frame
    the level, peak and calibrated P(male) (NaN outside speech) that the picture shows."""

    segments: list
    duration: float
    frame_seconds: float
    peaks: np.ndarray
    p_male: np.ndarray

    def seconds_of(self, label: str) -> float:
        return float(sum(segment.seconds for segment in self.segments if segment.label == label))


# Reading --------------------------------------------------------------------------------------------
def read_blocks(path, sample_rate: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Yield ``path`` as float32 mono blocks at ``sample_rate`` Hz, about ``block_seconds`` each
    (:func:`audio.mono_blocks`), any length; raises :class:`BadAudioError` for a file that is not usable audio."""
    yield from audio.mono_blocks(audio.probe(path, max_seconds=math.inf), sample_rate, block_seconds=block_seconds)


# One pass: frames and windows ----------------------------------------------------------------------
class Tracker:
    """Feed it a recording's samples (float32 at the model's rate) in blocks of any size; :meth:`finish`
    returns its :class:`Track`. Holds at most about a chunk (:data:`CHUNK_WINDOWS` window hops, or
    ``chunk_seconds``) of samples and frames."""

    def __init__(self, model, metadata: dict, *, chunk_seconds: Optional[float] = None,
                 window_hop_fraction: float = WINDOW_HOP_FRACTION) -> None:
        self.model, self.metadata = model, metadata
        self.settings = settings = metadata["settings"]
        self.hop, self.n_fft, self.width = settings.hop_length, settings.n_fft, settings.frames
        self.window_hop = max(1, int(round(window_hop_fraction * settings.frames)))
        chunk = CHUNK_WINDOWS * self.window_hop if chunk_seconds is None else int(round(chunk_seconds * 1000 / settings.hop_ms))
        self.chunk_frames = max(self.width, chunk)
        self._samples = np.zeros(0, np.float32)  # from sample frame_count * hop on
        self._mfcc = np.zeros((0, settings.n_mfcc), np.float32)  # from frame _mfcc_start on
        self._mfcc_start = 0
        self.frame_count = 0
        self.sample_count = 0
        self._next_window = 0
        self._last_start = -1
        self._floor = noisefloor.NoiseFloor(1000.0 / settings.hop_ms)
        self._loudness, self._peaks = _Growing(np.float16), _Growing(np.float16)  # per frame
        self._starts, self._logits = _Growing(np.int64), _Growing(np.float32)  # per window

    def feed(self, samples: np.ndarray) -> None:
        """Add samples; frames and windows are computed once a chunk's worth has arrived."""
        self._samples = np.concatenate([self._samples, np.asarray(samples, dtype=np.float32).ravel()])
        self.sample_count += int(np.size(samples))
        while self._samples.size >= (self.chunk_frames - 1) * self.hop + self.n_fft:
            self._frames(self.chunk_frames)

    def finish(self) -> Track:
        """The :class:`Track` of everything fed (at least one sample)."""
        if self.sample_count == 0:
            raise BadAudioError("the recording holds no samples; record or copy it again.")
        while self._samples.size >= self.n_fft:
            self._frames(self.chunk_frames)
        if self.frame_count == 0:  # shorter than one frame: padded to one, as features.mfcc does
            self._frames(1)
        self._windows(final=True)
        self._loudness.extend(self._floor.finish())
        speech = noisefloor.speech_frames(self._loudness.array(), 1000.0 / self.settings.hop_ms)
        self._loudness = None
        return Track(speech, self._peaks.array(), self._starts.array(), self._logits.array(),
                     self.sample_count / self.settings.sample_rate)

    def _frames(self, most: int) -> None:
        """Turn up to ``most`` frames' worth of the buffered samples into MFCC frames, levels and peaks."""
        count = min(most, max(1, 1 + (self._samples.size - self.n_fft) // self.hop))
        used = (count - 1) * self.hop + self.n_fft
        matrix = features.mfcc(self._samples[:used], self.settings)
        hops = self._samples[: count * self.hop]
        if hops.size < count * self.hop:
            hops = np.pad(hops, (0, count * self.hop - hops.size))
        self._peaks.extend(np.abs(hops).reshape(count, self.hop).max(axis=1))
        self._loudness.extend(self._floor.feed(noisefloor.band_levels(matrix, self.settings).astype(np.float16)))
        self._samples = self._samples[count * self.hop:].copy()
        self._mfcc = np.concatenate([self._mfcc, matrix])
        self.frame_count += count
        self._windows(final=False)

    def _windows(self, final: bool) -> None:
        """Predict every window whose frames have all arrived (at the end also the one aligned to it)."""
        end = self.frame_count
        starts = list(range(self._next_window, end - self.width + 1, self.window_hop))
        latest = starts[-1] if starts else self._last_start
        if final and (latest < 0 or latest + self.width < end):  # the end (or a recording under one window)
            starts.append(max(0, end - self.width))
        if starts:
            self._predict(starts)
            self._last_start = starts[-1]
            self._next_window = max(self._next_window, starts[-1] + self.window_hop)
        keep_from = min(self._next_window, max(0, end - self.width))
        self._mfcc = self._mfcc[keep_from - self._mfcc_start:]
        self._mfcc_start = keep_from

    def _predict(self, starts: list) -> None:
        from .models import predict_windows  # imports Keras: only once there is something to predict

        offset = self._mfcc_start
        windows = np.stack([features.windows(self._mfcc[start - offset : start - offset + self.width], self.width)[0]
                            for start in starts])
        metadata = self.metadata
        p = predict_windows(self.model, metadata["normalisation"].apply(windows), multiple=CHUNK_WINDOWS).astype(np.float64)
        p = np.clip(p, 1e-6, 1 - 1e-6)
        self._starts.extend(starts)
        self._logits.extend(np.log(p / (1 - p)))


class _Growing:
    """A 1-D array that grows at its end, doubling its room when full: its memory is one block, given back to
    the system whole when it moves (a list of small arrays would stay scattered over the heap)."""

    def __init__(self, dtype) -> None:
        self._data, self.size = np.empty(1 << 12, dtype), 0

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values).ravel()
        if self.size + values.size > self._data.size:
            grown = np.empty(max(2 * self._data.size, self.size + values.size), self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : self.size + values.size] = values
        self.size += values.size

    def array(self) -> np.ndarray:
        return self._data[: self.size]


def track_blocks(model, metadata: dict, blocks, **options) -> Track:
    """The :class:`Track` of a recording given as an iterable of sample blocks (options: :class:`Tracker`)."""
    tracker = Tracker(model, metadata, **options)
    for block in blocks:
        tracker.feed(block)
    return tracker.finish()


# P(male) per frame, labels -------------------------------------------------------------------
def _counts_before(mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """How many of ``mask`` are True before each of ``positions`` (0 to ``mask.size``), without an array of
    the mask's length: the mask is summed between the positions only."""
    points = np.unique(positions[positions < mask.size])  # each is counted from the one before it
    sums = np.add.reduceat(mask, points, dtype=np.int64) if points.size else np.zeros(0, np.int64)
    first = np.count_nonzero(mask[: points[0]]) if points.size else np.count_nonzero(mask)
    before = first + np.concatenate([[0], np.cumsum(sums)])  # before each point, then in all
    return before[np.searchsorted(points, positions)]


def frame_logits(track: Track, speech: np.ndarray, width: int, temperature: float) -> np.ndarray:
    """Calibrated log-odds of male per frame (float32): the speech-weighted mean over the windows whose
    middle :data:`WINDOW_CENTRE` covers it (0 where no window with speech covers it)."""
    count = speech.size
    starts = np.minimum(track.window_starts, max(0, count - 1))
    stops = np.minimum(starts + width, count)
    weights = (_counts_before(speech, stops) - _counts_before(speech, starts)) / width
    margin = int(round(width * (1 - WINDOW_CENTRE) / 2))
    first = np.minimum(starts + margin, count - 1)
    last = np.minimum(np.maximum(stops - margin, starts + margin + 1), count)  # both never decrease
    logits = track.window_logits.astype(np.float64) / temperature
    result = np.zeros(count, np.float32)
    for begin in range(0, count, noisefloor.CHUNK_FRAMES):  # each window adds its weight and log-odds over [first, last)
        end = min(count, begin + noisefloor.CHUNK_FRAMES)
        near = slice(np.searchsorted(last, begin, side="right"), np.searchsorted(first, end, side="left"))
        total, weight = np.zeros(end - begin + 1), np.zeros(end - begin + 1)
        opens = np.maximum(first[near] - begin, 0)
        closes = np.minimum(last[near], end) - begin
        np.add.at(total, opens, weights[near] * logits[near])
        np.add.at(total, closes, -weights[near] * logits[near])
        np.add.at(weight, opens, weights[near])
        np.add.at(weight, closes, -weights[near])
        total, weight = np.cumsum(total)[:-1], np.cumsum(weight)[:-1]
        covered = weight > 1e-9
        np.divide(total, weight, out=total, where=covered)
        total[~covered] = 0.0
        result[begin:end] = total
    return result


def viterbi(evidence: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """The most likely male (True) / female (False) path of a two-state chain: ``evidence[t]`` is frame
    t's log-likelihood of male over female (nats), ``penalties[t]`` the cost of switching into frame t.

    Runs on the difference of the two states' scores, d[t] = evidence[t] + clip(d[t-1], -P[t], P[t])
    (float32, a chunk of frames at a time).
    """
    count = evidence.size
    if count == 0:
        return np.zeros(0, dtype=bool)
    difference = np.empty(count, np.float32)
    d = 0.0  # so that d[0] = evidence[0]
    for begin in range(0, count, noisefloor.CHUNK_FRAMES):
        end = min(count, begin + noisefloor.CHUNK_FRAMES)
        for t, (e, p) in enumerate(zip(evidence[begin:end].tolist(), penalties[begin:end].tolist()), start=begin):
            d = e + (p if d > p else -p if d < -p else d)
            difference[t] = d
    path = np.empty(count, dtype=bool)
    male = difference[-1] > 0
    path[-1] = male
    for t in range(count - 1, 0, -1):
        previous = difference[t - 1]
        male = previous >= -penalties[t] if male else not previous <= penalties[t]
        path[t - 1] = male
    return path


def segments_of(track: Track, metadata: dict) -> Segmentation:
    """The :class:`Segmentation` of a recording from its :class:`Track` (steps 4 to 6 of the module)."""
    settings = metadata["settings"]
    speech = track.speech
    count = speech.size
    logits = frame_logits(track, speech, settings.frames, float(metadata.get("temperature", 1.0)))
    lengths = np.diff(noisefloor.runs(speech), axis=1).ravel()  # runs of speech, each after a pause (or at the start)
    penalties = np.full(int(lengths.sum()), SWITCH_IN_SPEECH, np.float32)
    penalties[np.cumsum(lengths) - lengths] = SWITCH_AT_PAUSE  # at each run's first speech frame
    male = viterbi(logits[speech] * np.float32(settings.hop_ms / 1000), penalties)  # log-odds per second
    del penalties
    labels = np.full(count, 2, dtype=np.int8)  # LABELS: 0 female, 1 male, 2 no_speech
    labels[speech] = male
    del male
    found = _segments(labels, logits, track.duration, settings)
    p_male = logits  # the log-odds become P(male), in place: one array of the recording's length less
    np.negative(p_male, out=p_male)
    np.exp(p_male, out=p_male)
    p_male += 1
    np.reciprocal(p_male, out=p_male)
    p_male[~speech] = np.nan
    return Segmentation(found, track.duration, settings.hop_ms / 1000, track.peaks, p_male)


def _segments(labels: np.ndarray, logits: np.ndarray, duration: float, settings) -> list:
    """Runs of ``labels`` as segments: each turn labelled by its mean log-odds, neighbours of the same
    label merged, the first starting at 0 and the last stopping at ``duration``."""
    frame = settings.hop_ms / 1000
    offset = (settings.n_fft - settings.hop_length) / 2 / settings.sample_rate  # frame t's middle hop starts here
    changes = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], changes, [labels.size]])
    pieces = []  # [label, first frame, stop frame, sum of log-odds]
    for first, stop in zip(bounds[:-1], bounds[1:]):
        total = float(logits[first:stop].sum())
        label = "no_speech" if labels[first] == 2 else ("male" if total >= 0 else "female")
        if pieces and pieces[-1][0] == label:
            pieces[-1][2], pieces[-1][3] = stop, pieces[-1][3] + total
        else:
            pieces.append([label, first, stop, total])
    segments = []
    for label, first, stop, total in pieces:
        start = 0.0 if first == 0 else min(duration, first * frame + offset)
        end = duration if stop == labels.size else min(duration, stop * frame + offset)
        p = None if label == "no_speech" else float(1 / (1 + math.exp(-total / (stop - first))))
        segments.append(Segment(label, round(float(start), 3), round(float(end), 3), p))
    return segments


# Whole recordings ---------------------------------------------------------------------------------
def segment_file(model, metadata: dict, path, **options) -> Segmentation:
    """The :class:`Segmentation` of the audio file ``path``, streamed from disk (options: :class:`Tracker`).
    Raises :class:`BadAudioError` for a file that is not usable audio."""
    blocks = read_blocks(path, metadata["settings"].sample_rate)
    return segments_of(track_blocks(model, metadata, blocks, **options), metadata)


def segment_signal(model, metadata: dict, signal: np.ndarray, **options) -> Segmentation:
    """The :class:`Segmentation` of a float32 mono signal at the model's sample rate, held in memory."""
    return segments_of(track_blocks(model, metadata, [signal], **options), metadata)

"""Who speaks when: a recording split into ``male``, ``female`` and ``no_speech`` segments (stage 5's --segments).

One pass over the recording, streamed from disk in blocks (soundfile) and resampled block by block
(soxr's stream), keeps only small arrays (about 25 bytes per 10 ms frame, 9 MB an hour) beside the
work of one chunk (about 25 MB), instead of the 230 MB an hour of samples would take
(tests/test_segments.py holds a 20-minute file to less than 8 MB above a 2-minute one). The pass works on chunks of
:data:`CHUNK_SECONDS`; nothing depends on where a chunk ends, because every step of it is local:

1. Frames: the MFCCs of the model's settings (one frame per ``hop_ms``, 10 ms), computed chunk by chunk
   with the samples a frame needs carried over; each frame keeps the levels in dB of :data:`BANDS`
   groups of mel bands (read back from its MFCCs, :func:`band_levels`; float16) and its peak sample.
2. Windows: the model's windows of ``settings.frames`` frames (1 s) start every :data:`WINDOW_HOP_SECONDS`
   at fixed places from the first frame (the last one aligned to the end), predicted in batches; the
   frames a window needs are carried over between chunks.

Then, on those arrays:

3. Speech: each band has its own noise floor, a low percentile of its levels around the frame
   (:func:`noise_floor`), so coloured noise (pink, hum) is judged band by band. A frame is speech when
   its bands stand on average :data:`SPEECH_MARGIN_DB` above their floors (:func:`above_floor`,
   smoothed over :data:`LEVEL_SMOOTHING` frames), with :data:`HYSTERESIS_DB` of hysteresis; pauses
   shorter than :data:`MIN_PAUSE_SECONDS` are filled and speech shorter than :data:`MIN_SPEECH_SECONDS`
   dropped.
4. P(male) per frame: the mean of the calibrated log-odds of the windows that cover the frame's
   neighbourhood (the middle :data:`WINDOW_CENTRE` of each window), each weighted by the fraction
   of its frames that are speech.
5. Labels: a two-state (male, female) Viterbi over the speech frames: each frame's evidence is its
   log-odds over the window length, and switching costs :data:`SWITCH_IN_SPEECH` nats inside speech
   but :data:`SWITCH_AT_PAUSE` across a pause. Each resulting turn is then labelled by its mean
   log-odds (its ``p_male``); neighbours with the same label are merged.

Kept free of TensorFlow; the model (anything with Keras' ``predict_on_batch``) is passed in.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from . import audio, features
from .errors import BadAudioError

#: Samples read from the file at a time, in seconds of the file.
BLOCK_SECONDS = 5.0
#: Frames turned into MFCCs and windows at a time, in seconds (bounds the memory of a pass).
CHUNK_SECONDS = 30.0
#: Hop between the starts of the model's windows, in seconds: half a window, as in training. The encoder
#: network's three LSTM layers make each window costly, and a shorter hop bought no accuracy
#: (bench/README.md, bench/segments.py).
WINDOW_HOP_SECONDS = 0.5
#: A window's log-odds count for the frames of its middle this fraction (1.0: all its frames).
WINDOW_CENTRE = 0.6
#: Frame levels (dB) are averaged over this many frames before the speech decision.
LEVEL_SMOOTHING = 3
#: The noise floor around a frame: this percentile of the levels within NOISE_FLOOR_SECONDS either side ...
NOISE_FLOOR_PERCENTILE = 10
NOISE_FLOOR_SECONDS = 30.0
#: ... a frame this many dB above it starts speech, and speech goes on down to HYSTERESIS_DB less.
SPEECH_MARGIN_DB = 3.0
HYSTERESIS_DB = 2.0
#: Frames are judged in this many groups of neighbouring mel bands (their levels are kept: 2 bytes each) ...
BANDS = 8
#: ... a band's floor is never taken below this (dB; about -80 dBFS noise), so digital silence is no floor.
LOWEST_FLOOR_DB = -75.0
#: Pauses shorter than this (seconds) stay inside speech; speech shorter than this is dropped.
MIN_PAUSE_SECONDS = 0.2
MIN_SPEECH_SECONDS = 0.3
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

    ``levels`` (dB) and ``peaks`` (largest sample magnitude in the frame's hop) per frame; the model's
    windows as their first frames ``window_starts`` and their uncalibrated log-odds ``window_logits``;
    ``duration`` in seconds.
    """

    levels: np.ndarray
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
    returns its :class:`Track`. Holds at most about :data:`CHUNK_SECONDS` of samples and frames."""

    def __init__(self, model, metadata: dict, *, chunk_seconds: float = CHUNK_SECONDS,
                 window_hop_seconds: float = WINDOW_HOP_SECONDS) -> None:
        self.model, self.metadata = model, metadata
        self.settings = settings = metadata["settings"]
        self.hop, self.n_fft, self.width = settings.hop_length, settings.n_fft, settings.frames
        self.chunk_frames = max(self.width, int(round(chunk_seconds * 1000 / settings.hop_ms)))
        self.window_hop = max(1, int(round(window_hop_seconds * 1000 / settings.hop_ms)))
        self._samples = np.zeros(0, np.float32)  # from sample frame_count * hop on
        self._mfcc = np.zeros((0, settings.n_mfcc), np.float32)  # from frame _mfcc_start on
        self._mfcc_start = 0
        self.frame_count = 0
        self.sample_count = 0
        self._next_window = 0
        self._last_start = -1
        self._levels, self._peaks, self._starts, self._logits = [], [], [], []

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
        join = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        return Track(np.concatenate(self._levels), join(self._peaks, np.float32), join(self._starts, np.int64),
                     join(self._logits, np.float32), self.sample_count / self.settings.sample_rate)

    def _frames(self, most: int) -> None:
        """Turn up to ``most`` frames' worth of the buffered samples into MFCC frames, levels and peaks."""
        count = min(most, max(1, 1 + (self._samples.size - self.n_fft) // self.hop))
        used = (count - 1) * self.hop + self.n_fft
        matrix = features.mfcc(self._samples[:used], self.settings)
        hops = self._samples[: count * self.hop]
        if hops.size < count * self.hop:
            hops = np.pad(hops, (0, count * self.hop - hops.size))
        self._peaks.append(np.abs(hops).reshape(count, self.hop).max(axis=1))
        self._levels.append(band_levels(matrix, self.settings).astype(np.float16))
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
        p = predict_windows(self.model, metadata["normalisation"].apply(windows), multiple=64).astype(np.float64)
        p = np.clip(p, 1e-6, 1 - 1e-6)
        self._starts.append(np.asarray(starts, dtype=np.int64))
        self._logits.append(np.log(p / (1 - p)))


def track_blocks(model, metadata: dict, blocks, **options) -> Track:
    """The :class:`Track` of a recording given as an iterable of sample blocks (options: :class:`Tracker`)."""
    tracker = Tracker(model, metadata, **options)
    for block in blocks:
        tracker.feed(block)
    return tracker.finish()


# Speech, P(male) per frame, labels --------------------------------------------------------------
def smoothed(values: np.ndarray, width: int) -> np.ndarray:
    """``values`` averaged over ``width`` neighbouring frames (the edges over fewer); float32, as the levels."""
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


def noise_floor(levels: np.ndarray, frames_per_second: float) -> np.ndarray:
    """The noise floor (dB) of each band for each second of frames, (seconds, bands): per second, the
    :data:`NOISE_FLOOR_PERCENTILE`-th percentile of its band levels; then, per band, the median of those
    within :data:`NOISE_FLOOR_SECONDS` either side. Levels below :data:`LOWEST_FLOOR_DB` (digital
    silence) count as that."""
    block = max(1, int(round(frames_per_second)))
    count, bands = -(-levels.shape[0] // block), levels.shape[1]
    per_second = np.empty((count, bands), np.float32)
    for index in range(0, count):
        second = np.maximum(levels[index * block : (index + 1) * block].astype(np.float32), LOWEST_FLOOR_DB)
        per_second[index] = np.percentile(second, NOISE_FLOOR_PERCENTILE, axis=0)
    reach = max(1, int(NOISE_FLOOR_SECONDS))
    around = np.pad(per_second, ((reach, reach), (0, 0)), constant_values=np.nan)
    floors = np.empty_like(per_second)
    step = 600  # seconds at a time: the median's copies stay a few MB however long the recording
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for start in range(0, count, step):
            stop = min(count, start + step)
            windows = np.lib.stride_tricks.sliding_window_view(around[start : stop + 2 * reach], 2 * reach + 1, axis=0)
            floors[start:stop] = np.nanmedian(windows, axis=-1)
    return floors


def above_floor(levels: np.ndarray, frames_per_second: float) -> np.ndarray:
    """Each frame's mean over the bands of how far (dB, 0 if below) its level stands above the band's
    noise floor (:func:`noise_floor`); computed a minute at a time (float32)."""
    block = max(1, int(round(frames_per_second)))
    floors = noise_floor(levels, frames_per_second)
    above = np.empty(levels.shape[0], np.float32)
    step = 60 * block
    for start in range(0, levels.shape[0], step):
        part = levels[start : start + step].astype(np.float32)
        part -= floors[np.arange(start, start + part.shape[0]) // block]
        above[start : start + part.shape[0]] = np.maximum(part, 0).mean(axis=1)
    return above


def runs(mask: np.ndarray) -> np.ndarray:
    """The (start, stop) frame indices of each run of True in ``mask``, shape (count, 2)."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def speech_frames(levels: np.ndarray, frames_per_second: float) -> np.ndarray:
    """True for each frame that is speech (see the module's step 3)."""
    level = smoothed(above_floor(levels, frames_per_second), LEVEL_SMOOTHING)
    high = level > SPEECH_MARGIN_DB
    low = level > SPEECH_MARGIN_DB - HYSTERESIS_DB
    speech = np.zeros(level.size, dtype=bool)
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


def frame_logits(track: Track, speech: np.ndarray, width: int, temperature: float) -> np.ndarray:
    """Calibrated log-odds of male per frame: the speech-weighted mean over the windows whose middle
    :data:`WINDOW_CENTRE` covers it (0 where no window with speech covers it)."""
    count = speech.size
    starts = np.minimum(track.window_starts, max(0, count - 1))
    cumulative = np.concatenate([[0], np.cumsum(speech, dtype=np.int32)])
    stops = np.minimum(starts + width, count)
    weights = (cumulative[stops] - cumulative[starts]) / width
    margin = int(round(width * (1 - WINDOW_CENTRE) / 2))
    first, last = np.minimum(starts + margin, count - 1), np.maximum(stops - margin, starts + margin + 1)
    total, weight = np.zeros(count + 1), np.zeros(count + 1)
    logits = track.window_logits.astype(np.float64) / temperature
    np.add.at(total, first, weights * logits)
    np.add.at(total, np.minimum(last, count), -weights * logits)
    np.add.at(weight, first, weights)
    np.add.at(weight, np.minimum(last, count), -weights)
    np.cumsum(total, out=total)
    np.cumsum(weight, out=weight)
    total, weight = total[:count], weight[:count]
    covered = weight > 1e-9
    total[~covered] = 0.0
    np.divide(total, weight, out=total, where=covered)
    return total


def viterbi(evidence: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """The most likely male (True) / female (False) path of a two-state chain: ``evidence[t]`` is frame
    t's log-likelihood of male over female (nats), ``penalties[t]`` the cost of switching into frame t.

    Runs on the difference of the two states' scores, d[t] = evidence[t] + clip(d[t-1], -P[t], P[t]).
    """
    count = evidence.size
    if count == 0:
        return np.zeros(0, dtype=bool)
    difference = np.empty(count)
    d = float(evidence[0])
    difference[0] = d
    for t, (e, p) in enumerate(zip(evidence[1:].tolist(), penalties[1:].tolist()), start=1):
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
    """The :class:`Segmentation` of a recording from its :class:`Track` (steps 3 to 5 of the module)."""
    settings = metadata["settings"]
    frames_per_second = 1000.0 / settings.hop_ms
    count = track.levels.shape[0]
    speech = speech_frames(track.levels, frames_per_second)
    logits = frame_logits(track, speech, settings.frames, float(metadata.get("temperature", 1.0)))
    indices = np.flatnonzero(speech)
    penalties = np.full(indices.size, SWITCH_IN_SPEECH)
    penalties[1:][np.diff(indices) > 1] = SWITCH_AT_PAUSE
    male = viterbi(logits[indices] / settings.frames, penalties)
    labels = np.full(count, 2, dtype=np.int8)  # LABELS: 0 female, 1 male, 2 no_speech
    labels[indices] = male
    p_male = np.full(count, np.nan, np.float32)
    p_male[indices] = 1 / (1 + np.exp(-logits[indices]))
    return Segmentation(_segments(labels, logits, track.duration, settings), track.duration,
                        settings.hop_ms / 1000, track.peaks, p_male)


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

"""Where utterances start and end: voice activity detection over any audio source.

:class:`VoiceActivityDetector` decides, frame by frame, where speech is; :func:`record_utterance` and
:func:`stream_utterances` listen to a source (:mod:`acoustics.sources`: the microphone, an array, a
recording played in real time) and hand over each utterance as soon as the person pauses. Signals are
1-D ``numpy.float32`` arrays in [-1, 1]; durations are in seconds; levels in dBFS (RMS 1.0 is 0 dBFS,
as in :mod:`acoustics.audio`). The detector is a few numpy operations per chunk.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np

from .errors import BadParameterError
from .sources import check_sample_rate

#: Non-speech that ends the one utterance :func:`record_utterance` waits for: longer than the pause a
#: person makes at a comma ("Guten Morgen, wie geht es Ihnen" with 0.7 s at the comma stays one).
UTTERANCE_PAUSE_SECONDS = 1.0
#: Non-speech that ends each utterance of :func:`stream_utterances` (and of :class:`VoiceActivityDetector`).
STREAM_PAUSE_SECONDS = 0.5


#: Length of one detector frame in seconds when the caller names none (stage 5 reads one frame per chunk).
FRAME_SECONDS = 0.03
#: Seconds over which a frame's level is measured: the mean power of the frames of the last
#: LEVEL_SECONDS, so 10 ms frames see as smooth a level as 30 ms ones (a voice's level within one
#: pitch period is not its loudness).
LEVEL_SECONDS = 0.03
#: Seconds at the start from which the noise floor is calibrated, and the percentile of their levels
#: taken as the floor (low, so that speech in part of them does not raise it).
CALIBRATION_SECONDS, CALIBRATION_PERCENTILE = 0.3, 20
#: A frame is speech when its level is this many dB above the noise floor ...
MARGIN_DB = 10.0
#: ... and, once an utterance started, until it falls this many dB below that threshold.
HYSTERESIS_DB = 3.0
#: No level below this many dBFS is speech, however quiet the room.
ABSOLUTE_FLOOR_DBFS = -50.0
#: Time constants in seconds of the noise floor's tracking: it falls to a quieter level within
#: NOISE_FALL_SECONDS, rises to a louder non-speech level within NOISE_RISE_SECONDS, and rises during
#: speech within NOISE_SPEECH_RISE_SECONDS (so that a noise that stays loud, a fan, stops counting as speech).
NOISE_FALL_SECONDS, NOISE_RISE_SECONDS, NOISE_SPEECH_RISE_SECONDS = 0.084, 1.5, 15.0
#: Sound kept before the first and after the last speech frame of an utterance, in seconds.
PRE_ROLL_SECONDS = TAIL_SECONDS = 0.2
#: Utterances with less speech than this many seconds (clicks, knocks) are dropped.
MIN_SPEECH_SECONDS = 0.1


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech: the samples (pre-roll and a short tail included) and where they lie.

    ``start_seconds`` and ``end_seconds`` count from the first sample the detector was fed.
    """

    samples: np.ndarray
    start_seconds: float
    end_seconds: float
    speech_seconds: float


class VoiceActivityDetector:
    """Energy-based voice activity detection over frames of ``frame_seconds``; feed it chunks of any length.

    A frame is speech when its level (the power of the last :data:`LEVEL_SECONDS`) lies
    :data:`MARGIN_DB` above the noise floor, and never below :data:`ABSOLUTE_FLOOR_DBFS`; inside an
    utterance, until it falls :data:`HYSTERESIS_DB` below that. The noise floor is calibrated once,
    from the first :data:`CALIBRATION_SECONDS` (their :data:`CALIBRATION_PERCENTILE`-th percentile
    level, so speech at the very start does not hide it), and then follows the level of non-speech
    frames (see :data:`NOISE_FALL_SECONDS`). An utterance continues through pauses shorter than
    ``pause_seconds`` and ends after ``pause_seconds`` of non-speech; it keeps
    :data:`PRE_ROLL_SECONDS` before its first and :data:`TAIL_SECONDS` after its last speech frame.
    Utterances with less than :data:`MIN_SPEECH_SECONDS` of speech are dropped.

    Every duration is given in seconds and turned into frames here, so the detector finds the same
    utterances (within a frame or two) at 10, 20 or 30 ms frames.

    Parameters
    ----------
    sample_rate : int
        Rate in Hz of the samples fed.
    pause_seconds : float, optional
        Seconds of non-speech that end an utterance (default :data:`STREAM_PAUSE_SECONDS`, 0.5 s);
        shorter pauses stay inside it. At least one frame.
    max_utterance_seconds : float or None, optional
        Seconds after which an utterance is cut, and the rest starts a new one (default None: no limit).
        At least four frames.
    frame_seconds : float, optional
        Length of one frame in seconds (default :data:`FRAME_SECONDS`, 30 ms): how often the detector
        decides. At most ``pause_seconds``.

    Attributes
    ----------
    noise_floor_dbfs : float or None
        The current noise floor in dBFS; None until calibrated.
    frame_samples, pause_frames, tail_frames : int
        The frame in samples; the pause and the tail in frames.
    """

    def __init__(self, sample_rate: int, *, pause_seconds: float = STREAM_PAUSE_SECONDS,
                 max_utterance_seconds: Optional[float] = None, frame_seconds: float = FRAME_SECONDS) -> None:
        sample_rate = check_sample_rate(sample_rate)
        if not 0 < frame_seconds <= pause_seconds:
            raise BadParameterError(f"need 0 < frame_seconds <= pause_seconds, not {frame_seconds} and {pause_seconds}.")
        if max_utterance_seconds is not None and max_utterance_seconds < 4 * frame_seconds:
            raise BadParameterError(f"max_utterance_seconds must be at least {4 * frame_seconds:g} s, not {max_utterance_seconds}.")
        self.sample_rate = sample_rate
        self.frame_samples = max(1, int(round(frame_seconds * sample_rate)))
        self.frame_seconds = self.frame_samples / sample_rate
        self.pause_frames = max(1, self._frames(pause_seconds))
        self.pre_roll_frames = self._frames(PRE_ROLL_SECONDS)
        self.tail_frames = min(self._frames(TAIL_SECONDS), self.pause_frames)
        self.min_speech_frames = max(1, self._frames(MIN_SPEECH_SECONDS))
        self.max_utterance_frames = int(max_utterance_seconds / self.frame_seconds) if max_utterance_seconds else None
        self.calibration_frames = max(1, self._frames(CALIBRATION_SECONDS))
        self._noise_rates = {name: 1 - np.exp(-self.frame_seconds / seconds) for name, seconds in (
            ("fall", NOISE_FALL_SECONDS), ("rise", NOISE_RISE_SECONDS), ("speech", NOISE_SPEECH_RISE_SECONDS))}
        self.noise_floor_dbfs: Optional[float] = None
        self.speech_heard = False
        self._remainder = np.zeros(0, dtype=np.float32)
        self._powers: collections.deque = collections.deque(maxlen=max(1, self._frames(LEVEL_SECONDS)))
        self._frame_index = 0  # index of the next frame to decide
        self._pending: list = []  # (samples, level) of frames waiting for the calibration
        self._pre_roll: collections.deque = collections.deque(maxlen=max(1, self.pre_roll_frames))
        self._utterance: list = []  # frames of the utterance in progress
        self._utterance_start = 0  # frame index of its first frame
        self._last_speech = 0  # number of frames up to and including its last speech frame
        self._speech_frames = 0
        self._silent_run = 0

    def _frames(self, seconds: float) -> int:
        """``seconds`` as a whole number of frames (at least 0)."""
        return max(0, int(round(seconds / self.frame_seconds)))

    # Levels ----------------------------------------------------------------------------------
    @property
    def threshold_dbfs(self) -> float:
        """Level above which a frame counts as speech."""
        floor = self.noise_floor_dbfs if self.noise_floor_dbfs is not None else -np.inf
        return max(floor + MARGIN_DB, ABSOLUTE_FLOOR_DBFS)

    @property
    def in_speech(self) -> bool:
        return bool(self._utterance)

    def _calibrate(self) -> list:
        """Set the noise floor from the frames heard so far and decide them; the utterances they end."""
        self.noise_floor_dbfs = float(np.percentile([level for _, level in self._pending], CALIBRATION_PERCENTILE))
        pending, self._pending = self._pending, []
        return [utterance for frame, level in pending for utterance in self._step(frame, level)]

    def _track_noise(self, level: float, *, speech: bool = False) -> None:
        """Move the noise floor towards ``level``: quickly down, slowly up, very slowly during speech."""
        floor = self.noise_floor_dbfs
        level = max(level, -120.0)
        rate = self._noise_rates["speech" if speech else ("fall" if level < floor else "rise")]
        self.noise_floor_dbfs = floor + rate * (level - floor)

    # Feeding ---------------------------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> list:
        """Add ``samples`` (float32); return the :class:`Utterance` objects that ended in them."""
        samples = np.asarray(samples, dtype=np.float32).ravel()
        if self._remainder.size:
            samples = np.concatenate([self._remainder, samples])
        count = samples.size // self.frame_samples
        self._remainder = samples[count * self.frame_samples:].copy()
        if count == 0:
            return []
        frames = samples[: count * self.frame_samples].reshape(count, self.frame_samples)
        finished = []
        for frame, power in zip(frames, np.mean(np.square(frames, dtype=np.float64), axis=1)):
            self._powers.append(power)
            level = float(10 * np.log10(max(sum(self._powers) / len(self._powers), 1e-12)))
            if self.noise_floor_dbfs is not None:
                finished += self._step(frame, level)
                continue
            self._pending.append((frame, level))
            if len(self._pending) >= self.calibration_frames:
                finished += self._calibrate()
        return finished

    def _step(self, frame: np.ndarray, level: float) -> list:
        """Decide one frame; return the utterance it ends, if any."""
        index = self._frame_index
        self._frame_index += 1
        threshold = self.threshold_dbfs
        if not self._utterance:
            if level <= threshold:
                self._track_noise(level)
                self._pre_roll.append(frame)
                return []
            pre_roll = list(self._pre_roll)[-self.pre_roll_frames:] if self.pre_roll_frames else []
            self._utterance = pre_roll + [frame]
            self._utterance_start = index - len(pre_roll)
            self._last_speech = len(self._utterance)
            self._speech_frames, self._silent_run = 1, 0
            self._pre_roll.clear()
            self.speech_heard = True
            return self._cut_if_too_long()
        self._utterance.append(frame)
        if level > threshold - HYSTERESIS_DB:
            self._speech_frames += 1
            self._silent_run = 0
            self._last_speech = len(self._utterance)
            self._track_noise(level, speech=True)
        else:
            self._silent_run += 1
            self._track_noise(level)
            if self._silent_run >= self.pause_frames:
                return self._finish()
        return self._cut_if_too_long()

    def _cut_if_too_long(self) -> list:
        if self.max_utterance_frames and len(self._utterance) >= self.max_utterance_frames:
            self._last_speech = len(self._utterance)
            return self._finish()
        return []

    def _finish(self) -> list:
        """Close the utterance in progress: keep ``tail`` frames after its last speech frame."""
        frames, self._utterance = self._utterance, []
        end = min(len(frames), self._last_speech + self.tail_frames)
        for frame in frames[end:]:  # the pause becomes the pre-roll of the next utterance
            self._pre_roll.append(frame)
        if self._speech_frames < self.min_speech_frames:
            return []
        start_seconds = self._utterance_start * self.frame_seconds
        return [Utterance(
            samples=np.concatenate(frames[:end]).astype(np.float32, copy=False),
            start_seconds=start_seconds,
            end_seconds=start_seconds + end * self.frame_seconds,
            speech_seconds=self._speech_frames * self.frame_seconds,
        )]

    def flush(self) -> list:
        """End of input: the utterances still open (trailing non-speech cut to the tail), usually 0 or 1."""
        finished = self._calibrate() if self.noise_floor_dbfs is None and self._pending else []
        if self._utterance:
            finished += self._finish()
        return finished


def detect_utterances(signal: np.ndarray, sample_rate: int, **options) -> list:
    """All :class:`Utterance` objects in a whole signal (options as for :class:`VoiceActivityDetector`)."""
    detector = VoiceActivityDetector(sample_rate, **options)
    return detector.feed(signal) + detector.flush()


# Listening to a source ---------------------------------------------------------------------------
def _detector_for(source, **options) -> VoiceActivityDetector:
    """A detector for ``source``: frames of one read when reads are short (it then decides as soon as
    each read arrives), else of :data:`FRAME_SECONDS`."""
    chunk_seconds = source.chunk_samples / source.sample_rate
    return VoiceActivityDetector(source.sample_rate, frame_seconds=min(chunk_seconds, FRAME_SECONDS), **options)


def record_utterance(source, *, max_seconds: float = 6.0, pause_seconds: float = UTTERANCE_PAUSE_SECONDS,
                     on_start: Optional[Callable[[], None]] = None,
                     on_chunk: Optional[Callable[[np.ndarray, VoiceActivityDetector], None]] = None) -> tuple:
    """Listen to ``source`` (unopened; opened and closed here) until speech was heard and then
    ``pause_seconds`` of non-speech, for at most ``max_seconds``, or until the source ends.

    Returns ``(signal, speech_detected)``: the utterance (with 0.2 s before and after), or, when no
    speech was heard, everything that was heard. ``on_start`` is called once the first chunk arrived
    (the source is live), ``on_chunk(chunk, detector)`` after the detector took each chunk (a level
    meter reads both).
    """
    if not max_seconds > 0:
        raise BadParameterError(f"max_seconds must be positive, not {max_seconds}.")
    detector = _detector_for(source, pause_seconds=pause_seconds)
    chunks, heard, total = [], 0, int(round(max_seconds * source.sample_rate))
    with source:
        while heard < total:
            chunk = source.read()[: total - heard]
            if not chunk.size:
                break
            if not chunks and on_start is not None:
                on_start()
            chunks.append(chunk)
            heard += chunk.size
            utterances = detector.feed(chunk)
            if on_chunk is not None:
                on_chunk(chunk, detector)
            if utterances:
                return utterances[0].samples, True
    last = detector.flush()
    if last:
        return last[0].samples, True
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), False


def stream_utterances(source, *, max_utterance_seconds: float = 6.0, pause_seconds: float = STREAM_PAUSE_SECONDS,
                      on_start: Optional[Callable[[], None]] = None,
                      on_chunk: Optional[Callable[[np.ndarray, VoiceActivityDetector], None]] = None,
                      ) -> Iterator[np.ndarray]:
    """Yield each utterance (float32) of ``source`` as soon as its trailing ``pause_seconds`` are heard,
    until the caller stops or the source ends (then the one still open, if any).

    The source (unopened) stays open between utterances, so nothing is lost while the caller works (up
    to a device's buffer). Ctrl-C (KeyboardInterrupt) propagates; the source is closed either way.
    ``on_start`` and ``on_chunk`` as for :func:`record_utterance`; ``on_chunk`` is called before the
    utterances that ended in its chunk are yielded (a level meter, the noise floor of
    :class:`acoustics.gate.SpeakerGate`).
    """
    detector = _detector_for(source, pause_seconds=pause_seconds, max_utterance_seconds=max_utterance_seconds)
    with source:
        started = False
        while True:
            chunk = source.read()
            if not chunk.size:
                break
            if not started:
                started = True
                if on_start is not None:
                    on_start()
            utterances = detector.feed(chunk)
            if on_chunk is not None:
                on_chunk(chunk, detector)
            for utterance in utterances:
                yield utterance.samples
    for utterance in detector.flush():
        yield utterance.samples

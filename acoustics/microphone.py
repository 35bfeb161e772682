"""Microphone capture with PyAudio, the default input device, and voice activity detection.

Signals are 1-D ``numpy.float32`` arrays in [-1, 1] at the caller's sample rate; durations are in
seconds; levels in dBFS (RMS 1.0 is 0 dBFS, as in :mod:`acoustics.audio`).

Capture sleeps until a chunk of :data:`CHUNK_SECONDS` is buffered and then reads it, so waiting for sound
costs no CPU and no read ever blocks; the voice activity detector is a few numpy operations per chunk.
The first chunk of a fresh stream can take 0.1 to 2 s while the sound server starts the source: callers
learn through ``on_start`` or ``progress`` when the microphone is really live. A microphone that delivers
nothing for :data:`NO_SOUND_SECONDS` (:data:`START_SECONDS` at the start) is a :class:`NoInputDeviceError`.
"""

from __future__ import annotations

import collections
import contextlib
import numbers
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np

from .audio import DCBlocker
from .errors import BadParameterError, NoInputDeviceError

#: Length of one read from the device in seconds.
CHUNK_SECONDS = 0.1
#: Seconds without a sample after which a running microphone counts as gone (muted, unplugged, stalled).
NO_SOUND_SECONDS = 2.0
#: The same for the first chunk: a source can take about 2 s to start (PulseAudio's null-sink monitor: 1.8-2.0 s).
START_SECONDS = 4.0
#: Full scale of 16-bit samples: int16 / FULL_SCALE is in [-1, 1).
FULL_SCALE = 32768.0
#: Non-speech that ends the one utterance :func:`record_utterance` waits for: longer than the pause a
#: person makes at a comma ("Guten Morgen, wie geht es Ihnen" with 0.7 s at the comma stays one).
UTTERANCE_PAUSE_SECONDS = 1.0
#: Non-speech that ends each utterance of :func:`stream_utterances` (and of :class:`VoiceActivityDetector`).
STREAM_PAUSE_SECONDS = 0.5


def _checked_rate(sample_rate) -> int:
    """``sample_rate`` as an int (numpy integers too); :class:`BadParameterError` unless positive."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise BadParameterError(f"sample_rate must be a positive integer in Hz, not {sample_rate!r}.")
    return int(sample_rate)


# PyAudio and the default device -----------------------------------------------------------------
_silence_lock = threading.Lock()
_silence = {"depth": 0, "saved": None}  # how many threads are inside stderr_silenced; the real fd 2


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: ALSA and JACK print ~100 lines while PortAudio starts,
    TensorFlow a few while it is imported (``acoustics.models``).

    Safe across threads (stage 5 opens the microphone while another thread imports Keras): the first
    to enter saves the real stderr, and it comes back only when the last one leaves.
    """
    with _silence_lock:
        if _silence["depth"] == 0:
            sys.stderr.flush()
            _silence["saved"] = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        _silence["depth"] += 1
    try:
        yield
    finally:
        with _silence_lock:
            _silence["depth"] -= 1
            if _silence["depth"] == 0:
                os.dup2(_silence["saved"], 2)
                os.close(_silence["saved"])
                _silence["saved"] = None


@contextlib.contextmanager
def open_pyaudio() -> Iterator["object"]:
    """A ``pyaudio.PyAudio`` instance, started without ALSA's noise on stderr and terminated at exit."""
    try:
        import pyaudio
    except ImportError:
        raise NoInputDeviceError(
            "PortAudio is missing: run 'make install' (apt package libportaudio2), or use --wav/--from-file."
        ) from None
    with stderr_silenced():
        instance = pyaudio.PyAudio()
    try:
        yield instance
    finally:
        instance.terminate()


def _no_device(alternatives: str) -> NoInputDeviceError:
    return NoInputDeviceError(
        f"No microphone found (no input device). Alternatives: {alternatives}; or connect a microphone "
        "and check that it is not muted."
    )


def default_input_device(pa, *, alternatives: str) -> dict:
    """PortAudio's info dict of the default input device; :class:`NoInputDeviceError` if there is none.

    ``alternatives`` names what the person can do instead, e.g. ``"--wav FILE"``.
    """
    try:
        info = pa.get_default_input_device_info()
    except (OSError, IOError):  # 'No Default Input Device Available'
        raise _no_device(alternatives) from None
    if int(info.get("maxInputChannels", 0)) < 1:
        raise _no_device(alternatives)
    return info


# Capture ----------------------------------------------------------------------------------------
class Microphone:
    """An open 16-bit mono input stream on the default device; use as a context manager.

    ``read()`` returns the next chunk (about :data:`CHUNK_SECONDS`) as float32; ``on_start`` is called
    once, when the first chunk has arrived. Every device problem is a :class:`NoInputDeviceError`
    whose message ends with ``alternatives``. ``chunk_seconds`` is the length of one read: shorter
    reads let a caller react sooner (stage 5 uses 30 ms, one detector frame) for a few more wake-ups.
    """

    def __init__(self, sample_rate: int, *, alternatives: str, on_start: Optional[Callable[[], None]] = None,
                 chunk_seconds: float = CHUNK_SECONDS) -> None:
        sample_rate = _checked_rate(sample_rate)
        if not 0.005 <= chunk_seconds <= 1.0:
            raise BadParameterError(f"chunk_seconds must be between 0.005 and 1 s, not {chunk_seconds}.")
        self.sample_rate = sample_rate
        self.alternatives = alternatives
        self.chunk_samples = max(1, int(round(sample_rate * chunk_seconds)))
        self.device_name = ""
        self._on_start = on_start
        self._started = False
        self._exit_stack: Optional[contextlib.ExitStack] = None
        self._stream = None
        self._dc_blocker = DCBlocker(sample_rate)  # as every file is read: no DC offset reaches the features

    def __enter__(self) -> "Microphone":
        with contextlib.ExitStack() as stack:
            pa = stack.enter_context(open_pyaudio())
            info = default_input_device(pa, alternatives=self.alternatives)
            host = pa.get_host_api_info_by_index(info["hostApi"])["name"]
            self.device_name = f"{info['name']} ({host})"
            try:
                with stderr_silenced():
                    self._stream = pa.open(format=pa.get_format_from_width(2), channels=1, rate=self.sample_rate,
                                           input=True, frames_per_buffer=self.chunk_samples)
            except (OSError, IOError, ValueError) as error:
                reason = error.args[1] if len(error.args) > 1 else str(error)
                raise NoInputDeviceError(
                    f"Cannot open the microphone {self.device_name} at {self.sample_rate} Hz ({reason}); "
                    f"close other programs that use it and check that it is plugged in. Alternatives: {self.alternatives}."
                ) from None
            stack.callback(self._close_stream)
            self._exit_stack = stack.pop_all()
        return self

    def _close_stream(self) -> None:
        with contextlib.suppress(OSError, IOError):
            self._stream.stop_stream()
        self._stream.close()
        self._stream = None

    def __exit__(self, *exc_info) -> None:
        if self._exit_stack is not None:
            self._exit_stack.close()
            self._exit_stack = None

    def _wait_for_chunk(self) -> None:
        """Sleep until a whole chunk is buffered, so that the read after it never blocks.

        A blocking read waits forever on a source that is open but delivers nothing (a muted or
        unplugged device, a stalled sound server), and some backends (ALSA's PulseAudio plugin) spin the
        CPU inside it while the source starts; sleeping also lets Ctrl-C through at once. No chunk
        within :data:`NO_SOUND_SECONDS` (:data:`START_SECONDS` for the first) is a :class:`NoInputDeviceError`.
        """
        limit = NO_SOUND_SECONDS if self._started else START_SECONDS
        deadline = time.monotonic() + limit
        while True:
            try:
                missing = self.chunk_samples - self._stream.get_read_available()
            except (OSError, IOError) as error:
                raise self._lost(error.args[1] if len(error.args) > 1 else str(error)) from None
            if missing <= 0:
                return
            if time.monotonic() >= deadline:
                raise self._lost(f"no sound for {limit:g} s")
            time.sleep(min(max(missing / self.sample_rate, 0.005), 0.05))

    def _lost(self, reason: str) -> NoInputDeviceError:
        """The error for a microphone that delivers no sound (any more), with what to check."""
        what = "stopped delivering sound" if self._started else "delivers no sound"
        return NoInputDeviceError(
            f"The microphone {self.device_name} {what} ({reason}): check that it is plugged in, not muted, and "
            f"chosen as the input device in the system settings, then run again. Alternatives: {self.alternatives}."
        )

    def read(self) -> np.ndarray:
        """The next chunk of :attr:`chunk_samples` samples as float32 without DC offset (:class:`~acoustics.audio.DCBlocker`;
        waits until it is recorded)."""
        self._wait_for_chunk()
        try:
            data = self._stream.read(self.chunk_samples, exception_on_overflow=False)
        except (OSError, IOError) as error:
            raise self._lost(error.args[1] if len(error.args) > 1 else str(error)) from None
        if not self._started:
            self._started = True
            if self._on_start is not None:
                self._on_start()
        return self._dc_blocker(np.frombuffer(data, dtype=np.int16).astype(np.float32) / FULL_SCALE)

    def record(self, seconds: float, progress: Optional[Callable[[float, float], None]] = None) -> np.ndarray:
        """Exactly ``seconds`` of sound; ``progress(seconds_recorded, seconds)`` is called after each chunk."""
        total = int(round(seconds * self.sample_rate))
        if total <= 0:
            raise BadParameterError(f"Recording length must be positive, not {seconds} s.")
        chunks, recorded = [], 0
        while recorded < total:
            chunk = self.read()
            chunks.append(chunk)
            recorded += chunk.size
            if progress is not None:
                progress(min(recorded, total) / self.sample_rate, total / self.sample_rate)
        return np.concatenate(chunks)[:total]


def record_seconds(seconds: float, sample_rate: int, *, alternatives: str,
                   progress: Optional[Callable[[float, float], None]] = None) -> np.ndarray:
    """Record ``seconds`` from the default input device as float32 mono at ``sample_rate`` Hz.

    ``progress(seconds_recorded, seconds)`` is called after each chunk; its first call means the
    microphone is live.
    """
    if not seconds > 0:
        raise BadParameterError(f"Recording length must be positive, not {seconds} s.")
    with Microphone(sample_rate, alternatives=alternatives) as microphone:
        return microphone.record(seconds, progress)


# Voice activity detection -----------------------------------------------------------------------
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
        sample_rate = _checked_rate(sample_rate)
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


# Listening for speech ---------------------------------------------------------------------------
def _frame_for(chunk_seconds: float) -> float:
    """The detector's frame for reads of ``chunk_seconds``: one read when it is short (the detector then
    decides as soon as each read arrives), else :data:`FRAME_SECONDS`."""
    return min(chunk_seconds, FRAME_SECONDS)


def record_utterance(sample_rate: int, *, max_seconds: float = 6.0, alternatives: str,
                     on_start: Optional[Callable[[], None]] = None,
                     pause_seconds: float = UTTERANCE_PAUSE_SECONDS, chunk_seconds: float = CHUNK_SECONDS,
                     on_chunk: Optional[Callable[[np.ndarray, "VoiceActivityDetector"], None]] = None) -> tuple:
    """Listen until speech was heard and then ``pause_seconds`` of non-speech, or for at most ``max_seconds``.

    Returns ``(signal, speech_detected)``: the utterance (with 0.2 s before and after), or, when no
    speech was heard, everything that was recorded. ``on_start`` is called once the microphone is live,
    ``on_chunk(chunk, detector)`` after the detector took each chunk (a level meter reads both).
    """
    if max_seconds <= 0:
        raise BadParameterError(f"max_seconds must be positive, not {max_seconds}.")
    detector = VoiceActivityDetector(sample_rate, pause_seconds=pause_seconds, frame_seconds=_frame_for(chunk_seconds))
    chunks, recorded, total = [], 0, int(round(max_seconds * sample_rate))
    with Microphone(sample_rate, alternatives=alternatives, on_start=on_start, chunk_seconds=chunk_seconds) as microphone:
        while recorded < total:
            chunk = microphone.read()[: total - recorded]
            chunks.append(chunk)
            recorded += chunk.size
            utterances = detector.feed(chunk)
            if on_chunk is not None:
                on_chunk(chunk, detector)
            if utterances:
                return utterances[0].samples, True
    last = detector.flush()
    if last:
        return last[0].samples, True
    return np.concatenate(chunks), False


def stream_utterances(sample_rate: int, *, alternatives: str, max_utterance_seconds: float = 6.0,
                      on_start: Optional[Callable[[], None]] = None, pause_seconds: float = STREAM_PAUSE_SECONDS,
                      chunk_seconds: float = CHUNK_SECONDS,
                      on_chunk: Optional[Callable[[np.ndarray, "VoiceActivityDetector"], None]] = None,
                      ) -> Iterator[np.ndarray]:
    """Yield each utterance (float32) as soon as its trailing ``pause_seconds`` are heard, until the caller stops.

    The stream stays open between utterances, so nothing is lost while the caller works (up to the
    device's buffer). Ctrl-C (KeyboardInterrupt) propagates; the stream is closed either way.
    ``on_chunk(chunk, detector)`` is called after the detector took each chunk, before the utterances
    that ended in it are yielded (a level meter, the noise floor of :class:`acoustics.gate.SpeakerGate`).
    """
    detector = VoiceActivityDetector(sample_rate, pause_seconds=pause_seconds, max_utterance_seconds=max_utterance_seconds,
                                     frame_seconds=_frame_for(chunk_seconds))
    with Microphone(sample_rate, alternatives=alternatives, on_start=on_start, chunk_seconds=chunk_seconds) as microphone:
        while True:
            chunk = microphone.read()
            utterances = detector.feed(chunk)
            if on_chunk is not None:
                on_chunk(chunk, detector)
            for utterance in utterances:
                yield utterance.samples

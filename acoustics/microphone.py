"""Microphone capture with PyAudio: the default input device as a source (:mod:`acoustics.sources`).

Signals are 1-D ``numpy.float32`` arrays in [-1, 1] at the caller's sample rate; durations are in
seconds; levels in dBFS (RMS 1.0 is 0 dBFS, as in :mod:`acoustics.audio`). Where utterances start
and end is decided in :mod:`acoustics.utterances`, which listens to any source.

Capture sleeps until a chunk of :data:`CHUNK_SECONDS` is buffered and then reads it, so waiting for sound
costs no CPU and no read ever blocks. The first chunk of a fresh stream can take 0.1 to 2 s while the
sound server starts the source: callers learn from the first ``read()`` (or ``progress``) when the
microphone is really live. A microphone that delivers nothing for :data:`NO_SOUND_SECONDS`
(:data:`START_SECONDS` at the start) is a :class:`NoInputDeviceError`.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator, Optional

import numpy as np

from .audio import DCBlocker
from .quiet import stderr_silenced
from .errors import BadParameterError, NoInputDeviceError
from .sources import CHUNK_SECONDS, check_sample_rate, chunk_samples_for

#: Seconds without a sample after which a running microphone counts as gone (muted, unplugged, stalled).
NO_SOUND_SECONDS = 2.0
#: The same for the first chunk: a source can take about 2 s to start (PulseAudio's null-sink monitor: 1.8-2.0 s).
START_SECONDS = 4.0
#: Full scale of 16-bit samples: int16 / FULL_SCALE is in [-1, 1).
FULL_SCALE = 32768.0


# PyAudio and the default device -----------------------------------------------------------------
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

    ``read()`` returns the next chunk (about :data:`CHUNK_SECONDS`) as float32; the first one arrives
    when the microphone is really live. Every device problem is a :class:`NoInputDeviceError`
    whose message ends with ``alternatives``. ``chunk_seconds`` is the length of one read: shorter
    reads let a caller react sooner (stage 5 uses 30 ms, one detector frame) for a few more wake-ups.
    """

    def __init__(self, sample_rate: int, *, alternatives: str, chunk_seconds: float = CHUNK_SECONDS) -> None:
        self.sample_rate = check_sample_rate(sample_rate)
        self.alternatives = alternatives
        self.chunk_samples = chunk_samples_for(self.sample_rate, chunk_seconds)
        self.device_name = ""
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
        self._started = True
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

"""Where live sound comes from: audio sources, and one that plays an array.

A *source* is what :mod:`acoustics.utterances` listens to. It is a context manager (entering opens it,
leaving closes it) with two attributes and one method:

- ``sample_rate``: samples per second (Hz) of what it delivers;
- ``chunk_samples``: the length of one read, in samples;
- ``read()``: the next chunk as 1-D float32 in [-1, 1], waiting until it is there. An empty chunk means
  the input has ended (a file played to its end); a source that cannot deliver raises an
  :class:`~acoustics.errors.AcousticsError` naming the device and what to do.

:class:`acoustics.microphone.Microphone` is the source of stage 5 and stage 2 (PyAudio's default
input device). :class:`ArraySource` plays a signal already in memory, as fast as it is read or in real
time: tests hear exactly what they fed, without a sound server; a recording played in real time shows
the live view without a microphone. A new source (a network stream, another audio library) needs only
these three members.
"""

from __future__ import annotations

import numbers
import time

import numpy as np

from .errors import BadParameterError

#: Length of one read in seconds when the caller names none.
CHUNK_SECONDS = 0.1


def check_sample_rate(sample_rate) -> int:
    """``sample_rate`` as an int (numpy integers too); :class:`BadParameterError` unless positive."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise BadParameterError(f"sample_rate must be a positive integer in Hz, not {sample_rate!r}.")
    return int(sample_rate)


def chunk_samples_for(sample_rate: int, chunk_seconds: float) -> int:
    """The samples of one read of ``chunk_seconds`` (5 ms to 1 s); :class:`BadParameterError` outside."""
    if not 0.005 <= chunk_seconds <= 1.0:
        raise BadParameterError(f"chunk_seconds must be between 0.005 and 1 s, not {chunk_seconds}.")
    return max(1, int(round(sample_rate * chunk_seconds)))


class ArraySource:
    """A signal in memory as a source: chunks of ``chunk_seconds``, then empty chunks.

    Parameters
    ----------
    signal : numpy.ndarray
        Mono samples in [-1, 1] at ``sample_rate`` Hz.
    sample_rate : int
        Its rate in Hz.
    chunk_seconds : float, optional
        Length of one read in seconds (5 ms to 1 s).
    real_time : bool, optional
        If true, each read waits until its chunk would have been heard, as from a microphone; if false
        (default), reads return at once.
    """

    def __init__(self, signal: np.ndarray, sample_rate: int, *, chunk_seconds: float = CHUNK_SECONDS,
                 real_time: bool = False) -> None:
        self.sample_rate = check_sample_rate(sample_rate)
        self.chunk_samples = chunk_samples_for(self.sample_rate, chunk_seconds)
        self.signal = np.asarray(signal, dtype=np.float32).ravel()
        self.real_time = real_time
        self.position = 0
        self._started = None

    def __enter__(self) -> "ArraySource":
        self.position, self._started = 0, time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        self._started = None

    def read(self) -> np.ndarray:
        """The next chunk (shorter at the end; empty once the signal is used up)."""
        chunk = self.signal[self.position : self.position + self.chunk_samples]
        self.position += chunk.size
        if self.real_time and chunk.size:
            delay = self._started + self.position / self.sample_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return chunk

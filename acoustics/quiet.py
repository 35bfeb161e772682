"""The start-up noise of the libraries kept off the terminal: ALSA's and JACK's lines while PortAudio
starts (:mod:`acoustics.microphone`), TensorFlow's while Keras is imported (:func:`import_keras`), so
that the one-line messages of the stage scripts are not buried."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from typing import Iterator

_silence_lock = threading.Lock()
_silence = {"depth": 0, "saved": None}  # how many threads are inside stderr_silenced; the real fd 2


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: ALSA and JACK print ~100 lines while PortAudio starts,
    TensorFlow a few while it is imported (:func:`import_keras`).

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


@functools.cache
def import_keras():
    """Keras (and TensorFlow, its backend), imported once with the C++ start-up lines (oneDNN notices) kept
    off stderr.

    TF_CPP_MIN_LOG_LEVEL=2 hides most of them, but TensorFlow 2.21 still writes two absl lines before its
    logging starts. Python errors raised by the import still propagate as usual.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with stderr_silenced():
        import keras
        import tensorflow  # (the backend: its notices come at first import)
    # Its Python warnings (e.g. "triggered tf.function retracing" when predictions take batches of a few
    # sizes, see models.predict_windows) speak to TensorFlow's developers, not to attendees; errors still show.
    tensorflow.get_logger().setLevel("ERROR")
    return keras

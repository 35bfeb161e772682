"""MFCC features and the fixed-size windows the models read.

The MFCCs are librosa's (same mel filter bank, periodic Hann window, power spectrum, dB with
``amin=1e-10`` and no ``top_db`` clamp, orthonormal DCT-II, ``center=False``), computed with
scipy.fft on float32 frames and a filter bank built once per settings: ``tests/test_features.py``
checks they match ``librosa.feature.mfcc`` to float32 rounding, and ``bench/speech_prep`` measures
why this is worth it.

Windowing for the models: a recording of ``n`` frames gives windows of ``settings.frames`` frames
with 50 % overlap, the last window aligned to the end. A recording shorter than one window is
repeated (tiled) until it fills one, so that a short clip is never mostly zero padding.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal

from .settings import Settings

AMIN = 1e-10


@lru_cache(maxsize=8)
def _filters(settings_key: tuple) -> tuple:
    sample_rate, n_fft, n_mels, fmin, fmax = settings_key
    import librosa.filters  # lazy: only the filter bank, built once

    mel_basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    window = scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)
    return np.ascontiguousarray(mel_basis.T, dtype=np.float32), window


def frame_count(samples: int, settings: Settings) -> int:
    """Number of MFCC frames of a signal of ``samples`` samples (at least 1)."""
    return 1 + max(0, samples - settings.n_fft) // settings.hop_length


def mfcc(signal: np.ndarray, settings: Settings) -> np.ndarray:
    """MFCCs of a mono float32 signal at ``settings.sample_rate``: shape (frames, n_mfcc), float32."""
    mel_basis_t, window = _filters(
        (settings.sample_rate, settings.n_fft, settings.n_mels, float(settings.fmin), float(settings.fmax))
    )
    signal = np.asarray(signal, dtype=np.float32)
    if signal.size < settings.n_fft:
        signal = np.pad(signal, (0, settings.n_fft - signal.size))
    frames = np.lib.stride_tricks.sliding_window_view(signal, settings.n_fft)[:: settings.hop_length]
    spectrum = scipy.fft.rfft(frames * window, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    mel_power = power @ mel_basis_t
    log_mel = 10.0 * np.log10(np.maximum(mel_power, AMIN))
    coefficients = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, : settings.n_mfcc]
    return np.ascontiguousarray(coefficients, dtype=np.float32)


def reference_mfcc(signal: np.ndarray, settings: Settings) -> np.ndarray:
    """The same features computed by librosa alone (slow; for tests and the baseline benchmark)."""
    import librosa

    signal = np.asarray(signal, dtype=np.float32)
    if signal.size < settings.n_fft:
        signal = np.pad(signal, (0, settings.n_fft - signal.size))
    mel = librosa.feature.melspectrogram(
        y=signal, sr=settings.sample_rate, n_fft=settings.n_fft, hop_length=settings.hop_length,
        n_mels=settings.n_mels, fmin=settings.fmin, fmax=settings.fmax, center=False, power=2.0,
    )
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=None)
    return librosa.feature.mfcc(S=log_mel, n_mfcc=settings.n_mfcc).T.astype(np.float32)


def windows(matrix: np.ndarray, frames: int) -> np.ndarray:
    """Cut a (n, n_mfcc) matrix into windows of ``frames`` frames: shape (count, frames, n_mfcc).

    Windows overlap by half and the last one ends at the last frame; a matrix shorter than ``frames``
    is tiled (repeated from its start) into exactly one window.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"windows: expected a non-empty (frames, coefficients) matrix, got shape {matrix.shape}")
    count = matrix.shape[0]
    if count <= frames:
        repeats = -(-frames // count)
        return np.tile(matrix, (repeats, 1))[None, :frames]
    hop = max(1, frames // 2)
    starts = list(range(0, count - frames + 1, hop))
    if starts[-1] != count - frames:
        starts.append(count - frames)
    return np.stack([matrix[start : start + frames] for start in starts])

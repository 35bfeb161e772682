"""MFCC features and the fixed-size windows the models read.

The MFCCs are librosa's (same mel filter bank, periodic Hann window, power spectrum, dB with
``amin=1e-10`` and no ``top_db`` clamp, orthonormal DCT-II, ``center=False``), computed with
scipy.fft and matrices built once per settings; ``reference_mfcc`` (librosa alone) is what they are
checked against, to float32 rounding.

librosa is not imported: ``import librosa.filters`` costs about 2 s per process (it pulls in
scipy.signal, numba and scikit-learn), more than all the feature computation of a 500-file corpus on
two cores (see ``bench/speech_prep.py``). So the mel filter bank below is librosa's ``filters.mel``
(Slaney scale and norm) written with the same numpy operations, which gives the same float32 weights,
and the periodic Hann window is numpy's. scipy.fft stays: its batched FFT of short frames is about 5
times faster than numpy.fft's, which outweighs its 0.3 s import.

Windowing for the models: a recording of ``n`` frames gives windows of ``settings.frames`` frames
with 50 % overlap, the last window aligned to the end. A recording shorter than one window is
repeated (tiled) until it fills one, so that a short clip is never mostly zero padding.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .settings import Settings

AMIN = 1e-10


# Slaney's mel scale, as librosa (htk=False): linear below 1 kHz, logarithmic above.
_MEL_STEP_HZ = 200.0 / 3
_LOG_START_HZ = 1000.0
_LOG_START_MEL = _LOG_START_HZ / _MEL_STEP_HZ
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(frequency: float) -> float:
    """Slaney's mel of ``frequency`` (Hz), as ``librosa.hz_to_mel(frequency)``."""
    if frequency >= _LOG_START_HZ:
        return _LOG_START_MEL + np.log(frequency / _LOG_START_HZ) / _LOG_STEP
    return frequency / _MEL_STEP_HZ


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """The frequencies (Hz) of Slaney ``mels`` (an array), as ``librosa.mel_to_hz(mels)``."""
    mels = np.asarray(mels, dtype=np.float64)
    frequencies = _MEL_STEP_HZ * mels
    log_region = mels >= _LOG_START_MEL
    frequencies[log_region] = _LOG_START_HZ * np.exp(_LOG_STEP * (mels[log_region] - _LOG_START_MEL))
    return frequencies


def mel_frequencies(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The ``n_mels + 2`` edges in Hz of the Slaney mel bands: band ``i`` rises from edge ``i``, peaks at
    edge ``i + 1`` and falls to edge ``i + 2``."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))


def mel_band_widths(settings: Settings) -> np.ndarray:
    """Half the width in Hz of each of the settings' Slaney mel bands: a band's power times this is the
    power spectrum it gathers (the filters' Slaney norm divided back out), so mel power times these
    widths, summed, is the sum of the power spectrum."""
    edges = mel_frequencies(settings.n_mels, settings.fmin, settings.fmax)
    return (edges[2:] - edges[:-2]) / 2.0


def hann_window(n_fft: int) -> np.ndarray:
    """The periodic ("fftbins") Hann window of ``n_fft`` samples, as scipy.signal.get_window("hann", n_fft)."""
    return np.hanning(n_fft + 1)[:-1]


def mel_filter_bank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters with Slaney normalisation, shape (n_mels, 1 + n_fft // 2), float32.

    The same weights as ``librosa.filters.mel(sr=..., n_fft=..., n_mels=..., fmin=..., fmax=...)``.
    """
    fft_frequencies = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_frequencies_hz = mel_frequencies(n_mels, fmin, fmax)
    widths = np.diff(mel_frequencies_hz)
    ramps = np.subtract.outer(mel_frequencies_hz, fft_frequencies)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for band in range(n_mels):
        rising = -ramps[band] / widths[band]
        falling = ramps[band + 2] / widths[band + 1]
        weights[band] = np.maximum(0, np.minimum(rising, falling))
    weights *= (2.0 / (mel_frequencies_hz[2 : n_mels + 2] - mel_frequencies_hz[:n_mels]))[:, np.newaxis]
    return weights


@lru_cache(maxsize=64)
def empty_mel_bands(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> int:
    """How many of the mel bands hold no frequency of an ``n_fft``-point FFT (their filters are all
    zero, as librosa warns "Empty filters detected"): such a band is always silent, so settings that make
    one are refused (:class:`acoustics.settings.Settings`)."""
    return int(np.sum(mel_filter_bank(sample_rate, n_fft, n_mels, fmin, fmax).max(axis=1) <= 0))


@lru_cache(maxsize=16)
def dct_matrix(size: int, count: int) -> np.ndarray:
    """Orthonormal DCT-II as a (size, count) matrix: ``x @ dct_matrix(n, k)`` is ``dct(x, norm="ortho")[..., :k]``
    (read-only: made once per shape)."""
    matrix = np.cos(np.pi / size * np.outer(np.arange(size) + 0.5, np.arange(count))) * np.sqrt(2.0 / size)
    matrix[:, 0] /= np.sqrt(2.0)
    matrix.setflags(write=False)
    return matrix


def mfcc_to_mel_db(coefficients: np.ndarray, n_mels: int) -> np.ndarray:
    """The log-mel spectrum (dB per band, float64, shape ``(..., n_mels)``) that MFCCs ``(..., n_mfcc)`` were
    computed from: the inverse of their orthonormal DCT. Exact when ``n_mfcc == n_mels`` (the defaults);
    with fewer coefficients, the smooth spectral envelope they keep."""
    values = np.asarray(coefficients, dtype=np.float64)
    return values @ dct_matrix(n_mels, values.shape[-1]).T


def mel_db_to_mfcc(log_mel: np.ndarray, n_mfcc: int) -> np.ndarray:
    """The first ``n_mfcc`` MFCCs (float64) of a log-mel spectrum ``(..., n_mels)`` in dB, as :func:`mfcc` takes them."""
    values = np.asarray(log_mel, dtype=np.float64)
    return values @ dct_matrix(values.shape[-1], n_mfcc)


def invertible(settings: Settings) -> bool:
    """True when the MFCCs hold the whole log-mel spectrum (``n_mfcc == n_mels``), so that what works on
    mel power (training augmentation, the encoder network) can read it back exactly."""
    return settings.n_mfcc == settings.n_mels


@lru_cache(maxsize=8)
def _filters(settings_key: tuple) -> tuple:
    """(mel filter bank transposed (float32), periodic Hann window, DCT matrix (float64)), once per settings."""
    sample_rate, n_fft, n_mels, n_mfcc, fmin, fmax = settings_key
    mel_basis = mel_filter_bank(sample_rate, n_fft, n_mels, fmin, fmax)
    window = hann_window(n_fft)
    return np.ascontiguousarray(mel_basis.T), window, dct_matrix(n_mels, n_mfcc)


def frame_count(samples: int, settings: Settings) -> int:
    """Number of MFCC frames of a signal of ``samples`` samples (at least 1)."""
    return 1 + max(0, samples - settings.n_fft) // settings.hop_length


#: Frames whose spectra :func:`mfcc` holds at a time (10 s at the defaults: about 7 MB of float64 frames and
#: spectra), so that a long signal costs no more working memory than a clip.
MFCC_BLOCK_FRAMES = 1024


def mfcc(signal: np.ndarray, settings: Settings) -> np.ndarray:
    """MFCCs of a mono float32 signal at ``settings.sample_rate``: shape (frames, n_mfcc), float32.

    As in librosa, the frames are windowed and transformed in float64: in float32, the FFT's rounding
    (relative to a frame's loudest bin) moves the quietest mel bands by up to 2e-3 dB, which put some
    EmoDB coefficients 1.1e-3 away from librosa's. The power spectrum, mel bands and dB are float32;
    the DCT is a float64 matrix product (for 40 bands, a tenth of scipy.fft.dct's call overhead).
    """
    mel_basis_t, window, dct = _filters((settings.sample_rate, settings.n_fft, settings.n_mels, settings.n_mfcc,
                                         float(settings.fmin), float(settings.fmax)))
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    if signal.size < settings.n_fft:
        signal = np.pad(signal, (0, settings.n_fft - signal.size))
    frames = np.lib.stride_tricks.as_strided(  # a view: frame i starts at sample i * hop_length
        signal, shape=(frame_count(signal.size, settings), settings.n_fft),
        strides=(settings.hop_length * signal.itemsize, signal.itemsize), writeable=False,
    )
    import scipy.fft  # here, not at the top: Settings checks its mel bands with this module, and scipy.fft costs 0.5 s

    result = np.empty((len(frames), dct.shape[1]), dtype=np.float32)
    for start in range(0, len(frames), MFCC_BLOCK_FRAMES):  # the float64 spectra of a block at a time
        spectrum = scipy.fft.rfft(frames[start : start + MFCC_BLOCK_FRAMES] * window, axis=1)  # float64 window: float64 frames
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        log_mel = 10.0 * np.log10(np.maximum(power @ mel_basis_t, AMIN))
        result[start : start + MFCC_BLOCK_FRAMES] = log_mel @ dct
    return result


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

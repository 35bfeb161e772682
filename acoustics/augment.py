"""Training-time augmentation of MFCC windows: other voices, coloured noise, microphone response, level.

Stage 3 stores each recording clean and in one room noise at a few SNRs; a stranger at a laptop brings
other noises, other microphones and other levels. So each training batch is changed on the fly, in the
mel power domain (which the orthonormal DCT gives back exactly when ``n_mfcc == n_mels``, the
defaults; otherwise the windows pass unchanged), as the :class:`~acoustics.recipe.Recipe` says:

1. babble: 3 to 6 other windows of the batch (other voices) mixed in;
2. noise: white, pink or brown noise, as the pipeline's own filter bank hears it;
3. microphone response: a spectral tilt, sometimes a band limit (high-pass and low-pass);
4. level: a gain in dB.

The labels stay those of the windows: the louder voice is still the one to classify.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .features import AMIN, invertible, mel_band_widths, mel_db_to_mfcc, mel_frequencies, mfcc, mfcc_to_mel_db
from .settings import Settings

NOISE_COLOURS = ("white", "pink", "brown")
#: Seconds of each colour of noise computed once per settings (at least two model windows); windows
#: take random stretches of it.
NOISE_SECONDS = 8.0


def augment(windows: np.ndarray, settings: Settings, recipe, rng: np.random.Generator) -> np.ndarray:
    """``windows`` (count, frames, n_mfcc raw MFCCs) changed as ``recipe`` says; a new float32 array."""
    windows = np.asarray(windows, dtype=np.float32)
    if not invertible(settings) or len(windows) == 0:
        return windows
    power = to_power(windows)
    count = len(windows)
    if recipe.babble_probability > 0 and count >= 4:
        power = mix_babble(power, rng.random(count) < recipe.babble_probability, recipe.babble_snr_db, rng)
    chosen = np.flatnonzero(rng.random(count) < recipe.noise_probability)
    for position in chosen:
        power[position] = add_noise(power[position], settings, rng.choice(NOISE_COLOURS), rng.uniform(*recipe.noise_snr_db), rng)
    chosen = np.flatnonzero(rng.random(count) < recipe.equaliser_probability)
    for position in chosen:
        power[position] *= 10.0 ** (microphone_response_db(settings, recipe.equaliser_tilt_db, rng) / 10.0)
    if recipe.gain_db > 0:
        power *= 10.0 ** (rng.uniform(-recipe.gain_db, recipe.gain_db, size=(count, 1, 1)) / 10.0)
    return to_mfcc(power)


def to_power(windows: np.ndarray) -> np.ndarray:
    """Mel band powers (float64) of raw MFCC windows with ``n_mfcc == n_mels``."""
    windows = np.asarray(windows)
    return 10.0 ** (mfcc_to_mel_db(windows, windows.shape[-1]) / 10.0)


def to_mfcc(power: np.ndarray) -> np.ndarray:
    """The MFCCs (float32) of mel band powers, as :func:`acoustics.features.mfcc` computes them."""
    log_mel = 10.0 * np.log10(np.maximum(power, AMIN))
    return mel_db_to_mfcc(log_mel, log_mel.shape[-1]).astype(np.float32)


def mix_babble(power: np.ndarray, chosen: np.ndarray, snr_range, rng: np.random.Generator) -> np.ndarray:
    """Add to each ``chosen`` window the sum of 3 to 6 *other* windows of the batch (each at the same
    power, shifted in time by a random amount) at an SNR from ``snr_range`` (dB, mean mel power)."""
    count, frames = power.shape[:2]
    power_of_window = np.maximum(power.mean(axis=(1, 2)), 1e-20)
    mixed = power.copy()
    for position in np.flatnonzero(chosen):
        talkers = rng.choice(count - 1, size=min(int(rng.integers(3, 7)), count - 1), replace=False)
        talkers = talkers + (talkers >= position)
        babble = sum(np.roll(power[talker], int(rng.integers(0, frames)), axis=0) / power_of_window[talker]
                     for talker in talkers)
        gain = power_of_window[position] / (babble.mean() * 10 ** (rng.uniform(*snr_range) / 10))
        mixed[position] = power[position] + gain * babble
    return mixed


def add_noise(power: np.ndarray, settings: Settings, colour: str, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """One window's mel powers (frames, n_mels) with ``colour`` noise added at ``snr_db``.

    The SNR is that of the signals' power, as :func:`acoustics.mixing.mix_at_snr` measures it: each
    mel band's power counts with the band's width in Hz (the Slaney-normalised filters hold the mean
    power density of their band).
    """
    noise_frames = _noise_power(settings, colour)
    frames = len(power)
    start = int(rng.integers(0, len(noise_frames) - frames))
    noise = noise_frames[start : start + frames]
    widths = mel_band_widths(settings)
    speech_power = float((power.mean(axis=0) * widths).sum())
    noise_power = float((noise.mean(axis=0) * widths).sum())
    return power + noise * (speech_power / max(noise_power, 1e-30) / 10 ** (snr_db / 10))


def microphone_response_db(settings: Settings, tilt_db: float, rng: np.random.Generator) -> np.ndarray:
    """A random microphone's gain (dB) at each mel band's centre: a tilt of up to ``tilt_db`` per octave
    about 1 kHz, and in half of the cases a high-pass (100-400 Hz, 12 dB per octave) and a low-pass
    (3-7 kHz, 24 dB per octave), floored at -60 dB."""
    centres = np.maximum(_band_centres(settings), 20.0)
    gain = rng.uniform(-tilt_db, tilt_db) * np.log2(centres / 1000.0)
    if rng.random() < 0.5:
        high_pass, low_pass = rng.uniform(100.0, 400.0), rng.uniform(3000.0, 7000.0)
        gain = gain - 12.0 * np.maximum(0.0, np.log2(high_pass / centres)) - 24.0 * np.maximum(0.0, np.log2(centres / low_pass))
    return np.maximum(gain, -60.0)


def coloured_noise(colour: str, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``samples`` of white, pink (power falling 3 dB per octave) or brown (6 dB per octave) noise, float32
    with unit RMS."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"coloured_noise: colour must be one of {', '.join(NOISE_COLOURS)}, not {colour!r}")
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[colour]
    noise = np.fft.irfft(spectrum / frequencies**exponent, n=samples)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


@lru_cache(maxsize=4)
def _noise_power(settings: Settings, colour: str) -> np.ndarray:
    """Mel band powers of :data:`NOISE_SECONDS` of ``colour`` noise, computed by the pipeline's own MFCCs."""
    samples = int(max(NOISE_SECONDS, 2 * settings.window_seconds) * settings.sample_rate)
    rng = np.random.default_rng([settings.seed, NOISE_COLOURS.index(colour)])
    return to_power(mfcc(coloured_noise(colour, samples, rng) * 0.1, settings))


def _band_centres(settings: Settings) -> np.ndarray:
    return mel_frequencies(settings.n_mels, settings.fmin, settings.fmax)[1:-1]

"""Noise made and mixed into speech: at a chosen signal-to-noise ratio (:func:`mix_at_snr`, as stage 3
stores each recording with the room's noise), a synthetic room (:func:`synthetic_room_noise`, stage 2
without a microphone) and babble of several voices (:func:`babble_noise`, the benchmarks' test noise).
All signals are float32 arrays in [-1, 1]; levels in dBFS."""

from __future__ import annotations

import numpy as np

from .errors import BadParameterError


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add ``noise`` to ``speech`` so that their power ratio is ``snr_db`` dB.

    A random stretch of the noise (looped if it is shorter than the speech) is used. If the mix would
    exceed full scale, the whole mix is scaled down, which keeps the SNR.
    """
    if speech.size == 0:
        raise BadParameterError("mix_at_snr: the speech signal is empty.")
    if noise.size == 0:
        raise BadParameterError("mix_at_snr: the noise signal is empty or silent.")
    offset = int(rng.integers(0, noise.size))
    segment = _looped(noise, offset, speech.size).astype(np.float64)
    speech64 = speech.astype(np.float64)
    speech_power = np.mean(speech64**2)
    noise_power = np.mean(segment**2)
    if noise_power == 0:  # the chosen stretch is digital silence: start at the first sound instead
        sounding = np.flatnonzero(noise)  # looked for only here: scanning a long noise costs more than the mix
        if sounding.size == 0:
            raise BadParameterError("mix_at_snr: the noise signal is empty or silent.")
        segment = _looped(noise, int(sounding[0]), speech.size).astype(np.float64)
        noise_power = np.mean(segment**2)
    if speech_power == 0 or noise_power == 0:
        raise BadParameterError("mix_at_snr: speech or noise has no power.")
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    mixed = speech64 + gain * segment
    peak = np.max(np.abs(mixed))
    if peak > 0.99:
        mixed *= 0.99 / peak
    return mixed.astype(np.float32)


def _looped(signal: np.ndarray, start: int, count: int) -> np.ndarray:
    """``count`` samples of ``signal`` from ``start`` on, looping it; only those samples are copied."""
    if start + count <= signal.size:
        return signal[start : start + count]
    return np.take(signal, np.arange(start, start + count), mode="wrap")


def snr_db(speech: np.ndarray, mixed: np.ndarray) -> float:
    """Measured SNR in dB of ``mixed`` against the ``speech`` it contains (same scale)."""
    speech64 = speech.astype(np.float64)
    mixed64 = mixed.astype(np.float64)
    scale = np.dot(mixed64, speech64) / np.dot(speech64, speech64)  # undo a common gain
    noise = mixed64 / scale - speech64
    return float(10 * np.log10(np.mean(speech64**2) / np.mean(noise**2)))


def synthetic_room_noise(seconds: float, sample_rate: int, rng: np.random.Generator, level_dbfs_target: float = -45.0) -> np.ndarray:
    """Room-like noise: pink noise, a 50 Hz mains hum with harmonics, and a slow level drift."""
    count = int(round(seconds * sample_rate))
    if count <= 0:
        raise BadParameterError(f"synthetic_room_noise: seconds must be positive, not {seconds}.")
    spectrum = np.fft.rfft(rng.standard_normal(count))
    frequencies = np.fft.rfftfreq(count, 1 / sample_rate)
    spectrum[1:] /= np.sqrt(frequencies[1:])  # 1/f power: pink
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum, count)
    pink /= np.std(pink) + 1e-12
    time = np.arange(count) / sample_rate
    hum = sum(0.3 / harmonic * np.sin(2 * np.pi * 50 * harmonic * time + rng.uniform(0, 2 * np.pi)) for harmonic in (1, 2, 3))
    drift = 1 + 0.2 * np.sin(2 * np.pi * time / max(seconds, 1.0) + rng.uniform(0, 2 * np.pi))
    noise = (pink + hum) * drift
    noise *= 10 ** (level_dbfs_target / 20) / np.sqrt(np.mean(noise**2))
    return noise.astype(np.float32)


def babble_noise(voices, seconds: float, sample_rate: int, rng: np.random.Generator, *, talkers: int = 6,
                 level_dbfs_target: float = -30.0) -> np.ndarray:
    """Babble: ``talkers`` voices talking at once, each at the same RMS level and a random offset.

    ``voices`` is a list of float32 speech signals at ``sample_rate`` (say half male, half female, so
    that the babble favours neither sex); talker ``i`` uses voice ``i % len(voices)``, looped to
    ``seconds``, with its own random start. The sum is scaled to ``level_dbfs_target``.
    """
    count = int(round(seconds * sample_rate))
    if count <= 0:
        raise BadParameterError(f"babble_noise: seconds must be positive, not {seconds}.")
    usable = [np.asarray(voice, dtype=np.float64) for voice in voices if np.size(voice) and np.any(voice)]
    if not usable or talkers < 1:
        raise BadParameterError("babble_noise: needs at least one non-silent voice and one talker.")
    babble = np.zeros(count)
    for talker in range(talkers):
        voice = usable[talker % len(usable)]
        offset = int(rng.integers(0, voice.size))
        segment = np.take(voice, np.arange(offset, offset + count), mode="wrap")
        babble += segment / np.sqrt(np.mean(segment**2) + 1e-20)
    babble *= 10 ** (level_dbfs_target / 20) / np.sqrt(np.mean(babble**2))
    return babble.astype(np.float32)

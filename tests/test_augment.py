"""acoustics.augment: noise, microphone responses and levels mixed into MFCC windows on the fly, checked
against the same mixing done on the audio."""

from __future__ import annotations

import numpy as np
import pytest

from acoustics import audio, augment, features, mixing
from acoustics.recipe import Recipe
from acoustics.settings import Settings
from conftest import speak

RATE = 16000
SETTINGS = Settings()


@pytest.fixture(scope="module")
def speech_windows(tmp_path_factory):
    path = speak("Guten Morgen, wie geht es Ihnen, ich hoffe gut", tmp_path_factory.mktemp("augment") / "speech.wav")
    signal = audio.trim_silence(audio.load_audio(path, RATE)[0], SETTINGS.trim_top_db)
    return signal, features.windows(features.mfcc(signal, SETTINGS), SETTINGS.frames)


@pytest.mark.parametrize("colour, slope_db_per_octave", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_coloured_noise_has_its_slope(colour, slope_db_per_octave):
    noise = augment.coloured_noise(colour, 4 * RATE, np.random.default_rng(0))
    assert noise.dtype == np.float32 and np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(noise.size, 1 / RATE)
    bands = [power[(frequencies >= low) & (frequencies < 2 * low)].mean() for low in (250, 500, 1000, 2000)]
    slopes = np.diff(10 * np.log10(bands))
    np.testing.assert_allclose(slopes, slope_db_per_octave, atol=0.6)


@pytest.mark.parametrize("colour", augment.NOISE_COLOURS)
@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_noise_added_to_the_features_matches_noise_added_to_the_audio(speech_windows, colour, snr_db):
    """The mixing in the mel domain gives the level of mixing in the audio at the same SNR: the mean
    log-mel level of the mix agrees within 2 dB (the two noises are different draws)."""
    signal, _ = speech_windows
    window = signal[: RATE]
    noise = augment.coloured_noise(colour, 4 * RATE, np.random.default_rng(1))
    mixed_audio = mixing.mix_at_snr(window, noise, snr_db, np.random.default_rng(2))
    scale = np.sqrt(np.mean(mixed_audio.astype(np.float64) ** 2)) / np.sqrt(np.mean((window + 0.0) ** 2) * (1 + 10 ** (-snr_db / 10)))
    expected = augment.to_power(features.mfcc(mixed_audio / scale, SETTINGS)[None])[0]
    clean = augment.to_power(features.mfcc(window, SETTINGS)[None])[0]
    mixed = augment.add_noise(clean, SETTINGS, colour, snr_db, np.random.default_rng(3))
    level = lambda power: 10 * np.log10(power.mean(axis=0))  # noqa: E731
    assert np.abs(level(mixed) - level(expected)).mean() < 2.0


def test_microphone_responses_stay_within_their_bounds():
    rng = np.random.default_rng(0)
    responses = np.array([augment.microphone_response_db(SETTINGS, 3.0, rng) for _ in range(200)])
    assert responses.shape == (200, SETTINGS.n_mels)
    octaves = np.abs(np.log2(np.maximum(augment._band_centres(SETTINGS), 20.0) / 1000))
    assert responses.min() >= -60.0 and (responses <= 3.0 * octaves + 1e-9).all()
    middle = np.argmin(np.abs(augment._band_centres(SETTINGS) - 1000))
    assert np.abs(responses[:, middle]).max() < 1.0  # the tilt turns about 1 kHz
    rolling_off = responses[:, -1] - responses[:, -6] < -6  # a low-pass: far steeper than any tilt up there
    assert 0.3 < rolling_off.mean() <= 0.5  # half are band-limited, most of those below 7.5 kHz


def test_augment_keeps_shape_labels_and_changes_the_training_windows(speech_windows):
    _, windows = speech_windows
    batch = np.concatenate([windows] * 4)
    changed = augment.augment(batch, SETTINGS, Recipe(), np.random.default_rng(0))
    assert changed.shape == batch.shape and changed.dtype == np.float32 and np.isfinite(changed).all()
    assert not np.allclose(changed, batch)
    again = augment.augment(batch, SETTINGS, Recipe(), np.random.default_rng(0))
    np.testing.assert_array_equal(again, changed)  # seeded: the same every time


def test_no_augmentation_gives_the_windows_back(speech_windows):
    _, windows = speech_windows
    recipe = Recipe(babble_probability=0.0, noise_probability=0.0, equaliser_probability=0.0, gain_db=0.0)
    np.testing.assert_allclose(augment.augment(windows, SETTINGS, recipe, np.random.default_rng(0)), windows, atol=2e-3)


def test_gain_moves_only_the_level(speech_windows):
    _, windows = speech_windows
    recipe = Recipe(babble_probability=0.0, noise_probability=0.0, equaliser_probability=0.0, gain_db=20.0)
    changed = augment.augment(windows, SETTINGS, recipe, np.random.default_rng(0))
    above_floor = (augment.to_power(windows) > 1e-7).all(axis=2)  # frames 30 dB above the dB floor in every band
    assert above_floor.mean() > 0.5
    np.testing.assert_allclose(changed[:, :, 1:][above_floor], windows[:, :, 1:][above_floor], atol=2e-3)
    shifts = np.where(above_floor, (changed[:, :, 0] - windows[:, :, 0]) / np.sqrt(SETTINGS.n_mels), np.nan)
    assert np.nanmax(np.nanmax(shifts, axis=1) - np.nanmin(shifts, axis=1)) < 1e-2 and np.nanmax(np.abs(shifts)) <= 20.0 + 1e-3


def test_other_coefficient_counts_pass_unchanged(speech_windows):
    settings = SETTINGS.replace(n_mfcc=20)
    windows = np.random.default_rng(0).normal(size=(8, 100, 20)).astype(np.float32)
    np.testing.assert_array_equal(augment.augment(windows, settings, Recipe(), np.random.default_rng(0)), windows)


def test_windows_longer_than_the_stock_of_noise_still_get_noise():
    settings = Settings(frames=1000)
    windows = np.random.default_rng(0).normal(0, 5, size=(4, 1000, 40)).astype(np.float32)
    recipe = Recipe(babble_probability=0.0, noise_probability=1.0, equaliser_probability=0.0, gain_db=0.0)
    changed = augment.augment(windows, settings, recipe, np.random.default_rng(0))
    assert changed.shape == windows.shape and np.isfinite(changed).all() and not np.allclose(changed, windows)


def test_stage4_says_when_the_features_allow_no_augmentation():
    """Augmentation works on mel power, which fewer MFCCs than bands do not give back: said in one line, not silently skipped."""
    import train_models

    from acoustics.recipe import Recipe

    assert train_models.augmentation_note(SETTINGS, Recipe()) == ""
    note = train_models.augmentation_note(SETTINGS.replace(n_mfcc=13), Recipe())
    assert note.startswith("No augmentation") and "13 MFCCs of 40 bands" in note and "\n" not in note
    off = Recipe(babble_probability=0.0, noise_probability=0.0, equaliser_probability=0.0, gain_db=0.0)
    assert train_models.augmentation_note(SETTINGS.replace(n_mfcc=13), off) == ""
    windows = np.random.default_rng(0).standard_normal((4, 100, 13)).astype(np.float32)
    np.testing.assert_array_equal(augment.augment(windows, SETTINGS.replace(n_mfcc=13), Recipe(), np.random.default_rng(1)), windows)


def test_the_front_end_inverse_gives_the_mel_spectrum_back():
    log_mel = np.random.default_rng(2).uniform(-80, 0, size=(3, 7, 40))
    coefficients = features.mel_db_to_mfcc(log_mel, 40)
    np.testing.assert_allclose(features.mfcc_to_mel_db(coefficients, 40), log_mel, atol=1e-9)
    import scipy.fft

    np.testing.assert_allclose(coefficients, scipy.fft.dct(log_mel, type=2, norm="ortho", axis=-1), atol=1e-9)
    assert features.hz_to_mel(1000.0) == pytest.approx(15.0) and features.mel_to_hz(np.array([15.0]))[0] == pytest.approx(1000.0)

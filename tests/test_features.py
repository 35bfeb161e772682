"""MFCCs: the fast implementation matches librosa; frame counts; windows for the models."""

from __future__ import annotations

import numpy as np
import pytest

from acoustics import audio, features, mixing
from acoustics.settings import Settings

SETTINGS = Settings()
RATE = SETTINGS.sample_rate


@pytest.fixture(scope="module")
def speech(spoken_clips) -> dict:
    clips = {}
    for sex, path in spoken_clips.items():
        signal, _ = audio.load_audio(path, RATE)
        clips[sex] = audio.trim_silence(signal, SETTINGS.trim_top_db)
    return clips


def signals(speech) -> dict:
    generator = np.random.default_rng(21)
    noisy = mixing.mix_at_snr(speech["male"], mixing.synthetic_room_noise(2.0, RATE, generator), 0.0, generator)
    return {
        "male-speech": speech["male"],
        "female-speech": speech["female"],
        "noisy-speech": noisy,
        "white-noise": (generator.standard_normal(RATE) * 0.1).astype(np.float32),
        "room-noise": mixing.synthetic_room_noise(1.0, RATE, generator),
        "tone": (0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32),
        "silence": np.zeros(RATE, np.float32),
    }


@pytest.mark.parametrize("name", ["male-speech", "female-speech", "noisy-speech", "white-noise", "room-noise", "tone",
                                  "silence"])
def test_mfcc_matches_librosa(speech, name):
    signal = signals(speech)[name]
    fast = features.mfcc(signal, SETTINGS)
    reference = features.reference_mfcc(signal, SETTINGS)
    assert fast.shape == reference.shape == (features.frame_count(signal.size, SETTINGS), 40)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-3)
    assert np.abs(reference).max() > 50  # the coefficients are of order 100, so 1e-3 is float32 rounding


@pytest.mark.parametrize("blocks", [1, 2.5])
def test_a_long_signal_is_transformed_a_block_at_a_time_as_librosa_does_it_whole(speech, blocks):
    """mfcc holds the spectra of :data:`features.MFCC_BLOCK_FRAMES` frames at a time: a signal over a block's
    length (speech repeated) gives librosa's coefficients frame by frame, across the blocks' edges too."""
    frames = int(blocks * features.MFCC_BLOCK_FRAMES) + 3
    samples = (frames - 1) * SETTINGS.hop_length + SETTINGS.n_fft
    signal = np.resize(np.concatenate([speech["male"], speech["female"]]), samples)
    fast = features.mfcc(signal, SETTINGS)
    assert fast.shape == (frames, SETTINGS.n_mfcc)
    np.testing.assert_allclose(fast, features.reference_mfcc(signal, SETTINGS), rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "changes",
    [{"n_mfcc": 13}, {"n_mels": 64, "n_mfcc": 20}, {"fmin": 60.0, "fmax": 7600.0},
     {"window_ms": 32.0, "hop_ms": 16.0}, {"sample_rate": 8000, "fmax": 4000.0}],
    ids=["13-mfcc", "64-mels", "band-limited", "32ms-window", "8kHz"],
)
def test_mfcc_matches_librosa_for_other_settings(speech, changes):
    settings = Settings(**changes)
    signal = audio.resample(speech["female"], RATE, settings.sample_rate)
    fast = features.mfcc(signal, settings)
    reference = features.reference_mfcc(signal, settings)
    assert fast.shape == (features.frame_count(signal.size, settings), settings.n_mfcc)
    np.testing.assert_allclose(fast, reference, rtol=0, atol=2e-3)


@pytest.mark.parametrize(
    "samples, frames",
    [(1, 1), (100, 1), (399, 1), (400, 1), (559, 1), (560, 2), (561, 2), (16000, 98), (16160, 99), (16240, 100)],
)
def test_frame_count_and_mfcc_shape(samples, frames):
    assert features.frame_count(samples, SETTINGS) == frames
    signal = np.random.default_rng(samples).uniform(-0.5, 0.5, samples).astype(np.float32)
    coefficients = features.mfcc(signal, SETTINGS)
    assert coefficients.shape == (frames, 40)
    assert np.isfinite(coefficients).all()


@pytest.mark.parametrize("samples", [1, 10, 399])
def test_short_input_gives_one_frame_like_zero_padding(samples):
    signal = np.random.default_rng(0).uniform(-0.5, 0.5, samples).astype(np.float32)
    padded = np.pad(signal, (0, SETTINGS.n_fft - samples))
    np.testing.assert_array_equal(features.mfcc(signal, SETTINGS), features.mfcc(padded, SETTINGS))
    np.testing.assert_allclose(features.mfcc(signal, SETTINGS), features.reference_mfcc(signal, SETTINGS), atol=1e-3)


def test_one_second_fills_a_model_window():
    samples = int(round(SETTINGS.window_seconds * RATE))
    assert features.frame_count(samples, SETTINGS) == SETTINGS.frames


def test_mfcc_accepts_float64_and_lists():
    signal = np.random.default_rng(1).uniform(-0.5, 0.5, 2000)
    np.testing.assert_array_equal(features.mfcc(signal, SETTINGS), features.mfcc(signal.astype(np.float32), SETTINGS))
    assert features.mfcc(list(signal[:500]), SETTINGS).shape == (1, 40)


def test_mfcc_frames_are_local():
    """A frame's coefficients depend only on its own samples (center=False): changing the end of the signal
    leaves the first frames unchanged."""
    signal = np.random.default_rng(2).uniform(-0.5, 0.5, 8000).astype(np.float32)
    changed = signal.copy()
    changed[4000:] = 0
    first, second = features.mfcc(signal, SETTINGS), features.mfcc(changed, SETTINGS)
    untouched = (4000 - SETTINGS.n_fft) // SETTINGS.hop_length + 1
    np.testing.assert_array_equal(first[:untouched], second[:untouched])
    assert not np.array_equal(first[untouched:], second[untouched:])


def test_silence_gives_the_amin_floor():
    coefficients = features.mfcc(np.zeros(4000, np.float32), SETTINGS)
    # log10(1e-10) * 10 = -100 dB in every mel band; the orthonormal DCT puts it all in c0.
    np.testing.assert_allclose(coefficients[:, 0], -100 * np.sqrt(40), rtol=1e-5)
    np.testing.assert_allclose(coefficients[:, 1:], 0, atol=1e-3)


# windows ---------------------------------------------------------------------------------------
def numbered(count: int, coefficients: int = 40) -> np.ndarray:
    """Row i is all i+1: no zero rows, and every row says where it came from."""
    return np.repeat(np.arange(1, count + 1, dtype=np.float32)[:, None], coefficients, axis=1)


@pytest.mark.parametrize("count, expected", [(1, 1), (30, 1), (99, 1), (100, 1), (101, 2), (149, 2), (150, 2),
                                             (151, 3), (250, 4), (1000, 19)])
def test_windows_shapes_and_ends(count, expected):
    matrix = numbered(count)
    result = features.windows(matrix, 100)
    assert result.shape == (expected, 100, 40)
    assert result.dtype == np.float32
    assert not (result == 0).all(axis=2).any()  # no zero rows
    if count >= 100:
        np.testing.assert_array_equal(result[0], matrix[:100])
        np.testing.assert_array_equal(result[-1], matrix[-100:])  # the last window ends at the last frame
        starts = result[:, 0, 0].astype(int) - 1
        assert np.all(np.diff(starts) <= 50) and np.all(np.diff(starts) > 0)  # half overlap or more
        covered = np.zeros(count, bool)
        for start in starts:
            covered[start : start + 100] = True
        assert covered.all()
    else:
        rows = result[0, :, 0].astype(int) - 1
        np.testing.assert_array_equal(rows, np.arange(100) % count)  # tiled from its start


@pytest.mark.parametrize("frames", [8, 9, 50])
@pytest.mark.parametrize("count", [1, 7, 8, 9, 23])
def test_windows_other_window_sizes(frames, count):
    result = features.windows(numbered(count, 3), frames)
    assert result.shape[1:] == (frames, 3)
    np.testing.assert_array_equal(result[-1, -1], numbered(count, 3)[-1] if count >= frames else result[-1, -1])
    assert not (result == 0).all(axis=2).any()


@pytest.mark.parametrize(
    "matrix",
    [np.zeros((0, 40), np.float32), np.zeros(40, np.float32), np.zeros((2, 3, 4), np.float32), np.float32(1.0),
     np.zeros((0, 0), np.float32)],
    ids=["empty", "1-d", "3-d", "scalar", "0x0"],
)
def test_windows_refuses_empty_or_wrong_shape(matrix):
    with pytest.raises(ValueError):
        features.windows(matrix, 100)


def test_windows_of_real_features(speech):
    matrix = features.mfcc(speech["male"], SETTINGS)
    result = features.windows(matrix, SETTINGS.frames)
    assert result.shape[1:] == (SETTINGS.frames, SETTINGS.n_mfcc)
    np.testing.assert_array_equal(result[-1], matrix[-SETTINGS.frames :])


@pytest.mark.parametrize(
    "sample_rate, n_fft, n_mels, fmin, fmax",
    [(16000, 400, 40, 0.0, 8000.0), (16000, 512, 64, 60.0, 7600.0), (8000, 200, 40, 0.0, 4000.0),
     (22050, 551, 128, 0.0, 11025.0), (16000, 400, 26, 300.0, 3400.0)],
)
def test_mel_filter_bank_matches_librosa(sample_rate, n_fft, n_mels, fmin, fmax):
    mel_filter_bank = getattr(features, "mel_filter_bank", None)
    if mel_filter_bank is None:
        pytest.skip("features.mel_filter_bank does not exist (the filter bank comes from librosa itself)")
    import librosa.filters

    ours = mel_filter_bank(sample_rate, n_fft, n_mels, fmin, fmax)
    reference = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == reference.shape == (n_mels, 1 + n_fft // 2)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-7 * float(np.abs(reference).max()))

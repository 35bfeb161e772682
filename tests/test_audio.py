"""Audio in and out with real files: every format and rate loads to float32 mono at 16 kHz, bad files are
refused with one line naming the file, speech checks, silence trimming, noise mixing and atomic writing."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, example, given, settings as hypothesis_settings, strategies as st
from hypothesis.extra import numpy as hnp

from acoustics import audio, features, mixing, speechcheck
from acoustics.errors import AcousticsError, BadAudioError, BadParameterError, NoSpeechError
from acoustics.settings import Settings
from conftest import one_line, speak

RATE = 16000


def tone(frequency: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    time_axis = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * time_axis)).astype(np.float32)


def dominant_frequency(signal: np.ndarray, rate: int) -> float:
    """Frequency of the spectral peak, refined by parabolic interpolation of the log magnitude."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size))) + 1e-12
    peak = int(np.argmax(spectrum[1:-1])) + 1
    left, centre, right = np.log(spectrum[peak - 1 : peak + 2])
    shift = 0.5 * (left - right) / (left - 2 * centre + right)
    return (peak + shift) * rate / signal.size


def rms(signal) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(signal, dtype=np.float64)))))


# Loading: good files ---------------------------------------------------------------------------
# (id, rate, channels, subtype, format, suffix, tolerance of the content against the ideal 16 kHz tone)
GOOD_FILES = [
    ("16k-pcm16", 16000, 1, "PCM_16", "WAV", ".wav", 1e-4),
    ("8k-pcm16", 8000, 1, "PCM_16", "WAV", ".wav", None),
    ("22k-pcm16", 22050, 1, "PCM_16", "WAV", ".wav", None),
    ("44k-pcm16", 44100, 1, "PCM_16", "WAV", ".wav", None),
    ("48k-pcm16", 48000, 1, "PCM_16", "WAV", ".wav", None),
    ("96k-pcm24", 96000, 1, "PCM_24", "WAV", ".wav", None),
    ("16k-stereo", 16000, 2, "PCM_16", "WAV", ".wav", 1e-4),
    ("48k-stereo", 48000, 2, "PCM_16", "WAV", ".wav", None),
    ("16k-4ch", 16000, 4, "PCM_16", "WAV", ".wav", 1e-4),
    ("16k-u8", 16000, 1, "PCM_U8", "WAV", ".wav", 1.0 / 100),
    ("16k-pcm24", 16000, 1, "PCM_24", "WAV", ".wav", 1e-6),
    ("16k-pcm32", 16000, 1, "PCM_32", "WAV", ".wav", 1e-6),
    ("16k-float", 16000, 1, "FLOAT", "WAV", ".wav", 1e-7),
    ("16k-double", 16000, 1, "DOUBLE", "WAV", ".wav", 1e-7),
    ("16k-wavex", 16000, 1, "PCM_16", "WAVEX", ".wav", 1e-4),
    ("16k-flac", 16000, 1, "PCM_16", "FLAC", ".flac", 1e-4),
    ("44k-flac24", 44100, 2, "PCM_24", "FLAC", ".flac", None),
    ("16k-aiff", 16000, 1, "PCM_16", "AIFF", ".aiff", 1e-4),
    ("48k-ogg", 48000, 1, "VORBIS", "OGG", ".ogg", None),
]


def channel_signals(rate: int, channels: int, seconds: float = 1.0) -> np.ndarray:
    """Channel 0 holds a 440 Hz tone; the others hold quieter tones, so the average is known."""
    columns = [tone(440, seconds, rate, 0.5)]
    columns += [tone(1000 + 500 * index, seconds, rate, 0.1) for index in range(1, channels)]
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("name, rate, channels, subtype, file_format, suffix, tolerance", GOOD_FILES,
                         ids=[case[0] for case in GOOD_FILES])
def test_load_audio_gives_float32_mono_at_16k(tmp_path, name, rate, channels, subtype, file_format, suffix, tolerance):
    seconds = 1.0
    data = channel_signals(rate, channels, seconds)
    path = tmp_path / f"{name}{suffix}"
    soundfile.write(path, data, rate, subtype=subtype, format=file_format)

    signal, info = audio.load_audio(path, RATE)

    assert signal.dtype == np.float32 and signal.ndim == 1
    assert signal.flags.c_contiguous
    assert abs(signal.size - data.shape[0] * RATE / rate) <= 1  # duration kept within one sample at 16 kHz
    assert np.isfinite(signal).all() and np.abs(signal).max() <= 1.0
    assert info.sample_rate == rate and info.channels == channels and info.frames == data.shape[0]
    assert info.duration_seconds == pytest.approx(seconds, abs=1 / rate)
    assert info.subtype == subtype
    assert abs(dominant_frequency(signal, RATE) - 440) < 1.0
    expected = audio.DCBlocker(RATE)(channel_signals(RATE, channels, seconds).mean(axis=1))  # the channels' average
    middle = slice(800, signal.size - 800)  # away from resampling edge effects
    if tolerance is not None:
        assert np.abs(signal - expected[: signal.size]).max() <= tolerance
    else:
        n = min(signal.size, expected.size)
        correlation = np.corrcoef(signal[:n][middle], expected[:n][middle])[0, 1]
        assert correlation > 0.999
        assert rms(signal[middle]) == pytest.approx(rms(expected[middle]), rel=0.02)


@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("block", [1, 777, 1024, 5000, 100_000])
def test_the_dc_blocker_is_scipy_lfilter_in_blocks_of_any_size(rate, block):
    import scipy.signal

    signal = (np.random.default_rng(3).normal(0, 0.1, 3 * rate) + 0.12).astype(np.float32)
    blocker = audio.DCBlocker(rate)
    numerator, denominator = blocker.gain * np.array([1.0, -1.0]), np.array([1.0, -blocker.pole])
    expected, _ = scipy.signal.lfilter(numerator, denominator, signal.astype(np.float64),
                                       zi=scipy.signal.lfilter_zi(numerator, denominator) * signal[0])
    blocked = np.concatenate([blocker(signal[start:start + block]) for start in range(0, signal.size, block)])
    np.testing.assert_allclose(blocked, expected, atol=1e-6)
    assert abs(blocked[rate // 10:].mean()) < 1e-3  # the offset is gone after 0.1 s, and there is no step before


def test_a_dc_offset_is_taken_out_and_the_speech_band_kept(tmp_path, spoken_clips):
    speech, _ = audio.load_audio(spoken_clips["male"], RATE)
    path = tmp_path / "offset.wav"
    soundfile.write(path, np.clip(speech + 0.15, -1, 1), RATE, subtype="PCM_16")
    loaded, _ = audio.load_audio(path, RATE)
    assert abs(loaded.mean()) < 2e-3
    assert audio.level_dbfs(loaded) == pytest.approx(audio.level_dbfs(speech), abs=0.2)
    a, b = features.mfcc(loaded, Settings()), features.mfcc(speech, Settings())
    assert np.median(np.abs(a[:, 1:] - b[:, 1:])) < 0.5  # the same spectral shape, frame by frame


def test_stereo_is_the_average_of_the_channels(tmp_path):
    left, right = tone(440, 0.5, RATE, 0.8), tone(440, 0.5, RATE, 0.2)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    signal, info = audio.load_audio(path, RATE)
    assert info.channels == 2
    np.testing.assert_allclose(signal, audio.DCBlocker(RATE)((left + right) / 2), atol=1e-7)


def test_float_file_above_full_scale_is_clipped_to_one(tmp_path):
    path = tmp_path / "loud.wav"
    soundfile.write(path, tone(440, 0.5, RATE, 1.5), RATE, subtype="FLOAT")
    signal, _ = audio.load_audio(path, RATE)
    assert np.abs(signal).max() <= 1.0
    assert np.abs(signal).max() == pytest.approx(1.0)


@pytest.mark.parametrize("target", [8000, 22050, 44100, 48000])
def test_load_audio_resamples_to_any_target_rate(tmp_path, target):
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(440, 1.0, RATE), RATE)
    signal, _ = audio.load_audio(path, target)
    assert abs(signal.size - target) <= 1
    assert abs(dominant_frequency(signal, target) - 440) < 1.0


def test_real_espeak_speech_loads(tmp_path):
    path = speak("Guten Morgen", tmp_path / "speech.wav")
    signal, info = audio.load_audio(path, RATE)
    assert info.sample_rate == 22050 and info.channels == 1
    assert abs(signal.size - info.frames * RATE / 22050) <= 1
    speechcheck.check_speech(audio.trim_silence(signal, 30.0), RATE, path)


# Loading: bad files ----------------------------------------------------------------------------
def wav_header(rate: int, bits: int, data_bytes: int, channels: int = 1) -> bytes:
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
            + b"data" + struct.pack("<I", data_bytes))


def good_wav_bytes(tmp_path) -> bytes:
    path = tmp_path / "source.bin"
    soundfile.write(path, tone(440, 1.0, RATE), RATE, subtype="PCM_16", format="WAV")
    data = path.read_bytes()
    path.unlink()
    return data


def make_empty(path, tmp_path):
    path.write_bytes(b"")


def make_text(path, tmp_path):
    path.write_text("This is not audio, it is a note.\n" * 20, encoding="utf-8")


def make_riff_garbage(path, tmp_path):
    path.write_bytes(b"RIFF" + np.random.default_rng(1).bytes(4000))


def make_short_header(path, tmp_path):
    path.write_bytes(good_wav_bytes(tmp_path)[:30])


def make_zero_frames(path, tmp_path):
    soundfile.write(path, np.zeros(0, dtype=np.float32), RATE, subtype="PCM_16")


def make_header_only(path, tmp_path):
    path.write_bytes(good_wav_bytes(tmp_path)[:44])  # the header promises 1 s, no data follows


def make_nan(path, tmp_path):
    data = tone(440, 0.5, RATE)
    data[1000] = np.nan
    soundfile.write(path, data, RATE, subtype="FLOAT")


def make_inf(path, tmp_path):
    data = tone(440, 0.5, RATE)
    data[-1] = np.inf
    soundfile.write(path, data, RATE, subtype="FLOAT")


def make_minus_inf_double(path, tmp_path):
    data = tone(440, 0.5, RATE).astype(np.float64)
    data[0] = -np.inf
    soundfile.write(path, data, RATE, subtype="DOUBLE")


def make_folder(path, tmp_path):
    path.mkdir()


def make_missing(path, tmp_path):
    pass


BAD_FILES = [
    ("empty", make_empty, "empty"),
    ("text", make_text, "not a readable audio file"),
    ("riff-garbage", make_riff_garbage, "not a readable audio file"),
    ("short-header", make_short_header, "not a readable audio file"),
    ("zero-frames", make_zero_frames, "no samples"),
    ("header-only", make_header_only, "no samples"),
    ("nan", make_nan, "nan"),
    ("inf", make_inf, "infinite"),
    ("minus-inf-double", make_minus_inf_double, "infinite"),
    ("folder", make_folder, "folder"),
    ("missing", make_missing, "no such file"),
]


@pytest.mark.parametrize("file_name", ["take.wav", "Jürgen's Aufnahme (2).wav"])
@pytest.mark.parametrize("case, make, reason", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_bad_files_raise_bad_audio_error_naming_the_file(tmp_path, case, make, reason, file_name):
    path = tmp_path / file_name
    make(path, tmp_path)
    with pytest.raises(BadAudioError) as caught:
        audio.load_audio(path, RATE)
    message = one_line(caught.value, path.name)
    assert reason in message.lower()
    assert isinstance(caught.value, AcousticsError)


def cut_in_the_middle(path, tmp_path):
    data = good_wav_bytes(tmp_path)
    path.write_bytes(data[: len(data) // 2])


def header_then_short_garbage(path, tmp_path):
    path.write_bytes(wav_header(RATE, 16, 32000) + np.random.default_rng(2).bytes(1000))


def header_claims_ten_hours(path, tmp_path):
    path.write_bytes(wav_header(8000, 8, 8000 * 3600 * 10) + bytes([128]) * 1000)


CUT_SHORT = [("cut-in-the-middle", cut_in_the_middle), ("header-then-garbage", header_then_short_garbage),
             ("claims-ten-hours", header_claims_ten_hours)]


@pytest.mark.parametrize("case, make", CUT_SHORT, ids=[case[0] for case in CUT_SHORT])
def test_cut_short_wav_is_refused(tmp_path, case, make):
    path = tmp_path / f"{case}.wav"
    make(path, tmp_path)
    with pytest.raises(BadAudioError) as caught:
        audio.load_audio(path, RATE)
    message = one_line(caught.value, path.name)
    assert "cut short" in message or "corrupt" in message


@pytest.mark.parametrize("limit, refused", [(0.5, True), (0.999, True), (1.0, False), (2.0, False)])
def test_max_seconds_limit(tmp_path, limit, refused):
    path = tmp_path / "one-second.wav"
    soundfile.write(path, tone(440, 1.0, RATE), RATE)
    if refused:
        with pytest.raises(BadAudioError) as caught:
            audio.load_audio(path, RATE, max_seconds=limit)
        assert "limit" in one_line(caught.value, path.name)
        with pytest.raises(BadAudioError):
            audio.probe(path, max_seconds=limit)
    else:
        signal, _ = audio.load_audio(path, RATE, max_seconds=limit)
        assert signal.size == RATE


def test_ten_hour_file_is_refused_from_its_header_without_reading_it(tmp_path):
    """A sparse file: a real 8 kHz 8-bit header and ten hours (288 MB) of data that take no disk space."""
    path = tmp_path / "ten hours.wav"
    data_bytes = 8000 * 3600 * 10
    with open(path, "wb") as handle:
        handle.write(wav_header(8000, 8, data_bytes))
        handle.truncate(44 + data_bytes)
    assert path.stat().st_size > audio.MAX_FILE_SECONDS * 8000
    started = time.perf_counter()
    with pytest.raises(BadAudioError) as caught:
        audio.load_audio(path, RATE)
    elapsed = time.perf_counter() - started
    message = one_line(caught.value, path.name)
    assert "600" in message and "limit" in message  # 600.0 minutes long
    assert elapsed < 0.5  # decoding 288 M samples would take seconds and 1 GB of memory
    info_started = time.perf_counter()
    with pytest.raises(BadAudioError):
        audio.probe(path)
    assert time.perf_counter() - info_started < 0.5


# check_speech ----------------------------------------------------------------------------------
def silent_zeros():
    return np.zeros(RATE, dtype=np.float32)


def quiet_noise():
    noise = np.random.default_rng(3).standard_normal(RATE)
    return (noise * 10 ** (-80 / 20)).astype(np.float32)  # -80 dBFS


def clipped_tone():
    return np.clip(tone(440, 1.0, RATE, 0.5) * 4, -1.0, 1.0)


def one_millisecond():
    return tone(440, 0.001, RATE, 0.5)


@pytest.mark.parametrize(
    "make, reason",
    [(silent_zeros, "silent"), (clipped_tone, "clipped"), (one_millisecond, "1 ms")],
    ids=["zeros", "clipped", "1-ms"],
)
def test_check_speech_refuses_with_the_reason(make, reason):
    with pytest.raises(BadAudioError) as caught:
        speechcheck.check_speech(make(), RATE, "recording-7.wav")
    message = str(caught.value)
    assert reason in message and "recording-7.wav" in message and "\n" not in message


def test_check_speech_clipped_can_be_allowed():
    speechcheck.check_speech(clipped_tone(), RATE, "x.wav", allow_clipped=True)


@pytest.mark.parametrize("samples, refused", [(3999, True), (4000, False)])
def test_check_speech_minimum_duration_boundary(samples, refused):
    signal = tone(440, 1.0, RATE, 0.3)[:samples]
    if refused:
        with pytest.raises(BadAudioError, match="minimum"):
            speechcheck.check_speech(signal, RATE, "x")
    else:
        speechcheck.check_speech(signal, RATE, "x")


@pytest.mark.parametrize("clipped_samples, refused", [(500, False), (501, True)])
def test_check_speech_clip_fraction_boundary(clipped_samples, refused):
    signal = tone(440, 10000 / RATE, RATE, 0.3)  # 10,000 samples: 5 % is 500
    signal[:clipped_samples] = 1.0
    if refused:
        with pytest.raises(BadAudioError, match="clipped"):
            speechcheck.check_speech(signal, RATE, "x")
    else:
        speechcheck.check_speech(signal, RATE, "x")


@pytest.mark.parametrize("sex", ["male", "female"])
def test_check_speech_passes_real_speech(spoken_clips, sex):
    signal, _ = audio.load_audio(spoken_clips[sex], RATE)
    speech = audio.trim_silence(signal, 30.0)
    speechcheck.check_speech(speech, RATE, spoken_clips[sex])
    assert audio.level_dbfs(speech) > audio.SILENCE_DBFS
    assert audio.clipped_fraction(speech) <= audio.CLIP_FRACTION


# usable_speech: speech judged against the recording's own floor ---------------------------------
def white_noise(seconds: float, level_dbfs: float, seed: int = 3) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(int(round(seconds * RATE)))
    return (values * 10 ** (level_dbfs / 20)).astype(np.float32)


def at_level(signal: np.ndarray, level_dbfs: float) -> np.ndarray:
    """``signal`` scaled to an RMS level of ``level_dbfs`` over the whole of it."""
    return (signal * 10 ** ((level_dbfs - audio.level_dbfs(signal)) / 20)).astype(np.float32)


def clipped_at(signal: np.ndarray, fraction: float) -> np.ndarray:
    """``signal`` amplified until ``fraction`` of its trimmed speech reaches full scale, then clipped."""
    speech = audio.trim_silence(signal, 30.0)
    gain = audio.CLIP_LEVEL / np.quantile(np.abs(speech), 1 - fraction)
    return np.clip(signal * gain, -1.0, 1.0).astype(np.float32)


def in_white_noise(signal: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal`` with white noise all along whose power is ``snr_db`` below that of its trimmed speech."""
    speech = audio.trim_silence(signal, 30.0)
    noise = white_noise(signal.size / RATE, audio.level_dbfs(speech) - snr_db)
    return np.clip(signal + noise, -1.0, 1.0)


def padded(signal: np.ndarray, seconds: float = 0.5) -> np.ndarray:
    pad = np.zeros(int(seconds * RATE), np.float32)
    return np.concatenate([pad, signal, pad])


@pytest.mark.parametrize("kind, note", [
    ("as recorded", ""),
    ("at -60 dBFS", "quiet: "),
    ("at -80 dBFS", "quiet: "),
    ("1 % clipped", "clipped 1.0 %"),
    ("4 % clipped", "clipped 4.0 %"),
    ("0 dB SNR white noise", "noisy"),
    ("-65 dBFS with -90 dBFS hiss", "quiet: "),
])
def test_speech_a_person_hears_is_usable_with_a_note(kind, note, spoken_clips):
    clip = padded(audio.load_audio(spoken_clips["female"], RATE)[0])
    signal = {
        "as recorded": lambda: clip,
        "at -60 dBFS": lambda: at_level(clip, -60),
        "at -80 dBFS": lambda: at_level(clip, -80),
        "1 % clipped": lambda: clipped_at(clip, 0.01),
        "4 % clipped": lambda: clipped_at(clip, 0.04),
        "0 dB SNR white noise": lambda: in_white_noise(clip, 0.0),
        "-65 dBFS with -90 dBFS hiss": lambda: at_level(clip, -65) + white_noise(clip.size / RATE, -90),
    }[kind]()
    speech = speechcheck.usable_speech(signal, RATE, 30.0, "clip.wav")
    assert speech.samples.size >= RATE // 2
    assert (note in speech.note) if note else speech.note == "", speech.note


@pytest.mark.parametrize("kind, reason", [
    ("digital silence", "silent"),
    ("constant value", "no speech detected"),
    ("440 Hz sine", "no speech detected"),
    ("120 Hz hum", "no speech detected"),
    ("white noise", "no speech detected"),
    ("quiet white noise", "no speech detected"),
    ("room noise", "no speech detected"),
    ("white noise, 60 s", "no speech detected"),
    ("10 % clipped speech", "clipped (10.0% of samples"),
])
def test_no_speech_is_refused(kind, reason, spoken_clips):
    seconds = np.arange(3 * RATE) / RATE
    signal = {
        "digital silence": lambda: np.zeros(3 * RATE, np.float32),
        "constant value": lambda: np.full(3 * RATE, -0.25, np.float32),
        "440 Hz sine": lambda: 0.5 * np.sin(2 * np.pi * 440 * seconds),
        "120 Hz hum": lambda: 0.2 * np.sin(2 * np.pi * 120 * seconds) + white_noise(3, -70),
        "white noise": lambda: white_noise(3, -20),
        "quiet white noise": lambda: white_noise(3, -80),
        "room noise": lambda: mixing.synthetic_room_noise(5, RATE, np.random.default_rng(1)),
        "white noise, 60 s": lambda: white_noise(60, -30),
        "10 % clipped speech": lambda: clipped_at(padded(audio.load_audio(spoken_clips["male"], RATE)[0]), 0.1),
    }[kind]().astype(np.float32)
    with pytest.raises(BadAudioError) as caught:
        speechcheck.usable_speech(signal, RATE, 30.0, "clip.wav")
    message = str(caught.value)
    assert reason in message and message.startswith("clip.wav: ") and "\n" not in message
    assert isinstance(caught.value, NoSpeechError) == (reason == "no speech detected")


def test_speech_band_levels_of_a_long_file_in_blocks():
    """A file longer than one block of 4,096 frames gives one level per hop, the same as in one piece."""
    signal = white_noise(70, -30)
    levels = speechcheck.speech_band_levels(signal, RATE)
    hop = int(speechcheck.SPEECH_HOP_SECONDS * RATE)
    assert levels.size == (signal.size - int(speechcheck.SPEECH_FRAME_SECONDS * RATE)) // hop + 1
    np.testing.assert_allclose(levels[:100], speechcheck.speech_band_levels(signal[: 101 * hop + 512], RATE)[:100], atol=1e-4)
    assert abs(np.median(levels) - (-30 + 10 * np.log10(850 / 8000))) < 1.0  # white noise: the band's share of the power


def test_level_and_clipped_fraction():
    assert audio.level_dbfs(np.zeros(10, np.float32)) == float("-inf")
    assert audio.level_dbfs(np.zeros(0, np.float32)) == float("-inf")
    assert audio.level_dbfs(np.ones(10, np.float32)) == pytest.approx(0.0)
    assert audio.level_dbfs(tone(440, 1.0, RATE, 1.0)) == pytest.approx(-3.01, abs=0.01)
    assert audio.clipped_fraction(np.zeros(0, np.float32)) == 0.0
    assert audio.clipped_fraction(np.array([0.0, 0.98, -0.99, 0.5], np.float32)) == 0.5


# trim_silence ----------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["zeros", "minus-70-dBFS-noise"])
@pytest.mark.parametrize("seconds", [0.5, 2.0])
def test_trim_silence_removes_added_silence(spoken_clips, padding, seconds):
    signal, _ = audio.load_audio(spoken_clips["male"], RATE)
    reference = audio.trim_silence(signal, 30.0)
    count = int(seconds * RATE)
    if padding == "zeros":
        before, after = np.zeros(count, np.float32), np.zeros(count, np.float32)
    else:
        generator = np.random.default_rng(5)
        before, after = (generator.standard_normal((2, count)) * 10 ** (-70 / 20)).astype(np.float32)
    padded = np.concatenate([before, signal, after])

    trimmed = audio.trim_silence(padded, 30.0)

    assert abs(trimmed.size - reference.size) <= 1024  # within the trimming's frame granularity
    assert trimmed.size < padded.size - 2 * count + 1024
    assert np.abs(trimmed).max() == np.abs(signal).max()  # the speech itself is kept
    assert trimmed.dtype == np.float32


def test_trim_silence_keeps_short_signals():
    short = tone(440, 0.05, RATE)
    assert audio.trim_silence(short, 30.0) is short


# mix_at_snr ------------------------------------------------------------------------------------
def exact_snr(speech: np.ndarray, noise: np.ndarray, target: float, seed: int) -> tuple:
    """Mix, and find the SNR that was really mixed in, without relying on how the offset is drawn.

    The same speech scaled far down is mixed with the same generator seed: that mix is never rescaled, so
    ``mix - speech`` is exactly the noise that was added. The full-level mix must be proportional to it
    (a rescale scales speech and noise alike)."""
    mixed = mixing.mix_at_snr(speech, noise, target, np.random.default_rng(seed))
    scale = 1e-4 / float(np.abs(speech).max())
    quiet_speech = (speech.astype(np.float64) * scale).astype(np.float32)
    quiet_mix = mixing.mix_at_snr(quiet_speech, noise, target, np.random.default_rng(seed)).astype(np.float64)
    added = quiet_mix - quiet_speech
    snr = 10 * np.log10(np.mean(quiet_speech.astype(np.float64) ** 2) / np.mean(added**2))
    ratio = np.dot(mixed, quiet_mix) / np.dot(quiet_mix, quiet_mix)
    residual = np.abs(mixed - ratio * quiet_mix).max() / np.abs(mixed).max()
    return mixed, float(snr), float(residual)


@pytest.fixture(scope="module")
def speech16k(spoken_clips) -> np.ndarray:
    signal, _ = audio.load_audio(spoken_clips["female"], RATE)
    return audio.trim_silence(signal, 30.0)


@pytest.fixture(scope="module")
def room_noise() -> dict:
    generator = np.random.default_rng(11)
    return {"short": mixing.synthetic_room_noise(0.3, RATE, generator),
            "long": mixing.synthetic_room_noise(10.0, RATE, generator)}


@pytest.mark.parametrize("length", ["short", "long"])
@pytest.mark.parametrize("target", [20.0, 10.0, 5.0, 0.0, -5.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mix_at_snr_hits_the_target(speech16k, room_noise, length, target, seed):
    noise = room_noise[length]
    mixed, snr, residual = exact_snr(speech16k, noise, target, seed)
    assert snr == pytest.approx(target, abs=0.01)  # exact up to float32 rounding
    assert residual < 1e-5  # a peak rescale scales speech and noise alike
    assert mixed.dtype == np.float32 and mixed.shape == speech16k.shape
    assert np.isfinite(mixed).all() and np.abs(mixed).max() <= 0.99 + 1e-6
    # The blind estimate from speech and mix alone: its least-squares gain soaks up the chance correlation of
    # speech and noise (about 8.7*|<n,s>|/<s,s> dB), so it is within 0.1 dB only at 10 dB and above.
    tolerance = 0.1 if target >= 10 else 0.5
    assert mixing.snr_db(speech16k, mixed) == pytest.approx(target, abs=tolerance)


def test_mix_at_snr_loops_short_noise(speech16k, room_noise):
    noise = room_noise["short"]
    assert noise.size < speech16k.size / 4
    quiet = speech16k * (1e-4 / np.abs(speech16k).max())
    added = mixing.mix_at_snr(quiet, noise, 0.0, np.random.default_rng(0)).astype(np.float64) - quiet
    # The added noise repeats with the noise's period.
    period = noise.size
    np.testing.assert_allclose(added[period : 2 * period], added[:period], rtol=0, atol=1e-9)


def test_mix_at_snr_is_deterministic_for_a_seeded_generator(speech16k, room_noise):
    first = mixing.mix_at_snr(speech16k, room_noise["long"], 5.0, np.random.default_rng(42))
    second = mixing.mix_at_snr(speech16k, room_noise["long"], 5.0, np.random.default_rng(42))
    other = mixing.mix_at_snr(speech16k, room_noise["long"], 5.0, np.random.default_rng(43))
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("target", [-10.0, -5.0, 0.0])
def test_mix_at_snr_stays_within_full_scale_for_loud_speech(target):
    speech = np.clip(tone(200, 1.0, RATE, 0.97) + tone(3000, 1.0, RATE, 0.02), -0.99, 0.99)
    noise = np.random.default_rng(1).standard_normal(RATE).astype(np.float32)
    mixed, snr, residual = exact_snr(speech, noise, target, 0)
    assert np.abs(mixed).max() == pytest.approx(0.99, abs=1e-6)  # rescaled to just under full scale
    assert snr == pytest.approx(target, abs=0.01) and residual < 1e-5


@pytest.mark.parametrize(
    "noise, match",
    [(np.zeros(0, np.float32), "empty"), (np.zeros(1000, np.float32), "silent"), (np.zeros(1, np.float32), "silent")],
    ids=["empty", "zeros", "one-zero"],
)
def test_mix_at_snr_refuses_empty_or_silent_noise(noise, match):
    with pytest.raises(BadParameterError, match=match) as caught:
        mixing.mix_at_snr(tone(440, 0.5, RATE), noise, 10.0, np.random.default_rng(0))
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("speech", [np.zeros(0, np.float32), np.zeros(1000, np.float32)], ids=["empty", "zeros"])
def test_mix_at_snr_refuses_empty_or_silent_speech(speech):
    with pytest.raises(BadParameterError):
        mixing.mix_at_snr(speech, np.ones(100, np.float32) * 0.1, 10.0, np.random.default_rng(0))


def test_mix_at_snr_with_noise_that_starts_with_digital_silence():
    # 1 s of digital silence, then 1 s of noise; 0.25 s of speech: about 3 offsets in 8 fall into the silence.
    noise = np.concatenate([np.zeros(RATE), np.random.default_rng(9).standard_normal(RATE) * 0.05]).astype(np.float32)
    speech = tone(300, 0.25, RATE, 0.3)
    for seed in range(32):
        mixed = mixing.mix_at_snr(speech, noise, 10.0, np.random.default_rng(seed))
        assert np.isfinite(mixed).all()


def test_snr_db_of_known_mix():
    speech = tone(440, 1.0, RATE, 0.5).astype(np.float64)
    noise = tone(1000, 1.0, RATE, 0.05).astype(np.float64)  # orthogonal to the speech over whole periods
    assert mixing.snr_db(speech, speech + noise) == pytest.approx(20.0, abs=1e-6)
    assert mixing.snr_db(speech, 0.3 * (speech + noise)) == pytest.approx(20.0, abs=1e-6)


# synthetic noise -------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [0.001, 0.5, 3.0])
@pytest.mark.parametrize("level", [-45.0, -20.0])
def test_synthetic_room_noise(seconds, level):
    noise = mixing.synthetic_room_noise(seconds, RATE, np.random.default_rng(0), level)
    assert noise.dtype == np.float32 and noise.size == int(round(seconds * RATE))
    assert audio.level_dbfs(noise) == pytest.approx(level, abs=0.01)
    assert np.array_equal(noise, mixing.synthetic_room_noise(seconds, RATE, np.random.default_rng(0), level))


@pytest.mark.parametrize("seconds", [0.0, -1.0, 1e-6])
def test_synthetic_room_noise_refuses_no_duration(seconds):
    with pytest.raises(BadParameterError):
        mixing.synthetic_room_noise(seconds, RATE, np.random.default_rng(0))


# write_wav -------------------------------------------------------------------------------------
def test_write_wav_round_trip_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "sub folder" / "out.wav"
    signal = tone(440, 0.5, RATE, 0.5)
    assert audio.write_wav(path, signal, RATE) == path
    assert sorted(os.listdir(path.parent)) == ["out.wav"]
    info = soundfile.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (RATE, 1, "PCM_16", "WAV")
    loaded, _ = audio.load_audio(path, RATE)
    np.testing.assert_allclose(loaded, audio.DCBlocker(RATE)(signal), atol=1 / 32768 + 1e-6)


@pytest.mark.parametrize("free, message", [(100, "No space left on device"), (10**9, "libsndfile: ")])
def test_write_wav_on_a_full_disk_raises_os_error_and_keeps_the_old_file(tmp_path, monkeypatch, free, message):
    """libsndfile calls a full disk a "System error"; write_wav says what it is, as an OSError its callers handle."""
    import shutil

    path = audio.write_wav(tmp_path / "noise.wav", tone(440, 0.5, RATE), RATE)
    before = path.read_bytes()

    def fails(file, *arguments, **options) -> None:
        Path(file).write_bytes(b"RIFF")
        raise soundfile.LibsndfileError(2, prefix=f"Error opening {file!r}: ")  # libsndfile's SF_ERR_SYSTEM

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(soundfile, "write", fails)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage._replace(free=free))
    with pytest.raises(OSError, match=message):
        audio.write_wav(path, tone(880, 0.5, RATE), RATE)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["noise.wav"]


def test_write_wav_clips_to_full_scale(tmp_path):
    path = audio.write_wav(tmp_path / "loud.wav", tone(440, 0.2, RATE, 3.0), RATE)
    loaded, _ = audio.load_audio(path, RATE)
    assert np.abs(loaded).max() <= 1.0 and np.abs(loaded).max() > 0.99


def test_write_wav_replaces_an_existing_file(tmp_path):
    path = tmp_path / "out.wav"
    audio.write_wav(path, tone(440, 0.5, RATE), RATE)
    audio.write_wav(path, tone(880, 0.25, RATE), RATE)
    loaded, _ = audio.load_audio(path, RATE)
    assert loaded.size == RATE // 4
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]


@pytest.mark.parametrize(
    "signal, sample_rate",
    [(np.zeros(100, np.float32), 0), (np.zeros(100, np.float32), -8000), (np.zeros((2, 2, 2), np.float32), RATE),
     (np.array(["a", "b"]), RATE)],
    ids=["rate-0", "negative-rate", "3-d", "strings"],
)
def test_failing_write_wav_keeps_the_previous_file(tmp_path, signal, sample_rate):
    path = tmp_path / "out.wav"
    audio.write_wav(path, tone(440, 0.5, RATE), RATE)
    before = path.read_bytes()
    with pytest.raises(Exception):
        audio.write_wav(path, signal, sample_rate)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]


# Property tests --------------------------------------------------------------------------------
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.floats(-10, 30),
    speech_samples=st.integers(200, 6000),
    noise_samples=st.integers(1, 9000),
    amplitude=st.floats(0.001, 0.6),
    seed=st.integers(0, 2**32 - 1),
)
@example(target=-10.0, speech_samples=4000, noise_samples=100, amplitude=0.6, seed=0)  # rescaled
@example(target=30.0, speech_samples=4000, noise_samples=9000, amplitude=0.01, seed=0)  # not rescaled
def test_property_mix_hits_any_target_snr(target, speech_samples, noise_samples, amplitude, seed):
    generator = np.random.default_rng(seed)
    speech = np.clip(generator.standard_normal(speech_samples) * amplitude, -1, 1).astype(np.float32)
    noise = generator.standard_normal(noise_samples).astype(np.float32) * 0.1
    mixed, snr, residual = exact_snr(speech, noise, target, seed)
    assert snr == pytest.approx(target, abs=0.1)
    assert residual < 1e-4
    assert np.abs(mixed).max() <= 0.99 + 1e-6
    if np.abs(mixed).max() < 0.99 - 1e-6:  # no rescale: what was added is the noise itself
        added = mixed.astype(np.float64) - speech
        direct = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(added**2))
        assert direct == pytest.approx(target, abs=0.1)


RATES = [8000, 11025, 16000, 22050, 44100, 48000, 96000]


@hypothesis_settings(max_examples=80, deadline=None)
@given(samples=st.integers(1, 60000), from_rate=st.sampled_from(RATES), to_rate=st.sampled_from(RATES))
def test_property_resample_keeps_duration(samples, from_rate, to_rate):
    signal = np.sin(np.arange(samples) * 0.01).astype(np.float32) * 0.5
    out = audio.resample(signal, from_rate, to_rate)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(out.size - samples * to_rate / from_rate) <= 1


MFCC_SETTINGS = Settings()


@hypothesis_settings(max_examples=80, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 4000), elements=st.floats(-1, 1, width=32)))
@example(np.zeros(1, np.float32))
@example(np.zeros(5000, np.float32))
@example(np.ones(3000, np.float32))
@example(np.full(401, -1.0, np.float32))
@example(np.tile(np.array([1.0, -1.0], np.float32), 1000))
@example(np.full(500, 1e-38, np.float32))
def test_property_mfcc_is_finite(signal):
    coefficients = features.mfcc(signal, MFCC_SETTINGS)
    assert coefficients.shape == (features.frame_count(signal.size, MFCC_SETTINGS), 40)
    assert coefficients.dtype == np.float32
    assert np.isfinite(coefficients).all()


@pytest.mark.parametrize("rate", [1, 100, 3999])
def test_a_header_below_the_rate_of_speech_is_refused_in_one_line(rate, tmp_path):
    """A WAV whose header says 1 Hz would read as hours of 'speech': refused from its header, as are rates above the limit."""
    path = tmp_path / f"at-{rate}-hz.wav"
    soundfile.write(path, np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    header = bytearray(path.read_bytes())
    header[24:28] = rate.to_bytes(4, "little")  # the fmt chunk's sample rate (and its byte rate after it)
    header[28:32] = (rate * 2).to_bytes(4, "little")
    path.write_bytes(bytes(header))
    with pytest.raises(BadAudioError) as caught:
        audio.load_audio(path, 16000)
    message = str(caught.value)
    assert message.startswith(f"{path}: the header says {rate} Hz") and "16000 Hz" in message and "\n" not in message
    header[24:28], header[28:32] = (8000).to_bytes(4, "little"), (16000).to_bytes(4, "little")
    path.write_bytes(bytes(header))
    assert audio.load_audio(path, 16000)[0].size == 16000  # telephone quality is read

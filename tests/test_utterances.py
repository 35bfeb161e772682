"""acoustics.utterances: voice activity detection on arrays, and listening to a source for one utterance
or a stream of them, on arrays played by :class:`acoustics.sources.ArraySource` (the microphone's end of it
is tests/test_microphone.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from acoustics import audio, sources, utterances
from acoustics.errors import BadParameterError
from acoustics.utterances import VoiceActivityDetector, detect_utterances

RATE = 16000


# Synthetic signals ------------------------------------------------------------------------------
def tone(seconds: float, level_dbfs: float = -20.0, frequency: float = 220.0) -> np.ndarray:
    """A vowel-like tone (fundamental and two harmonics) at ``level_dbfs`` RMS."""
    time_axis = np.arange(int(round(seconds * RATE))) / RATE
    wave = sum(np.sin(2 * np.pi * frequency * harmonic * time_axis) / harmonic for harmonic in (1, 2, 3))
    return (wave / np.sqrt(np.mean(wave**2)) * 10 ** (level_dbfs / 20)).astype(np.float32)


def noise(seconds: float, level_dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
    if level_dbfs == -np.inf:
        return np.zeros(int(round(seconds * RATE)), dtype=np.float32)
    values = np.random.default_rng(seed).standard_normal(int(round(seconds * RATE)))
    return (values * 10 ** (level_dbfs / 20)).astype(np.float32)


def bursts(layout, floor_dbfs: float = -60.0, level_dbfs: float = -20.0) -> tuple:
    """``layout`` alternates pause and burst lengths (s), starting with a pause. Returns the signal and
    the (start, end) seconds of each burst; the bursts lie on top of noise at ``floor_dbfs``."""
    pieces, spans, position = [], [], 0.0
    for index, seconds in enumerate(layout):
        if index % 2:
            pieces.append(tone(seconds, level_dbfs))
            spans.append((position, position + seconds))
        else:
            pieces.append(np.zeros(int(round(seconds * RATE)), dtype=np.float32))
        position += seconds
    signal = np.concatenate(pieces)
    return signal + noise(signal.size / RATE, floor_dbfs, seed=len(layout)), spans


# Voice activity detection on arrays -------------------------------------------------------------
@pytest.mark.parametrize("signal", [
    pytest.param(noise(3, -np.inf), id="digital-silence"),
    pytest.param(noise(3, -70), id="quiet-room"),
    pytest.param(noise(3, -35), id="steady-loud-noise"),
    pytest.param(noise(3, -30) * np.linspace(0.7, 1.3, 3 * RATE, dtype=np.float32), id="slowly-growing-noise"),
    pytest.param(tone(3, -55), id="tone-below-absolute-floor"),
    pytest.param(np.zeros(0, dtype=np.float32), id="empty"),
    pytest.param(np.zeros(100, dtype=np.float32), id="shorter-than-a-frame"),
])
def test_no_utterance_in_noise(signal):
    assert detect_utterances(signal, RATE) == []


@pytest.mark.parametrize("layout, expected_count", [
    ((1.0, 1.0, 1.0), 1),
    ((0.6, 0.5, 1.0, 0.7, 1.0, 0.4, 1.0), 3),  # pauses of 1 s separate utterances
    ((0.6, 0.5, 0.3, 0.5, 0.3, 0.5, 1.0), 1),  # pauses of 0.3 s do not
    ((0.6, 0.5, 0.4, 0.5, 1.0), 1),  # 0.4 s: still one utterance (the hangover)
    ((0.6, 0.5, 0.7, 0.5, 1.0), 2),  # 0.7 s: longer than pause_seconds
    ((0.6, 0.03, 1.0), 0),  # a 30 ms click is not speech
    ((0.6, 0.15, 1.0), 1),  # 150 ms is
])
def test_counts_utterances(layout, expected_count):
    signal, _ = bursts(layout)
    assert len(detect_utterances(signal, RATE)) == expected_count


@pytest.mark.parametrize("floor_dbfs, level_dbfs", [(-np.inf, -40), (-70, -20), (-45, -25), (-30, -12)])
def test_boundaries_include_pre_roll_and_tail(floor_dbfs, level_dbfs):
    signal, spans = bursts((1.0, 0.8, 1.0, 1.2, 1.0), floor_dbfs, level_dbfs)
    utterances = detect_utterances(signal, RATE)
    assert len(utterances) == 2
    for utterance, (start, end) in zip(utterances, spans):
        assert utterance.start_seconds == pytest.approx(start - 0.2, abs=0.04)
        assert utterance.end_seconds == pytest.approx(end + 0.2, abs=0.04)
        first = int(round(utterance.start_seconds * RATE))
        np.testing.assert_array_equal(utterance.samples, signal[first: first + utterance.samples.size])
        assert utterance.speech_seconds == pytest.approx(end - start, abs=0.07)


def test_speech_soon_after_the_start_and_until_the_last_sample():
    signal = np.concatenate([np.zeros(RATE // 10, np.float32), tone(0.9), np.zeros(RATE, np.float32), tone(0.8)])
    utterances = detect_utterances(signal + noise(2.8, -65), RATE)
    assert [item.start_seconds for item in utterances] == pytest.approx([0.0, 1.8], abs=0.04)  # pre-roll stops at 0
    assert utterances[-1].end_seconds == pytest.approx(2.8, abs=0.03)  # given by flush()


def test_speech_already_under_way_is_noise_until_the_first_pause():
    """A known limit: with speech in all of the first 0.3 s, the first pause shows the real noise floor."""
    signal = np.concatenate([tone(1.0), np.zeros(RATE, np.float32), tone(0.8), np.zeros(RATE, np.float32)])
    utterances = detect_utterances(signal + noise(3.8, -65), RATE)
    assert [round(item.start_seconds, 1) for item in utterances] == [1.8]


def test_input_shorter_than_the_calibration():
    utterances = detect_utterances(np.concatenate([np.zeros(1600, np.float32), tone(0.15)]), RATE, pause_seconds=0.1)
    assert len(utterances) == 1 and utterances[0].start_seconds == 0.0


def test_numpy_integer_rate():
    assert VoiceActivityDetector(np.int64(RATE)).sample_rate == RATE


def test_chunk_size_does_not_matter():
    signal, _ = bursts((0.7, 0.6, 0.8, 0.9, 0.3, 0.4, 1.0))
    whole = detect_utterances(signal, RATE)
    detector = VoiceActivityDetector(RATE)
    pieces, position, rng = [], 0, np.random.default_rng(5)
    while position < signal.size:
        size = int(rng.integers(1, 3000))
        pieces += detector.feed(signal[position: position + size])
        position += size
    pieces += detector.flush()
    assert [(item.start_seconds, item.end_seconds) for item in pieces] == [(item.start_seconds, item.end_seconds) for item in whole]


def test_long_speech_is_cut_at_max_utterance_seconds():
    signal = np.concatenate([np.zeros(RATE // 2, np.float32), tone(5.0), np.zeros(RATE, np.float32)])
    utterances = detect_utterances(signal, RATE, max_utterance_seconds=2.0)
    assert len(utterances) == 3
    assert all(item.samples.size <= 2.0 * RATE for item in utterances)
    assert sum(item.speech_seconds for item in utterances) == pytest.approx(5.0, abs=0.1)


def test_noise_that_stays_loud_stops_counting_as_speech():
    """A fan switched on: at first it is 'speech', after a while it is the new noise floor."""
    signal = np.concatenate([noise(1.0, -65), noise(40.0, -35, seed=3)])
    utterances = detect_utterances(signal, RATE, max_utterance_seconds=6.0)
    assert 1 <= len(utterances) <= 6
    assert utterances[-1].end_seconds < 35


def test_pause_seconds_option():
    signal, _ = bursts((0.6, 0.5, 0.8, 0.5, 1.0))
    assert len(detect_utterances(signal, RATE, pause_seconds=0.5)) == 2
    assert len(detect_utterances(signal, RATE, pause_seconds=1.0)) == 1


@pytest.mark.parametrize("options", [
    {"pause_seconds": 0.0}, {"frame_seconds": 0.0}, {"max_utterance_seconds": 0.05}, {"frame_seconds": 1.0},
])
def test_bad_detector_options(options):
    with pytest.raises(BadParameterError):
        VoiceActivityDetector(RATE, **options)


def test_detector_is_cheap():
    """One minute of audio in 0.1 s chunks takes well under 1 % of a core."""
    signal, _ = bursts((0.5,) + (0.8, 0.6) * 43)
    detector = VoiceActivityDetector(RATE, max_utterance_seconds=6.0)
    started = time.process_time()
    found = sum(len(detector.feed(signal[index: index + RATE // 10])) for index in range(0, signal.size, RATE // 10))
    assert found == 43
    assert time.process_time() - started < 0.6




# Listening to a source --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spoken(spoken_clips) -> np.ndarray:
    signal, _ = audio.load_audio(spoken_clips["male"], RATE)
    return signal


def test_record_utterance_stops_at_the_pause(spoken):
    started, chunks = [], []
    source = sources.ArraySource(np.concatenate([np.zeros(RATE // 2, np.float32), spoken, np.zeros(3 * RATE, np.float32)]),
                                 RATE)
    signal, speech_detected = utterances.record_utterance(
        source, max_seconds=10.0, on_start=lambda: started.append(source.position),
        on_chunk=lambda chunk, detector: chunks.append((chunk.size, detector.in_speech)))
    assert started == [source.chunk_samples] and speech_detected  # after the first chunk, once
    assert {size for size, _ in chunks} == {int(RATE * sources.CHUNK_SECONDS)}  # a meter sees every chunk
    assert any(in_speech for _, in_speech in chunks) and not chunks[-1][1]
    assert source.position < source.signal.size - RATE  # it stopped at the pause, not at the end
    assert spoken.size / RATE - 0.3 < signal.size / RATE < spoken.size / RATE + 0.5
    energy = np.sum(spoken.astype(np.float64) ** 2)
    assert np.sum(signal.astype(np.float64) ** 2) == pytest.approx(energy, rel=0.01)  # all of the speech


def test_record_utterance_without_speech_returns_everything():
    signal, speech_detected = utterances.record_utterance(sources.ArraySource(noise(3.0, -70), RATE), max_seconds=1.5)
    assert not speech_detected
    assert signal.size == int(1.5 * RATE)


def test_a_source_that_ends_mid_sentence_still_gives_the_sentence(spoken):
    """The end of the input (a recording played to its end) closes the utterance in progress."""
    source = sources.ArraySource(np.concatenate([np.zeros(RATE // 2, np.float32), spoken]), RATE)
    signal, speech_detected = utterances.record_utterance(source, max_seconds=10.0)
    assert speech_detected and spoken.size / RATE - 0.3 < signal.size / RATE < spoken.size / RATE + 0.3
    assert list(utterances.stream_utterances(sources.ArraySource(spoken, RATE))) != []
    assert utterances.record_utterance(sources.ArraySource(np.zeros(0, np.float32), RATE))[1] is False


@pytest.mark.parametrize("chunk_seconds", [0.01, 0.03, 0.1])
def test_stream_utterances_yields_each_at_any_chunk_length(spoken, chunk_seconds):
    pause = np.zeros(RATE, np.float32)
    signal = np.concatenate([pause[: RATE // 2], spoken, pause, spoken * 0.5, pause])
    found = list(utterances.stream_utterances(sources.ArraySource(signal, RATE, chunk_seconds=chunk_seconds)))
    offline = detect_utterances(signal, RATE, frame_seconds=min(chunk_seconds, utterances.FRAME_SECONDS))
    assert [item.size for item in found] == [item.samples.size for item in offline]
    assert len(found) == 2
    assert audio.level_dbfs(found[0]) - audio.level_dbfs(found[1]) == pytest.approx(6.0, abs=0.5)


def test_a_source_that_plays_in_real_time_takes_as_long_as_its_sound():
    source = sources.ArraySource(noise(0.5, -40), RATE, chunk_seconds=0.05, real_time=True)
    started = time.monotonic()
    with source:
        while source.read().size:
            pass
    assert 0.45 <= time.monotonic() - started < 1.5


def test_any_object_with_the_three_members_is_a_source(spoken):
    """The extension point: a new input source needs sample_rate, chunk_samples and read(), as a context manager."""

    class Countdown:  # a source that knows nothing of arrays: it makes its chunks as it goes
        sample_rate, chunk_samples = RATE, 480

        def __init__(self) -> None:
            self.left, self.opened, self.closed = [spoken[i : i + 480] for i in range(0, spoken.size, 480)], False, False
            self.left += [np.zeros(480, np.float32)] * 40

        def __enter__(self):
            self.opened = True
            return self

        def __exit__(self, *exc_info) -> None:
            self.closed = True

        def read(self) -> np.ndarray:
            return self.left.pop(0) if self.left else np.zeros(0, np.float32)

    source = Countdown()
    found = list(utterances.stream_utterances(source))
    assert len(found) == 1 and source.opened and source.closed
    assert abs(found[0].size / RATE - spoken.size / RATE) < 0.5


@pytest.mark.parametrize("call", [
    lambda: utterances.record_utterance(sources.ArraySource(np.zeros(10, np.float32), RATE), max_seconds=-1),
    lambda: sources.ArraySource(np.zeros(10, np.float32), 16000.0),
    lambda: sources.ArraySource(np.zeros(10, np.float32), RATE, chunk_seconds=0.001),
])
def test_bad_listening_arguments_are_refused(call):
    with pytest.raises(BadParameterError):
        call()

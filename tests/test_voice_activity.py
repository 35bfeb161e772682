"""acoustics.utterances.VoiceActivityDetector on real speech (espeak-ng) in silence and noise: the same
utterances at 10, 20 and 30 ms frames, and the pause (stage 5's --pause) that ends an utterance.

The detector's frame is the read of stage 5's microphone (one frame a chunk), so each case feeds one
frame at a time, as a microphone does, and notes when each utterance comes back.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import speak

from acoustics import audio, mixing, sources, utterances
from acoustics.microphone import Microphone
from acoustics.utterances import PRE_ROLL_SECONDS, TAIL_SECONDS, VoiceActivityDetector

RATE = 16000
FRAMES = (0.01, 0.02, 0.03)
#: Sentences without a comma: espeak-ng pauses at a comma, which would split them at short pauses.
SENTENCES = (("Das Wetter ist heute schön", "de+m3", 40), ("Ich komme gleich zurück", "de+f2", 60),
             ("Können Sie mir helfen", "de+m6", 30))
#: How far the detector's boundaries may move between frame lengths: a frame of 30 ms, the pre-roll's
#: rounding to whole frames (0.21 s at 30 ms) and the level's averaging over 30 ms.
ACROSS_FRAMES = 0.04
#: How far they may lie from the speech's own edges (trimmed at 30 dB below the peak) plus pre-roll or tail.
FROM_SPEECH = 0.1


@pytest.fixture(scope="module")
def sentences(tmp_path_factory) -> list:
    """The three sentences at 16 kHz, leading and trailing silence trimmed (30 dB below the peak)."""
    folder = tmp_path_factory.mktemp("sentences")
    return [audio.trim_silence(audio.load_audio(speak(text, folder / f"{number}.wav", voice=voice, pitch=pitch), RATE)[0], 30)
            for number, (text, voice, pitch) in enumerate(SENTENCES)]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)), np.float32)


def lay_out(pieces) -> tuple:
    """``pieces`` alternate silence (seconds) and speech (arrays), starting with silence: the signal
    and the (start, end) seconds of each speech piece."""
    parts, spans, position = [], [], 0
    for piece in pieces:
        part = silence(piece) if isinstance(piece, float) else piece
        if not isinstance(piece, float):
            spans.append((position / RATE, (position + part.size) / RATE))
        parts.append(part)
        position += part.size
    return np.concatenate(parts), spans


def with_noise(signal: np.ndarray, kind: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    if kind == "silence":
        return signal
    if kind == "white":
        return signal + (rng.standard_normal(signal.size) * 10 ** (-60 / 20)).astype(np.float32)
    room = mixing.synthetic_room_noise(signal.size / RATE + 1, RATE, rng)[:signal.size]
    return signal + (room * 10 ** ((-45 - audio.level_dbfs(room)) / 20)).astype(np.float32)  # 25 dB below the speech


def listen(signal: np.ndarray, frame_seconds: float, **options) -> list:
    """Feed ``signal`` one frame at a time: (start, end, seconds fed when it came back) of each utterance."""
    detector = VoiceActivityDetector(RATE, frame_seconds=frame_seconds, **options)
    size, found = detector.frame_samples, []
    for position in range(0, signal.size, size):
        for utterance in detector.feed(signal[position: position + size]):
            found.append((utterance.start_seconds, utterance.end_seconds, min(position + size, signal.size) / RATE))
    return found + [(utterance.start_seconds, utterance.end_seconds, signal.size / RATE) for utterance in detector.flush()]


@pytest.mark.parametrize("frame_seconds", FRAMES, ids=lambda seconds: f"{seconds * 1000:.0f}ms")
@pytest.mark.parametrize("noise", ["silence", "white", "room"])
def test_the_same_utterances_at_every_frame_length(sentences, noise, frame_seconds):
    signal, spans = lay_out([0.6, sentences[0], 1.2, sentences[1], 0.15, sentences[2], 1.0])
    signal = with_noise(signal, noise)
    found, reference = listen(signal, frame_seconds), listen(signal, 0.03)
    assert len(found) == len(reference) == 2, found  # the second pause (0.15 s) stays inside an utterance
    for (start, end, _), (reference_start, reference_end, _) in zip(found, reference):
        assert start == pytest.approx(reference_start, abs=ACROSS_FRAMES)
        assert end == pytest.approx(reference_end, abs=ACROSS_FRAMES)
    speech = [spans[0], (spans[1][0], spans[2][1])]
    for (start, end, _), (speech_start, speech_end) in zip(found, speech):
        assert start == pytest.approx(speech_start - PRE_ROLL_SECONDS, abs=FROM_SPEECH)
        assert end == pytest.approx(speech_end + TAIL_SECONDS, abs=FROM_SPEECH)


@pytest.mark.parametrize("frame_seconds", FRAMES, ids=lambda seconds: f"{seconds * 1000:.0f}ms")
@pytest.mark.parametrize("pause_seconds", [0.3, 0.5, 1.0])
def test_the_pause_ends_an_utterance_and_a_shorter_one_does_not(sentences, pause_seconds, frame_seconds):
    """--pause: non-speech shorter than the pause stays inside an utterance, a longer one ends it, and
    the utterance comes back once the pause has passed after its last speech frame."""
    signal, _ = lay_out([0.6, sentences[0], 0.6 * pause_seconds, sentences[1], 1.6 * pause_seconds, sentences[2],
                         pause_seconds + 0.5])
    signal = with_noise(signal, "white")
    found = listen(signal, frame_seconds, pause_seconds=pause_seconds)
    assert len(found) == 2, found
    for start, end, returned in found:
        last_speech = end - min(TAIL_SECONDS, pause_seconds)
        assert returned - last_speech == pytest.approx(pause_seconds, abs=frame_seconds + 0.011)


@pytest.mark.parametrize("frame_seconds", FRAMES, ids=lambda seconds: f"{seconds * 1000:.0f}ms")
def test_time_constants_are_in_seconds(frame_seconds):
    detector = VoiceActivityDetector(RATE, frame_seconds=frame_seconds, pause_seconds=0.6, max_utterance_seconds=3.0)
    assert detector.frame_samples == round(frame_seconds * RATE)
    assert detector.pause_frames * detector.frame_seconds == pytest.approx(0.6, abs=frame_seconds / 2)
    assert detector.tail_frames * detector.frame_seconds == pytest.approx(TAIL_SECONDS, abs=frame_seconds / 2)
    assert detector.max_utterance_frames * detector.frame_seconds == pytest.approx(3.0, abs=frame_seconds)


@pytest.mark.parametrize("chunk_seconds", FRAMES, ids=lambda seconds: f"{seconds * 1000:.0f}ms")
def test_stream_utterances_at_every_chunk_length(sentences, chunk_seconds):
    """A source read one detector frame at a time gives the utterances found offline."""
    signal, _ = lay_out([0.3, sentences[0], 1.0, sentences[1], 1.0])
    expected = [end - start for start, end, _ in listen(signal, chunk_seconds)]
    found = [item.size / RATE for item in utterances.stream_utterances(sources.ArraySource(signal, RATE, chunk_seconds=chunk_seconds))]
    assert found == pytest.approx(expected, abs=ACROSS_FRAMES)


def test_stream_utterances_through_the_microphone(microphone_env, sentences):
    """Through the virtual microphone in real time, at stage 5's read of 30 ms: the utterances found offline."""
    chunk_seconds = 0.03
    signal, _ = lay_out([0.3, sentences[0], 1.0, sentences[1], 1.0])
    expected = [end - start for start, end, _ in listen(signal, chunk_seconds)]
    found, errors = [], []

    def run(feed) -> None:
        try:
            stream = utterances.stream_utterances(Microphone(RATE, alternatives="--wav FILE", chunk_seconds=chunk_seconds),
                                                  on_start=feed.start)
            for utterance in stream:
                found.append(utterance.size / RATE)
                if len(found) == 2:
                    stream.close()
        except BaseException as error:  # noqa: BLE001 - reported by the test thread below
            errors.append(error)

    with microphone_env.pipe(signal) as feed:
        listener = threading.Thread(target=run, args=(feed,), daemon=True)
        listener.start()
        listener.join(timeout=20)
        assert not listener.is_alive(), "stream_utterances did not yield two utterances within 20 s"
    assert errors == []
    assert found == pytest.approx(expected, abs=ACROSS_FRAMES)

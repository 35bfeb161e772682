"""The speaker gate of stage 5 --stream: the person at the microphone gets verdicts, the room does not."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import speak

from acoustics import audio, democorpus, mixing
from acoustics.gate import SpeakerGate, frame_levels_dbfs, speech_level_dbfs
from acoustics.utterances import detect_utterances

RATE = 16000


def at_level(signal: np.ndarray, dbfs: float) -> np.ndarray:
    """``signal`` scaled so that its speech (silence trimmed) has an RMS level of ``dbfs``."""
    return (signal * 10 ** ((dbfs - audio.level_dbfs(audio.trim_silence(signal, 30))) / 20)).astype(np.float32)


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> dict:
    """A male and a female espeak-ng sentence, and 12 s of six-talker babble at -30 dBFS."""
    folder = tmp_path_factory.mktemp("gate")
    talkers = [audio.load_audio(path, RATE)[0] for path in democorpus.make_babble_voices(folder / "babble")]
    return {
        "male": audio.load_audio(speak("Guten Morgen, wie geht es Ihnen", folder / "m.wav", voice="de+m3", pitch=40), RATE)[0],
        "female": audio.load_audio(speak("Das Wetter ist heute schön", folder / "f.wav", voice="de+f2", pitch=60), RATE)[0],
        "babble": mixing.babble_noise(talkers, 12.0, RATE, np.random.default_rng(5), level_dbfs_target=-30.0),
    }


def decisions(signal: np.ndarray) -> list:
    """Each utterance the stream's detector finds in ``signal``, judged in order by one gate."""
    gate = SpeakerGate(RATE)
    return [gate.judge(utterance.samples) for utterance in detect_utterances(signal, RATE, max_utterance_seconds=6.0)]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def test_babble_after_a_close_speaker_is_ignored_and_the_speaker_heard_again(voices):
    male, female = at_level(voices["male"], -20), at_level(voices["female"], -20)
    found = decisions(np.concatenate([silence(0.5), male, silence(1), voices["babble"], silence(1), female, silence(1)]))
    assert found[0].accepted and found[-1].accepted, found
    assert len(found) >= 3 and not any(decision.accepted for decision in found[1:-1]), found
    assert all(decision.reason.startswith("not one voice") for decision in found[1:-1]), found


def test_babble_alone_gets_no_verdict(voices):
    found = decisions(voices["babble"])
    assert found and not any(decision.accepted for decision in found), found


def test_a_speaker_over_the_babble_is_accepted(voices):
    babble = voices["babble"]
    male = at_level(voices["male"], -20)
    mixed = babble[:RATE * 2 + male.size].copy()
    mixed[RATE:RATE + male.size] += male
    found = decisions(mixed)
    assert any(decision.accepted and decision.level_dbfs > -22 for decision in found), found


def test_a_much_quieter_voice_after_the_speaker_is_too_quiet(voices):
    loud, quiet = at_level(voices["male"], -15), at_level(voices["female"], -35)
    found = decisions(np.concatenate([silence(0.5), loud, silence(1), quiet, silence(1)]))
    assert [decision.accepted for decision in found] == [True, False], found
    assert found[1].reason.startswith("too quiet") and "below the speaker heard" in found[1].reason


def test_a_voice_barely_above_the_noise_floor_is_too_quiet(voices):
    gate = SpeakerGate(RATE)
    decision = gate.judge(np.concatenate([silence(0.3), at_level(voices["male"], -40), silence(0.3)]), noise_floor_dbfs=-45)
    assert not decision.accepted and "above the room's noise" in decision.reason
    assert gate.loudest_dbfs is None


def test_levels_of_short_and_silent_input():
    assert frame_levels_dbfs(np.zeros(10, np.float32), RATE).tolist() == [-120.0]
    assert speech_level_dbfs(np.array([-20.0, -80.0])) == pytest.approx(-20.0)

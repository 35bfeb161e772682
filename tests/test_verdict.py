"""acoustics.verdict: the words of a verdict, clips that get no verdict, and the model check without TensorFlow."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from acoustics import audio, speechcheck, verdict
from acoustics.dbfile import create_database
from acoustics.errors import BadModelError, SettingsMismatchError
from acoustics.settings import Settings
from acoustics.verdict import Verdict, classify_signal
from conftest import one_line, restamp, speak

RATE = 16000


@pytest.mark.parametrize("p_male, label, probability, confidence", [
    (0.5, "male", 0.5, "a close call"),
    (0.55, "male", 0.55, "a close call"),
    (0.45, "female", 0.55, "a close call"),
    (0.6, "male", 0.6, "a close call"),  # the workshop's 0.4 to 0.6 band, both ends included
    (0.4, "female", 0.6, "a close call"),
    (0.604, "male", 0.604, "a close call"),  # printed as 0.60: the words follow the printed number
    (0.606, "male", 0.606, "fairly sure"),  # printed as 0.61
    (0.61, "male", 0.61, "fairly sure"),
    (0.39, "female", 0.61, "fairly sure"),
    (0.85, "male", 0.85, "fairly sure"),
    (0.944, "male", 0.944, "fairly sure"),  # printed as 0.94
    (0.946, "male", 0.946, "sure"),  # printed as 0.95
    (0.95, "male", 0.95, "sure"),
    (0.05, "female", 0.95, "sure"),
    (0.06, "female", 0.94, "fairly sure"),
    (0.999, "male", 0.999, "sure"),
    (0.0, "female", 1.0, "sure"),
])
def test_wording(p_male, label, probability, confidence):
    result = Verdict("male" if p_male >= 0.5 else "female", p_male, 2.0, 1.5)
    assert result.label == label
    assert result.probability == pytest.approx(probability)
    assert result.confidence == confidence
    assert result.sentence() == f"{label} voice (probability {probability:.2f}; {confidence})"


def test_no_label_says_the_reason():
    result = Verdict(None, None, 1.0, 0.0, "no verdict: silent")
    assert result.probability is None and result.confidence == "" and result.sentence() == "no verdict: silent"


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    path = speak("Guten Morgen, wie geht es Ihnen", tmp_path_factory.mktemp("verdict") / "m.wav", voice="de+m3", pitch=40)
    return audio.load_audio(path, RATE)[0]


def silence_around(signal: np.ndarray) -> np.ndarray:
    pad = np.zeros(RATE // 2, np.float32)
    return np.concatenate([pad, signal, pad])


class NoModel:
    """Stands in for the network: these clips must be refused before any prediction."""

    def __getattr__(self, name):
        raise AssertionError(f"the model was used ({name}) for a clip that has no usable speech")


@pytest.mark.parametrize("kind, reason", [
    ("digital silence", "silent"),
    ("quiet hiss", "no speech detected"),
    ("constant value", "no speech detected"),
    ("440 Hz sine", "no speech detected"),
    ("steady noise", "no speech detected"),
    ("steady hum", "no speech detected"),
    ("short", "below the minimum of 250 ms"),
    ("clipped", "clipped"),
])
def test_clips_without_usable_speech_get_no_label(kind, reason, speech, rng):
    signal = {
        "digital silence": lambda: np.zeros(2 * RATE, np.float32),
        "quiet hiss": lambda: (rng.standard_normal(2 * RATE) * 10 ** (-70 / 20)).astype(np.float32),
        "constant value": lambda: np.full(2 * RATE, 0.3, np.float32),
        "440 Hz sine": lambda: (0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * RATE) / RATE)).astype(np.float32),
        "steady noise": lambda: (rng.standard_normal(3 * RATE) * 10 ** (-25 / 20)).astype(np.float32),
        "steady hum": lambda: (0.2 * np.sin(2 * np.pi * 120 * np.arange(3 * RATE) / RATE)).astype(np.float32),
        "short": lambda: silence_around(audio.trim_silence(speech, 30)[RATE // 2 : RATE // 2 + RATE // 10]),
        "clipped": lambda: np.clip(speech * 20, -1, 1),
    }[kind]()
    result = classify_signal(NoModel(), {"settings": Settings()}, signal, "the clip")
    assert result.label is None and result.probability_male is None
    assert result.note.startswith("no verdict: ") or result.note.startswith("no speech detected"), result.note
    assert reason in result.note, result.note
    assert result.speech_seconds == 0.0 and result.duration_seconds == pytest.approx(signal.size / RATE)
    assert result.sentence() == result.note


def test_the_minimum_is_the_one_training_uses():
    assert speechcheck.MIN_SPEECH_SECONDS == 0.25


# The model's settings, read with h5py alone -------------------------------------------------------
def fake_model(path, *, version="1.0.0", settings=Settings(), weights=True):
    with h5py.File(path, "w") as handle:
        handle.attrs["acoustics_version"] = version
        handle.attrs["acoustics_settings"] = settings.to_json()
        handle.attrs["acoustics_model_name"] = "cnn"  # what models.save_model writes besides
        handle.attrs["acoustics_class_names"] = '["female", "male"]'
        handle.attrs["acoustics_normalisation_mean"] = np.zeros(settings.n_mfcc, np.float32)
        handle.attrs["acoustics_normalisation_std"] = np.ones(settings.n_mfcc, np.float32)
        if weights:
            handle.create_group("model_weights")
    return restamp(path) if weights else path


def test_read_model_settings(tmp_path):
    assert verdict.read_model_settings(fake_model(tmp_path / "m.h5", settings=Settings(n_mfcc=20))) == Settings(n_mfcc=20)


@pytest.mark.parametrize("kind, words", [
    ("missing", "no model file here"),
    ("text", "not a model made by train_models.py"),
    ("no weights", "not a model made by train_models.py"),
    ("other version", "made by version 2.1.0"),
    ("bad settings", "metadata is incomplete or damaged"),
])
def test_bad_model_files(kind, words, tmp_path):
    path = tmp_path / "m.h5"
    if kind == "text":
        path.write_text("hello")
    elif kind == "no weights":
        fake_model(path, weights=False)
    elif kind == "other version":
        fake_model(path, version="2.1.0")
    elif kind == "bad settings":
        fake_model(path)
        with h5py.File(path, "a") as handle:
            handle.attrs["acoustics_settings"] = '{"n_mfcc": "many"}'
        restamp(path)
    with pytest.raises(BadModelError) as raised:
        verdict.read_model_settings(path)
    assert words in str(raised.value) and str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_check_against_database(tmp_path):
    database = tmp_path / "features.db"
    create_database(database, Settings(n_mfcc=13))
    verdict.check_against_database("m.h5", Settings(n_mfcc=13), database)
    verdict.check_against_database("m.h5", Settings(), tmp_path / "none.db")  # no database: nothing to check
    with pytest.raises(SettingsMismatchError) as raised:
        verdict.check_against_database("m.h5", Settings(), database)
    assert "n_mfcc: 40 vs 13" in str(raised.value) or "n_mfcc" in str(raised.value)
    assert "train_models.py" in str(raised.value)


# Which model answers ------------------------------------------------------------------------------
def with_provenance(path, real: int, synthetic: int, name: str = "cnn"):
    fake_model(path)
    with h5py.File(path, "a") as handle:
        handle.attrs["acoustics_model_name"] = name
        handle.attrs["acoustics_provenance"] = json.dumps({"real_speakers": real, "synthetic_speakers": synthetic})
    return restamp(path)


def test_best_h5_answers_when_it_has_heard_real_voices(tmp_path):
    best = with_provenance(tmp_path / "best.h5", real=12, synthetic=41)
    choice = verdict.choose_model(None, tmp_path)
    assert choice.path == best and not choice.warning and not choice.chosen_by_user
    assert choice.line == f"Answering: the cnn model ({best}), trained on 12 real and 41 synthetic voices."


@pytest.mark.skipif(not verdict.REFERENCE_MODEL.exists(), reason="models/reference.h5 is made by 'make reference'")
@pytest.mark.parametrize("best", ["missing", "synthetic only", "no provenance", "damaged"])
def test_the_reference_model_answers_otherwise(tmp_path, best):
    path = tmp_path / "best.h5"
    if best == "synthetic only":
        with_provenance(path, real=0, synthetic=41)
    elif best == "no provenance":
        fake_model(path)
    elif best == "damaged":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    choice = verdict.choose_model(None, tmp_path)
    assert choice.path == verdict.REFERENCE_MODEL
    if best == "damaged":  # passed over, and the person is told why
        one_line(choice.warning, "Warning:", path, "damaged", "The reference model answers instead.")
    else:
        assert not choice.warning
    assert choice.line.startswith("Answering: the reference model (") and "real and" in choice.line


def test_a_model_that_heard_no_real_voice_answers_with_a_warning(tmp_path):
    demo = with_provenance(tmp_path / "demo.h5", real=0, synthetic=41, name="cnn\x1b[2K\x1b[1Afake")
    choice = verdict.choose_model(demo, tmp_path)
    assert choice.path == demo and choice.chosen_by_user
    assert "\x1b" not in choice.line and "trained on 0 real and 41 synthetic voices" in choice.line
    assert choice.warning.startswith(f"Warning: {demo} has heard no real voice") and "reference.h5" in choice.warning
    assert "\n" not in choice.warning


def test_strings_of_a_model_reach_the_terminal_without_control_characters(tmp_path):
    """A model whose stored strings hold ANSI escape codes (clear the screen, blink) or a bidi override."""
    from acoustics.modelfile import read_metadata

    path = fake_model(tmp_path / "m.h5", version="1.0.0\x1b[5m")
    with h5py.File(path, "a") as handle:
        handle.attrs["acoustics_model_name"] = "\x1b[2J\x1b[31mcnn\x1b[0m\u202e\r\n"
        handle.attrs["acoustics_saved_at"] = "2025-01-01\x07"
        handle.attrs["acoustics_class_names"] = '["female\\u001b[0m", "male"]'
    metadata = read_metadata(restamp(path))
    assert metadata["model_name"] == "[2J[31mcnn[0m"
    assert metadata["version"] == "1.0.0[5m" and metadata["saved_at"] == "2025-01-01"
    assert metadata["class_names"] == ["female[0m", "male"]


@pytest.mark.parametrize("provenance", ['"a string"', '{"real_speakers": "many"}', '{"real_speakers": -1}',
                                        '{"synthetic_speakers": 2.5}', "not json"])
def test_a_damaged_provenance_is_one_clear_line(tmp_path, provenance):
    path = fake_model(tmp_path / "m.h5")
    with h5py.File(path, "a") as handle:
        handle.attrs["acoustics_provenance"] = provenance
    restamp(path)
    with pytest.raises(BadModelError, match="metadata is incomplete or damaged"):
        verdict.choose_model(path, tmp_path)

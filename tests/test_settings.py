"""Settings: defaults, derived sizes, JSON round trip, validation and comparison."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from acoustics.errors import AcousticsError, BadParameterError, SettingsMismatchError
from acoustics.settings import DATABASE_FIELDS, FEATURE_FIELDS, FEATURE_VERSION, Paths, Settings


def test_defaults_are_the_workshop_numbers():
    settings = Settings()
    assert settings.sample_rate == 16000
    assert settings.n_mfcc == 40
    assert settings.n_mels == 40
    assert settings.n_fft == 400  # 25 ms
    assert settings.hop_length == 160  # 10 ms
    assert settings.frames == 160  # 1.6 s: the pretrained speaker encoder's partial utterances
    assert settings.snrs_db == (20.0, 10.0, 5.0, 0.0)
    assert settings.feature_version == FEATURE_VERSION
    # One model input window: 159 hops plus one analysis window.
    assert settings.window_seconds == pytest.approx((159 * 160 + 400) / 16000)


@pytest.mark.parametrize(
    "sample_rate, window_ms, hop_ms, n_fft, hop_length",
    [(16000, 25.0, 10.0, 400, 160), (8000, 25.0, 10.0, 200, 80), (22050, 25.0, 10.0, 551, 220),
     (44100, 20.0, 5.0, 882, 220), (48000, 32.0, 8.0, 1536, 384)],
)
def test_derived_sizes(sample_rate, window_ms, hop_ms, n_fft, hop_length):
    settings = Settings(sample_rate=sample_rate, window_ms=window_ms, hop_ms=hop_ms, fmax=sample_rate / 2)
    assert (settings.n_fft, settings.hop_length) == (n_fft, hop_length)


def test_settings_are_frozen_and_hashable():
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.sample_rate = 8000
    assert hash(settings) == hash(Settings())
    assert settings.replace(seed=1) != settings
    assert settings.replace(seed=1).seed == 1


@pytest.mark.parametrize("snrs", [[20, 10], (7.5,), (), [-30, 60], (0,)])
def test_snrs_become_a_tuple_of_floats(snrs):
    settings = Settings(snrs_db=snrs)
    assert isinstance(settings.snrs_db, tuple)
    assert all(isinstance(snr, float) for snr in settings.snrs_db)
    assert settings.snrs_db == tuple(float(snr) for snr in snrs)


@pytest.mark.parametrize(
    "settings",
    [Settings(), Settings(snrs_db=(15.0, -5.0), seed=7), Settings(sample_rate=8000, fmax=4000.0, n_mels=32, n_mfcc=13),
     Settings(window_ms=32.0, hop_ms=16.0, frames=50, trim_top_db=45.5, fmin=60.0)],
)
def test_json_round_trip(settings):
    text = settings.to_json()
    assert json.loads(text) == settings.to_dict()
    again = Settings.from_json(text)
    assert again == settings
    assert again.to_json() == text
    assert isinstance(again.snrs_db, tuple)


def test_json_is_stable_and_sorted():
    assert Settings().to_json() == Settings().to_json()
    keys = list(json.loads(Settings().to_json()))
    assert keys == sorted(keys)


@pytest.mark.parametrize("text", ["", "not json", "{", "{'sample_rate': 16000}", '{"sample_rate": 16000,}', None])
def test_from_json_bad_json_raises_bad_parameter(text):
    with pytest.raises(BadParameterError) as caught:
        Settings.from_json(text)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, AcousticsError)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("unknown", ["colour", "n_fft_new"])
def test_from_json_unknown_field_raises_bad_parameter_naming_it(unknown):
    values = Settings().to_dict()
    values[unknown] = 1
    with pytest.raises(BadParameterError, match=unknown) as caught:
        Settings.from_json(json.dumps(values))
    assert isinstance(caught.value, ValueError)


def test_from_json_with_a_bad_value_raises_bad_parameter():
    values = Settings().to_dict()
    values["sample_rate"] = 1000
    with pytest.raises(BadParameterError, match="sample_rate"):
        Settings.from_json(json.dumps(values))


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"sample_rate": 3999}, "sample_rate"),
        ({"sample_rate": 96000, "fmax": 8000.0}, "sample_rate"),
        ({"sample_rate": 16000.0}, "sample_rate"),
        ({"sample_rate": True}, "sample_rate"),
        ({"n_mfcc": 0}, "n_mfcc"),
        ({"n_mfcc": 41}, "n_mfcc"),
        ({"n_mfcc": 13.0}, "n_mfcc"),
        ({"n_mels": 0, "n_mfcc": 0}, "n_mels"),
        ({"n_mels": 40.5}, "n_mels"),
        ({"hop_ms": 0.0}, "hop_ms"),
        ({"hop_ms": -10.0}, "hop_ms"),
        ({"hop_ms": 30.0}, "hop_ms"),
        ({"window_ms": 250.0}, "window_ms"),
        ({"window_ms": math.inf}, "window_ms"),
        ({"hop_ms": math.nan}, "hop_ms"),
        ({"fmin": -1.0}, "fmin"),
        ({"fmin": 8000.0}, "fmin"),
        ({"fmax": 8001.0}, "fmax"),
        ({"fmax": math.nan}, "fmax"),
        ({"frames": 7}, "frames"),
        ({"frames": 100.0}, "frames"),
        ({"frames": True}, "frames"),
        ({"trim_top_db": 0.0}, "trim_top_db"),
        ({"trim_top_db": -30.0}, "trim_top_db"),
        ({"snrs_db": (20.0, 20.0)}, "snrs_db"),
        ({"snrs_db": (61.0,)}, "snrs_db"),
        ({"snrs_db": (-31.0,)}, "snrs_db"),
        ({"snrs_db": (math.nan,)}, "snrs_db"),
        ({"snrs_db": (math.inf,)}, "snrs_db"),
        # physically impossible: mel bands narrower than the FFT's spacing hold no frequency (always silent)
        ({"fmax": 1.0}, "mel bands"),
        ({"fmin": 4000.0, "fmax": 4100.0}, "mel bands"),
        ({"n_mels": 128, "n_mfcc": 40, "window_ms": 5.0, "hop_ms": 5.0}, "mel bands"),
    ],
)
def test_invalid_values_raise_bad_parameter_naming_the_field(changes, field):
    with pytest.raises(BadParameterError) as caught:
        Settings(**changes)
    message = str(caught.value)
    assert field in message
    assert "\n" not in message
    assert isinstance(caught.value, ValueError)


def test_the_mel_band_check_is_librosas():
    """A band is refused exactly where librosa's filter bank has an empty filter (its 'Empty filters' warning)."""
    import warnings

    import librosa

    for sample_rate, window_ms, n_mels, fmin, fmax in ((16000, 25.0, 40, 0.0, 8000.0), (16000, 25.0, 40, 0.0, 1.0),
                                                       (8000, 10.0, 64, 0.0, 4000.0), (16000, 25.0, 128, 0.0, 8000.0),
                                                       (16000, 5.0, 128, 0.0, 8000.0), (16000, 25.0, 40, 3000.0, 3500.0)):
        n_fft = int(round(sample_rate * window_ms / 1000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bank = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        expected = int(np.sum(bank.max(axis=1) <= 0))
        from acoustics.features import empty_mel_bands

        assert empty_mel_bands(sample_rate, n_fft, n_mels, fmin, fmax) == expected, (sample_rate, window_ms, n_mels, fmin, fmax)


def test_every_problem_is_reported_at_once():
    with pytest.raises(BadParameterError) as caught:
        Settings(sample_rate=100, frames=2, trim_top_db=-1.0)
    message = str(caught.value)
    assert "sample_rate" in message and "frames" in message and "trim_top_db" in message


@pytest.mark.parametrize(
    "changes",
    [
        {"trim_top_db": math.nan},
        {"n_mels": "40"},
        {"hop_ms": "10"},
        {"snrs_db": None},
        {"snrs_db": 5.0},
        {"snrs_db": ("a",)},
        {"snrs_db": "20"},
        {"n_mfcc": True},
        {"seed": "x"},
        {"seed": 1.5},
        {"seed": -1},
    ],
    ids=lambda changes: repr(changes),
)
def test_invalid_types_raise_bad_parameter(changes):
    with pytest.raises(BadParameterError):
        Settings(**changes)


@pytest.mark.parametrize("text", ["null", "[]", "[1, 2]", "1", '"text"', '{"hop_ms": "10"}', '{"snrs_db": 5}',
                                  '{"snrs_db": [1, null]}'])
def test_from_json_of_wrong_shape_raises_bad_parameter(text):
    with pytest.raises(BadParameterError) as caught:
        Settings.from_json(text)
    assert "does not know" not in str(caught.value)


# Comparison ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, field",
    [({"n_mfcc": 13}, "n_mfcc"), ({"sample_rate": 8000, "fmax": 4000.0}, "sample_rate"), ({"hop_ms": 20.0}, "hop_ms"),
     ({"frames": 50}, "frames"), ({"trim_top_db": 40.0}, "trim_top_db"), ({"feature_version": FEATURE_VERSION + 1}, "feature_version")],
)
def test_differences_and_check_same_name_the_field(changes, field):
    base, other = Settings(), Settings(**changes)
    differences = base.differences(other)
    assert differences and any(field in line for line in differences)
    assert base.differences(base) == []
    with pytest.raises(SettingsMismatchError) as caught:
        base.check_same(other, this="the database DB-NAME", that="the model MODEL-NAME", fix="Do the FIX.")
    message = str(caught.value)
    assert field in message
    assert "DB-NAME" in message and "MODEL-NAME" in message and "FIX" in message
    assert "\n" not in message


def test_seed_is_not_a_feature_field():
    assert "seed" not in FEATURE_FIELDS
    assert "seed" not in DATABASE_FIELDS
    Settings().check_same(Settings(seed=99), this="a", that="b", fix="c")  # no error
    assert Settings().differences(Settings(seed=99)) == []


def test_snrs_matter_for_the_database_but_not_for_a_model():
    assert "snrs_db" not in FEATURE_FIELDS and "snrs_db" in DATABASE_FIELDS
    base, other = Settings(), Settings(snrs_db=(15.0,))
    base.check_same(other, this="a", that="b", fix="c")  # feature fields agree
    with pytest.raises(SettingsMismatchError, match="snrs_db"):
        base.check_same(other, this="a", that="b", fix="c", fields=DATABASE_FIELDS)


def test_feature_fields_are_all_settings_fields():
    names = {item.name for item in dataclasses.fields(Settings)}
    assert set(DATABASE_FIELDS) <= names


def test_paths_follow_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ACOUSTICS_DATA", str(tmp_path))
    paths = Paths()
    assert paths.database == tmp_path / "features.db"
    assert paths.background_noise.parent == tmp_path
    assert Paths(tmp_path / "x").models == tmp_path / "x" / "models"


# Tampered settings read from a database or a model: the stages say so in one line ----------------
TAMPERED = {"n_mels=1e9": {"n_mels": 10**9}, "n_mfcc=n_mels=100000": {"n_mfcc": 100_000, "n_mels": 100_000},
            "frames=1e9": {"frames": 10**9}, "seed=2**70": {"seed": 2**70}, "window_ms=1e6": {"window_ms": 1e6},
            "snrs x 1000": {"snrs_db": [round(-30 + index * 0.05, 2) for index in range(1000)]}}


def tampered_database(folder, change: dict):
    """A real feature database (stage 1) whose settings row was edited by hand to ``change``."""
    import json
    import sqlite3

    from conftest import run_stage

    path = folder / "features.db"
    assert run_stage("set_up_sql.py", "--db", path).returncode == 0
    with sqlite3.connect(path) as connection:
        values = json.loads(connection.execute("SELECT value FROM settings WHERE key = 'features'").fetchone()[0])
        connection.execute("UPDATE settings SET value = ? WHERE key = 'features'", (json.dumps({**values, **change}),))
    return path


@pytest.mark.parametrize("change", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_database_settings_row_gives_one_line_in_every_stage(tmp_path, change):
    from conftest import run_stage

    database = tampered_database(tmp_path, change)
    field = list(change)[-1]
    for script, *arguments in (("collect_background_noise.py", "--synthetic", "--out", tmp_path / "noise.wav"),
                               ("speech_prep.py", "--demo", "--no-picture"), ("train_models.py",)):
        result = run_stage(script, "--db", database, *arguments, timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, (script, result.stderr[-2000:])
        assert str(database) in lines[0] and "set_up_sql.py" in lines[0] and "--reset" in lines[0], lines[0]
        assert field in lines[0], lines[0]


@pytest.mark.parametrize("change", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_model_settings_attribute_gives_one_line_in_stage5(tmp_path, spoken_clips, change):
    import json
    import shutil

    import h5py

    from conftest import ROOT, run_stage

    model = tmp_path / "tampered.h5"
    shutil.copy(ROOT / "models" / "reference.h5", model)
    with h5py.File(model, "a") as handle:
        handle.attrs["acoustics_settings"] = json.dumps({**json.loads(str(handle.attrs["acoustics_settings"])), **change})
    result = run_stage("implement_model.py", "--model", model, "--db", tmp_path / "none.db", "--wav", spoken_clips["male"],
                       env={"ACOUSTICS_DATA": str(tmp_path / "data")}, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert str(model) in lines[0] and "damaged" in lines[0] and "train_models.py" in lines[0]


@pytest.mark.parametrize("arguments, field", [(["--seed", str(2**70)], "seed"), (["--seed", "-1"], "seed"),
                                              (["--snrs", *map(str, range(13))], "snrs_db")])
def test_set_up_sql_refuses_the_same_out_of_bounds_settings(tmp_path, arguments, field):
    from conftest import run_stage

    result = run_stage("set_up_sql.py", "--db", tmp_path / "features.db", *arguments)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1 and field in result.stderr
    assert not (tmp_path / "features.db").exists()


def test_overrides_from_the_command_line():
    settings = Settings().with_overrides(["n_mels=80", "n-mfcc=80", "snrs_db=[10, 0]", "fmax=7600.5"])
    assert (settings.n_mels, settings.n_mfcc, settings.snrs_db, settings.fmax) == (80, 80, (10.0, 0.0), 7600.5)
    assert Settings().with_overrides([]) == Settings()


@pytest.mark.parametrize("assignment, words", [
    ("n_mels", "NAME=VALUE"),
    ("bands=80", "NAME=VALUE"),
    ("=3", "NAME=VALUE"),
    ("n_mels=many", "n_mels"),
    ("n_mfcc=80", "n_mfcc"),
])
def test_bad_overrides_are_refused_in_one_line(assignment, words):
    with pytest.raises(BadParameterError, match=words) as caught:
        Settings().with_overrides([assignment])
    assert "\n" not in str(caught.value)

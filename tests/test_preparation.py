"""Stage 3's work on real espeak-ng clips: clean and noisy MFCCs, determinism, skips, and the worker pool."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from acoustics import audio, features, mixing, preparation
from acoustics.corpus import LabelledRecording, Skipped
from acoustics.database import FeatureDatabase
from acoustics.dbfile import create_database
from acoustics.errors import AcousticsError
from acoustics.settings import Settings
from conftest import speak

SETTINGS = Settings()
RATE = SETTINGS.sample_rate


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return mixing.synthetic_room_noise(3.0, RATE, np.random.default_rng(7))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list:
    """16 real clips from 8 voices (different words, so different hashes) plus one silent file."""
    folder = tmp_path_factory.mktemp("prep")
    words = ["Guten Morgen", "Guten Abend", "Hallo Welt", "Danke schön"]
    voices = [("de+m1", 40, "male"), ("de+m3", 55, "male"), ("de+m5", 30, "male"), ("de+m7", 45, "male"),
              ("de+f1", 60, "female"), ("de+f2", 70, "female"), ("de+f3", 50, "female"), ("de+f4", 80, "female")]
    recordings = []
    for number in range(16):
        voice, pitch, sex = voices[number % len(voices)]
        path = speak(words[number // len(voices) + 2 * (number % 2)], folder / f"clip {number:02d}.wav",
                     voice=voice, pitch=pitch)
        recordings.append(LabelledRecording(path, sex, f"{voice}-p{pitch}", "test", True))
    return recordings


def task_of(recording: LabelledRecording) -> preparation.Task:
    return preparation.make_task(recording)


def silent_recording(folder: Path, name: str = "silent.wav") -> LabelledRecording:
    path = folder / name
    soundfile.write(path, np.zeros(RATE, np.float32), RATE, subtype="PCM_16")
    return LabelledRecording(path, "male", "nobody", "test")


def assert_same_items(first: dict, second: dict) -> None:
    assert {key: value for key, value in first.items() if key != "variants"} == \
        {key: value for key, value in second.items() if key != "variants"}
    assert [variant[:3] for variant in first["variants"]] == [variant[:3] for variant in second["variants"]]
    for one, two in zip(first["variants"], second["variants"]):
        assert np.array_equal(one[3], two[3])


# prepare ---------------------------------------------------------------------------------------
def test_prepare_gives_clean_and_one_variant_per_snr(clips, noise):
    task = task_of(clips[0])
    item = preparation.prepare(task, noise, 3, SETTINGS)
    assert [variant[0] for variant in item["variants"]] == ["clean", "snr20", "snr10", "snr5", "snr0"]
    assert item["variants"][0][1:3] == (None, None)
    assert [variant[1:3] for variant in item["variants"][1:]] == [(3, 20.0), (3, 10.0), (3, 5.0), (3, 0.0)]
    speech_samples = int(round(item["speech_seconds"] * RATE))
    for _, _, _, matrix in item["variants"]:
        assert matrix.dtype == np.float32 and matrix.shape == (features.frame_count(speech_samples, SETTINGS), 40)
        assert np.isfinite(matrix).all()
    clean = item["variants"][0][3]
    distances = [float(np.abs(variant[3] - clean).mean()) for variant in item["variants"][1:]]
    assert distances == sorted(distances) and distances[0] > 0  # more noise, further from the clean MFCCs
    assert item["sha256"] == preparation.file_hash(clips[0].path) == task.sha256
    assert item["original_sample_rate"] == 22050 and item["original_channels"] == 1
    assert 0 < item["speech_seconds"] <= item["duration_seconds"]
    assert (item["speaker"], item["sex"], item["source"], item["synthetic"], item["path"]) == \
        (clips[0].speaker, clips[0].sex, "test", True, str(clips[0].path))


def test_prepare_clean_features_are_those_of_the_trimmed_speech(clips, noise):
    task = task_of(clips[1])
    signal, _ = audio.load_audio(clips[1].path, RATE)
    speech = audio.trim_silence(signal, SETTINGS.trim_top_db)
    item = preparation.prepare(task, noise, 1, SETTINGS)
    np.testing.assert_array_equal(item["variants"][0][3], features.mfcc(speech, SETTINGS))


@pytest.mark.parametrize("snrs", [(), (15.0,), (30.0, -5.0, 7.5)])
def test_prepare_follows_the_settings_snrs(clips, noise, snrs):
    settings = Settings(snrs_db=snrs)
    item = preparation.prepare(task_of(clips[2]), noise, 1, settings)
    assert [variant[0] for variant in item["variants"]] == ["clean"] + [preparation.variant_name(snr) for snr in snrs]


@pytest.mark.parametrize("snr, name", [(None, "clean"), (20.0, "snr20"), (7.5, "snr7.5"), (-5.0, "snr-5"), (0.0, "snr0")])
def test_variant_name(snr, name):
    assert preparation.variant_name(snr) == name


def test_prepare_is_deterministic(clips, noise):
    task = task_of(clips[3])
    first = preparation.prepare(task, noise, 1, SETTINGS)
    preparation.prepare(task_of(clips[4]), noise, 1, SETTINGS)  # other work in between changes nothing
    second = preparation.prepare(task, noise, 1, SETTINGS)
    assert_same_items(first, second)


def test_noise_depends_on_seed_and_content(clips, noise):
    task = task_of(clips[5])
    base = preparation.prepare(task, noise, 1, SETTINGS)
    other_seed = preparation.prepare(task, noise, 1, SETTINGS.replace(seed=43))
    assert np.array_equal(base["variants"][0][3], other_seed["variants"][0][3])  # clean: no randomness
    assert not np.array_equal(base["variants"][-1][3], other_seed["variants"][-1][3])


def test_same_content_elsewhere_gets_the_same_features(clips, noise, tmp_path):
    copy = tmp_path / "renamed copy.wav"
    shutil.copyfile(clips[6].path, copy)
    first = preparation.prepare(task_of(clips[6]), noise, 1, SETTINGS)
    second = preparation.prepare(task_of(LabelledRecording(copy, clips[6].sex, clips[6].speaker, "test", True)),
                                 noise, 1, SETTINGS)
    for one, two in zip(first["variants"], second["variants"]):
        assert np.array_equal(one[3], two[3])


@pytest.mark.parametrize(
    "rate, subtype, channels, frames_tolerance",
    # 8-bit quantisation noise lifts the quiet ends above the trimming threshold: up to 0.5 s more is kept.
    [(48000, "PCM_24", 2, 3), (16000, "FLOAT", 1, 0), (8000, "PCM_U8", 1, 50)],
)
def test_prepare_other_formats_of_the_same_speech(clips, noise, tmp_path, rate, subtype, channels, frames_tolerance):
    signal, _ = audio.load_audio(clips[7].path, rate)
    path = tmp_path / f"converted-{rate}.wav"
    soundfile.write(path, np.repeat(signal[:, None], channels, axis=1), rate, subtype=subtype)
    item = preparation.prepare(task_of(LabelledRecording(path, "female", "x", "test")), noise, 1, SETTINGS)
    assert item["original_sample_rate"] == rate and item["original_channels"] == channels
    reference = preparation.prepare(task_of(clips[7]), noise, 1, SETTINGS)
    assert abs(item["variants"][0][3].shape[0] - reference["variants"][0][3].shape[0]) <= frames_tolerance
    for _, _, _, matrix in item["variants"]:
        assert matrix.dtype == np.float32 and np.isfinite(matrix).all()


# make_task -------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing", "text", "empty", "folder"])
def test_make_task_refuses_unusable_files(tmp_path, case):
    path = tmp_path / f"bad {case}.wav"
    if case == "text":
        path.write_text("hello")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "folder":
        path.mkdir()
    with pytest.raises(AcousticsError) as caught:
        preparation.make_task(LabelledRecording(path, "male", "s", "t"))
    assert path.name in str(caught.value) and "\n" not in str(caught.value)


# prepare_all -----------------------------------------------------------------------------------
def skip_reason(result) -> str:
    assert isinstance(result, Skipped), result
    return result.reason


def test_prepare_all_skips_a_silent_file_with_its_reason(clips, noise, tmp_path):
    silent = silent_recording(tmp_path)
    results = list(preparation.prepare_all([task_of(clips[0]), task_of(silent), task_of(clips[1])], noise, 1, SETTINGS))
    assert isinstance(results[0], dict) and isinstance(results[2], dict)
    assert results[1].path == str(silent.path)
    assert skip_reason(results[1]).startswith("silent")


def test_prepare_all_skips_a_file_that_became_unreadable(clips, noise, tmp_path):
    """The file was fine when its task was made (header checked, hashed), then was overwritten."""
    path = tmp_path / "changing.wav"
    shutil.copyfile(clips[0].path, path)
    task = task_of(LabelledRecording(path, "male", "s", "t"))
    path.write_text("now a text file", encoding="utf-8")
    gone = tmp_path / "gone.wav"
    shutil.copyfile(clips[1].path, gone)
    gone_task = task_of(LabelledRecording(gone, "male", "s", "t"))
    gone.unlink()
    results = list(preparation.prepare_all([task, gone_task], noise, 1, SETTINGS))
    assert "not a readable audio file" in skip_reason(results[0])
    assert "no such file" in skip_reason(results[1])
    assert [result.path for result in results] == [str(path), str(gone)]
    assert not skip_reason(results[1]).startswith(str(tmp_path))  # the path is in .path, not before the reason


@pytest.mark.parametrize("problem", ["silent", "clipped", "too-short"])
def test_prepare_all_reasons(noise, tmp_path, problem):
    if problem == "silent":
        signal = np.zeros(RATE, np.float32)
    elif problem == "clipped":
        signal = np.clip(np.sin(np.arange(RATE) * 0.2) * 4, -1, 1).astype(np.float32)
    else:
        signal = (0.3 * np.sin(np.arange(800) * 0.2)).astype(np.float32)  # 50 ms
    path = tmp_path / f"{problem}.wav"
    soundfile.write(path, signal, RATE, subtype="FLOAT")
    [result] = preparation.prepare_all([task_of(LabelledRecording(path, "male", "s", "t"))], noise, 1, SETTINGS)
    reason = skip_reason(result)
    assert {"silent": "silent", "clipped": "clipped", "too-short": "minimum"}[problem] in reason


def written(folder: Path, name: str, signal: np.ndarray) -> LabelledRecording:
    path = folder / f"{name}.wav"
    soundfile.write(path, np.asarray(signal, np.float32), RATE, subtype="PCM_16")
    return LabelledRecording(path, "female", "s", "t")


@pytest.mark.parametrize("kind, note", [("as recorded", ""), ("-60 dBFS", "quiet: -"), ("1 % clipped", "clipped 1.0 %"),
                                        ("0 dB SNR white noise", "noisy")])
def test_prepare_keeps_poor_but_audible_speech_with_its_note(kind, note, clips, noise, tmp_path):
    """Stage 3 stores what stage 5 classifies: the same speechcheck.usable_speech decides both."""
    clip = np.concatenate([np.zeros(RATE // 2, np.float32), audio.load_audio(clips[4].path, RATE)[0]])
    speech = audio.trim_silence(clip, SETTINGS.trim_top_db)
    signal = {
        "as recorded": lambda: clip,
        "-60 dBFS": lambda: clip * 10 ** ((-60 - audio.level_dbfs(clip)) / 20),
        "1 % clipped": lambda: np.clip(clip * audio.CLIP_LEVEL / np.quantile(np.abs(speech), 0.99), -1, 1),
        "0 dB SNR white noise": lambda: np.clip(clip + np.random.default_rng(4).standard_normal(clip.size)
                                                * 10 ** (audio.level_dbfs(speech) / 20), -1, 1),
    }[kind]()
    [item] = preparation.prepare_all([task_of(written(tmp_path, kind, signal))], noise, 1, SETTINGS)
    assert isinstance(item, dict), item
    assert (note in item["note"]) if note else item["note"] == "", item["note"]
    assert len(item["variants"]) == 1 + len(SETTINGS.snrs_db)


@pytest.mark.parametrize("kind, reason", [("constant value", "silent"), ("440 Hz sine", "no speech detected"),
                                          ("white noise", "no speech detected")])
def test_prepare_still_skips_sound_without_speech(kind, reason, noise, tmp_path):
    seconds = np.arange(2 * RATE) / RATE
    signal = {
        "constant value": np.full(2 * RATE, 0.25),
        "440 Hz sine": 0.5 * np.sin(2 * np.pi * 440 * seconds),
        "white noise": np.random.default_rng(6).standard_normal(2 * RATE) * 0.1,
    }[kind]
    [result] = preparation.prepare_all([task_of(written(tmp_path, kind, signal))], noise, 1, SETTINGS)
    assert skip_reason(result).startswith(reason)


def test_skip_reason_of_a_file_with_colon_space_in_its_name(noise, tmp_path):
    path = tmp_path / "Take: 2.wav"
    soundfile.write(path, np.zeros(RATE, np.float32), RATE)
    [result] = preparation.prepare_all([task_of(LabelledRecording(path, "male", "s", "t"))], noise, 1, SETTINGS)
    assert skip_reason(result).startswith("silent")


def test_prepare_all_order_does_not_change_the_numbers(clips, noise):
    tasks = [task_of(recording) for recording in clips[:5]]
    forward = list(preparation.prepare_all(tasks, noise, 1, SETTINGS))
    backward = list(preparation.prepare_all(tasks[::-1], noise, 1, SETTINGS))[::-1]
    for first, second in zip(forward, backward):
        assert_same_items(first, second)


def test_prepare_all_with_two_workers_gives_the_same_results(clips, noise, tmp_path):
    tasks = [task_of(recording) for recording in clips]
    tasks.insert(5, task_of(silent_recording(tmp_path, "silent a.wav")))
    tasks.append(task_of(silent_recording(tmp_path, "silent b.wav")))
    assert len(tasks) >= 16
    serial = list(preparation.prepare_all(tasks, noise, 2, SETTINGS, workers=1))
    parallel = list(preparation.prepare_all(tasks, noise, 2, SETTINGS, workers=2))
    assert len(serial) == len(parallel) == len(tasks)
    for task, one, two in zip(tasks, serial, parallel):
        if isinstance(one, Skipped):
            assert one == two and one.path == str(task.recording.path)
        else:
            assert one["sha256"] == task.sha256
            assert_same_items(one, two)
    assert sum(isinstance(result, Skipped) for result in parallel) == 2


def test_prepared_items_round_trip_through_the_database(clips, noise, tmp_path):
    path = tmp_path / "features.db"
    create_database(path, SETTINGS)
    items = [result for result in preparation.prepare_all([task_of(recording) for recording in clips[:4]], noise, 1,
                                                           SETTINGS) if isinstance(result, dict)]
    with FeatureDatabase(path) as feature_database:
        noise_id = feature_database.add_noise(name="room", kind="synthetic", sha256="0" * 64, duration_seconds=3,
                                              level_dbfs=-45)
        for prepared in items:
            prepared["variants"] = [(name, noise_id if snr is not None else None, snr, matrix)
                                    for name, _, snr, matrix in prepared["variants"]]
        assert feature_database.add_recordings(items) == 4
        assert feature_database.add_recordings(items) == 0  # a rerun stores nothing twice
        index = feature_database.feature_index()
        loaded = feature_database.load_features(index["feature_id"])
    assert len(index) == 4 * 5
    by_hash = {prepared["sha256"]: prepared for prepared in items}
    hashes = {}
    with FeatureDatabase(path, readonly=True) as feature_database:
        for recording_id, sha256 in feature_database.connection.execute("SELECT id, sha256 FROM recordings"):
            hashes[recording_id] = sha256
    for row in index.itertuples():
        variants = {name: matrix for name, _, _, matrix in by_hash[hashes[row.recording_id]]["variants"]}
        assert np.array_equal(loaded[row.feature_id], variants[row.variant])

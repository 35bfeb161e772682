"""Outputs and inputs that are not plain files (devices, FIFOs, standard output), files that are not what an
output would replace, and stored JSON nested too deep. Nothing is renamed over a device, nothing blocks,
nothing is lost, nothing gives a traceback."""

from __future__ import annotations

import os
import shutil
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from acoustics import audio, outputs
from acoustics.errors import BadAudioError, BadParameterError
from conftest import EMODB, one_line, run_stage, speak

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX feature")


@pytest.fixture(scope="module")
def voice(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voice")
    clips = sorted((EMODB / "wav").glob("03a05*.wav")) if (EMODB / "labels.csv").exists() else []
    if clips:
        return shutil.copyfile(clips[0], folder / "voice.wav")
    return speak("Guten Morgen, wie geht es Ihnen", folder / "voice.wav")


def read_fifo_in_background(fifo) -> dict:
    """Start reading ``fifo`` to its end in a thread; the returned dict gets "data" when done."""
    got = {}

    def read() -> None:
        with open(fifo, "rb") as handle:
            got["data"] = handle.read()

    threading.Thread(target=read, daemon=True).start()
    return got


def verdict_table(target) -> None:
    """Write a one-row verdict table to ``target`` as stage 5's --csv does (no model needed)."""
    from acoustics import fileverdicts
    from acoustics.verdict import Verdict

    outputs.check_output_path(target, "--csv", "CSV table", replaces=(".csv",))
    outputs.check_writable(target, "--csv")
    fileverdicts.write_csv(target, ["voice.wav"], [Verdict("female", 0.1, 2.0, 1.8)])


def test_csv_into_a_fifo_is_written_to_it_and_leaves_it_a_fifo(tmp_path):
    fifo = tmp_path / "table"
    os.mkfifo(fifo)
    got = read_fifo_in_background(fifo)
    verdict_table(fifo)
    for _ in range(100):
        if "data" in got:
            break
        threading.Event().wait(0.05)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got["data"].decode().startswith("path,label,probability") and "voice.wav,female" in got["data"].decode()


def test_csv_onto_standard_output_goes_there(capfd):
    verdict_table("/dev/stdout")
    assert os.path.islink("/dev/stdout") or not os.path.isfile("/dev/stdout")
    assert capfd.readouterr().out.startswith("path,label,probability")


def test_csv_onto_dev_null_leaves_the_device_a_device():
    verdict_table("/dev/null")  # as root, a rename over /dev/null would replace the device with a file
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_csv_does_not_replace_a_file_that_is_no_table_unless_told(voice, tmp_path):
    notes = tmp_path / "notes.json"
    notes.write_text('{"keep": true}\n')
    refused = run_stage("implement_model.py", voice, "--csv", notes, timeout=120)
    assert refused.returncode == 1 and notes.read_text() == '{"keep": true}\n'
    one_line(refused.stderr.strip(), notes, "--overwrite")
    outputs.check_output_path(notes, "--csv", "CSV table", replaces=(".csv",), overwrite=True)  # told: it may


def test_csv_onto_its_own_manifest_is_refused(voice, tmp_path):
    manifest = tmp_path / "labels.csv"
    text = f"path,sex,speaker\n{voice},female,a\n"
    manifest.write_text(text)
    done = run_stage("implement_model.py", "--manifest", manifest, "--csv", manifest, timeout=120)
    assert done.returncode == 1 and manifest.read_text() == text
    one_line(done.stderr.strip(), "would overwrite the manifest")


def test_a_name_ending_in_a_slash_is_a_folder(tmp_path):
    with pytest.raises(BadParameterError) as caught:
        outputs.check_output_path(f"{tmp_path}/new/", "--csv", "CSV table")
    one_line(caught.value, "--csv", "names a folder")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("stage, arguments", [
    ("speech_prep.py", ("--manifest", "{fifo}")),
    ("implement_model.py", ("--manifest", "{fifo}")),
    ("train_models.py", ("--check", "models/reference.h5", "--bench", "{fifo}")),
])
def test_a_fifo_given_as_an_input_is_refused_at_once(stage, arguments, tmp_path):
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    if stage == "speech_prep.py":  # a database and a noise to get as far as the manifest
        environment = {"ACOUSTICS_DATA": str(tmp_path / "data")}
        assert run_stage("set_up_sql.py", env=environment).returncode == 0
        assert run_stage("collect_background_noise.py", "--synthetic", env=environment).returncode == 0
    done = run_stage(stage, *[argument.format(fifo=fifo) for argument in arguments],
                     env={"ACOUSTICS_DATA": str(tmp_path / "data")}, timeout=120)  # no writer: reading would block
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert "FIFO" in done.stdout + done.stderr


def test_a_fifo_is_no_audio_file(tmp_path):
    fifo = tmp_path / "voice.wav"
    os.mkfifo(fifo)  # no writer: reading it would block
    with pytest.raises(BadAudioError) as caught:
        audio.load_audio(fifo, 16000)
    one_line(caught.value, fifo, "not a regular file")


def test_a_device_is_no_audio_file_and_no_manifest(tmp_path):
    with pytest.raises(BadAudioError) as caught:
        audio.load_audio("/dev/zero", 16000)
    one_line(caught.value, "/dev/zero", "not a regular file")
    from acoustics import corpus

    with pytest.raises(BadParameterError) as refused:
        corpus.read_manifest("/dev/zero")
    one_line(refused.value, "--manifest /dev/zero", "a device")


def test_a_huge_manifest_is_refused_before_it_is_read(tmp_path):
    from acoustics import corpus, inputs

    manifest = tmp_path / "huge.csv"
    with open(manifest, "wb") as handle:
        handle.truncate(inputs.MAX_TABLE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(BadParameterError) as caught:
        corpus.read_manifest(manifest)
    one_line(caught.value, manifest, "MB")


def test_is_stream_tells_devices_fifos_and_files_apart(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "file.csv").write_text("a\n")
    assert outputs.is_stream("/dev/null") and outputs.is_stream(fifo) and outputs.is_stream("/dev/stdout")
    assert not outputs.is_stream(tmp_path / "file.csv") and not outputs.is_stream(tmp_path / "missing.csv")
    np.testing.assert_equal(outputs.is_stream(tmp_path), False)


def test_stored_json_nested_too_deep_is_one_line_and_a_damaged_best_model_is_passed_over(tmp_path):
    import h5py

    from acoustics import inputs, modelfile
    from acoustics.errors import BadModelError

    with pytest.raises(ValueError, match="nested more than"):
        inputs.bounded_json("[" * 100_000 + "]" * 100_000)
    assert inputs.bounded_json('{"a": ["[[[[", {"b": 1}]}') == {"a": ["[[[[", {"b": 1}]}
    best = tmp_path / "data" / "models" / "best.h5"
    best.parent.mkdir(parents=True)
    shutil.copyfile("models/reference.h5", best)
    with h5py.File(best, "a") as handle:
        key = next(key for key in handle.attrs if key.endswith("provenance"))
        handle.attrs[key] = "[" * 50_000 + "]" * 50_000
    with pytest.raises(BadModelError) as caught:
        modelfile.read_metadata(best)
    one_line(caught.value, best, "damaged")
    from acoustics import verdict

    choice = verdict.choose_model(None, best.parent)  # what stage 5 does without --model
    assert choice.path == verdict.REFERENCE_MODEL and choice.line.startswith("Answering: the reference model")
    one_line(choice.warning, "Warning:", best, "The reference model answers instead.")


@pytest.mark.parametrize("attribute, value", [("scores", "[1, 2, 3]"), ("scores", '{"test": {"accuracy": "high"}}'),
                                              ("scores", '{"test": []}'), ("history", '{"loss": ["low"]}')])
def test_check_says_in_one_line_that_stored_scores_are_damaged(attribute, value, tmp_path):
    import h5py

    model = tmp_path / "model.h5"
    shutil.copyfile("models/reference.h5", model)
    with h5py.File(model, "a") as handle:
        handle.attrs[next(key for key in handle.attrs if key.endswith(attribute))] = value
    done = run_stage("train_models.py", "--check", model, "--db", tmp_path / "none.db", timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    one_line(done.stderr.strip(), model, "damaged")


def test_segments_onto_standard_output_save_their_pictures_in_the_data_folder(voice, tmp_path):
    done = run_stage("implement_model.py", "--segments", voice, "--csv", "/dev/stdout",
                     env={"ACOUSTICS_DATA": str(tmp_path / "data")}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "path,label,start,stop,p_male" in done.stdout
    assert list((tmp_path / "data" / "pictures").glob("segments-voice*.png")) and not list(Path("/dev").glob("segments-*"))

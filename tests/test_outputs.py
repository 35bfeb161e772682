"""acoustics.outputs, and every stage refusing, before any work, an output that would overwrite an input,
the feature database, a model or another kind of file."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import run_stage

from acoustics import outputs
from acoustics.dbfile import create_database
from acoustics.errors import AcousticsError, BadParameterError
from acoustics.settings import Settings

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@pytest.fixture
def files(tmp_path) -> dict:
    """A database, a WAV clip, a fake model, a PNG and a CSV in a scratch folder."""
    database = tmp_path / "features.db"
    create_database(database, Settings())
    clip = tmp_path / "in.wav"
    soundfile.write(clip, (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    model = tmp_path / "model.h5"
    model.write_bytes(HDF5_MAGIC + bytes(100))
    picture = tmp_path / "old.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    table = tmp_path / "old.csv"
    table.write_text("path,label\n")
    return {"db": database, "wav": clip, "model": model, "png": picture, "csv": table, "folder": tmp_path}


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The helper -------------------------------------------------------------------------------------
def test_file_kind_by_content_then_by_suffix(files, tmp_path):
    disguised = tmp_path / "features.png"
    disguised.write_bytes(files["db"].read_bytes())
    assert outputs.file_kind(files["db"]) == "SQLite database"
    assert outputs.file_kind(disguised) == "SQLite database"  # the content wins over the name
    assert outputs.file_kind(files["wav"]) == "WAV audio file"
    assert outputs.file_kind(files["model"]) == "HDF5 file (a model)"
    assert outputs.file_kind(tmp_path / "new.db") == "SQLite database"
    assert outputs.file_kind(files["csv"]) == "CSV table"
    assert outputs.file_kind(tmp_path / "notes.txt") is None


def test_the_same_file_under_another_name_is_refused(files):
    link = files["folder"] / "link.db"
    link.symlink_to(files["db"])
    with pytest.raises(BadParameterError) as raised:
        outputs.check_output_path(files["folder"] / "sub" / ".." / "link.db", "--csv", "CSV table",
                                  {"the feature database": files["db"]})
    assert "would overwrite the feature database" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("name, writes, words", [
    ("model", "CSV table", "would overwrite the HDF5 file (a model)"),
    ("png", "WAV audio file", "would overwrite the PNG picture"),
])
def test_an_existing_file_of_another_kind_is_refused(name, writes, words, files):
    with pytest.raises(BadParameterError, match=words.replace("(", r"\(").replace(")", r"\)")):
        outputs.check_output_path(files[name], "--out", writes)


def test_allowed_outputs_pass(files, tmp_path):
    outputs.check_output_path(files["csv"], "--csv", "CSV table", {"the model": files["model"]})
    outputs.check_output_path(tmp_path / "new.csv", "--csv", "CSV table", {"the model": None})
    outputs.check_output_path(tmp_path / "notes.txt", "--csv", "CSV table")
    outputs.check_picture_path(files["png"], "--picture")
    outputs.check_picture_path(tmp_path / "new.pdf", "--picture")


@pytest.mark.parametrize("name", ["picture.db", "picture", "picture.txt"])
def test_a_picture_needs_a_picture_suffix(name, tmp_path):
    with pytest.raises(BadParameterError, match=r"needs a name ending in \.png"):
        outputs.check_picture_path(tmp_path / name, "--picture")


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(BadParameterError, match="is a folder"):
        outputs.check_output_path(tmp_path, "--csv", "CSV table")


# The stages -------------------------------------------------------------------------------------
def assert_refused(done, *words) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


@pytest.mark.parametrize("target, words", [
    ("db", ("would overwrite the feature database",)),
    ("wav", ("would overwrite the input audio file",)),
    ("model", ("would overwrite the model",)),
    ("png", ("would overwrite the PNG picture",)),
    ("folder", ("is a folder",)),
])
def test_stage5_csv_never_overwrites(target, words, files):
    before = {name: digest(path) for name, path in files.items() if name != "folder"}
    done = run_stage("implement_model.py", "--wav", files["wav"], "--csv", files[target], "--db", files["db"],
                     "--model", files["model"], timeout=120)
    assert_refused(done, f"--csv {files[target]}", *words)
    assert done.stdout == ""  # before any work
    assert {name: digest(path) for name, path in files.items() if name != "folder"} == before


def test_stage5_csv_never_overwrites_a_file_in_an_input_folder(files):
    done = run_stage("implement_model.py", "--wav", files["folder"], "--csv", files["wav"], "--db", files["db"],
                     "--model", files["model"], timeout=120)
    assert_refused(done, "would overwrite the input audio file")


@pytest.mark.parametrize("options, words", [
    (("--out", "{db}"), "--out {db} would overwrite the feature database {db}"),
    (("--picture", "{db}"), "--picture {db} would overwrite the feature database {db}"),
    (("--picture", "{folder}/noise.db"), "--picture {folder}/noise.db: a picture needs a name ending in .png"),
    (("--out", "{model}"), "--out {model} would overwrite the HDF5 file (a model)"),
    (("--out", "{folder}/noise.png", "--picture", "{folder}/noise.png"), "--out {folder}/noise.png would overwrite the picture"),
])
def test_stage2_outputs_never_overwrite(options, words, files):
    names = {name: str(path) for name, path in files.items()}
    before = digest(files["db"]), digest(files["model"])
    options = [option.format(**names) for option in options]
    arguments = ["--synthetic", "--seconds", 1, "--db", files["db"], *options]
    if "--picture" not in options:
        arguments += ["--picture", files["folder"] / "noise.png"]
    if "--out" not in options:
        arguments += ["--out", files["folder"] / "noise.wav"]
    done = run_stage("collect_background_noise.py", *arguments, timeout=120)
    assert_refused(done, words.format(**names))
    assert (digest(files["db"]), digest(files["model"])) == before
    assert not (files["folder"] / "noise.wav").exists() and not (files["folder"] / "noise.png").exists()


def test_stage3_picture_never_overwrites_the_database(files):
    before = digest(files["db"])
    done = run_stage("speech_prep.py", "--db", files["db"], "--noise", files["wav"], "--svd", files["folder"],
                     "--picture", files["db"], timeout=120)
    assert_refused(done, f"--picture {files['db']} would overwrite the feature database")
    assert digest(files["db"]) == before and done.stdout == ""


def test_stage4_never_overwrites_the_database(files):
    models_folder = files["folder"] / "models"
    models_folder.mkdir()
    database = models_folder / "cnn.h5"  # a database under the name of a model
    database.write_bytes(files["db"].read_bytes())
    done = run_stage("train_models.py", "--db", database, "--out", models_folder, "--model", "cnn", timeout=120)
    assert_refused(done, f"--out {database} would overwrite the feature database {database}")
    assert database.read_bytes() == files["db"].read_bytes()
    done = run_stage("train_models.py", "--db", files["db"], "--out", files["model"], timeout=120)
    assert_refused(done, f"--out {files['model']} is a file, not a folder")


# Leftover temporary files of an atomic save that was killed --------------------------------------
def _aged(path, seconds=3600):
    path.write_bytes(HDF5_MAGIC)
    old = path.stat().st_mtime - seconds
    import os

    os.utime(path, (old, old))
    return path


def test_remove_stale_temporaries_removes_only_old_files_of_its_own_pattern(tmp_path):
    stale = [_aged(tmp_path / ".cnn.h5.ab_cd123.tmp.h5"), _aged(tmp_path / ".best.h5.k9x2m0qz.tmp.h5")]
    kept = [_aged(tmp_path / "cnn.h5"), _aged(tmp_path / ".cnn.h5.tmp.h5"), _aged(tmp_path / ".other.h5.ab_cd123.tmp.h5"),
            _aged(tmp_path / ".cnn.h5.ab_cd123.tmp.h5.bak"), _aged(tmp_path / ".cnn.h5.abc.tmp.h5")]
    fresh = tmp_path / ".lstm.h5.zzzzzzzz.tmp.h5"
    fresh.write_bytes(HDF5_MAGIC)  # a save in progress
    link = tmp_path / ".ensemble.h5.llllllll.tmp.h5"
    link.symlink_to(kept[0])
    assert outputs.remove_stale_temporaries(tmp_path, ("cnn", "lstm", "ensemble", "best")) == 2
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept + [fresh]) and link.is_symlink()
    assert outputs.remove_stale_temporaries(tmp_path / "missing", ("cnn",)) == 0


def test_stage4_removes_leftover_temporaries_and_says_how_many(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    leftovers = [_aged(models / ".cnn.h5.a1b2c3d4.tmp.h5"), _aged(models / ".best.h5.e5f6g7h8.tmp.h5")]
    result = run_stage("train_models.py", "--db", tmp_path / "none.db", "--out", models)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Removed 2 leftover temporary files" in result.stdout and str(models) in result.stdout
    assert not any(path.exists() for path in leftovers)


def test_write_atomically_replaces_the_whole_file_or_leaves_the_old_one(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    outputs.write_atomically(target, lambda temporary: open(temporary, "w").write("new\n"), "--csv")
    assert target.read_text() == "new\n" and not (tmp_path / "out.csv.tmp").exists()

    def fails(temporary) -> None:
        open(temporary, "w").write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(AcousticsError, match=r"Cannot write .*out\.csv \(No space left on device\); choose another --csv path"):
        outputs.write_atomically(target, fails, "--csv")
    assert target.read_text() == "new\n" and not (tmp_path / "out.csv.tmp").exists()


def test_a_copy_onto_a_full_disk_is_one_line_and_keeps_the_old_copy(tmp_path, monkeypatch):
    source, target = tmp_path / "cnn.h5", tmp_path / "best.h5"
    source.write_bytes(b"new model")
    target.write_bytes(b"old model")

    def fills_the_disk(from_path, to_path) -> None:
        Path(to_path).write_bytes(b"new")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.shutil, "copyfile", fills_the_disk)
    with pytest.raises(AcousticsError) as caught:
        outputs.copy_atomically(source, target)
    assert str(caught.value) == (f"Cannot write {target} (No space left on device); free some space there and run again. "
                                 f"{source} is complete and can be used as it is.")
    assert target.read_bytes() == b"old model" and sorted(item.name for item in tmp_path.iterdir()) == ["best.h5", "cnn.h5"]


def test_free_space_is_checked_against_what_is_needed(tmp_path, monkeypatch):
    outputs.check_free_space(tmp_path, 1000, "the model m.h5", "free some space")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda folder: usage._replace(free=2_500_000))
    outputs.check_free_space(tmp_path, 2_500_000, "the model m.h5", "free some space")
    with pytest.raises(AcousticsError, match=rf"^{re.escape(str(tmp_path))}: the disk is too full for the model m.h5 "
                                             r"\(it needs about 3.0 MB, 2.5 MB are free\); free some space.$"):
        outputs.check_free_space(tmp_path, 3_000_000, "the model m.h5", "free some space")

    def unknown(folder):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(outputs.shutil, "disk_usage", unknown)
    outputs.check_free_space(tmp_path, 3_000_000, "the model m.h5", "free some space")  # cannot tell: the write will say


def test_check_writable_refuses_a_missing_folder_and_says_which_option(tmp_path):
    outputs.check_writable(tmp_path / "out.csv", "--csv")
    with pytest.raises(BadParameterError, match=r"there is no folder .*missing\); choose another --table path"):
        outputs.check_writable(tmp_path / "missing" / "out.csv", "--table")
    assert outputs.save_warning("the picture p.png", OSError(28, "No space left on device")) == (
        "Warning: could not save the picture p.png (No space left on device); use --no-save, or free the disk.")

"""One recording, one row; one person, one speaker: stage 3 on EmoDB listed by several manifests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from acoustics import audio, mixing
from conftest import run_stage, speak

#: Two EmoDB files of each of speakers 03 (male) and 08 (female).
FILES = {"03a01Fa.wav": ("male", "03"), "03a01Nc.wav": ("male", "03"),
         "08a01Fd.wav": ("female", "08"), "08a01Lc.wav": ("female", "08")}


@pytest.fixture
def workspace(tmp_path) -> dict:
    data = tmp_path / "data"
    assert run_stage("set_up_sql.py", "--db", data / "features.db", "--snrs", "10").returncode == 0
    audio.write_wav(data / "noise.wav", mixing.synthetic_room_noise(5.0, 16000, np.random.default_rng(1)), 16000)
    return {"db": data / "features.db", "noise": data / "noise.wav", "data": data, "root": tmp_path}


def manifest(path: Path, rows: list) -> Path:
    """A manifest at ``path`` of ``rows`` (absolute path, sex, speaker)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("path,sex,speaker\n" + "".join(f"{file},{sex},{speaker}\n" for file, sex, speaker in rows))
    return path


def emodb_rows(emodb_dir, names, **relabel) -> list:
    """Manifest rows of the EmoDB files ``names``; ``relabel`` maps a file name to another sex."""
    return [(emodb_dir / "wav" / name, relabel.get(name.replace(".", "_"), FILES[name][0]), FILES[name][1])
            for name in names]


def prep(workspace, *arguments):
    result = run_stage("speech_prep.py", "--db", workspace["db"], "--noise", workspace["noise"], "--svd", workspace["data"],
                       "--no-picture", "--workers", "1", *arguments)
    assert "Traceback" not in result.stderr
    return result


def speakers(db_path) -> list:
    """(source, name, sex, recordings) of every stored speaker, sorted."""
    with sqlite3.connect(db_path) as connection:
        return sorted(connection.execute(
            "SELECT speakers.source, speakers.name, speakers.sex, count(recordings.id) FROM speakers "
            "LEFT JOIN recordings ON recordings.speaker_id = speakers.id GROUP BY speakers.id").fetchall())


def recordings(db_path) -> tuple:
    with sqlite3.connect(db_path) as connection:
        return connection.execute("SELECT count(*), count(DISTINCT sha256) FROM recordings").fetchone()


def test_one_corpus_through_two_manifests_keeps_one_speaker_each(workspace, emodb_dir):
    root = workspace["root"]
    first = manifest(root / "a" / "labels.csv", emodb_rows(emodb_dir, ["03a01Fa.wav", "08a01Fd.wav", "03a01Nc.wav"]))
    second = manifest(root / "b" / "labels.csv", emodb_rows(emodb_dir, ["03a01Nc.wav", "08a01Lc.wav"]))
    result = prep(workspace, "--manifest", first, "--manifest", second, "--corpus", "emodb")
    assert result.returncode == 0, result.stderr  # a repeated listing is no skip: the file is stored
    assert recordings(workspace["db"]) == (4, 4)
    assert speakers(workspace["db"]) == [("emodb", "03", "male", 2), ("emodb", "08", "female", 2)]
    assert "1 listings repeat a file" in result.stdout


def test_same_files_in_two_folders_without_corpus_are_one_person(workspace, emodb_dir):
    """Without --corpus the folders name two corpora, but shared content links their speakers: no person twice."""
    root = workspace["root"]
    first = manifest(root / "a" / "labels.csv", emodb_rows(emodb_dir, ["03a01Fa.wav", "08a01Fd.wav"]))
    second = manifest(root / "b" / "labels.csv", emodb_rows(emodb_dir, list(FILES)))
    result = prep(workspace, "--manifest", first, "--manifest", second)
    assert result.returncode == 0, result.stderr
    assert recordings(workspace["db"]) == (4, 4)
    assert speakers(workspace["db"]) == [("a", "03", "male", 2), ("a", "08", "female", 2)]
    assert "Speaker 03 of corpus b shares recordings with speaker 03 of corpus a" in result.stdout


def test_a_later_run_through_another_folder_joins_the_stored_speaker(workspace, emodb_dir):
    root = workspace["root"]
    assert prep(workspace, "--manifest", manifest(root / "a" / "labels.csv",
                                                  emodb_rows(emodb_dir, ["03a01Fa.wav"]))).returncode == 0
    result = prep(workspace, "--manifest", manifest(root / "b" / "labels.csv",
                                                    emodb_rows(emodb_dir, ["03a01Fa.wav", "03a01Nc.wav"])))
    assert result.returncode == 0, result.stderr
    assert speakers(workspace["db"]) == [("a", "03", "male", 2)]


def test_speaker_03_of_two_corpora_stays_two_people(workspace, emodb_dir):
    root = workspace["root"]
    (root / "other").mkdir()
    clip = speak("Guten Morgen, wie geht es Ihnen", root / "other" / "clip.wav", voice="de+f2", pitch=60)
    emodb = manifest(root / "emodb" / "labels.csv", emodb_rows(emodb_dir, ["03a01Fa.wav"]))
    other = manifest(root / "other" / "labels.csv", [(clip, "female", "03")])
    result = prep(workspace, "--manifest", emodb, "--manifest", other)
    assert result.returncode == 0, result.stderr
    assert speakers(workspace["db"]) == [("emodb", "03", "male", 1), ("other", "03", "female", 1)], result.stdout


def test_one_file_labelled_male_and_female_is_skipped_not_fatal(workspace, emodb_dir):
    root = workspace["root"]
    first = manifest(root / "a" / "labels.csv", emodb_rows(emodb_dir, ["03a01Fa.wav", "08a01Fd.wav"]))
    second = manifest(root / "b" / "labels.csv", [(emodb_dir / "wav" / "03a01Fa.wav", "female", "03x")])
    result = prep(workspace, "--manifest", first, "--manifest", second, "--corpus", "emodb")
    assert result.returncode == 1, result.stderr  # the conflicting rows are skipped
    named = [line for line in result.stdout.splitlines() if "03a01Fa.wav: labelled" in line]
    assert len(named) == 2 and all("fix the label" in line for line in named), result.stdout
    assert f"{first} line 2" in result.stdout and f"{second} line 2" in result.stdout
    assert speakers(workspace["db"]) == [("emodb", "08", "female", 1)]


def test_one_speaker_labelled_with_both_sexes_skips_that_speaker_only(workspace, emodb_dir):
    root = workspace["root"]
    rows = emodb_rows(emodb_dir, list(FILES), **{"03a01Nc_wav": "female"})
    result = prep(workspace, "--manifest", manifest(root / "emodb" / "labels.csv", rows))
    assert result.returncode == 1, result.stderr  # the conflicting rows are skipped
    named = [line for line in result.stdout.splitlines() if "speaker 03 of corpus emodb is labelled both" in line]
    assert len(named) == 2, result.stdout
    assert speakers(workspace["db"]) == [("emodb", "08", "female", 2)]


def test_a_label_against_the_stored_sex_is_skipped(workspace, emodb_dir):
    root = workspace["root"]
    assert prep(workspace, "--manifest", manifest(root / "emodb" / "labels.csv",
                                                  emodb_rows(emodb_dir, ["03a01Fa.wav"]))).returncode == 0
    result = prep(workspace, "--manifest", manifest(root / "emodb" / "more.csv",
                                                    [(emodb_dir / "wav" / "03a01Nc.wav", "female", "03"),
                                                     (emodb_dir / "wav" / "08a01Fd.wav", "female", "08")]))
    assert result.returncode == 1, result.stderr  # the conflicting rows are skipped
    assert "03a01Nc.wav: speaker 03 of corpus emodb is labelled female" in result.stdout
    assert "stored as male" in result.stdout
    assert speakers(workspace["db"]) == [("emodb", "03", "male", 1), ("emodb", "08", "female", 1)]


def test_corpus_name_must_be_printable(workspace):
    result = prep(workspace, "--corpus", " ")
    assert result.returncode == 2 and "--corpus" in result.stderr

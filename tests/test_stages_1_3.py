"""Stages 1 and 3 run as an attendee runs them: real scripts, real SQLite, real espeak-ng speech."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from acoustics import audio, database, mixing
from conftest import PYTHON, ROOT, run_stage, speak, with_sigint

VOICES = [("de+m1", 30, "male"), ("de+m4", 50, "male"), ("de+m7", 40, "male"),
          ("de+f1", 60, "female"), ("de+f3", 70, "female"), ("de+f4", 55, "female")]
SENTENCES = ["Guten Morgen, wie geht es Ihnen", "Das Wetter ist heute schön"]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    """A manifest of 12 real espeak-ng clips (3 speakers per sex) plus the bad files of the stage issue."""
    folder = tmp_path_factory.mktemp("corpus")
    rows = ["path,sex,speaker"]
    for voice, pitch, sex in VOICES:
        speaker = f"{voice.replace('+', '')}p{pitch}"
        for number, sentence in enumerate(SENTENCES):
            name = f"{speaker} {number} 'quoted' ü.wav"  # spaces, quotes and non-ASCII in names
            speak(sentence, folder / name, voice=voice, pitch=pitch)
            rows.append(f'"{name}",{sex},{speaker}')
    (folder / "text.wav").write_text("this is not audio\n")
    (folder / "empty.wav").write_bytes(b"")
    soundfile.write(folder / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    soundfile.write(folder / "tiny.wav", np.resize([0.25, -0.25], 16).astype(np.float32), 16000)  # 1 ms of sound
    tone = np.clip(4 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000), -1, 1)
    soundfile.write(folder / "clipped.wav", tone, 16000)
    for name in ("text.wav", "empty.wav", "silent.wav", "tiny.wav", "clipped.wav", "missing.wav"):
        rows.append(f"{name},female,bad")
    rows.append("x.wav,child,kid")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def workspace(tmp_path) -> dict:
    """An empty database and a synthetic background noise in a scratch data folder."""
    data = tmp_path / "data"
    result = run_stage("set_up_sql.py", "--db", data / "features.db")
    assert result.returncode == 0, result.stderr
    audio.write_wav(data / "noise.wav", mixing.synthetic_room_noise(5.0, 16000, np.random.default_rng(1)), 16000)
    return {"db": data / "features.db", "noise": data / "noise.wav", "data": data}


def prep(workspace, *arguments, **options):
    return run_stage("speech_prep.py", "--db", workspace["db"], "--noise", workspace["noise"],
                     "--svd", workspace["data"], "--picture", workspace["data"] / "prep.png", *arguments, **options)


def stored(db_path) -> tuple:
    with sqlite3.connect(db_path) as connection:
        recordings = connection.execute("SELECT count(*), count(DISTINCT sha256) FROM recordings").fetchone()
        variants = connection.execute(
            "SELECT count(*) FROM (SELECT recording_id, count(*) AS n FROM features GROUP BY recording_id) WHERE n = 5"
        ).fetchone()[0]
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    return recordings[0], recordings[1], variants, integrity


def test_stage1_creates_then_keeps(tmp_path):
    db_path = tmp_path / "features.db"
    first = run_stage("set_up_sql.py", "--db", db_path)
    assert first.returncode == 0 and "Created the empty feature database" in first.stdout
    assert f"Next: python collect_background_noise.py --db {db_path}" in first.stdout
    second = run_stage("set_up_sql.py", "--db", db_path)
    assert second.returncode == 0 and "already exists; it was kept" in second.stdout
    with sqlite3.connect(db_path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"settings", "speakers", "recordings", "noises", "features", "splits", "runs", "feature_overview"} <= tables


def test_stage1_reset_needs_confirmation(tmp_path):
    db_path = tmp_path / "features.db"
    run_stage("set_up_sql.py", "--db", db_path)
    refused = run_stage("set_up_sql.py", "--db", db_path, "--reset")
    assert refused.returncode == 1 and "--yes" in refused.stderr and "Traceback" not in refused.stderr
    done = run_stage("set_up_sql.py", "--db", db_path, "--reset", "--yes", "--snrs", "10", "0")
    assert done.returncode == 0 and "Started over" in done.stdout
    with database.FeatureDatabase(db_path, readonly=True) as feature_database:
        assert feature_database.settings.snrs_db == (10.0, 0.0)


@pytest.mark.parametrize("content", [b"not a database at all\n", b"SQLite format 3\x00" + b"\x00" * 200])
def test_stage1_never_touches_a_foreign_file(tmp_path, content):
    db_path = tmp_path / "features.db"
    db_path.write_bytes(content)
    result = run_stage("set_up_sql.py", "--db", db_path, "--reset", "--yes")
    assert result.returncode == 1 and str(db_path) in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert db_path.read_bytes() == content


def test_stage3_stores_every_good_file_once_and_names_every_bad_one(workspace, small_corpus):
    result = prep(workspace, "--manifest", small_corpus / "manifest.csv")
    assert result.returncode == 1, result.stderr  # stored what it could; some listed files got no answer
    assert "7 of the listed recordings were skipped (listed above with the reason); the rest are stored." in result.stderr
    recordings, distinct, complete, integrity = stored(workspace["db"])
    assert (recordings, distinct, complete, integrity) == (12, 12, 12, "ok")
    for name, reason in [("text.wav", "not a readable audio file"), ("empty.wav", "empty"), ("silent.wav", "silent"),
                         ("tiny.wav", "only"), ("clipped.wav", "clipped"), ("missing.wav", "no such file"),
                         ("line 20", "unknown sex label 'child'")]:
        assert any(name in line and reason in line for line in result.stdout.splitlines()), (name, result.stdout)
    assert f"Next: python train_models.py --db {workspace['db']}" in result.stdout
    assert (workspace["data"] / "prep.png").stat().st_size > 10_000
    with database.FeatureDatabase(workspace["db"], readonly=True) as feature_database:
        counts = feature_database.counts()
        index = feature_database.feature_index()
    assert counts["male"] == {"speakers": 3, "recordings": 6, "features": 30}
    assert sorted(index.variant.unique()) == ["clean", "snr0", "snr10", "snr20", "snr5"]

    again = prep(workspace, "--manifest", small_corpus / "manifest.csv")
    assert again.returncode == 1 and "12 already stored, 3 to process" in again.stdout  # the 3 bad ones, again
    assert stored(workspace["db"])[:3] == (12, 12, 12)


def test_stage3_features_are_deterministic_across_runs(tmp_path, small_corpus):
    matrices = []
    for run in range(2):
        data = tmp_path / f"run{run}"
        run_stage("set_up_sql.py", "--db", data / "features.db")
        audio.write_wav(data / "noise.wav", mixing.synthetic_room_noise(5.0, 16000, np.random.default_rng(1)), 16000)
        result = run_stage("speech_prep.py", "--db", data / "features.db", "--noise", data / "noise.wav",
                           "--svd", data, "--manifest", small_corpus / "manifest.csv", "--workers", str(run + 1),
                           "--picture", data / "p.png")
        assert result.returncode == 1, result.stderr  # the bad files of the corpus are skipped
        with sqlite3.connect(data / "features.db") as connection:
            matrices.append(connection.execute(
                "SELECT r.sha256, f.variant, f.mfcc FROM features f JOIN recordings r ON r.id = f.recording_id "
                "ORDER BY r.sha256, f.variant").fetchall())
    assert matrices[0] == matrices[1]


def test_stage3_refuses_other_settings_unless_starting_over(workspace, small_corpus):
    prep(workspace, "--manifest", small_corpus / "manifest.csv", "--limit", "2")
    refused = prep(workspace, "--manifest", small_corpus / "manifest.csv", "--snrs", "15")
    assert refused.returncode == 1 and "snrs_db" in refused.stderr and "--start-over" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert stored(workspace["db"])[0] == 2
    fresh = prep(workspace, "--manifest", small_corpus / "manifest.csv", "--snrs", "15", "--start-over", "--limit", "3")
    assert fresh.returncode == 1, fresh.stderr  # the bad files of the corpus are skipped
    with sqlite3.connect(workspace["db"]) as connection:
        assert connection.execute("SELECT count(*) FROM features").fetchone()[0] == 3 * 2


@pytest.mark.parametrize("missing", ["database", "noise", "corpus"])
def test_stage3_says_what_to_run_first(workspace, missing):
    arguments = {"database": ["--db", workspace["data"] / "nope.db"], "noise": ["--noise", workspace["data"] / "nope.wav"],
                 "corpus": []}[missing]
    result = run_stage("speech_prep.py", "--db", workspace["db"], "--noise", workspace["noise"], "--svd", workspace["data"],
                       *arguments)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    expected = {"database": "set_up_sql.py", "noise": "collect_background_noise.py", "corpus": "male_speech"}[missing]
    assert expected in result.stderr


def test_stage3_reads_the_svd_layout(workspace, small_corpus):
    for sex, (voice, pitch) in (("male", ("de+m2", 40)), ("female", ("de+f2", 65))):
        folder = workspace["data"] / f"{sex}_speech"
        folder.mkdir()
        for offset, speaker in enumerate(("1001", "1002")):
            speak("Guten Morgen, wie geht es Ihnen", folder / f"{speaker}{sex[0]}-phrase.wav", voice=voice,
                  pitch=pitch + 5 * offset)  # identical files would be stored once
    result = prep(workspace)
    assert result.returncode == 0, result.stderr
    with database.FeatureDatabase(workspace["db"], readonly=True) as feature_database:
        speakers = feature_database.speakers()
    assert sorted(speakers.name) == ["1001f", "1001m", "1002f", "1002m"]
    assert set(speakers.source) == {"svd"}


def test_stage3_ctrl_c_keeps_what_was_stored(workspace, emodb_dir):
    """SIGINT in the middle: a clean message, a consistent database, and a rerun that completes it."""
    command = [PYTHON, str(ROOT / "speech_prep.py"), "--db", str(workspace["db"]), "--noise", str(workspace["noise"]),
               "--svd", str(workspace["data"]), "--manifest", str(emodb_dir / "labels.csv"), "--workers", "1",
               "--picture", str(workspace["data"] / "p.png")]
    process = subprocess.Popen(with_sigint(command), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and stored(workspace["db"])[0] < 64:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, errors
    assert "Stopped." in errors and "Traceback" not in errors
    recordings, distinct, complete, integrity = stored(workspace["db"])
    assert integrity == "ok" and recordings == distinct == complete and 0 < recordings < 535
    rerun = prep(workspace, "--manifest", emodb_dir / "labels.csv")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{recordings} already stored, {535 - recordings} to process" in rerun.stdout
    assert stored(workspace["db"]) == (535, 535, 535, "ok")


def test_stage3_a_negative_limit_is_refused_before_any_work(tmp_path):
    result = run_stage("speech_prep.py", "--db", tmp_path / "none.db", "--limit", -2)
    assert result.returncode == 2 and "argument --limit: must not be negative, not -2" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr

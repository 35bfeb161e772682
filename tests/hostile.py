"""Hostile and odd input, made for real, and the stage runs that must meet it with one clear line.

Used by tests/test_faults.py and bench/faults.py. Each case runs a stage script as a person would and
records whether it printed a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]


def speech(path: Path, voice: str = "de+f2", pitch: int = 60) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(path), "Guten Morgen, wie geht es Ihnen"],
                   check=True, capture_output=True)
    return path


def wav_header(channels: int, sample_rate: int, bits: int, data_bytes: int) -> bytes:
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate,
            sample_rate * block, block, bits) + b"data" + struct.pack("<I", data_bytes))


def make_hostile_files(folder: Path) -> dict:
    """Write every kind of bad and odd audio file into ``folder``: {name: (path, expected reason or None)}.

    A reason of None marks an odd but usable file (8-bit, stereo 96 kHz, odd names) that must be stored.
    """
    folder.mkdir(parents=True, exist_ok=True)
    clean, rate = soundfile.read(speech(folder / ".source.wav"), dtype="float32")
    (folder / ".source.wav").unlink()
    files = {}

    def add(name, reason, write):
        path = folder / name
        write(path)
        files[name] = (path, reason)

    add("1-text.wav", "not a readable audio file", lambda p: p.write_text("this is not audio\n"))
    add("2-empty.wav", "empty", lambda p: p.write_bytes(b""))
    add("3-truncated.wav", "cut short", lambda p: p.write_bytes(wav_header(1, 16000, 16, 64000) + b"\x01\x02" * 10))
    add("4-zero frames.wav", "no samples", lambda p: p.write_bytes(wav_header(1, 16000, 16, 0)))
    add("5-zero channels.wav", "declares 0 channels", lambda p: p.write_bytes(wav_header(0, 16000, 16, 3200) + b"\x00" * 3200))
    add("6-nan.wav", "NaN", lambda p: soundfile.write(p, np.where(np.arange(clean.size) % 100 == 0, np.nan, clean), rate, subtype="FLOAT"))
    add("7-inf.wav", "NaN or infinite", lambda p: soundfile.write(p, np.where(np.arange(clean.size) == 50, np.inf, clean), rate, subtype="FLOAT"))
    add("8-silent.wav", "silent", lambda p: soundfile.write(p, np.zeros(rate, dtype=np.float32), rate))
    add("9-clipped.wav", "clipped", lambda p: soundfile.write(p, np.clip(clean * 20, -1, 1), rate))
    add("10-one millisecond.wav", "only", lambda p: soundfile.write(p, clean[rate // 2 : rate // 2 + rate // 1000], rate))

    def ten_hours(path):
        data_bytes = 10 * 3600 * 16000 * 2
        with open(path, "wb") as handle:
            handle.write(wav_header(1, 16000, 16, data_bytes))
            handle.truncate(44 + data_bytes)  # sparse: 1.15 GB on paper, nothing on disk

    add("11-ten hours.wav", "minutes long", ten_hours)
    add("12-eight bit.wav", None, lambda p: soundfile.write(p, clean, rate, subtype="PCM_U8"))
    def stereo_96k(path):
        soundfile.write(path, np.stack([clean, clean * 0.5], axis=1), rate)
        converted = path.with_name(".stereo.wav")
        subprocess.run(["sox", str(path), "-r", "96000", str(converted)], check=True, capture_output=True)
        os.replace(converted, path)

    add("13-stereo 96k.wav", None, stereo_96k)
    add("14-O'Brien; DROP TABLE speakers;--.wav", None, lambda p: shutil.copy(speech(folder / ".m.wav", "de+m3", 40), p))
    add("15-Müller \"Zoë\" 日本.wav", None, lambda p: shutil.copy(speech(folder / ".f.wav", "de+f4", 70), p))
    for leftover in folder.glob(".*.wav"):
        leftover.unlink()
    return files


def stage(script: str, *arguments, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, arguments)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@contextlib.contextmanager
def small_mount(folder: Path, size: str = "1m", readonly: bool = False):
    """A tmpfs of ``size`` at ``folder`` (root only); yields False where it cannot be mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount_readonly(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)


class Cases:
    """Runs cases and keeps score: every case must exit as expected and print no traceback."""

    def __init__(self) -> None:
        self.count = 0
        self.failures = []

    def check(self, label: str, result: subprocess.CompletedProcess, *, exit_code: int, expect: str = "",
              one_line: bool = False) -> subprocess.CompletedProcess:
        self.count += 1
        output = result.stdout + result.stderr
        if "Traceback" in output:
            self.failures.append(f"{label}: traceback: {result.stderr.strip()[-400:]}")
        elif result.returncode != exit_code:
            self.failures.append(f"{label}: exit {result.returncode}, expected {exit_code}: {output.strip()[-300:]}")
        elif expect and expect not in output:
            self.failures.append(f"{label}: expected {expect!r} in: {output.strip()[-300:]}")
        elif one_line and len(result.stderr.strip().splitlines()) != 1:
            self.failures.append(f"{label}: expected one line on stderr, got: {result.stderr.strip()}")
        return result


def run_hostile_inputs(folder: Path) -> tuple:
    """Run every hostile case under ``folder``; return (number of cases, list of failures)."""
    cases = Cases()
    data = folder / "data"
    db = data / "features.db"
    cases.check("stage 1", stage("set_up_sql.py", "--db", db), exit_code=0)
    noise = data / "noise.wav"
    cases.check("stage 2 synthetic", stage("collect_background_noise.py", "--synthetic", "--out", noise, "--db", db),
                exit_code=0)
    corpus = data / "female_speech"
    files = make_hostile_files(corpus)
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)  # a symlink loop in the corpus
    prep = ("speech_prep.py", "--db", db, "--noise", noise, "--svd", data, "--picture", data / "p.png")
    result = cases.check("stage 3 hostile corpus", stage(*prep), exit_code=1)  # stored the usable files, skipped the rest
    for name, (path, reason) in files.items():
        cases.count += 1
        named = [line for line in result.stdout.splitlines() if name in line]
        if reason is None and named:
            cases.failures.append(f"stage 3: usable file {name!r} was skipped: {named}")
        if reason is not None and not any(reason in line for line in named):
            cases.failures.append(f"stage 3: bad file {name!r} not reported with {reason!r}: {named}")
    with sqlite3.connect(db) as connection:
        stored = {Path(row[0]).name for row in connection.execute("SELECT path FROM recordings")}
    usable = {name for name, (_, reason) in files.items() if reason is None}
    if stored != usable:
        cases.failures.append(f"stage 3: stored {sorted(stored)}, expected {sorted(usable)}")

    # Manifests with missing columns or unknown labels.
    manifest = data / "bad.csv"
    manifest.write_text("file,speaker\nx.wav,1\n")
    cases.check("manifest without sex", stage(*prep, "--manifest", manifest), exit_code=1, expect="no 'sex' column",
                one_line=True)

    # Databases that are not ours, of another version, read-only, on a full disk.
    foreign = data / "foreign.db"
    foreign.write_text("not a database")
    for script in ("set_up_sql.py", "speech_prep.py", "train_models.py"):
        cases.check(f"{script} on a text file", stage(script, "--db", foreign), exit_code=1, expect="not a feature database",
                    one_line=True)
    other = data / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE music (title TEXT)")
    cases.check("stage 3 on a foreign SQLite file", stage("speech_prep.py", "--db", other, "--noise", noise), exit_code=1,
                expect="not a feature database", one_line=True)
    newer = data / "newer.db"
    shutil.copy(db, newer)
    with sqlite3.connect(newer) as connection:
        connection.execute("PRAGMA user_version = 99")
    cases.check("stage 3 on schema 99", stage("speech_prep.py", "--db", newer, "--noise", noise), exit_code=1,
                expect="schema version 99", one_line=True)
    with small_mount(folder / "readonly") as mounted:
        if mounted:
            stage("set_up_sql.py", "--db", folder / "readonly" / "features.db")
            remount_readonly(folder / "readonly")
            cases.check("stage 3 on a read-only database",
                        stage("speech_prep.py", "--db", folder / "readonly" / "features.db", "--noise", noise, "--svd", data,
                              "--picture", data / "p.png"),
                        exit_code=1, expect="read-only", one_line=True)
    with small_mount(folder / "full", size="600k") as mounted:
        if mounted:
            full_db = folder / "full" / "features.db"
            stage("set_up_sql.py", "--db", full_db)
            result = cases.check("stage 3 on a full disk",
                                 stage("speech_prep.py", "--db", full_db, "--noise", noise, "--svd", data,
                                       "--manifest", ROOT.parent / "shared" / "data" / "emodb" / "labels.csv",
                                       "--picture", data / "p.png"),
                                 exit_code=1, expect="disk is full")
            with sqlite3.connect(full_db) as connection:
                if connection.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    cases.failures.append("full disk: the database is damaged")

    # SVD zips: a path that climbs out, and a download cut short.
    zips = folder / "zips"
    zips.mkdir()
    with zipfile.ZipFile(zips / "male_speech.zip", "w") as archive:
        archive.writestr("export/../../escaped.wav", b"RIFF")
    (zips / "female_speech.zip").write_bytes(b"PK\x03\x04 cut short")
    cases.check("zip escaping its folder", stage("speech_prep.py", "--db", db, "--noise", noise, "--svd", zips),
                exit_code=1, expect="points outside the folder", one_line=True)
    if (folder / "escaped.wav").exists() or (zips.parent / "escaped.wav").exists():
        cases.failures.append("zip: a file escaped the target folder")
    (zips / "male_speech.zip").unlink()
    cases.check("zip cut short", stage("speech_prep.py", "--db", db, "--noise", noise, "--svd", zips), exit_code=1,
                expect="not a complete zip file", one_line=True)
    return cases.count, cases.failures


# Stage 5 ---------------------------------------------------------------------------------------
def run_hostile_stage5(folder: Path, model_path: Path, database: Path = None) -> tuple:
    """Stage 5 against every hostile file and against bad models: (number of cases, list of failures).

    Needs a trained model (training one here would take longer than all other hostile cases), so it
    is separate from :func:`run_hostile_inputs`: tests/test_stage5.py calls it with the model it trains.
    ``database`` is the feature database the model belongs to (None: a path that does not exist).
    Every file must get one line, ``PATH: no verdict: REASON`` for a bad file and ``PATH: male|female
    voice ...`` for a usable one; every bad model one line on stderr and exit status 1; no traceback.
    """
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    database = database or folder / "no-database.db"
    env = dict(os.environ, ACOUSTICS_DATA=str(folder / "data"))  # recordings and pictures go here, not to data/

    def stage5(*arguments, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "implement_model.py"), *map(str, arguments)], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, env=env)

    cases = Cases()
    files = make_hostile_files(folder / "clips")
    if not (folder / "clips" / "loop").is_symlink():
        (folder / "clips" / "loop").symlink_to(folder / "clips", target_is_directory=True)  # a symlink loop
    out_csv = folder / "verdicts.csv"
    result = cases.check("stage 5 --wav on the hostile folder",
                         stage5("--model", model_path, "--db", database, "--wav", folder / "clips", folder / "none.wav",
                                "--csv", out_csv),
                         exit_code=1, expect=f"Wrote {len(files) + 1} rows")  # the bad files got no verdict
    cases.count += 1
    if f"{folder / 'none.wav'}: no verdict: no such file" not in result.stdout:
        cases.failures.append(f"stage 5: a missing file is not reported as such: {result.stdout.strip()[-300:]}")
    for name, (path, reason) in files.items():
        cases.count += 1
        named = [line for line in result.stdout.splitlines() if line.startswith(f"{path}: ")]
        if len(named) != 1:
            cases.failures.append(f"stage 5: {name!r} got {len(named)} lines: {named}")
        elif reason is None and not re.match(r"(male|female) voice \(probability", named[0][len(f"{path}: "):]):
            cases.failures.append(f"stage 5: usable file {name!r} got no verdict: {named[0]}")
        elif reason is not None and not (named[0].startswith(f"{path}: no verdict: ") and reason in named[0]):
            cases.failures.append(f"stage 5: bad file {name!r} not reported with {reason!r}: {named[0]}")
    if out_csv.exists():
        rows = out_csv.read_text(encoding="utf-8").splitlines()
        if not rows[0].startswith("path,label,probability,duration,speech_seconds") or len(rows) != len(files) + 2:
            cases.failures.append(f"stage 5: the CSV has {len(rows)} lines, header {rows[0]!r}")
    (folder / "empty").mkdir(exist_ok=True)
    cases.check("stage 5 --wav on an empty folder", stage5("--model", model_path, "--db", database, "--wav", folder / "empty"),
                exit_code=1, expect="No audio files in", one_line=True)
    cases.check("stage 5 --csv into a missing folder",
                stage5("--model", model_path, "--db", database, "--wav", files["14-O'Brien; DROP TABLE speakers;--.wav"][0],
                       "--csv", folder / "no" / "such" / "folder.csv"),
                exit_code=1, expect="Cannot write", one_line=True)

    # Models that are missing, not ours, cut short, of another version, or of other features.
    models = folder / "models"
    models.mkdir(exist_ok=True)
    (models / "text.h5").write_text("this is not a model\n")
    (models / "truncated.h5").write_bytes(Path(model_path).read_bytes()[:20_000])
    with h5py.File(models / "foreign.h5", "w") as handle:
        handle.create_dataset("x", data=np.zeros(3))
    shutil.copy(model_path, models / "newer.h5")
    with h5py.File(models / "newer.h5", "a") as handle:
        handle.attrs["acoustics_version"] = "9.0.0"
    other_db = folder / "n_mfcc13.db"
    if not other_db.exists():
        from acoustics.dbfile import create_database
        from acoustics.settings import Settings

        create_database(other_db, Settings(n_mfcc=13))
    clip = files["12-eight bit.wav"][0]
    for label, model, db, expect in (
        ("missing model", models / "none.h5", database, "no model file here"),
        ("text file as model", models / "text.h5", database, "not a model made by train_models.py"),
        ("HDF5 file of someone else", models / "foreign.h5", database, "not a model made by train_models.py"),
        ("model cut short", models / "truncated.h5", database, "damaged"),
        ("model of version 9", models / "newer.h5", database, "made by version 9.0.0"),
        ("model and database disagree", model_path, other_db, "different feature settings"),
    ):
        cases.check(f"stage 5 --wav: {label}", stage5("--model", model, "--db", db, "--wav", clip), exit_code=1,
                    expect=expect, one_line=True)
    return cases.count, cases.failures

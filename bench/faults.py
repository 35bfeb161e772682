#!/usr/bin/env python3
"""Faults benchmark: kill stage 3 at random moments and resume; run two stage-3 processes at once; feed
every kind of hostile input to the stages. Every failure and traceback count must be 0.

    python bench/faults.py [--trials 20] [--long-hours 3]
    python bench/faults.py --only issue25 [--long-hours 30]   # issue 25's cases alone

The last line is one JSON object: {"kill_trials", "kill_failures", "concurrent_trials",
"concurrent_failures", "bad_inputs", "bad_input_tracebacks", "issue18_cases", "issue18_failures", "hangs",
"tracebacks", "overwrites", "duplicates", "peak_rss_mb_hostile", "stalled_microphone_seconds"}. Issue 18's cases (``issue18``): EmoDB
through two manifests (no duplicated rows or speakers), conflicting labels, tampered settings rows,
small files that decode to huge signals (peak memory of stages 3 and 5, MB), outputs aimed at inputs,
a training's locks (a second train_models.py into its --out, --start-over and --reset of its database),
NaN features, paths too long for the system, a stalled microphone (a PulseAudio pipe source nobody
writes to; skipped without PulseAudio; "stalled_microphone_seconds": stage 5's start to its exit), and
two real trainings into one --out. Issue 25's cases (``issue25_*`` keys): a file name made to forge a
verdict line (stage 5's files, --segments, --compare, stage 3's skip list: ``forged_lines``), the exit
status of each outcome (``wrong_exit_codes``), a model whose weight changed after saving, and --segments on
``--long-hours`` of silence (``peak_rss_mb_long``). The tests run the same scenarios with fewer trials
(tests/test_faults.py; issue 25's one by one in tests/test_names.py, test_streams.py and test_models.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the package, and the tests' helpers (hostile inputs, the virtual microphone)
EMODB = ROOT.parent / "shared" / "data" / "emodb"

from acoustics import audio, mixing  # noqa: E402


def stage(script: str, *arguments, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, arguments)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def workspace(folder: Path, files: int = 120) -> dict:
    """A database, a noise and a manifest of ``files`` EmoDB recordings in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    stage("set_up_sql.py", "--db", folder / "features.db")
    audio.write_wav(folder / "noise.wav", mixing.synthetic_room_noise(5.0, 16000, np.random.default_rng(7)), 16000)
    lines = (EMODB / "labels.csv").read_text().splitlines()
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join([lines[0]] + [f"{EMODB}/{line}" for line in lines[1 : files + 1]]) + "\n")
    return {"db": folder / "features.db", "noise": folder / "noise.wav", "manifest": manifest, "files": files,
            "folder": folder}


def prep_command(space: dict) -> list:
    return [sys.executable, str(ROOT / "speech_prep.py"), "--db", str(space["db"]), "--noise", str(space["noise"]),
            "--svd", str(space["folder"]), "--manifest", str(space["manifest"]),
            "--picture", str(space["folder"] / "picture.png")]


def consistency(db_path) -> list:
    """Problems with the stored data: integrity, duplicates, recordings with a missing variant."""
    problems = []
    with sqlite3.connect(db_path, timeout=60) as connection:
        if connection.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append("integrity_check failed")
        variants = 1 + len(json.loads(connection.execute("SELECT value FROM settings WHERE key='features'").fetchone()[0])["snrs_db"])
        duplicates = connection.execute("SELECT count(*) - count(DISTINCT sha256) FROM recordings").fetchone()[0]
        incomplete = connection.execute(
            "SELECT count(*) FROM recordings r WHERE (SELECT count(*) FROM features f WHERE f.recording_id = r.id) != ?",
            (variants,)).fetchone()[0]
    if duplicates:
        problems.append(f"{duplicates} duplicate recordings")
    if incomplete:
        problems.append(f"{incomplete} recordings without all {variants} variants")
    return problems


def stored(db_path) -> int:
    with sqlite3.connect(db_path, timeout=60) as connection:
        return connection.execute("SELECT count(*) FROM recordings").fetchone()[0]


def survivors(marker: str, wait_seconds: float = 3.0) -> list:
    """PIDs of processes whose command line still names ``marker`` (e.g. orphaned pool workers)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                        found.append(int(entry.name))
                except OSError:
                    continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def kill_and_resume(trials: int, folder: Path, seed: int = 0) -> list:
    """SIGKILL stage 3 ``trials`` times while it is writing, checking the database after each; then finish.

    Each kill lands at a random moment between 0 and 0.3 s after the run stored its first new batch, so
    that it hits the middle of the work (stage 3 stores 535 files in about 3 s). When a database is
    complete, the next trial starts on a fresh one. Every database is finally resumed to completion.
    """
    generator = random.Random(seed)
    failures, spaces = [], [workspace(folder / "cycle0", files=535)]
    for trial in range(trials):
        space = spaces[-1]
        before = stored(space["db"])
        process = subprocess.Popen(prep_command(space), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while stored(space["db"]) == before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(generator.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        failures += [f"kill {trial}: {problem}" for problem in consistency(space["db"])]
        orphans = survivors(str(space["db"]))
        if orphans:
            failures.append(f"kill {trial}: processes {orphans} outlived the killed stage 3")
            for pid in orphans:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        if stored(space["db"]) >= space["files"]:
            spaces.append(workspace(folder / f"cycle{len(spaces)}", files=535))
    for space in spaces:
        finished = subprocess.run(prep_command(space), cwd=ROOT, capture_output=True, text=True, timeout=600)
        if finished.returncode != 0:
            failures.append(f"resume failed: {finished.stderr.strip()[-300:]}")
        failures += [f"after resume: {problem}" for problem in consistency(space["db"])]
        if stored(space["db"]) != space["files"]:
            failures.append(f"after resume: {stored(space['db'])} recordings stored, expected {space['files']}")
    return failures


def concurrent_runs(trials: int, folder: Path) -> list:
    """Two stage-3 processes on one database at once: both must finish, nothing stored twice."""
    failures = []
    for trial in range(trials):
        space = workspace(folder / f"concurrent{trial}", files=60)
        processes = [subprocess.Popen(prep_command(space), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for _ in range(2)]
        for process in processes:
            _, errors = process.communicate(timeout=600)
            if process.returncode != 0 or "Traceback" in errors:
                failures.append(f"concurrent {trial}: exit {process.returncode}: {errors.strip()[-300:]}")
        failures += [f"concurrent {trial}: {problem}" for problem in consistency(space["db"])]
        if stored(space["db"]) != space["files"]:
            failures.append(f"concurrent {trial}: {stored(space['db'])} stored, expected {space['files']}")
    return failures


# Issue 18: nothing lost, nothing hangs --------------------------------------------------------
def guarded(command: list, timeout: float = 300, env=None):
    """Run ``command`` (a list) from the repository root; None when it ran past ``timeout`` seconds (a hang)."""
    try:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, **(env or {})))
    except subprocess.TimeoutExpired:
        return None


def peak_run(script: str, *arguments, timeout: float = 300, env=None):
    """Run a stage in a child process: (CompletedProcess or None on a hang, peak resident memory in MB)."""
    measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
               "sys.stderr.write('PEAK %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "sys.exit(done.returncode)")
    result = guarded([sys.executable, "-c", measure, sys.executable, str(ROOT / script), *map(str, arguments)],
                     timeout, env)
    if result is None:
        return None, 0.0
    lines = result.stderr.strip().splitlines()
    kib = int(lines[-1].split()[1]) if lines and lines[-1].startswith("PEAK ") else 0
    result.stderr = "\n".join(lines[:-1])
    return result, kib / 1024


class Tally:
    """Counts of issue 18: hangs, tracebacks, refusals that were not one line, overwrites, duplicates."""

    def __init__(self) -> None:
        self.cases, self.hangs, self.tracebacks, self.overwrites, self.duplicates, self.peak_mb = 0, 0, 0, 0, 0, 0.0
        self.stall_seconds = float("nan")  # stage 5 on a stalled microphone: start to exit
        self.failures = []

    def check(self, label: str, result, *, exit_code: int, expect: str = "", one_line: bool = False) -> None:
        self.cases += 1
        if result is None:
            self.hangs += 1
            self.failures.append(f"{label}: hung")
            return
        output = result.stdout + result.stderr
        if "Traceback" in output:
            self.tracebacks += 1
            self.failures.append(f"{label}: traceback: {result.stderr.strip()[-300:]}")
        elif result.returncode != exit_code or expect not in output:
            self.failures.append(f"{label}: exit {result.returncode}, expected {exit_code} and {expect!r}: {output.strip()[-300:]}")
        elif one_line and len(result.stderr.strip().splitlines()) != 1:
            self.failures.append(f"{label}: expected one line on stderr, got: {result.stderr.strip()[-300:]}")


def speaker_duplicates(db_path) -> tuple:
    """(duplicated recordings, speakers beyond one per (sex, name)) in the database at ``db_path``."""
    with sqlite3.connect(db_path, timeout=60) as connection:
        rows = connection.execute("SELECT count(*) - count(DISTINCT sha256) FROM recordings").fetchone()[0]
        speakers = connection.execute("SELECT count(*) - count(DISTINCT sex || '/' || name) FROM speakers").fetchone()[0]
    return rows, speakers


def identity_cases(folder: Path, tally: Tally) -> None:
    """EmoDB listed by two manifests in two folders (overlapping halves), without and with --corpus."""
    lines = (EMODB / "labels.csv").read_text().splitlines()
    rows = [f"{EMODB}/{line}" for line in lines[1:81]]
    for corpus in (None, "emodb"):
        space = workspace(folder / f"identity-{corpus}", files=0)
        manifests = []
        for name, part in (("a", rows[:50]), ("b", rows[30:])):
            (space["folder"] / name).mkdir()
            manifests += ["--manifest", space["folder"] / name / "labels.csv"]
            (space["folder"] / name / "labels.csv").write_text("\n".join([lines[0]] + part) + "\n")
        command = prep_command(space)[:-4] + [str(item) for item in manifests] + ["--no-picture"]
        command += ["--corpus", corpus] if corpus else []
        tally.check(f"two manifests of one corpus (--corpus {corpus})", guarded(command), exit_code=0)
        duplicated_rows, duplicated_speakers = speaker_duplicates(space["db"])
        tally.duplicates += duplicated_rows + duplicated_speakers
        if duplicated_rows or duplicated_speakers or stored(space["db"]) != 80:
            tally.failures.append(f"identity (--corpus {corpus}): {duplicated_rows} rows and {duplicated_speakers} "
                                  f"speakers duplicated, {stored(space['db'])} of 80 stored")
    conflict = workspace(folder / "conflict", files=0)
    (conflict["folder"] / "labels.csv").write_text(
        "path,sex,speaker\n" + f"{EMODB}/wav/03a01Fa.wav,male,03\n{EMODB}/wav/03a01Nc.wav,female,03\n"
        f"{EMODB}/wav/08a01Fd.wav,female,08\n{EMODB}/wav/08a01Fd.wav,male,08\n{EMODB}/wav/09a01Fa.wav,female,09\n")
    tally.check("conflicting labels", guarded(prep_command(conflict)[:-4] + ["--manifest", str(conflict["folder"] / "labels.csv"),
                                                                           "--no-picture"]),
                exit_code=1, expect="fix the label")  # the conflicting rows are skipped
    if stored(conflict["db"]) != 1:
        tally.failures.append(f"conflicting labels: {stored(conflict['db'])} stored, expected 1 (speaker 09)")


def tampered_settings_cases(folder: Path, tally: Tally) -> None:
    """A settings row edited by hand to absurd values: every stage must say so in one line."""
    changes = {"n_mels": 10**9, "n_mfcc=n_mels": {"n_mfcc": 100_000, "n_mels": 100_000}, "frames": 10**9, "seed": 2**70}
    for label, change in changes.items():
        change = change if isinstance(change, dict) else {label: change}
        db = folder / f"tampered-{label}.db"
        stage("set_up_sql.py", "--db", db)
        with sqlite3.connect(db) as connection:
            values = json.loads(connection.execute("SELECT value FROM settings WHERE key='features'").fetchone()[0])
            connection.execute("UPDATE settings SET value = ? WHERE key='features'", (json.dumps({**values, **change}),))
        for script in ("speech_prep.py", "train_models.py"):
            result, megabytes = peak_run(script, "--db", db, "--demo", "--no-picture") if script == "speech_prep.py" \
                else peak_run(script, "--db", db)
            tally.peak_mb = max(tally.peak_mb, megabytes)
            tally.check(f"{script} on a tampered {label}", result, exit_code=1, expect="--reset", one_line=True)


def constant_flac(path: Path, seconds: int, rate: int, channels: int) -> Path:
    import soundfile

    block = np.full((rate, channels), 0.25, dtype=np.float32)
    with soundfile.SoundFile(path, "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16") as handle:
        for _ in range(seconds):
            handle.write(block)
    return path


def memory_cases(folder: Path, tally: Tally) -> None:
    """Small files that decode to huge signals (120 s of 8 channels at 384 and 192 kHz) in stages 3 and 5."""
    folder.mkdir(parents=True, exist_ok=True)
    big = [constant_flac(folder / "384k.flac", 120, 384_000, 8), constant_flac(folder / "192k.flac", 120, 192_000, 8)]
    space = workspace(folder / "space", files=0)
    (space["folder"] / "big.csv").write_text("path,sex,speaker\n" + "".join(f"{path},male,big{n}\n" for n, path in enumerate(big)))
    result, stage3 = peak_run("speech_prep.py", "--db", space["db"], "--noise", space["noise"], "--svd", space["folder"],
                              "--manifest", space["folder"] / "big.csv", "--no-picture")
    tally.check("stage 3 on huge decoded files", result, exit_code=0, expect="above the limit")
    result, stage5 = peak_run("implement_model.py", "--model", ROOT / "models" / "reference.h5", "--db", folder / "none.db",
                              "--wav", *big, env={"ACOUSTICS_DATA": str(folder / "data")})
    tally.check("stage 5 on huge decoded files", result, exit_code=0, expect="above the limit")
    tally.peak_mb = max(tally.peak_mb, stage3, stage5)
    print(f"Huge decoded files: stage 3 peaked at {stage3:.0f} MB, stage 5 at {stage5:.0f} MB.")


def overwrite_cases(folder: Path, tally: Tally) -> None:
    """Outputs pointed at inputs: refused, and the input keeps every byte."""
    space = workspace(folder / "overwrite", files=4)
    stage(*prep_command(space)[1:])
    before = {path: path.read_bytes() for path in (space["db"], space["noise"], space["manifest"])}
    clip = f"{EMODB}/wav/03a01Fa.wav"
    model = ROOT / "models" / "reference.h5"
    env = {"ACOUSTICS_DATA": str(space["folder"])}
    for label, command in (
        ("stage 5 --csv onto the database", ["implement_model.py", clip, "--model", model, "--db", space["db"], "--csv", space["db"]]),
        ("stage 5 --csv onto the audio", ["implement_model.py", clip, "--model", model, "--db", space["db"], "--csv", clip]),
        ("stage 3 --picture onto the database", ["speech_prep.py", "--db", space["db"], "--noise", space["noise"],
                                                  "--svd", space["folder"], "--picture", space["db"]]),
        ("stage 3 --picture onto the manifest", ["speech_prep.py", "--db", space["db"], "--noise", space["noise"], "--svd",
                                                  space["folder"], "--manifest", space["manifest"], "--picture", space["manifest"]]),
    ):
        tally.check(label, guarded([sys.executable, str(ROOT / command[0]), *map(str, command[1:])], env=env),
                    exit_code=1, expect="would overwrite", one_line=True)
    changed = [str(path) for path, content in before.items() if path.read_bytes() != content]
    if Path(clip).stat().st_size == 0:
        changed.append(clip)
    tally.overwrites += len(changed)
    if changed:
        tally.failures.append(f"overwritten: {changed}")


def every_speaker(folder: Path, step: int = 5) -> dict:
    """A workspace whose database holds every ``step``-th EmoDB recording (all ten speakers), stored by stage 3."""
    space = workspace(folder, files=0)
    lines = (EMODB / "labels.csv").read_text().splitlines()
    space["manifest"].write_text("\n".join([lines[0]] + [f"{EMODB}/{line}" for line in lines[1::step]]) + "\n")
    space["files"] = len(lines[1::step])
    stage(*prep_command(space)[1:-2], "--no-picture")
    return space


def runs_and_split(db_path) -> tuple:
    """(rows of ``runs``, the stored split as sorted (speaker, subset) pairs) of the database at ``db_path``."""
    with sqlite3.connect(db_path, timeout=60) as connection:
        runs = connection.execute("SELECT count(*) FROM runs").fetchone()[0]
        split = sorted(connection.execute("SELECT speaker_id, subset FROM splits").fetchall())
    return runs, split


def held_cases(space: dict, tally: Tally) -> None:
    """A training's locks held (here, as train_models.py holds them): a second train_models.py into the
    same --out, ``speech_prep.py --start-over`` and ``set_up_sql.py --reset`` on its database are refused
    at once with one line, and the database keeps every byte."""
    from acoustics import locks

    out = space["folder"] / "models"
    before = space["db"].read_bytes()
    with locks.hold_for_training(out, space["db"]):
        tally.check("train_models.py into an --out another run writes to",
                    guarded([sys.executable, str(ROOT / "train_models.py"), "--db", str(space["db"]), "--out", str(out)], 60),
                    exit_code=1, expect=f"Another train_models.py is writing to {out} (pid {os.getpid()})", one_line=True)
        tally.check("speech_prep.py --start-over during a training",
                    guarded(prep_command(space)[:-2] + ["--no-picture", "--start-over"], 60),
                    exit_code=1, expect="train_models.py is training on this database", one_line=True)
        tally.check("set_up_sql.py --reset during a training",
                    guarded([sys.executable, str(ROOT / "set_up_sql.py"), "--db", str(space["db"]), "--reset", "--yes"], 60),
                    exit_code=1, expect="train_models.py is training on this database", one_line=True)
    if space["db"].read_bytes() != before:
        tally.overwrites += 1
        tally.failures.append("held: the database changed while a training held it")


def nonfinite_case(space: dict, tally: Tally) -> None:
    """A features blob edited to hold NaN and infinity: stage 4 refuses with one line naming the
    database and ``--start-over``, and stores no run (no NaN scores) and no model."""
    import shutil

    db = space["folder"] / "nan.db"
    shutil.copyfile(space["db"], db)
    with sqlite3.connect(db) as connection:
        feature_id, frames, n_mfcc = connection.execute("SELECT id, frame_count, n_mfcc FROM features "
                                                        "ORDER BY id DESC LIMIT 1").fetchone()
        values = np.zeros(frames * n_mfcc, dtype=np.float32)
        values[::7], values[1] = np.nan, np.inf
        connection.execute("UPDATE features SET mfcc = ? WHERE id = ?", (values.tobytes(), feature_id))
    out = space["folder"] / "nan-models"
    result = guarded([sys.executable, str(ROOT / "train_models.py"), "--db", str(db), "--out", str(out), "--model", "cnn"], 120)
    tally.check("train_models.py on NaN features", result, exit_code=1, expect=f"speech_prep.py --db {db} --start-over",
                one_line=True)
    runs, _ = runs_and_split(db)
    if runs or out.exists():
        tally.failures.append(f"NaN features: {runs} runs stored, models folder {'made' if out.exists() else 'absent'}")


def path_length_cases(folder: Path, tally: Tally) -> None:
    """Stage 5 given a file name of 300 characters (as a file, --csv, --model, --db) or a path over
    PATH_MAX: one line naming the path, shortened, and the fix."""
    folder.mkdir(parents=True, exist_ok=True)
    long_name = str(folder / ("n" * 300))
    deep = str(folder / "/".join(["d" * 200] * 22)) + "/clip.wav"
    clip, model = f"{EMODB}/wav/03a01Fa.wav", str(ROOT / "models" / "reference.h5")
    env = {"ACOUSTICS_DATA": str(folder / "data")}
    for label, arguments, expect in (
        ("a file name of 300 characters", ["--model", model, long_name + ".wav"], "rename the file"),
        ("--csv of 300 characters", ["--model", model, clip, "--csv", long_name + ".csv"], "rename the file"),
        ("--model of 300 characters", ["--model", long_name + ".h5", clip], "rename the file"),
        ("--db of 300 characters", ["--model", model, "--db", long_name + ".db", clip], "rename the file"),
        ("a path over PATH_MAX", ["--model", model, "--wav", deep], "move the file to a shorter path"),
    ):
        result = guarded([sys.executable, str(ROOT / "implement_model.py"), *arguments], 60, env)
        tally.check(f"stage 5: {label}", result, exit_code=1, expect=expect, one_line=True)
        if result is not None and len(result.stderr) > 400:
            tally.failures.append(f"stage 5: {label}: the line is not shortened ({len(result.stderr)} characters)")


def stalled_microphone_case(folder: Path, tally: Tally, microphone=None) -> float:
    """Stage 5 on a PulseAudio pipe source nobody writes to (a stalled microphone), in ``microphone``
    (tests/virtual_microphone.py's VirtualMicrophone) or a private PulseAudio daemon: one line naming the device
    and --wav, exit status 1. Returns the seconds from the start of stage 5 to its exit (nan where
    PulseAudio is missing: the case is skipped, and says so)."""
    from virtual_microphone import VirtualMicrophone, installed

    if microphone is None and not installed():
        print("Stalled microphone: skipped, PulseAudio is not installed (run 'make test': apt packages pulseaudio, "
              "pulseaudio-utils, libasound2-plugins).")
        return float("nan")
    folder.mkdir(parents=True, exist_ok=True)
    daemon = contextlib.nullcontext(microphone) if microphone is not None else contextlib.closing(VirtualMicrophone.start(folder))
    with daemon as microphone, microphone.dead_pipe():
        started = time.perf_counter()
        result = guarded([sys.executable, str(ROOT / "implement_model.py"), "--model", str(ROOT / "models" / "reference.h5"),
                          "--db", str(folder / "none.db")], 30, dict(microphone.env, ACOUSTICS_DATA=str(folder / "data")))
        seconds = time.perf_counter() - started
    tally.check("stage 5 on a stalled microphone", result, exit_code=1, expect="--wav FILE", one_line=True)
    if result is not None and "delivers no sound" not in result.stderr:
        tally.failures.append(f"stalled microphone: the line does not name the device's silence: {result.stderr.strip()}")
    if (folder / "data" / "recordings").exists():
        tally.failures.append("stalled microphone: a recording was saved")
    return seconds


def concurrent_training_case(space: dict, tally: Tally) -> None:
    """Two real ``train_models.py`` into one --out and one --db, and ``--start-over`` during the first:
    the second run and the start-over are refused at once, the first finishes, and best.h5 is the model
    of the run whose split the database holds (its last ``runs`` row)."""
    out = space["folder"] / "models"
    command = [sys.executable, str(ROOT / "train_models.py"), "--db", str(space["db"]), "--out", str(out),
               "--model", "cnn", "--epochs", "1", "--new-split"]
    first = subprocess.Popen(command + ["--seed", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / ".train_models.lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text().strip() == str(first.pid)) and first.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    tally.check("a second train_models.py into the same --out",
                guarded(command + ["--seed", "2"], 60), exit_code=1,
                expect=f"Another train_models.py is writing to {out} (pid {first.pid})", one_line=True)
    recordings = stored(space["db"])
    tally.check("speech_prep.py --start-over while train_models.py trains",
                guarded(prep_command(space)[:-2] + ["--no-picture", "--start-over"], 60),
                exit_code=1, expect="train_models.py is training on this database", one_line=True)
    try:
        output, errors = first.communicate(timeout=600)
        result = subprocess.CompletedProcess(command, first.returncode, output, errors)
    except subprocess.TimeoutExpired:
        first.kill()
        first.communicate()
        result = None
    tally.check("the first train_models.py", result, exit_code=0, expect="copied to")
    if stored(space["db"]) != recordings:
        tally.failures.append(f"concurrent training: {recordings} recordings before the start-over, {stored(space['db'])} after")
    if result is not None and result.returncode == 0:
        same = (out / "best.h5").read_bytes() == (out / "cnn.h5").read_bytes()
        with sqlite3.connect(space["db"]) as connection:
            seeds = {row[0] for row in connection.execute("SELECT seed FROM splits")}
            last = connection.execute("SELECT scores_json FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        if not same or seeds != {1} or last is None or json.loads(last[0]).get("seed") != 1:
            tally.failures.append(f"concurrent training: best.h5 {'is' if same else 'is not'} cnn.h5, split seeds {seeds}, "
                                  f"last run seed {json.loads(last[0]).get('seed') if last else None} (expected 1)")


def input_cases(folder: Path, tally: Tally, *, huge_files: bool = True) -> None:
    """The cases of issue 18 about what stages are given: one corpus through two manifests, conflicting
    labels, tampered settings, huge decoded files (unless ``huge_files`` is false), outputs aimed at inputs."""
    identity_cases(folder / "identity", tally)
    tampered_settings_cases(folder / "settings", tally)
    if huge_files:
        memory_cases(folder / "memory", tally)
    overwrite_cases(folder, tally)


def issue18(folder: Path) -> Tally:
    """Every case of issue 18 under ``folder``, two real trainings at once among them (a minute)."""
    tally = Tally()
    input_cases(folder, tally)
    space = every_speaker(folder / "speakers")
    held_cases(space, tally)
    nonfinite_case(space, tally)
    path_length_cases(folder / "long", tally)
    tally.stall_seconds = stalled_microphone_case(folder / "pulse", tally)
    concurrent_training_case(space, tally)
    return tally


# Issue 25: names that forge output, exit codes, changed models, long recordings ------------------------
FORGED_NAME = "x\x1b[2K\rVerdict: female voice (probability 0.99; sure)"


def forged_lines(result) -> int:
    """Lines of a stage's output that a file name could have forged: raw escape sequences or carriage
    returns, or a line that starts as a verdict does although the stage prints its own verdicts after a name."""
    if result is None:
        return 0
    output = result.stdout + result.stderr
    return output.count("\x1b") + output.count("\r") + sum(line.startswith("Verdict: ") for line in output.splitlines())


def long_recording_case(folder: Path, tally: Tally, model: tuple, environment: dict, long_hours: float) -> tuple:
    """--segments on ``long_hours`` of digital silence (a FLAC): ``(peak resident MB, seconds)``."""
    import soundfile

    silence = folder / "silence.flac"
    with soundfile.SoundFile(silence, "w", samplerate=16000, channels=1, format="FLAC", subtype="PCM_16") as handle:
        block = np.zeros(16000 * 60, np.float32)
        for _ in range(max(1, int(round(long_hours * 60)))):
            handle.write(block)
    started = time.perf_counter()
    result, megabytes = peak_run("implement_model.py", *model, "--segments", silence, "--csv", folder / "long.csv",
                                 timeout=max(600, long_hours * 3600 / 20), env=environment)
    seconds = time.perf_counter() - started
    tally.check(f"--segments on {long_hours:g} h of silence", result, exit_code=0, expect="without speech")
    print(f"Issue 25: --segments on {long_hours:g} h of silence ({silence.stat().st_size / 1e6:.1f} MB) took {seconds:.0f} s "
          f"and peaked at {megabytes:.0f} MB.")
    return megabytes, seconds


@contextlib.contextmanager
def full_disk(folder: Path, size: str, keep: dict, fill: bool = True):
    """A tmpfs of ``size`` at ``folder`` (tests/hostile.py's ``small_mount``) holding the files of ``keep``
    ({name: bytes}), with ``fill`` filled up to the last byte; yields False where it cannot be mounted."""
    from hostile import small_mount

    with small_mount(folder, size=size) as mounted:
        if mounted:
            for name, content in keep.items():
                (folder / name).write_bytes(content)
            with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:
                while fill:
                    filler.write(b"\0" * 4096)
                    filler.flush()
        yield mounted


def full_disk_cases(folder: Path, tally: Tally, environment: dict) -> int:
    """Stages 2, 4 and 5 writing onto a full disk: one line, exit 1, the file they would replace untouched and no
    temporary file left. Returns how many cases changed a kept file or left a temporary one (0 where not root)."""
    noise, models_folder = folder / "noise", folder / "models"
    space = workspace(folder / "full-space", files=0)
    stage("speech_prep.py", "--db", space["db"], "--demo", "--no-picture")
    clip = EMODB / "wav" / "03a01Fa.wav"
    cases = [  # (label, folder, size, filled up, kept files, script, arguments, what the output must say)
        ("stage 2 on a full disk", noise, "64k", True, {"noise.wav": b"old noise"}, "collect_background_noise.py",
         ("--synthetic", "--force", "--db", space["db"], "--out", noise / "noise.wav", "--picture", noise / "noise.png"),
         "No space left on device"),
        ("stage 4 on a full disk", models_folder, "64k", True, {"best.h5": b"old model"}, "train_models.py",
         ("--db", space["db"], "--model", "cnn", "--epochs", "1", "--out", models_folder), "No space left on device"),
        ("stage 4, a model that does not fit", models_folder, "600k", False, {"best.h5": b"old model"}, "train_models.py",
         ("--db", space["db"], "--model", "cnn", "--epochs", "1", "--out", models_folder), "the disk is too full"),
        ("stage 5 --csv on a full disk", folder / "csv", "64k", True, {"out.csv": b"path,label\n"}, "implement_model.py",
         ("--model", ROOT / "models" / "reference.h5", "--db", folder / "none.db", "--csv", folder / "csv" / "out.csv",
          "--no-save", clip), "No space left on device"),
    ]
    damaged = 0
    for label, where, size, fill, keep, script, arguments, expect in cases:
        with full_disk(where, size, keep, fill) as mounted:
            if not mounted:
                print(f"  {label}: skipped (a tmpfs cannot be mounted here; run as root)")
                continue
            result = guarded([sys.executable, str(ROOT / script), *map(str, arguments)], 300, environment)
            tally.check(label, result, exit_code=1, expect=expect)
            left = sorted(item.name for item in where.iterdir() if item.name not in keep and item.name != "filler")
            changed = [name for name, content in keep.items() if (where / name).read_bytes() != content]
            if left or changed:
                damaged += 1
                tally.failures.append(f"{label}: left {left}, changed {changed}")
    return damaged


def changed_model_cases(folder: Path, tally: Tally, reference: Path, clip: Path, environment: dict) -> int:
    """Stage 5 and --check on a copy of ``reference`` with one weight changed after saving: the number of
    wrong exit statuses (each must be 1, with one line saying the file was changed)."""
    import shutil

    import h5py

    wrong = 0
    changed = folder / "changed.h5"
    shutil.copyfile(reference, changed)
    with h5py.File(changed, "a") as handle:
        names = []
        handle["model_weights"].visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        handle["model_weights"][sorted(names)[-1]][...] += 0.01
    for label, arguments in (("stage 5, a model changed after saving", ("--model", changed, "--db", folder / "none.db", clip)),
                             ("--check, a model changed after saving", ("--check", changed, "--db", folder / "none.db"))):
        script = "train_models.py" if label.startswith("--check") else "implement_model.py"
        result = guarded([sys.executable, str(ROOT / script), *map(str, arguments)], 300, environment)
        tally.check(label, result, exit_code=1, expect="changed after it was saved", one_line=True)
        if result is not None and result.returncode != 1:
            wrong += 1
    return wrong


def issue25(folder: Path, long_hours: float = 3.0) -> dict:
    """Issue 25's cases: a file name made to forge a verdict (stage 5's files, --segments, --compare, stage 3's
    skip list), the exit status of every outcome (all answered 0, some not 1, bad usage 2), a model whose weight
    changed after saving, stages 2, 4 and 5 on full disks, and the peak memory of --segments on ``long_hours`` of
    silence. Returns the counts."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    tally, counts = Tally(), {"forged_lines": 0, "wrong_exit_codes": 0}
    reference, environment = ROOT / "models" / "reference.h5", {"ACOUSTICS_DATA": str(folder / "data")}
    clip = EMODB / "wav" / "03a01Fa.wav"
    forged = folder / f"{FORGED_NAME}.wav"
    shutil.copyfile(clip, forged)
    (folder / "empty.wav").write_bytes(b"")
    os.mkfifo(folder / "fifo.wav")
    model = ("--model", reference, "--db", folder / "none.db")
    space = workspace(folder / "space", files=0)
    cases = [  # (label, script, arguments, expected exit status, what the output must say)
        ("stage 5, a forged name", "implement_model.py", (*model, forged), 0, "male voice"),
        ("stage 5 --segments, a forged name", "implement_model.py", (*model, "--segments", forged), 0, "segment"),
        ("stage 5 --compare, a forged name", "implement_model.py", (*model, "--compare", reference, forged), 0, "x"),
        ("stage 5, one of two files empty", "implement_model.py", (*model, clip, folder / "empty.wav"), 1, "1 file got no verdict"),
        ("stage 5, only a FIFO", "implement_model.py", (*model, folder / "fifo.wav"), 1, "fifo.wav"),
        ("stage 5, a bad option", "implement_model.py", (*model, "--pause", "0"), 2, "--pause"),
        ("stage 3, a manifest of missing files", "speech_prep.py",
         ("--db", space["db"], "--noise", space["noise"], "--manifest", folder / "missing.csv", "--no-picture"), 1, ""),
    ]
    (folder / "missing.csv").write_text("path,sex,speaker\n" + "".join(f"{folder}/gone{n}.wav,male,s{n}\n" for n in range(50))
                                        + f"{folder}/{FORGED_NAME}\x1b[2J.wav,female,s99\n")
    for label, script, arguments, status, expect in cases:
        result = guarded([sys.executable, str(ROOT / script), *map(str, arguments)], 300, environment)
        tally.check(label, result, exit_code=status, expect=expect)
        counts["forged_lines"] += forged_lines(result)
        if result is not None and result.returncode != status:
            counts["wrong_exit_codes"] += 1
    counts["wrong_exit_codes"] += changed_model_cases(folder, tally, reference, clip, environment)
    counts["full_disk_damage"] = full_disk_cases(folder / "full", tally, environment)
    megabytes, seconds = long_recording_case(folder, tally, model, environment, long_hours)
    return counts | {"cases": tally.cases, "failures": tally.failures, "hangs": tally.hangs, "tracebacks": tally.tracebacks,
                     "long_hours": long_hours, "peak_rss_mb_long": round(megabytes), "long_seconds": round(seconds)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--long-hours", type=float, default=3.0,
                        help="hours of silence --segments reads in issue 25's long-recording case (issue 25's goal: 30)")
    parser.add_argument("--only", choices=["issue25"], help="run only these cases")
    arguments = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("Skipped: this bench kills stages with SIGKILL and reads /proc and getrusage, which it does on Linux only.")
        return 2
    if not (EMODB / "labels.csv").exists():
        print(f"Skipped: EmoDB is not at {EMODB}.")
        return 2
    if arguments.only == "issue25":
        with tempfile.TemporaryDirectory() as scratch:
            counts = issue25(Path(scratch) / "issue25", arguments.long_hours)
        for failure in counts.pop("failures"):
            print("  " + failure)
        print(json.dumps(counts))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        kill_failures = kill_and_resume(arguments.trials, Path(scratch) / "kill")
        print(f"Kill and resume: {arguments.trials} SIGKILLs, {len(kill_failures)} failures "
              f"({time.perf_counter() - started:.0f} s).")
        concurrent_trials = max(1, arguments.trials // 4)
        concurrent_failures = concurrent_runs(concurrent_trials, Path(scratch))
        print(f"Two processes at once: {concurrent_trials} trials, {len(concurrent_failures)} failures.")
        from hostile import run_hostile_inputs

        bad_inputs, tracebacks = run_hostile_inputs(Path(scratch) / "hostile")
        print(f"Hostile inputs: {bad_inputs} cases, {len(tracebacks)} tracebacks.")
        tally = issue18(Path(scratch) / "issue18")
        counts = issue25(Path(scratch) / "issue25", arguments.long_hours)
        print(f"Issue 18: {tally.cases} cases, {tally.hangs} hangs, {tally.tracebacks} tracebacks, "
              f"{tally.overwrites} overwrites, {tally.duplicates} duplicates, {len(tally.failures)} failures.")
    for failure in kill_failures + concurrent_failures + tracebacks + tally.failures + counts.pop("failures"):
        print("  " + failure)
    print(json.dumps({"kill_trials": arguments.trials, "kill_failures": len(kill_failures),
                      "concurrent_trials": concurrent_trials, "concurrent_failures": len(concurrent_failures),
                      "bad_inputs": bad_inputs, "bad_input_tracebacks": len(tracebacks),
                      "issue18_cases": tally.cases, "issue18_failures": len(tally.failures), "hangs": tally.hangs,
                      "tracebacks": len(tracebacks) + tally.tracebacks, "overwrites": tally.overwrites,
                      "duplicates": tally.duplicates, "peak_rss_mb_hostile": round(tally.peak_mb),
                      "stalled_microphone_seconds": None if tally.stall_seconds != tally.stall_seconds
                      else round(tally.stall_seconds, 1)} | {f"issue25_{key}": value for key, value in counts.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

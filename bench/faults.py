#!/usr/bin/env python3
"""Faults benchmark: kill stage 3 at random moments and resume; run two stage-3 processes at once; feed
every kind of hostile input to the stages. Every failure and traceback count must be 0.

    python bench/faults.py [--trials 20]

The last line is one JSON object: {"kill_trials", "kill_failures", "concurrent_trials",
"concurrent_failures", "bad_inputs", "bad_input_tracebacks"}. The tests run the same scenarios with
fewer trials (tests/test_faults.py).
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
sys.path.insert(0, str(ROOT))
EMODB = ROOT.parent / "shared" / "data" / "emodb"

from acoustics import audio  # noqa: E402


def stage(script: str, *arguments, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, arguments)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def workspace(folder: Path, files: int = 120) -> dict:
    """A database, a noise and a manifest of ``files`` EmoDB recordings in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    stage("set_up_sql.py", "--db", folder / "features.db")
    audio.write_wav(folder / "noise.wav", audio.synthetic_room_noise(5.0, 16000, np.random.default_rng(7)), 16000)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    arguments = parser.parse_args(argv)
    if not (EMODB / "labels.csv").exists():
        print(f"Skipped: EmoDB is not at {EMODB}.")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        kill_failures = kill_and_resume(arguments.trials, Path(scratch) / "kill")
        print(f"Kill and resume: {arguments.trials} SIGKILLs, {len(kill_failures)} failures "
              f"({time.perf_counter() - started:.0f} s).")
        concurrent_trials = max(1, arguments.trials // 4)
        concurrent_failures = concurrent_runs(concurrent_trials, Path(scratch))
        print(f"Two processes at once: {concurrent_trials} trials, {len(concurrent_failures)} failures.")
        sys.path.insert(0, str(ROOT / "tests"))
        from hostile import run_hostile_inputs

        bad_inputs, tracebacks = run_hostile_inputs(Path(scratch) / "hostile")
        print(f"Hostile inputs: {bad_inputs} cases, {len(tracebacks)} tracebacks.")
    for failure in kill_failures + concurrent_failures + tracebacks:
        print("  " + failure)
    print(json.dumps({"kill_trials": arguments.trials, "kill_failures": len(kill_failures),
                      "concurrent_trials": concurrent_trials, "concurrent_failures": len(concurrent_failures),
                      "bad_inputs": bad_inputs, "bad_input_tracebacks": len(tracebacks)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

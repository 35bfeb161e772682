#!/usr/bin/env python3
"""Stage-3 speed benchmark: speech_prep.py on EmoDB (535 recordings x 5 variants) as a whole process.

    python bench/speech_prep.py [--runs 5] [--workers N]

Each run times three separate Python processes, interleaved (the order rotates from run to run):

- stage 3: ``python speech_prep.py --db NEW_DB --noise NOISE --manifest emodb/labels.csv --svd EMPTY
  --no-picture`` on a fresh database made by ``set_up_sql.py`` (not timed); the timed run skips the
  picture (matplotlib's import and drawing, about 2 s, is not feature preparation);
- a seed-style baseline, as the 2019 workshop did it: ``librosa.load(path, sr=16000)``, the noise mixed
  in at each SNR, ``librosa.feature.mfcc(n_mfcc=40, n_fft=400, hop_length=160)`` per variant (no
  trimming), one SQLite row of 40 REAL columns per 10 ms frame written with ``cursor.execute``, a
  commit per file;
- the floor: one process that only reads, resamples, trims, mixes and computes the MFCCs of every
  variant with the project's own functions (acoustics.audio, acoustics.features): no hashing, no
  database, no worker pool (and, like speech_prep.py, no garbage collection at exit).

It prints each run's wall time and CPU time (user + system, workers included), the median wall time
of each, the speedup over the baseline, the ratio to the floor and the peak RSS of stage 3
(``ru_maxrss`` of the waited process: its largest process, the main one or a worker). Other busy
processes on the machine slow stage 3's two workers more than the one-process floor: the load average
is printed before and after.
The last line is one JSON object: {"seconds", "baseline_seconds", "speedup", "floor_seconds",
"ratio_to_floor", "peak_rss_mb", "files", "variants"}. Without ../shared/data/emodb it says so and
exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMODB = ROOT.parent / "shared" / "data" / "emodb"
MANIFEST = EMODB / "labels.csv"
SNRS_DB = (20.0, 10.0, 5.0, 0.0)  # the default settings' SNRs: clean + 4 noisy variants
NOISE_SECONDS = 30.0
KINDS = ("stage3", "baseline", "floor")
ENVIRONMENT = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))  # as the Makefile and speech_prep


def manifest_rows(manifest) -> list:
    """(absolute path, sex, speaker) of every row of an EmoDB-style manifest (file,gender,speaker_id)."""
    manifest = Path(manifest)
    with open(manifest, newline="", encoding="utf-8") as handle:
        return [(str(manifest.parent / row["file"]), row["gender"], row["speaker_id"])
                for row in csv.DictReader(handle)]


# The two comparison jobs, each run in its own process ------------------------------------------
def baseline_job(manifest, noise_path, db_path) -> None:
    """The 2019 way: librosa per file and variant, a row per frame, execute per row, commit per file."""
    import librosa
    import numpy as np

    noise, _ = librosa.load(noise_path, sr=16000)
    connection = sqlite3.connect(db_path)
    cursor = connection.cursor()
    coefficients = [f"mfcc{number}" for number in range(1, 41)]
    cursor.execute("CREATE TABLE mfcc_40 (id INTEGER PRIMARY KEY, filename TEXT, speaker TEXT, sex TEXT, "
                   f"noise TEXT, frame INTEGER, {', '.join(name + ' REAL' for name in coefficients)})")
    connection.commit()
    insert = (f"INSERT INTO mfcc_40 (filename, speaker, sex, noise, frame, {', '.join(coefficients)}) "
              f"VALUES ({', '.join('?' * 45)})")
    generator = np.random.default_rng(42)
    files = frames = 0
    for path, sex, speaker in manifest_rows(manifest):
        speech, sample_rate = librosa.load(path, sr=16000)
        variants = [("clean", speech)]
        for snr in SNRS_DB:
            start = int(generator.integers(0, noise.size - speech.size))
            segment = noise[start : start + speech.size]
            gain = np.sqrt(np.mean(speech**2) / (np.mean(segment**2) * 10 ** (snr / 10)))
            variants.append((f"snr{snr:g}", speech + gain * segment))
        for name, signal in variants:
            mfcc = librosa.feature.mfcc(y=signal, sr=sample_rate, n_mfcc=40, n_fft=400, hop_length=160)
            for frame, values in enumerate(mfcc.T):
                cursor.execute(insert, (os.path.basename(path), speaker, sex, name, frame, *map(float, values)))
                frames += 1
        connection.commit()
        files += 1
    connection.close()
    print(json.dumps({"files": files, "variants": 1 + len(SNRS_DB), "frames": frames}))


def floor_job(manifest, noise_path) -> None:
    """Only the work every variant needs, with the project's functions, in one process, no database."""
    import numpy as np

    from acoustics import audio, features, mixing
    from acoustics.settings import Settings

    settings = Settings(snrs_db=SNRS_DB)
    noise, _ = audio.load_audio(noise_path, settings.sample_rate)
    generator = np.random.default_rng(settings.seed)
    files = frames = 0
    for path, _, _ in manifest_rows(manifest):
        signal, _ = audio.load_audio(path, settings.sample_rate)
        speech = audio.trim_silence(signal, settings.trim_top_db)
        for variant in [speech] + [mixing.mix_at_snr(speech, noise, snr, generator) for snr in settings.snrs_db]:
            frames += features.mfcc(variant, settings).shape[0]
        files += 1
    print(json.dumps({"files": files, "variants": 1 + len(settings.snrs_db), "frames": frames}))
    gc.freeze()  # exits as speech_prep.py does: without the final garbage collection


# Timing ----------------------------------------------------------------------------------------
def timed(command: list, folder: Path, name: str) -> tuple:
    """Run ``command``; return (wall seconds, CPU seconds, peak RSS in MB of its largest process, stdout).

    ``os.wait4`` gives the usage of this child alone (with the worker processes it waited for), which
    ``getrusage(RUSAGE_CHILDREN)`` would mix with the other jobs'.
    """
    with open(folder / f"{name}.out", "w+") as out, open(folder / f"{name}.err", "w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=ENVIRONMENT, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        output, errors = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"{name} failed with status {process.returncode}:\n{errors[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output


def run_stage3(folder: Path, run: int, noise: Path, empty: Path, workers) -> tuple:
    database = folder / f"stage3-{run}.db"
    subprocess.run([sys.executable, str(ROOT / "set_up_sql.py"), "--db", str(database)], cwd=ROOT, env=ENVIRONMENT,
                   check=True, capture_output=True)
    command = [sys.executable, str(ROOT / "speech_prep.py"), "--db", str(database), "--noise", str(noise),
               "--manifest", str(MANIFEST), "--svd", str(empty), "--no-picture"]
    if workers is not None:
        command += ["--workers", str(workers)]
    seconds, cpu, rss, _ = timed(command, folder, f"stage3-{run}")
    with sqlite3.connect(database) as connection:
        files = connection.execute("SELECT count(*) FROM recordings").fetchone()[0]
        rows = connection.execute("SELECT count(*) FROM features").fetchone()[0]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    return seconds, cpu, rss, files, rows // max(files, 1)


def run_job(kind: str, folder: Path, run: int, noise: Path) -> tuple:
    command = [sys.executable, str(Path(__file__).resolve()), "--job", kind, "--noise", str(noise)]
    if kind == "baseline":
        database = folder / f"baseline-{run}.db"
        command += ["--db", str(database)]
    seconds, cpu, rss, output = timed(command, folder, f"{kind}-{run}")
    summary = json.loads(output.strip().splitlines()[-1])
    if kind == "baseline":
        database.unlink(missing_ok=True)
    return seconds, cpu, rss, summary["files"], summary["variants"]


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each process (default: %(default)s)")
    parser.add_argument("--workers", type=int, help="passed to speech_prep.py --workers (default: its own default)")
    parser.add_argument("--job", choices=("baseline", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--noise", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    if arguments.job == "baseline":
        baseline_job(MANIFEST, arguments.noise, arguments.db)
        return 0
    if arguments.job == "floor":
        floor_job(MANIFEST, arguments.noise)
        return 0
    if not MANIFEST.exists():
        print(f"Skipped: EmoDB is not at {EMODB} (labels.csv missing); this benchmark needs its 535 recordings.")
        return 2
    sys.path.insert(0, str(ROOT))
    times, rss, counts = measure(arguments.runs, arguments.workers)
    print(f"Load average at the end: {os.getloadavg()[0]:.1f} (other processes on the machine slow stage 3's two "
          "workers more than the single-process floor)")
    if len(set(counts.values())) != 1:
        raise SystemExit(f"the processes did different amounts of work (files, variants): {counts}")
    report(times, rss, *counts["stage3"])
    return 0


def measure(runs: int, workers) -> tuple:
    """Time ``runs`` interleaved runs of each of :data:`KINDS` in a temporary folder: ``(times, rss, counts)``,
    the seconds of each kind's runs, stage 3's peak RSS (MB) per run, and each kind's (files, variants)."""
    import numpy as np

    from acoustics import audio, mixing

    with tempfile.TemporaryDirectory(prefix="bench-speech-prep-") as temporary:
        folder = Path(temporary)
        noise = audio.write_wav(folder / "noise.wav",
                                mixing.synthetic_room_noise(NOISE_SECONDS, 16000, np.random.default_rng(7)), 16000)
        empty = folder / "no-svd"
        empty.mkdir()
        for path, _, _ in manifest_rows(MANIFEST):  # every run reads the corpus from the page cache
            Path(path).read_bytes()
        print(f"Stage 3 on {MANIFEST} ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}), "
              f"{runs} interleaved runs of each process; the timed speech_prep.py run skips the picture "
              "(--no-picture). CPU: user + system time of the process and its workers.")
        times = {kind: [] for kind in KINDS}
        rss, counts = [], {}
        for run in range(runs):
            for kind in KINDS[run % len(KINDS):] + KINDS[: run % len(KINDS)]:
                if kind == "stage3":
                    seconds, cpu, peak, files, variants = run_stage3(folder, run, noise, empty, workers)
                    rss.append(peak)
                else:
                    seconds, cpu, _, files, variants = run_job(kind, folder, run, noise)
                counts[kind] = (files, variants)
                times[kind].append(seconds)
                print(f"  run {run + 1}: {kind:8s} {seconds:7.2f} s  (CPU {cpu:6.2f} s)", flush=True)
    return times, rss, counts


def report(times: dict, rss: list, files: int, variants: int) -> None:
    """Print the medians, the speedup over the baseline and the ratio to the floor, then the same as JSON."""
    seconds, baseline, floor = (statistics.median(times[kind]) for kind in KINDS)
    print(f"Stage 3 (speech_prep.py, whole process, no picture): {seconds:.2f} s median "
          f"({files} recordings x {variants} variants); peak RSS {max(rss):.0f} MB")
    print(f"Seed-style baseline (librosa, a row per frame):      {baseline:.2f} s median")
    print(f"Floor (read, resample, trim, mix, MFCC; one process): {floor:.2f} s median")
    print(f"Speedup over the baseline: {baseline / seconds:.2f}x (goal >= 4); "
          f"ratio to the floor: {seconds / floor:.2f} (goal <= 1.25)")
    print(json.dumps({"seconds": round(seconds, 3), "baseline_seconds": round(baseline, 3),
                      "speedup": round(baseline / seconds, 2), "floor_seconds": round(floor, 3),
                      "ratio_to_floor": round(seconds / floor, 3), "peak_rss_mb": round(max(rss), 1),
                      "files": files, "variants": variants}))


if __name__ == "__main__":
    sys.exit(main())

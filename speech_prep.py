#!/usr/bin/env python3
"""Stage 3: read labelled speech, mix in the room's background noise at each noise level, and store
what the networks learn from (MFCCs: a picture of the voice's timbre over time) in the feature database.

Speech comes from the Saarbruecken Voice Database export (data/male_speech/, data/female_speech/), from
CSV files listing recordings (--manifest FILE, columns path,sex,speaker) and/or the built-in demo
corpus (--demo). Reruns are safe: every recording is stored once, with all its noisy copies, and a run
that was stopped continues where it stopped.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # BLAS threads fight on small machines

from acoustics.errors import AcousticsError, reason_of
from acoustics.settings import Paths, command_line, non_negative_integer

EXAMPLES = """examples:
  python speech_prep.py                          # the SVD export in data/male_speech and data/female_speech
  python speech_prep.py --demo                   # the built-in demo corpus (synthetic voices)
  python speech_prep.py --manifest emodb.csv --db data/emodb.db   # recordings listed in a CSV file
  python speech_prep.py --manifest a/part1.csv --manifest b/part2.csv --corpus emodb   # one corpus, two lists
"""
BATCH_SIZE = 32  # recordings per database transaction


def corpus_name(text: str) -> str:
    """A --corpus name: non-empty, printable, at most 100 characters."""
    name = text.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise argparse.ArgumentTypeError(f"must be a short printable name, not {text!r}")
    return name


def parse_arguments(argv=None) -> argparse.Namespace:
    paths = Paths()
    parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", metavar="PATH", default=str(paths.database), help="feature database (default: %(default)s)")
    parser.add_argument("--noise", metavar="WAV", default=str(paths.background_noise),
                        help="background noise recorded by collect_background_noise.py (default: %(default)s)")
    parser.add_argument("--svd", default=str(paths.data_dir), metavar="FOLDER",
                        help="folder holding male_speech/ and female_speech/ of the SVD export (default: %(default)s)")
    parser.add_argument("--manifest", action="append", default=[], metavar="CSV",
                        help="CSV with columns path,sex,speaker (repeatable)")
    parser.add_argument("--corpus", metavar="NAME", type=corpus_name,
                        help="corpus name of the speakers of every --manifest of this run (default: each manifest's "
                             "folder name); speaker 03 of two corpora is two people, of one corpus one person. "
                             "Manifests of different corpora with their own names: one run per corpus")
    parser.add_argument("--demo", action="store_true", help="use the built-in demo corpus (spoken by espeak-ng)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="recordings worked on at the same time, one per processor core (default: %(default)s)")
    parser.add_argument("--snrs", type=float, nargs="+", metavar="DB",
                        help="noise levels: speech-to-noise ratios in dB; must match the database's unless --start-over")
    parser.add_argument("--start-over", action="store_true",
                        help="delete every stored feature and start again (with --snrs, under the new SNRs)")
    parser.add_argument("--limit", type=non_negative_integer, help="process at most this many new recordings")
    parser.add_argument("--picture", metavar="PNG", help=f"where to save the picture (default: {paths.picture('speech_prep')}, "
                                                         f"or {paths.pictures}/DB_speech_prep.png for another --db DB.db)")
    parser.add_argument("--no-picture", action="store_true", help="do not save the picture (saves about 2 s)")
    arguments = parser.parse_args(argv)
    arguments.picture = arguments.picture or str(paths.picture("speech_prep", arguments.db))
    return arguments


def same_command(arguments) -> str:
    """The command that continues this run: the script with the database, noise and corpus options given."""
    paths = Paths()
    return command_line("speech_prep.py", ("--db", arguments.db, paths.database),
                        ("--noise", arguments.noise, paths.background_noise), ("--svd", arguments.svd, paths.data_dir),
                        ("--manifest", arguments.manifest, None), ("--corpus", arguments.corpus, None),
                        ("--demo", arguments.demo, None),
                        ("--snrs", arguments.snrs if arguments.start_over else None, None))


def collect(arguments, paths: Paths) -> tuple:
    """All labelled recordings the arguments name, and the manifest rows that were skipped."""
    from acoustics import corpus

    recordings, skipped = [], []
    for folder in corpus.unpack_svd_zips(arguments.svd):
        print(f"Unpacked {folder.name}.zip into {folder}.")
    if corpus.has_svd(arguments.svd):
        recordings += corpus.find_svd(arguments.svd)
    for manifest in arguments.manifest:
        found, bad_rows = corpus.read_manifest(manifest, source=arguments.corpus)
        recordings += found
        skipped += bad_rows
    if arguments.demo:
        print(f"Speaking the demo corpus into {paths.demo_corpus} with espeak-ng (once) ...")
        manifest = corpus.make_demo_corpus(paths.demo_corpus, progress=progress_bar("speaking", "clips"))
        found, bad_rows = corpus.read_manifest(manifest, source="demo", synthetic=True)
        recordings += found
        skipped += bad_rows
    if not recordings and not skipped:
        raise AcousticsError(
            f"No speech found: put the SVD export in {arguments.svd}/male_speech and {arguments.svd}/female_speech "
            "(see README), or use --manifest FILE or --demo."
        )
    return recordings, skipped


def progress_bar(description: str, unit: str, total=None):
    from tqdm import tqdm

    return lambda iterable: tqdm(iterable, desc=description, unit=unit, total=total, file=sys.stderr,
                                 dynamic_ncols=True, disable=None)


def load_noise(path, settings):
    from acoustics import audio, preparation

    if not os.path.exists(path):
        raise AcousticsError(f"{path}: no background noise yet; run 'python collect_background_noise.py' "
                             "(or with --synthetic) first.")
    noise, _ = audio.load_audio(path, settings.sample_rate)
    if audio.level_dbfs(noise) < audio.NO_SOUND_DBFS:
        raise AcousticsError(f"{path}: the background noise is digital silence; record it again with "
                             "'python collect_background_noise.py'.")
    return noise, preparation.file_hash(path)


def open_database(arguments):
    """Open the database; with --snrs check them against the stored settings, or start over."""
    from acoustics import database

    feature_database = database.FeatureDatabase(arguments.db)
    requested = feature_database.settings
    if arguments.snrs:
        requested = requested.replace(snrs_db=tuple(arguments.snrs))
    if arguments.start_over:
        feature_database.close()
        database.create_database(arguments.db, requested, reset=True)
        print(f"Started over: deleted every stored feature in {arguments.db}.")
        return database.FeatureDatabase(arguments.db)
    try:
        feature_database.check_settings(requested)
    except AcousticsError:
        feature_database.close()
        raise
    return feature_database


def check_outputs(arguments) -> None:
    """Refuse, before any work, a --picture that would overwrite an input or another kind of file."""
    from acoustics import outputs

    if not arguments.no_picture:
        inputs = [("the feature database", arguments.db), ("the background noise", arguments.noise)]
        outputs.check_picture_path(arguments.picture, "--picture",
                                   inputs + [("the manifest", manifest) for manifest in arguments.manifest])


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    paths = Paths()
    from acoustics import audio, preparation
    from acoustics.corpus import Skipped

    started = time.perf_counter()
    stored_now, skipped, noted, seconds_of_audio = 0, [], [], 0.0
    feature_database = None
    try:
        check_outputs(arguments)
        feature_database = open_database(arguments)
        settings = feature_database.settings
        noise, noise_hash = load_noise(arguments.noise, settings)
        noise_id = feature_database.add_noise(name=os.path.basename(arguments.noise), kind="room", sha256=noise_hash,
                                              duration_seconds=noise.size / settings.sample_rate,
                                              level_dbfs=audio.level_dbfs(noise))
        recordings, skipped = collect(arguments, paths)
        tasks, already = sort_recordings(recordings, feature_database, skipped)
        if arguments.limit is not None:
            tasks = tasks[: arguments.limit]
        print(f"Found {len(recordings)} recordings: {already} already stored, {len(tasks)} to process "
              f"(clean + noise at {', '.join(f'{snr:g}' for snr in settings.snrs_db)} dB SNR each).")
        batch = []
        bar = progress_bar("extracting MFCCs", "files", total=len(tasks))
        for result in bar(preparation.prepare_all(tasks, noise, noise_id, settings, workers=arguments.workers)):
            if isinstance(result, Skipped):
                skipped.append(result)
                continue
            batch.append(result)
            if result["note"]:
                noted.append((result["path"], result["note"]))
            if len(batch) >= BATCH_SIZE:
                stored_now += feature_database.add_recordings(batch)
                seconds_of_audio += sum(item["speech_seconds"] * len(item["variants"]) for item in batch)
                batch = []
        stored_now += feature_database.add_recordings(batch)
        seconds_of_audio += sum(item["speech_seconds"] * len(item["variants"]) for item in batch)
        summarise(feature_database, stored_now, seconds_of_audio, skipped, noted, time.perf_counter() - started)
        if not arguments.no_picture:
            picture(feature_database, tasks, noise, settings, arguments.picture)
    except AcousticsError as error:
        print(f"Error: {error}", file=sys.stderr)
        if stored_now:
            print(f"{stored_now} recordings were stored before that; run '{same_command(arguments)}' again to continue.",
                  file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nStopped. {stored_now} recordings were stored completely in this run; the one being written "
              f"was rolled back. Run '{same_command(arguments)}' again to continue.", file=sys.stderr)
        return 130
    finally:
        if feature_database is not None:
            feature_database.close()
    print(f"Next: {command_line('train_models.py', ('--db', arguments.db, Paths().database))}")
    return 0


def sort_recordings(recordings, feature_database, skipped: list) -> tuple:
    """The tasks to process (each content once, under one speaker per person) and how many are stored
    already; adds the unreadable files and the label conflicts to ``skipped`` (see acoustics.identity)."""
    from acoustics import identity, preparation
    from acoustics.corpus import Skipped

    tasks = []
    for recording in recordings:
        try:
            tasks.append(preparation.make_task(recording))
        except AcousticsError as error:
            skipped.append(Skipped(str(recording.path), reason_of(error, recording.path)))
    sorted_out = identity.reconcile(tasks, feature_database.stored_labels(), feature_database.speaker_sexes())
    skipped += sorted_out.skipped
    for speaker, stored_as in sorted_out.linked.items():
        print(f"{identity.show(speaker).capitalize()} shares recordings with {identity.show(stored_as)}: "
              "one person, stored as the latter.")
    if sorted_out.repeated:
        print(f"{sorted_out.repeated} listings repeat a file listed before (same content); each is stored once.")
    return sorted_out.new, sorted_out.already


def summarise(feature_database, stored_now: int, seconds_of_audio: float, skipped: list, noted: list,
              seconds: float) -> None:
    """Print what was stored, the files skipped with their reasons, and the (path, note) pairs of files
    kept despite a poor input (quiet, noisy, mildly clipped)."""
    import pandas

    counts = feature_database.counts()
    table = pandas.DataFrame(counts).T.rename_axis("sex")
    print(f"\nStored {stored_now} new recordings ({seconds_of_audio:.0f} s of audio across all variants) "
          f"in {seconds:.1f} s. The database now holds:")
    print(table.to_string())
    if skipped:
        print(f"\nSkipped {len(skipped)} files:")
        for item in skipped[:20]:
            print(f"  {item.path}: {item.reason}")
        if len(skipped) > 20:
            print(f"  ... and {len(skipped) - 20} more.")
    if noted:
        print(f"\nKept {len(noted)} files whose input is poor:")
        for path, note in noted[:20]:
            print(f"  {path}: {note}")
        if len(noted) > 20:
            print(f"  ... and {len(noted) - 20} more.")


def picture(feature_database, tasks, noise, settings, path) -> None:
    """Waveform and MFCCs of one recording of this run, clean and at the lowest SNR."""
    from acoustics import features, plots, preparation

    for task in tasks[:5]:
        try:
            speech, mixed = preparation.clean_and_noisy(task, noise, settings)
        except AcousticsError:
            continue
        lowest = min(settings.snrs_db)
        saved = plots.plot_speech_variants(
            speech, mixed[lowest], features.mfcc(speech, settings), features.mfcc(mixed[lowest], settings),
            settings.sample_rate, settings.hop_ms, path,
            title=f"{os.path.basename(task.recording.path)} ({task.recording.sex}, speaker {task.recording.speaker})",
            noisy_label=f"with background noise at {lowest:g} dB SNR",
        )
        print(f"Saved a picture of one recording, clean and with noise: {saved}")
        return


if __name__ == "__main__":
    status = main()
    gc.freeze()  # about to exit: spare the interpreter's final garbage collection of every module (0.15 s)
    sys.exit(status)

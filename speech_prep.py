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

from acoustics.errors import AcousticsError, shown
from acoustics.settings import Paths, command_line, corpus_name, non_negative_integer

EXAMPLES = """examples:
  python speech_prep.py                          # the SVD export in data/male_speech and data/female_speech
  python speech_prep.py --demo                   # the built-in demo corpus (synthetic voices)
  python speech_prep.py --manifest emodb.csv --db data/emodb.db   # recordings listed in a CSV file
  python speech_prep.py --manifest a/part1.csv --manifest b/part2.csv --corpus emodb   # one corpus, two lists

exit status: 0 when every listed recording is stored, 1 when some were skipped (the last lines say how
many and why) or on an error, 2 for a bad command line, 130 after Ctrl-C (a rerun continues).
"""


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
    from acoustics import corpus, democorpus

    for folder in corpus.unpack_svd_zips(arguments.svd):
        print(f"Unpacked {folder.name}.zip into {folder}.")
    recordings, skipped = corpus.find_listed(arguments.svd, arguments.manifest, source=arguments.corpus)
    if arguments.demo:
        manifest = democorpus.make_demo_corpus(paths.demo_corpus, progress=progress_bar("speaking", "clips"),
                                               announce=lambda sentence: print(sentence, flush=True))
        source, synthetic = democorpus.demo_source(paths.demo_corpus)
        found, bad_rows = corpus.read_manifest(manifest, source=source, synthetic=synthetic)
        recordings, skipped = recordings + found, skipped + bad_rows
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


def check_outputs(arguments) -> None:
    """Refuse, before any work, a --picture that would overwrite an input or another kind of file."""
    from acoustics import outputs

    if not arguments.no_picture:
        inputs = [("the feature database", arguments.db), ("the background noise", arguments.noise)]
        outputs.check_picture_path(arguments.picture, "--picture",
                                   inputs + [("the manifest", manifest) for manifest in arguments.manifest])


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    from acoustics import preparation, storing

    started, tally, feature_database = time.perf_counter(), storing.Tally(), None
    try:
        check_outputs(arguments)
        feature_database = storing.open_database(arguments.db, snrs=arguments.snrs, start_over=arguments.start_over)
        if arguments.start_over:
            print(f"Started over: deleted every stored feature in {arguments.db}.")
        settings = feature_database.settings
        noise, noise_id = storing.load_noise(arguments.noise, feature_database)
        recordings, tally.skipped = collect(arguments, Paths())
        tasks, already = sort_recordings(recordings, feature_database, tally.skipped)
        tasks = tasks if arguments.limit is None else tasks[: arguments.limit]
        print(f"Found {len(recordings)} recordings: {already} already stored, {len(tasks)} to process "
              f"(clean + noise at {', '.join(f'{snr:g}' for snr in settings.snrs_db)} dB SNR each).")
        bar = progress_bar("extracting MFCCs", "files", total=len(tasks))
        tally.store_all(bar(preparation.prepare_all(tasks, noise, noise_id, settings, workers=arguments.workers)),
                        feature_database)
        summarise(feature_database, tally, time.perf_counter() - started)
        if not arguments.no_picture:
            picture(tasks, noise, settings, arguments.picture)
    except AcousticsError as error:
        print(f"Error: {error}", file=sys.stderr)
        if tally.stored:
            print(f"{tally.stored} recordings were stored before that; run '{same_command(arguments)}' again to continue.",
                  file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nStopped. {tally.stored} recordings were stored completely in this run; the one being written "
              f"was rolled back. Run '{same_command(arguments)}' again to continue.", file=sys.stderr)
        return 130
    finally:
        if feature_database is not None:
            feature_database.close()
    print(f"Next: {command_line('train_models.py', ('--db', arguments.db, Paths().database))}")
    if tally.skipped:
        print(f"{len(tally.skipped)} of the listed recordings {'was' if len(tally.skipped) == 1 else 'were'} skipped "
              "(listed above with the reason); the rest are stored.", file=sys.stderr)
        return 1
    return 0


def sort_recordings(recordings, feature_database, skipped: list) -> tuple:
    """The tasks to process (each content once, under one speaker per person) and how many are stored
    already; adds the unreadable files and the label conflicts to ``skipped`` and says which speakers
    are one person and how many listings repeat a file (see acoustics.identity)."""
    from acoustics import identity, storing

    reconciled, unreadable = storing.sort_recordings(recordings, feature_database)
    skipped += unreadable + reconciled.skipped
    for speaker, stored_as in reconciled.linked.items():
        print(f"{identity.show(speaker).capitalize()} shares recordings with {identity.show(stored_as)}: "
              "one person, stored as the latter.")
    if reconciled.repeated:
        print(f"{reconciled.repeated} listings repeat a file listed before (same content); each is stored once.")
    return reconciled.new, reconciled.already


def summarise(feature_database, tally, seconds: float) -> None:
    """Print what was stored, the files skipped with their reasons, and the files kept despite a poor
    input (quiet, noisy, mildly clipped) with their notes."""
    import pandas

    table = pandas.DataFrame(feature_database.counts()).T.rename_axis("sex")
    print(f"\nStored {tally.stored} new recordings ({tally.seconds_of_audio:.0f} s of audio across all variants) "
          f"in {seconds:.1f} s. The database now holds:")
    print(table.to_string())
    print_some(f"Skipped {len(tally.skipped)} files", [(item.path, item.reason) for item in tally.skipped])
    print_some(f"Kept {len(tally.noted)} files whose input is poor", tally.noted)


def print_some(heading: str, items: list, *, most: int = 20) -> None:
    """Print ``heading`` and the first ``most`` of ``items`` (``(path, why)`` pairs), if there are any."""
    if items:
        print(f"\n{heading}:")
        for path, why in items[:most]:
            print(f"  {shown(path)}: {shown(why)}")
        if len(items) > most:
            print(f"  ... and {len(items) - most} more.")


def picture(tasks, noise, settings, path) -> None:
    """Waveform and MFCCs of one recording of this run, clean and at the lowest SNR."""
    from acoustics import features, plots, storing

    found = storing.example(tasks, noise, settings)
    if found is None:
        return
    task, speech, mixed = found
    lowest = min(settings.snrs_db)
    saved = plots.plot_speech_variants(
        speech, mixed[lowest], features.mfcc(speech, settings), features.mfcc(mixed[lowest], settings),
        settings.sample_rate, settings.hop_ms, path,
        title=f"{os.path.basename(task.recording.path)} ({task.recording.sex}, speaker {task.recording.speaker})",
        noisy_label=f"with background noise at {lowest:g} dB SNR",
    )
    print(f"Saved a picture of one recording, clean and with noise: {saved}")


if __name__ == "__main__":
    status = main()
    gc.freeze()  # about to exit: spare the interpreter's final garbage collection of every module (0.15 s)
    sys.exit(status)

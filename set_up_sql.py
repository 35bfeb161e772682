#!/usr/bin/env python3
"""Stage 1: create the feature database (default data/features.db) that the next stages fill and read.

Safe to run twice: an existing database is kept with its data. --reset starts over (it asks first,
or takes --yes). The feature settings (sample rate, MFCCs, noise levels) are stored in it once, and
every later stage follows them.
"""

from __future__ import annotations

import argparse
import sys

from acoustics.errors import AcousticsError
from acoustics.settings import Paths, Settings, command_line

EXAMPLES = """examples:
  python set_up_sql.py                          # data/features.db with the default settings
  python set_up_sql.py --snrs 20 10 0           # mix the room noise in at 20, 10 and 0 dB
  python set_up_sql.py --db data/mine.db --reset --yes   # start another database over
"""


def parse_arguments(argv=None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", metavar="PATH", default=str(Paths().database), help="database file (default: %(default)s)")
    parser.add_argument("--reset", action="store_true", help="delete the stored features and start over")
    parser.add_argument("--yes", action="store_true", help="do not ask before --reset deletes anything")
    parser.add_argument("--snrs", type=float, nargs="+", metavar="DB",
                        help=f"signal-to-noise ratios in dB to mix noise at (default: {' '.join(f'{snr:g}' for snr in defaults.snrs_db)})")
    parser.add_argument("--seed", type=int,
                        help=f"seed of every random choice (speaker split, noise mixing; default: {defaults.seed})")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    from acoustics import database, dbfile

    try:
        changes = {}
        if arguments.snrs:
            changes["snrs_db"] = tuple(arguments.snrs)
        if arguments.seed is not None:
            changes["seed"] = arguments.seed
        settings = Settings(**changes)
        if arguments.reset and not arguments.yes:
            from pathlib import Path

            if Path(arguments.db).exists():
                if not sys.stdin.isatty():
                    raise AcousticsError(f"--reset would delete everything stored in {arguments.db}; add --yes to confirm.")
                answer = input(f"Delete everything stored in {arguments.db} and start over? [y/N] ")
                if answer.strip().lower() not in ("y", "yes", "j", "ja"):
                    print("Nothing was deleted.")
                    return 0
        outcome = dbfile.create_database(arguments.db, settings, reset=arguments.reset)
        with database.FeatureDatabase(arguments.db, readonly=True) as feature_database:
            stored = feature_database.settings
            counts = feature_database.counts()
    except AcousticsError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    if outcome == "kept":
        recordings = sum(count["recordings"] for count in counts.values())
        print(f"The feature database {arguments.db} already exists; it was kept with its {recordings} recordings "
              "(use --reset to start over).")
        if changes and settings.differences(stored, fields=tuple(changes)):
            print("Note: the settings you gave differ from the stored ones, which stay in force: "
                  + "; ".join(settings.differences(stored, fields=tuple(changes))) + ".")
    else:
        print(f"{'Started over: e' if outcome == 'reset' else 'Created the e'}mpty feature database {arguments.db} "
              "(tables: settings, speakers, recordings, noises, features, splits, runs).")
    print(f"Feature settings stored in it: {stored.sample_rate} Hz, {stored.n_mfcc} MFCCs, "
          f"{stored.window_ms:g} ms window, {stored.hop_ms:g} ms hop, {stored.frames} frames per model input, "
          f"noise mixed at {', '.join(f'{snr:g}' for snr in stored.snrs_db)} dB SNR, seed {stored.seed}.")
    print(f"Next: {command_line('collect_background_noise.py', ('--db', arguments.db, Paths().database))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Stage 5: is this voice male or female? A trained model answers: the one train_models.py
saved if it has heard real voices, otherwise the reference model that comes with the project.

By default it listens to the microphone: say "Guten Morgen, wie geht es Ihnen", pause, and it
answers. Give audio files or folders instead to classify recordings, one line each (or a CSV file, or
JSON lines for other programs). --stream keeps listening, a verdict per sentence, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from acoustics import outputs
from acoustics.errors import AcousticsError, reason_of, shown
from acoustics.utterances import STREAM_PAUSE_SECONDS, UTTERANCE_PAUSE_SECONDS
from acoustics.settings import Paths, non_negative_integer

#: The background loader of the model (see start_loading), once started.
_loader = None
#: The count of files from which a bar shows progress.
PROGRESS_FROM_FILES = 10
#: The longest recording or sentence stage 5 listens to, in seconds (--seconds).
LONGEST_SECONDS = 6.0
#: The range of --pause in seconds (its defaults are utterances.UTTERANCE_PAUSE_SECONDS and STREAM_PAUSE_SECONDS).
MIN_PAUSE_SECONDS, MAX_PAUSE_SECONDS = 0.1, 5.0
#: Options that need files to work on.
FILE_OPTIONS = ("csv", "json", "segments", "compare")

EXAMPLES = """examples:
  python implement_model.py                             # say one sentence into the microphone
  python implement_model.py recordings/ --csv out.csv   # every audio file in a folder, also as a table
  python implement_model.py --manifest labels.csv --compare models/reference.h5   # two models, side by side
  python implement_model.py --segments talk.wav --csv segments.csv   # who speaks when: male, female, no_speech

exit status: 0 when every file got a verdict (or the microphone an answer), 1 when some did not (the
summary says how many) or on an error, 2 for a bad command line, 130 after Ctrl-C.
"""

HELP = {
    "files": "audio files or folders to classify instead of listening",
    "--model": "model file (default: {best} if it has heard real voices, otherwise the reference model that comes "
               "with the project, models/reference.h5)",
    "--db": "feature database the model was trained from; its settings must match, if it exists (default: %(default)s)",
    "--wav": "the same as giving FILE...",
    "--csv": "with files: also write a table (CSV) to OUT, one row per file (OUT may be /dev/stdout or a pipe)",
    "--overwrite": "with --csv: replace OUT even if it exists and its name does not end in .csv",
    "--json": "with files: print one JSON object per file (path, label, p_male, probability, duration, "
              "speech_seconds, note) and nothing else",
    "--segments": "with files: split each into male, female and no_speech segments with start and stop times, a "
                  "timeline picture each (beside --csv, else in data/pictures/); --csv then writes one row per "
                  "segment (path, label, start, stop, p_male)",
    "--stream": "keep listening; a verdict per sentence until Ctrl-C",
    "--play": "listen to FILE played in real time instead of the microphone, as if spoken into it (a demo "
              "without a microphone; with --stream, a verdict per sentence of a conversation)",
    "--pause": f"silence that ends a sentence (default: {UTTERANCE_PAUSE_SECONDS:g}; with --stream: {STREAM_PAUSE_SECONDS:g})",
    "--manifest": "classify the recordings a labelled manifest lists (path,sex,speaker) and say how often the model is right",
    "--limit": "with --manifest: only N recordings, as many of each sex, spread over the speakers (default: all)",
    "--compare": "with files or --manifest: also classify them with MODEL and show both models' verdicts side by side",
    "--seconds": f"longest recording or sentence in seconds (default: {LONGEST_SECONDS:g})",
    "--no-save": "do not save recordings and pictures",
    "--plain": "print plain lines only, no live level meter (the default when stdout is not a terminal)",
}


def make_parser() -> argparse.ArgumentParser:
    paths = Paths()
    parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", metavar="FILE", help=HELP["files"])
    parser.add_argument("--model", help=HELP["--model"].format(best=paths.models / "best.h5"))
    parser.add_argument("--db", default=str(paths.database), help=HELP["--db"])
    parser.add_argument("--wav", nargs="+", default=[], metavar="FILE", help=HELP["--wav"])
    parser.add_argument("--csv", metavar="OUT", help=HELP["--csv"])
    parser.add_argument("--json", action="store_true", help=HELP["--json"])
    parser.add_argument("--overwrite", action="store_true", help=HELP["--overwrite"])
    parser.add_argument("--segments", action="store_true", help=HELP["--segments"])
    parser.add_argument("--stream", action="store_true", help=HELP["--stream"])
    parser.add_argument("--play", metavar="FILE", help=HELP["--play"])
    parser.add_argument("--pause", type=float, metavar="SECONDS", help=HELP["--pause"])
    parser.add_argument("--manifest", metavar="CSV", help=HELP["--manifest"])
    parser.add_argument("--limit", type=non_negative_integer, default=0, metavar="N", help=HELP["--limit"])
    parser.add_argument("--compare", metavar="MODEL", help=HELP["--compare"])
    parser.add_argument("--seconds", type=float, default=LONGEST_SECONDS, help=HELP["--seconds"])
    parser.add_argument("--no-save", action="store_true", help=HELP["--no-save"])
    parser.add_argument("--plain", action="store_true", help=HELP["--plain"])
    return parser


def parse_arguments(argv=None) -> argparse.Namespace:
    """The arguments, checked: the --manifest's recordings added to the files, --pause's default set."""
    parser = make_parser()
    arguments = parser.parse_args(argv)
    arguments.files, arguments.truths = arguments.files + arguments.wav, {}
    if arguments.manifest:
        from acoustics import compare

        try:
            paths, sexes = compare.labelled_sample(arguments.manifest, arguments.limit, seed=42)
        except AcousticsError as error:
            parser.exit(1, f"Error: {error}\n")
        arguments.files += [str(path) for path in paths]
        arguments.truths = dict(zip(map(str, paths), sexes))
    if arguments.pause is not None and not MIN_PAUSE_SECONDS <= arguments.pause <= MAX_PAUSE_SECONDS:
        parser.error(f"--pause must be between {MIN_PAUSE_SECONDS:g} and {MAX_PAUSE_SECONDS:g} seconds, not {arguments.pause:g}")
    if arguments.segments and (arguments.json or arguments.stream):
        parser.error("--segments prints its segments as lines (and --csv rows); it takes neither --json nor --stream")
    if arguments.compare and (arguments.json or arguments.csv or arguments.segments or arguments.stream):
        parser.error("--compare prints a table of both models' verdicts; it takes none of --json, --csv, --segments, --stream")
    if arguments.play and arguments.files:
        parser.error("--play listens to one recording as if spoken into the microphone; to classify files, give them without --play")
    for option in FILE_OPTIONS:
        if getattr(arguments, option) and not arguments.files:
            parser.exit(1, f"Error: --{option} needs files to classify: give FILE... (audio files or folders).\n")
    if arguments.pause is None:
        arguments.pause = STREAM_PAUSE_SECONDS if arguments.stream else UTTERANCE_PAUSE_SECONDS
    return arguments


def start_loading(arguments):
    """Check the model file and its settings against the database (h5py alone, milliseconds), then load
    it in the background: ``(settings, loader)``. Importing Keras takes about 6 s: the microphone modes
    open the microphone and say "Speak now" at once, and the person speaks while the loader works."""
    from acoustics import verdict

    global _loader
    choice = verdict.choose_model(arguments.model, Paths().models)
    settings = choice.metadata["settings"]
    if choice.chosen_by_user or choice.path != verdict.REFERENCE_MODEL:
        verdict.check_against_database(choice.path, settings, arguments.db)
    print(choice.line, file=report_stream(arguments), flush=True)
    if choice.warning:
        print(choice.warning, file=sys.stderr, flush=True)
    # The stream is looked up when the model is ready: the live view may have taken stdout over by then.
    _loader = verdict.ModelLoader(choice.path, on_ready=lambda model, metadata: print(
        f"Loaded the {metadata['model_name']} model from {verdict.shown_path(choice.path)}.", file=report_stream(arguments), flush=True),
        xla=bool(arguments.files), threads=None if arguments.files else 1)  # files: large batches; live: a few windows
    return settings, _loader


def _loading() -> bool:
    """True while the background thread still imports Keras or loads the model."""
    return _loader is not None and not _loader.ready


def report_stream(arguments):
    """Where the lines about the work go: stderr with --json, so that stdout holds the JSON objects alone."""
    return sys.stderr if arguments.json else sys.stdout


def check_csv_path(arguments) -> None:
    """Refuse, before any work, a --csv that would overwrite an input, the database, a model, or
    another kind of file, or that cannot be written."""
    from acoustics import fileverdicts, outputs, verdict

    models = [arguments.model] if arguments.model else [Paths().models / "best.h5", verdict.REFERENCE_MODEL]
    protected = [("the feature database", arguments.db), ("the manifest", arguments.manifest),
                 ("the compared model", arguments.compare)] + [("the model", model) for model in models]
    inputs = [("the input audio file", path) for path in fileverdicts.audio_paths(arguments.files)]
    outputs.check_output_path(arguments.csv, "--csv", "CSV table", protected + inputs, replaces=(".csv",),
                              overwrite=arguments.overwrite)
    outputs.check_writable(arguments.csv, "--csv")


def progress_bar(count: int):
    """A progress bar on stderr for more than a few files when a person watches (stderr is a terminal)."""
    from tqdm import tqdm

    return tqdm(total=count, unit="files", file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=count <= PROGRESS_FROM_FILES or not sys.stderr.isatty())


def classify_files(arguments, loader) -> int:
    """Classify every file the arguments name: one line (or JSON object) each, the CSV, a summary."""
    from acoustics import fileverdicts

    paths = fileverdicts.audio_paths(arguments.files)
    model, metadata = loader.get()
    results = []
    with progress_bar(len(paths)) as bar:
        for path, result in fileverdicts.file_verdicts(model, metadata, paths):
            bar.write(fileverdicts.json_line(path, result) if arguments.json else f"{shown(path)}: {result.sentence()}",
                      file=sys.stdout)
            if arguments.json:
                sys.stdout.flush()  # each object reaches a program that reads them as soon as it is known
            bar.update()
            results.append(result)
    if arguments.csv:
        fileverdicts.write_csv(arguments.csv, paths, results)
        print(f"Wrote {len(results)} rows to {shown(arguments.csv)}.", file=report_stream(arguments))
    print(fileverdicts.summary_line(results), file=report_stream(arguments))
    return 0 if all(result.label for result in results) else 1


def compare_models(arguments, loader) -> int:
    """Classify the files with the model that answers and with --compare's, and show both side by side."""
    from acoustics import compare, fileverdicts, models, verdict

    paths = fileverdicts.audio_paths(arguments.files)
    truths = compare.truths_of(paths, arguments.truths)
    other = verdict.choose_model(arguments.compare, Paths().models).path
    model, metadata = loader.get()
    other_model, other_metadata = models.load_model(other, xla=True)
    both = [(model, metadata, loader.path), (other_model, other_metadata, other)]
    lines, unanswered = compare.report(both, paths, truths)
    print("\n".join(lines))
    return 0 if unanswered == 0 else 1


def segment_files(arguments, loader) -> int:
    """--segments: each file's male, female and no_speech segments printed, a timeline picture saved per
    file (beside --csv, else in data/pictures/), with --csv a row per segment; a file that cannot be
    used gets one line saying why."""
    from acoustics import fileverdicts, segments
    from acoustics.segmentreport import SegmentReport

    paths = fileverdicts.audio_paths(arguments.files)
    model, metadata = loader.get()
    beside_csv = arguments.csv and not outputs.is_stream(arguments.csv)  # never into /dev beside --csv /dev/stdout
    report = SegmentReport(os.path.dirname(os.path.abspath(arguments.csv)) if beside_csv else Paths().pictures)
    for path in paths:
        try:
            result = segments.segment_file(model, metadata, path)
        except AcousticsError as error:
            print(f"{shown(path)}: no segments: {reason_of(error, path)}", flush=True)
            continue
        print("\n".join(report.add(path, result)), flush=True)
        warning = "" if arguments.no_save else report.save_timeline(path, result)
        if warning:
            print(warning, file=sys.stderr)
    if arguments.csv:
        report.write_csv(arguments.csv)
        print(f"Wrote {len(report.rows)} rows to {shown(arguments.csv)}.")
    if report.pictures:
        print(f"Saved {len(report.pictures)} timeline picture{'s' if len(report.pictures) != 1 else ''} in {report.folder}.")
    print(report.totals_line(len(paths)))
    return 0 if report.done == len(paths) else 1


def play_source(arguments, settings):
    """The source stage 5 listens to: the recording of --play in real time, or None for the microphone."""
    if not arguments.play:
        return None
    from acoustics import audio, listening, sources

    signal, _ = audio.load_audio(arguments.play, settings.sample_rate)
    print(f"Playing {shown(arguments.play)} ({signal.size / settings.sample_rate:.1f} s) as if spoken into the microphone.",
          flush=True)
    return sources.ArraySource(signal, settings.sample_rate, chunk_seconds=listening.CHUNK_SECONDS, real_time=True)


def listen_once(arguments, settings, loader, source=None) -> int:
    """One sentence from ``source`` (the microphone unless given), its verdict, and unless --no-save the
    recording and its picture."""
    from acoustics import listening, liveview, outputs

    with liveview.choose_view(arguments.plain) as view:
        heard = listening.listen_once(settings, loader, view, seconds=arguments.seconds, pause=arguments.pause,
                                      source=source)
    if heard is None or arguments.no_save:
        return 0
    paths = Paths()
    try:
        wav, picture = listening.save_recording(*heard, paths)
    except OSError as error:
        print(outputs.save_warning(f"the recording and its picture under {paths.data_dir}", error), file=sys.stderr)
        return 0
    print(f"Saved the recording as {wav} and a picture as {picture}.")
    return 0


def listen_stream(arguments, settings, loader, source=None) -> int:
    """A verdict per sentence of the person at the microphone (or ``source``) until Ctrl-C or the end of
    the source, each saved unless --no-save."""
    from acoustics import listening, liveview, outputs

    paths = Paths()
    recordings = None if arguments.no_save else listening.StreamRecordings(paths, on_warning=lambda error: print(
        outputs.save_warning(f"a recording or its picture under {paths.data_dir}", error), file=sys.stderr))
    with liveview.choose_view(arguments.plain) as view:
        heard = listening.listen_stream(settings, loader, view, seconds=arguments.seconds, pause=arguments.pause,
                                        recordings=recordings, source=source)
    if recordings:
        recordings.close()
    print(f"\nStopped listening after {heard} utterances.")
    return 0


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    # Keras' import (in the loader thread) points file descriptor 2 at /dev/null for seconds: this
    # process's own messages go through a duplicate of it.
    sys.stderr.flush()
    sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(2), "w"), line_buffering=True, errors="backslashreplace")
    try:
        outputs.check_path_arguments(arguments, "files", "csv", "model", "db", "compare", "manifest", "play")
        if arguments.csv:
            check_csv_path(arguments)
        settings, loader = start_loading(arguments)
        if arguments.files:
            mode = compare_models if arguments.compare else segment_files if arguments.segments else classify_files
            return mode(arguments, loader)
        source = play_source(arguments, settings)
        return (listen_stream if arguments.stream else listen_once)(arguments, settings, loader, source)
    except AcousticsError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    try:
        status = main()
    except BaseException:  # a bug: keep its traceback
        if not _loading():
            raise
        import traceback

        traceback.print_exc()
        status = 1
    if _loading():
        # Leaving while TensorFlow is half imported in the loader thread can abort the interpreter's
        # shutdown (exit status 134); nothing is left to clean up, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)

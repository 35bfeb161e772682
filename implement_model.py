#!/usr/bin/env python3
"""Stage 5: classify new real-world speech as male or female.

By default it listens to the microphone: speak "Guten Morgen, wie geht es Ihnen" and pause (--pause),
and it answers. Files and folders given (or --wav) are classified instead: a few threads read them
ahead, and the windows of many files go to one prediction. --stream keeps listening until Ctrl-C.

Start-up: importing Keras takes about 6 s, so the microphone modes check the model's settings with
h5py alone, open the microphone and say "Speak now" at once, while a background thread imports Keras
and loads the model (acoustics.verdict.ModelLoader); the person speaks meanwhile.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import io
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from acoustics import outputs
from acoustics.errors import AcousticsError, reason_of
from acoustics.microphone import STREAM_PAUSE_SECONDS, UTTERANCE_PAUSE_SECONDS
from acoustics.settings import Paths

WAV_ALTERNATIVE = "classify a recording instead with 'python implement_model.py FILE' (or --wav FILE)"
SENTENCE = "Guten Morgen, wie geht es Ihnen"
#: Length of one microphone read: one detector frame, so a verdict follows the pause within ~30 ms.
CHUNK_SECONDS = 0.03
#: The background loader of the model (see start_loading), once started.
_loader = None
#: Files whose windows one prediction takes, threads that read files, and the count from which a bar shows progress.
FILES_PER_PREDICTION, READ_THREADS, PROGRESS_FROM_FILES = 64, 4, 10
#: The range of --pause in seconds (its defaults are microphone.UTTERANCE_PAUSE_SECONDS and STREAM_PAUSE_SECONDS).
MIN_PAUSE_SECONDS, MAX_PAUSE_SECONDS = 0.1, 5.0


DESCRIPTION = """Stage 5: is this voice male or female? A trained model answers: the one train_models.py
saved if it has heard real voices, otherwise the reference model that comes with the project.

By default it listens to the microphone: say "Guten Morgen, wie geht es Ihnen", pause, and it
answers. Give audio files or folders instead to classify recordings, one line each (or a CSV file, or
JSON lines for other programs). --stream keeps listening, a verdict per sentence, until Ctrl-C.
"""

EXAMPLES = """examples:
  python implement_model.py                             # say one sentence into the microphone
  python implement_model.py recordings/ --csv out.csv   # every audio file in a folder, also as a table
  python implement_model.py --manifest labels.csv --compare models/reference.h5   # two models, side by side
  python implement_model.py --segments talk.wav --csv segments.csv   # who speaks when: male, female, no_speech
"""


def parse_arguments(argv=None) -> argparse.Namespace:
    paths = Paths()
    parser = argparse.ArgumentParser(description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", metavar="FILE", help="audio files or folders to classify instead of listening")
    parser.add_argument("--model", default=None,
                        help=f"model file (default: {paths.models / 'best.h5'} if it has heard real voices, "
                             "otherwise the reference model that comes with the project, models/reference.h5)")
    parser.add_argument("--db", default=str(paths.database),
                        help="feature database the model was trained from; its settings must match, if it exists "
                             "(default: %(default)s)")
    parser.add_argument("--wav", nargs="+", default=[], metavar="FILE", help="the same as giving FILE...")
    parser.add_argument("--csv", metavar="OUT", help="with files: also write a table (CSV) to OUT, one row per file")
    parser.add_argument("--json", action="store_true", help="with files: print one JSON object per file (path, label, "
                        "p_male, probability, duration, speech_seconds, note) and nothing else")
    parser.add_argument("--segments", action="store_true", help="with files: split each into male, female and no_speech "
                        "segments with start and stop times, a timeline picture each (beside --csv, else in data/pictures/); "
                        "--csv then writes one row per segment (path, label, start, stop, p_male)")
    parser.add_argument("--stream", action="store_true", help="keep listening; a verdict per sentence until Ctrl-C")
    parser.add_argument("--pause", type=float, metavar="SECONDS",
                        help=f"silence that ends a sentence (default: {UTTERANCE_PAUSE_SECONDS:g}; "
                             f"with --stream: {STREAM_PAUSE_SECONDS:g})")
    parser.add_argument("--manifest", metavar="CSV", help="classify the recordings a labelled manifest lists (path,sex,speaker) "
                        "and say how often the model is right")
    parser.add_argument("--limit", type=int, default=0, metavar="N", help="with --manifest: only N recordings, as many "
                        "of each sex, spread over the speakers (default: all)")
    parser.add_argument("--compare", metavar="MODEL", help="with files or --manifest: also classify them with MODEL and "
                        "show both models' verdicts side by side")
    parser.add_argument("--seconds", type=float, default=6.0, help="longest recording or sentence in seconds (default: 6)")
    parser.add_argument("--no-save", action="store_true", help="do not save recordings and pictures")
    parser.add_argument("--plain", action="store_true",
                        help="print plain lines only, no live level meter (the default when stdout is not a terminal)")
    arguments = parser.parse_args(argv)
    arguments.files = arguments.files + arguments.wav
    arguments.truths = {}
    if arguments.limit < 0:
        parser.error(f"--limit must be 0 (all) or more, not {arguments.limit}")
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
    if arguments.pause is None:
        arguments.pause = STREAM_PAUSE_SECONDS if arguments.stream else UTTERANCE_PAUSE_SECONDS
    return arguments


def start_loading(arguments):
    """Check the model file and its settings against the database (no TensorFlow, milliseconds), then
    load it in the background: ``(settings, loader)``."""
    from acoustics import verdict

    global _loader
    choice = verdict.choose_model(arguments.model, Paths().models)
    settings = choice.metadata["settings"]
    if choice.chosen_by_user or choice.path != verdict.REFERENCE_MODEL:
        verdict.check_against_database(choice.path, settings, arguments.db)
    # With --json, stdout holds the JSON objects alone.
    report = sys.stderr if arguments.json else sys.stdout
    print(choice.line, file=report, flush=True)
    if choice.warning:
        print(choice.warning, file=sys.stderr, flush=True)
    # The stream is looked up when the model is ready: the live view may have taken stdout over by then.
    _loader = verdict.ModelLoader(
        choice.path,
        on_ready=lambda model, metadata: print(f"Loaded the {metadata['model_name']} model from {choice.path}.",
                                               file=sys.stderr if arguments.json else sys.stdout, flush=True),
    )
    return settings, _loader


def _loading() -> bool:
    """True while the background thread still imports Keras or loads the model."""
    return _loader is not None and not _loader.ready


def audio_paths(names) -> list:
    """The audio files that ``names`` (files and folders) stand for, in order; folders are searched."""
    from pathlib import Path

    from acoustics import corpus

    paths = []
    for name in names:
        paths += corpus.audio_files(Path(name)) if Path(name).is_dir() else [Path(name)]
    if not paths:
        raise AcousticsError(f"No audio files in {' '.join(map(str, names))}; give audio files or folders that hold them.")
    return paths


def check_csv_path(arguments) -> None:
    """Refuse, before any work, a --csv that would overwrite an input, the database, a model, or
    another kind of file, or that cannot be written."""
    from acoustics import outputs, verdict

    models = [arguments.model] if arguments.model else [Paths().models / "best.h5", verdict.REFERENCE_MODEL]
    protected = [("the feature database", arguments.db)] + [("the model", model) for model in models]
    outputs.check_output_path(arguments.csv, "--csv", "CSV table",
                              protected + [("the input audio file", path) for path in audio_paths(arguments.files)])
    check_writable(arguments.csv)


def prepare_file(metadata, path):
    """One audio file read and made ready for the model (verdict.prepare_signal); a file that cannot be
    used gets its Verdict without label."""
    from acoustics import audio, verdict

    try:
        signal, _ = audio.load_audio(path, metadata["settings"].sample_rate)
        return verdict.prepare_signal(metadata, signal, path)
    except AcousticsError as error:
        return verdict.Verdict(None, None, 0.0, 0.0, f"no verdict: {reason_of(error, path)}")


def read_ahead(function, items, workers: int, ahead: int):
    """``function(item)`` for each of ``items``, in order, computed by ``workers`` threads at most ``ahead``
    items ahead of the caller (decoding and MFCCs release the interpreter lock for most of their time)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers)
    pending = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


def file_verdicts(model, metadata, paths: list):
    """Yield ``(path, Verdict)`` for each file in order: files read by a few threads, the windows of
    :data:`FILES_PER_PREDICTION` files predicted at once."""
    from acoustics import verdict

    workers = max(1, min(READ_THREADS, os.cpu_count() or 1))
    prepared = read_ahead(lambda path: prepare_file(metadata, path), paths, workers, 2 * FILES_PER_PREDICTION)
    for start in range(0, len(paths), FILES_PER_PREDICTION):
        batch = paths[start:start + FILES_PER_PREDICTION]
        items = [next(prepared) for _ in batch]
        yield from zip(batch, verdict.classify_prepared(model, metadata, items))


def progress_bar(count: int):
    """A progress bar on stderr for more than a few files when a person watches (stderr is a terminal)."""
    from tqdm import tqdm

    return tqdm(total=count, unit="files", file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=count <= PROGRESS_FROM_FILES or not sys.stderr.isatty())


def classify_files(arguments, loader) -> int:
    """Classify every file the arguments name: one line (or JSON object) each, the CSV, a summary."""
    paths = audio_paths(arguments.files)
    model, metadata = loader.get()
    rows = []
    with progress_bar(len(paths)) as bar:
        for path, result in file_verdicts(model, metadata, paths):
            bar.write(json_line(path, result) if arguments.json else f"{path}: {result.sentence()}", file=sys.stdout)
            if arguments.json:
                sys.stdout.flush()  # each object reaches a program that reads them as soon as it is known
            bar.update()
            rows.append(result)
    # With --json, stdout holds the JSON objects alone: the rest goes to stderr.
    report = sys.stderr if arguments.json else sys.stdout
    if arguments.csv:
        write_csv(arguments.csv, paths, rows)
        print(f"Wrote {len(rows)} rows to {arguments.csv}.", file=report)
    labelled = [row for row in rows if row.label]
    print(f"Classified {len(labelled)} of {len(rows)} files: {sum(row.label == 'male' for row in labelled)} male, "
          f"{sum(row.label == 'female' for row in labelled)} female.", file=report)
    return 0


def compare_models(arguments, loader) -> int:
    """Classify the files with the model that answers and with --compare's, and show both side by side."""
    from acoustics import compare, models, verdict

    paths = audio_paths(arguments.files)
    truths = [arguments.truths.get(str(path)) or compare.truth_from_name(path) for path in paths]
    choice = verdict.choose_model(arguments.compare, Paths().models)
    model, metadata = loader.get()
    other_model, other_metadata = models.load_model(choice.path)
    names = [f"{metadata['model_name']} ({loader.path})", f"{other_metadata['model_name']} ({choice.path})"]
    if verdict.same_file(loader.path, verdict.REFERENCE_MODEL):
        names[0] = f"reference ({loader.path})"
    if verdict.same_file(choice.path, verdict.REFERENCE_MODEL):
        names[1] = f"reference ({choice.path})"
    results = [[result for _, result in file_verdicts(model, metadata, paths)],
               [result for _, result in file_verdicts(other_model, other_metadata, paths)]]
    print("\n".join(compare.table(paths, truths, names, results)))
    for path, result in zip(paths, results[0]):
        if result.label is None:
            print(f"{path}: {result.note}")
    print(f"\n{len(paths)} recordings. The first model {verdict.describe_provenance(metadata)}; the second "
          f"{verdict.describe_provenance(other_metadata)}.")
    for name, model_results in zip(names, results):
        print(compare.score_line(name, model_results, truths))
    return 0


def record_of(path, result) -> dict:
    """One file's result as the CSV and JSON outputs hold it (probabilities to 4 decimals, seconds to 3)."""
    def rounded(value, digits):
        return None if value is None else round(value, digits)

    return {"path": str(path), "label": result.label or "", "probability": rounded(result.probability, 4),
            "duration": round(result.duration_seconds, 3), "speech_seconds": round(result.speech_seconds, 3),
            "note": result.note, "p_male": rounded(result.probability_male, 4)}


def json_line(path, result) -> str:
    """One file's result as a JSON object on one line; no label and no probabilities are null."""
    import json

    record = record_of(path, result)
    record["label"] = record["label"] or None
    order = ("path", "label", "p_male", "probability", "duration", "speech_seconds", "note")
    return json.dumps({key: record[key] for key in order}, ensure_ascii=False)


def check_writable(path) -> None:
    """Refuse a --csv path whose folder is missing or read-only before any work is done."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise AcousticsError(f"Cannot write {path} (there is no folder {folder}); choose another --csv path.")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise AcousticsError(f"Cannot write {path} (not writable); choose another --csv path.")


def write_csv(path, paths, rows) -> None:
    """Write one row per file (columns as :func:`record_of`) to ``path``, atomically."""
    import pandas

    table = pandas.DataFrame([record_of(item, row) for item, row in zip(paths, rows)],
                             columns=["path", "label", "probability", "duration", "speech_seconds", "note", "p_male"])
    temporary = f"{path}.tmp"
    try:
        table.to_csv(temporary, index=False)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise AcousticsError(f"Cannot write {path} ({error.strerror or error}); choose another --csv path.") from None


def segment_files(arguments, loader) -> int:
    """--segments: split each file into male, female and no_speech segments (acoustics.segments, streamed
    from disk), print them, save a timeline picture per file (beside --csv, else in data/pictures/) and
    with --csv write one row per segment. A file that cannot be used gets one line saying why."""
    from pathlib import Path

    from acoustics import segments

    paths = audio_paths(arguments.files)
    model, metadata = loader.get()
    folder = Path(os.path.abspath(arguments.csv)).parent if arguments.csv else Paths().pictures
    rows, pictures, done, seconds = [], [], 0, collections.Counter()
    for path in paths:
        try:
            result = segments.segment_file(model, metadata, path)
        except AcousticsError as error:
            print(f"{path}: no segments: {reason_of(error, path)}", flush=True)
            continue
        done += 1
        for label in segments.LABELS:
            seconds[label] += result.seconds_of(label)
        print(f"{path}: {segment_summary(result)}", flush=True)
        for segment in result.segments:
            p_male = "" if segment.p_male is None else f"  p_male {segment.p_male:.2f}"
            print(f"  {segment.start:9.3f} {segment.stop:9.3f}  {segment.label:<9}{p_male}".rstrip())
            rows.append([str(path), segment.label, f"{segment.start:.3f}", f"{segment.stop:.3f}",
                         "" if segment.p_male is None else f"{segment.p_male:.3f}"])
        picture = None if arguments.no_save else save_timeline(result, path, folder, pictures)
        if picture is not None:
            pictures.append(picture)
    if arguments.csv:
        write_segment_csv(arguments.csv, rows)
        print(f"Wrote {len(rows)} rows to {arguments.csv}.")
    if pictures:
        print(f"Saved {len(pictures)} timeline picture{'s' if len(pictures) != 1 else ''} in {folder}.")
    print(f"Segmented {done} of {len(paths)} files: {seconds['male']:.1f} s male, {seconds['female']:.1f} s female, "
          f"{seconds['no_speech']:.1f} s without speech.")
    return 0


def segment_summary(result) -> str:
    """E.g. "5 segments in 12.3 s: 4.1 s male, 3.2 s female, 5.0 s without speech"."""
    count = len(result.segments)
    return (f"{count} segment{'s' if count != 1 else ''} in {result.duration:.1f} s: {result.seconds_of('male'):.1f} s male, "
            f"{result.seconds_of('female'):.1f} s female, {result.seconds_of('no_speech'):.1f} s without speech")


def save_timeline(result, path, folder, taken: list):
    """Save the timeline picture of one segmented file as FOLDER/segments-NAME.png (-2, -3 ... when
    ``taken`` has that name already) and return its path; a folder that cannot be written to is a
    warning (and None)."""
    from pathlib import Path

    from acoustics import plots

    stem = Path(path).stem
    name, number = Path(folder) / f"segments-{stem}.png", 1
    while name in taken:
        number += 1
        name = Path(folder) / f"segments-{stem}-{number}.png"
    try:
        return plots.plot_segments(result, name, f"{Path(path).name}: {segment_summary(result)}")
    except OSError as error:
        print(f"Warning: could not save the picture {name} ({error.strerror or error}); use --no-save, or free the disk.",
              file=sys.stderr)
        return None


def write_segment_csv(path, rows) -> None:
    """Write ``rows`` (path, label, start, stop, p_male; seconds and p_male with 3 decimals) to ``path``, atomically."""
    import csv

    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "start", "stop", "p_male"])
            writer.writerows(rows)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise AcousticsError(f"Cannot write {path} ({error.strerror or error}); choose another --csv path.") from None


def keep(signal, result, metadata, arguments) -> None:
    """Save what the microphone heard and a picture of it with the verdict."""
    if arguments.no_save:
        return
    from acoustics import audio, features, plots

    paths = Paths()
    settings = metadata["settings"]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    try:
        wav = audio.write_wav(paths.recordings / f"{stamp}.wav", signal, settings.sample_rate)
        picture = plots.plot_verdict(signal, features.mfcc(signal, settings), settings.sample_rate, settings.hop_ms,
                                     paths.pictures / f"verdict-{stamp}.png", title=f"Verdict: {result.sentence()}")
    except OSError as error:
        print(f"Warning: could not save the recording and its picture under {paths.data_dir} "
              f"({error.strerror or error}); use --no-save, or free the disk.", file=sys.stderr)
        return
    print(f"Saved the recording as {wav} and a picture as {picture}.")


def view_for(arguments):
    """The live view (level meter, state, verdict bar) when a person watches a terminal, else plain lines."""
    from acoustics import liveview

    return liveview.LiveView() if liveview.wants_live_view(arguments.plain) else liveview.PlainView()


def listen_once(arguments, settings, loader) -> int:
    from acoustics import microphone, verdict

    with view_for(arguments) as view:
        signal, detected = microphone.record_utterance(
            settings.sample_rate, max_seconds=arguments.seconds, alternatives=WAV_ALTERNATIVE,
            chunk_seconds=CHUNK_SECONDS, pause_seconds=arguments.pause,
            on_start=lambda: view.say(f"Speak now: '{SENTENCE}' (listening for up to {arguments.seconds:g} s)"),
            on_chunk=lambda chunk, detector: view.hear(chunk, detector.in_speech),
        )
        if not detected:
            view.say("No speech detected: the microphone heard only silence or steady noise. Speak closer and louder, "
                     "check that it is not muted, and try again.")
            return 0
        view.deciding()
        model, metadata = loader.get()
        result = verdict.classify_signal(model, metadata, signal, "the recording")
        if result.label is None:
            view.verdict(f"No verdict: {result.note.removeprefix('no verdict: ')}", result)
        else:
            view.verdict(f"Verdict: {result.sentence()}.", result)
    keep(signal, result, metadata, arguments)
    return 0


class StreamRecordings:
    """The numbered recordings of --stream: recordings/stream-0001.wav and pictures/stream-0001.png, numbered
    on from the highest number already there (earlier sessions are kept); pictures drawn in a background thread."""

    def __init__(self, paths) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.recordings, self.pictures, self.data_dir = paths.recordings, paths.pictures, paths.data_dir
        names = [path.stem for folder in (self.recordings, self.pictures) for path in folder.glob("stream-*.*")]
        self.number = max([int(name[7:]) for name in names if name[7:].isdigit()], default=0)
        self._painter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pictures")

    def save(self, signal, result, metadata, heading: str):
        """Write the WAV now and queue its picture: ``(wav, png)``, or None (and a warning) if the disk refuses."""
        from acoustics import audio

        self.number += 1
        while (self.recordings / f"stream-{self.number:04d}.wav").exists():
            self.number += 1
        name = f"stream-{self.number:04d}"
        try:
            wav = audio.write_wav(self.recordings / f"{name}.wav", signal, metadata["settings"].sample_rate)
        except OSError as error:
            self._warn(error)
            return None
        png = self.pictures / f"{name}.png"
        self._painter.submit(self._draw, signal, metadata["settings"], png, f"{heading}: {result.sentence()}")
        return wav, png

    def _draw(self, signal, settings, path, title: str) -> None:
        from acoustics import features, plots

        try:
            plots.plot_verdict(signal, features.mfcc(signal, settings), settings.sample_rate, settings.hop_ms, path,
                               title=title)
        except OSError as error:
            self._warn(error)

    def _warn(self, error: OSError) -> None:
        print(f"Warning: could not save a recording or its picture under {self.data_dir} ({error.strerror or error}); "
              "use --no-save, or free the disk.", file=sys.stderr)

    def close(self) -> None:
        """Wait for the pictures still being drawn."""
        self._painter.shutdown(wait=True)


def stream_line(heard: int, seconds: float, result, saved) -> str:
    """The verdict line of one --stream utterance, with where it was saved."""
    line = f"[{time.strftime('%H:%M:%S')}] utterance {heard} ({seconds:.1f} s): {result.sentence()}"
    return line + (f" (saved as {saved[0]}, picture {saved[1]})" if saved else "")


def listen_stream(arguments, settings, loader) -> int:
    """A verdict for each sentence of the person at the microphone until Ctrl-C; the room's talk is
    ignored (acoustics.gate), each utterance saved unless --no-save."""
    from acoustics import gate, microphone, verdict

    speaker_gate = gate.SpeakerGate(settings.sample_rate)
    recordings = None if arguments.no_save else StreamRecordings(Paths())
    floor = {"dbfs": None}  # the detector's noise floor, for the gate

    def on_chunk(chunk, detector) -> None:
        view.hear(chunk, detector.in_speech)
        floor["dbfs"] = detector.noise_floor_dbfs

    heard = 0
    with view_for(arguments) as view:
        try:
            for utterance in microphone.stream_utterances(
                settings.sample_rate, alternatives=WAV_ALTERNATIVE, max_utterance_seconds=arguments.seconds,
                chunk_seconds=CHUNK_SECONDS, pause_seconds=arguments.pause, on_chunk=on_chunk,
                on_start=lambda: view.say("Listening: speak, pause, and a verdict follows each sentence. Ctrl-C stops."),
            ):
                view.deciding()
                decision = speaker_gate.judge(utterance, floor["dbfs"])
                if not decision.accepted:
                    view.ignored(decision.reason)
                    continue
                heard += 1
                model, metadata = loader.get()
                result = verdict.classify_signal(model, metadata, utterance, f"utterance {heard}")
                saved = recordings.save(utterance, result, metadata, f"Utterance {heard}") if recordings else None
                view.verdict(stream_line(heard, utterance.size / settings.sample_rate, result, saved), result)
        except KeyboardInterrupt:
            pass
    if recordings:
        recordings.close()
    print(f"\nStopped listening after {heard} utterances.")
    return 0


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    for option in ("csv", "json", "segments", "compare"):
        if getattr(arguments, option) and not arguments.files:
            print(f"Error: --{option} needs files to classify: give FILE... (audio files or folders).", file=sys.stderr)
            return 1
    # Keras' import (in the loader thread) points file descriptor 2 at /dev/null for seconds: this
    # process's own messages go through a duplicate of it.
    sys.stderr.flush()
    sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(2), "w"), line_buffering=True, errors="backslashreplace")
    try:
        outputs.check_path_arguments(arguments, "files", "csv", "model", "db", "compare", "manifest")
        if arguments.csv:
            check_csv_path(arguments)
        settings, loader = start_loading(arguments)
        if arguments.files and arguments.compare:
            return compare_models(arguments, loader)
        if arguments.segments:
            return segment_files(arguments, loader)
        if arguments.files:
            return classify_files(arguments, loader)
        if arguments.stream:
            return listen_stream(arguments, settings, loader)
        return listen_once(arguments, settings, loader)
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

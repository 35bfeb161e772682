#!/usr/bin/env python3
"""Stage 5: classify new real-world speech as male or female.

By default it listens to the microphone: speak "Guten Morgen, wie geht es Ihnen" and pause, and it
answers. --wav classifies files (or folders) instead; --stream keeps listening until Ctrl-C.

Start-up: importing Keras takes about 6 s, so the microphone modes check the model's settings with
h5py alone, open the microphone and say "Speak now" at once, while a background thread imports Keras
and loads the model (acoustics.verdict.ModelLoader); the person speaks meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from acoustics.errors import AcousticsError, reason_of
from acoustics.settings import Paths

WAV_ALTERNATIVE = "use --wav FILE to classify a recording instead"
SENTENCE = "Guten Morgen, wie geht es Ihnen"
#: Length of one microphone read: one detector frame, so a verdict follows the pause within ~30 ms.
CHUNK_SECONDS = 0.03
#: The background loader of the model (see start_loading), once started.
_loader = None


def parse_arguments(argv=None) -> argparse.Namespace:
    paths = Paths()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(paths.models / "best.h5"), help="model file (default: %(default)s)")
    parser.add_argument("--db", default=str(paths.database),
                        help="feature database whose settings the model must match, where it exists (default: %(default)s)")
    parser.add_argument("--wav", nargs="+", metavar="FILE", help="classify these audio files or folders")
    parser.add_argument("--csv", metavar="OUT", help="with --wav: write path,label,probability,duration,speech_seconds")
    parser.add_argument("--stream", action="store_true", help="keep listening; a verdict per utterance until Ctrl-C")
    parser.add_argument("--seconds", type=float, default=6.0, help="longest recording or utterance in seconds (default: 6)")
    parser.add_argument("--no-save", action="store_true", help="do not save recordings and pictures")
    return parser.parse_args(argv)


def start_loading(arguments):
    """Check the model file and its settings against the database (no TensorFlow, milliseconds), then
    load it in the background: ``(settings, loader)``."""
    from acoustics import verdict

    global _loader
    settings = verdict.read_model_settings(arguments.model)
    verdict.check_against_database(arguments.model, settings, arguments.db)
    _loader = verdict.ModelLoader(
        arguments.model,
        on_ready=lambda model, metadata: print(f"Loaded the {metadata['model_name']} model from {arguments.model}.",
                                               flush=True),
    )
    return settings, _loader


def _loading() -> bool:
    """True while the background thread still imports Keras or loads the model."""
    return _loader is not None and not _loader.ready


def input_files(arguments) -> list:
    """The audio files --wav names: the files given, and those in the folders given."""
    from pathlib import Path

    from acoustics import corpus

    paths = []
    for name in arguments.wav:
        paths += corpus.audio_files(Path(name)) if Path(name).is_dir() else [Path(name)]
    return paths


def check_csv_path(arguments) -> None:
    """Refuse, before any work, a --csv that would overwrite an input, the database, the model, or
    another kind of file, or that cannot be written."""
    from acoustics import outputs

    protected = [("the feature database", arguments.db), ("the model", arguments.model)]
    outputs.check_output_path(arguments.csv, "--csv", "CSV table",
                              protected + [("the input audio file", path) for path in input_files(arguments)])
    check_writable(arguments.csv)


def classify_files(arguments, loader) -> int:
    from acoustics import audio, verdict

    paths = input_files(arguments)
    if not paths:
        raise AcousticsError(f"No audio files in {' '.join(arguments.wav)}; give WAV files or folders that hold them.")
    model, metadata = loader.get()
    rows = []
    for path in paths:
        try:
            signal, _ = audio.load_audio(path, metadata["settings"].sample_rate)
            result = verdict.classify_signal(model, metadata, signal, path)
        except AcousticsError as error:
            result = verdict.Verdict(None, None, 0.0, 0.0, f"no verdict: {reason_of(error, path)}")
        print(f"{path}: {result.sentence()}")
        rows.append(result)
    if arguments.csv:
        write_csv(arguments.csv, paths, rows)
        print(f"Wrote {len(rows)} rows to {arguments.csv}.")
    labelled = [row for row in rows if row.label]
    print(f"Classified {len(labelled)} of {len(rows)} files: {sum(row.label == 'male' for row in labelled)} male, "
          f"{sum(row.label == 'female' for row in labelled)} female.")
    return 0


def check_writable(path) -> None:
    """Refuse a --csv path whose folder is missing or read-only before any work is done."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise AcousticsError(f"Cannot write {path} (there is no folder {folder}); choose another --csv path.")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise AcousticsError(f"Cannot write {path} (not writable); choose another --csv path.")


def write_csv(path, paths, rows) -> None:
    import pandas

    table = pandas.DataFrame({
        "path": [str(item) for item in paths],
        "label": [row.label or "" for row in rows],
        "probability": [None if row.probability is None else round(row.probability, 4) for row in rows],
        "duration": [round(row.duration_seconds, 3) for row in rows],
        "speech_seconds": [round(row.speech_seconds, 3) for row in rows],
        "note": [row.note for row in rows],
    })
    temporary = f"{path}.tmp"
    try:
        table.to_csv(temporary, index=False)
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


def listen_once(arguments, settings, loader) -> int:
    from acoustics import microphone, verdict

    signal, detected = microphone.record_utterance(
        settings.sample_rate, max_seconds=arguments.seconds, alternatives=WAV_ALTERNATIVE, chunk_seconds=CHUNK_SECONDS,
        on_start=lambda: print(f"Speak now: '{SENTENCE}' (listening for up to {arguments.seconds:g} s)", flush=True),
    )
    if not detected:
        print("No speech detected: the microphone heard only silence or steady noise. Speak closer and louder, "
              "check that it is not muted, and try again.")
        return 0
    model, metadata = loader.get()
    result = verdict.classify_signal(model, metadata, signal, "the recording")
    if result.label is None:
        print(f"No verdict: {result.note.removeprefix('no verdict: ')}")
    else:
        print(f"Verdict: {result.sentence()}.", flush=True)
    keep(signal, result, metadata, arguments)
    return 0


def listen_stream(arguments, settings, loader) -> int:
    from acoustics import microphone, verdict

    heard = 0
    try:
        for utterance in microphone.stream_utterances(
            settings.sample_rate, alternatives=WAV_ALTERNATIVE, max_utterance_seconds=arguments.seconds,
            chunk_seconds=CHUNK_SECONDS,
            on_start=lambda: print("Listening: speak, pause, and a verdict follows each sentence. Ctrl-C stops.", flush=True),
        ):
            heard += 1
            model, metadata = loader.get()
            result = verdict.classify_signal(model, metadata, utterance, f"utterance {heard}")
            print(f"[{time.strftime('%H:%M:%S')}] utterance {heard} ({utterance.size / settings.sample_rate:.1f} s): "
                  f"{result.sentence()}", flush=True)
    except KeyboardInterrupt:
        pass
    print(f"\nStopped listening after {heard} utterances.")
    return 0


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    if arguments.csv and not arguments.wav:
        print("Error: --csv needs --wav FILE...", file=sys.stderr)
        return 1
    # Keras' import (in the loader thread) points file descriptor 2 at /dev/null for seconds: this
    # process's own messages go through a duplicate of it.
    sys.stderr.flush()
    sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(2), "w"), line_buffering=True, errors="backslashreplace")
    try:
        if arguments.csv:
            check_csv_path(arguments)
        settings, loader = start_loading(arguments)
        if arguments.wav:
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

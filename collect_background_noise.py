#!/usr/bin/env python3
"""Stage 2: record the background noise of the room; stage 3 mixes it into every recording.

Stay quiet while it records (default 10 s from the default microphone). Without a microphone, take the
noise from an audio file (--from-file PATH, any format, resampled to mono) or make room-like noise
(--synthetic). The noise is saved as 16-bit WAV at the sample rate of the feature database.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from acoustics.errors import AcousticsError, BadParameterError
from acoustics.settings import Paths, Settings, command_line

DEFAULT_SECONDS = 10.0
EXAMPLES = """examples:
  python collect_background_noise.py                     # 10 s from the microphone: stay quiet
  python collect_background_noise.py --from-file room.wav   # a recording of the room made with another program
  python collect_background_noise.py --synthetic         # no microphone: room-like noise
"""
MICROPHONE_ALTERNATIVES = "--from-file PATH (a recording of the room made with another program) or --synthetic"


def parse_arguments(argv=None) -> argparse.Namespace:
    paths = Paths()
    parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-file", metavar="PATH", help="take the noise from this audio file instead of the microphone")
    source.add_argument("--synthetic", action="store_true", help="make room-like noise (pink noise and mains hum)")
    parser.add_argument("--seconds", type=float,
                        help=f"how long to record or synthesise (default {DEFAULT_SECONDS:g}; with --from-file: the whole file)")
    parser.add_argument("--out", metavar="PATH", default=str(paths.background_noise), help="where to save the noise (default: %(default)s)")
    parser.add_argument("--db", metavar="PATH", default=str(paths.database),
                        help="feature database whose sample rate to use, if it exists (default: %(default)s)")
    parser.add_argument("--picture", metavar="PNG", help=f"where to save the picture (default: {paths.picture('background_noise')}, "
                                          f"or {paths.pictures}/DB_background_noise.png for another --db DB.db)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing noise file even with a silent recording")
    arguments = parser.parse_args(argv)
    if arguments.seconds is not None and not 0.5 <= arguments.seconds <= 600:
        parser.error(f"--seconds must be between 0.5 and 600, not {arguments.seconds:g}")
    arguments.picture = arguments.picture or str(paths.picture("background_noise", arguments.db))
    return arguments


def load_settings(database_path) -> tuple:
    """The settings of the feature database if it exists, else the defaults; and where they came from."""
    from acoustics.database import FeatureDatabase

    if os.path.exists(database_path):
        with FeatureDatabase(database_path, readonly=True) as feature_database:
            return feature_database.settings, f"the settings of {database_path}"
    return Settings(), "the default settings"


def record(seconds: float, sample_rate: int):
    """Record from the default microphone with a progress bar; return the signal and the device's name."""
    from tqdm import tqdm

    from acoustics import microphone

    with microphone.Microphone(sample_rate, alternatives=MICROPHONE_ALTERNATIVES) as device:
        print(f"Recording {seconds:g} s of background noise from the microphone {device.device_name} at "
              f"{sample_rate} Hz. Please stay quiet ...", flush=True)
        with tqdm(total=round(seconds, 1), unit="s", desc="recording", file=sys.stderr, disable=None,
                  bar_format="{desc}: {bar} {n:.1f}/{total:.1f} s") as bar:
            def progress(recorded: float, total: float) -> None:
                bar.update(round(recorded, 1) - bar.n)

            signal = device.record(seconds, progress)
        return signal, f"the microphone {device.device_name}"


def existing_level(path, sample_rate: int):
    """Level in dBFS of a usable (not silent) noise file at ``path``, or None if there is none."""
    from acoustics import audio

    if not os.path.exists(path):
        return None
    try:
        signal, _ = audio.load_audio(path, sample_rate)
    except AcousticsError:
        return None
    level = audio.level_dbfs(signal)
    return level if level >= audio.SILENCE_DBFS else None


def check_outputs(arguments) -> None:
    """Refuse, before any work, a --out or --picture that would overwrite an input, each other, or
    another kind of file."""
    from acoustics import outputs

    inputs = {"the feature database": arguments.db, "the input file": arguments.from_file}
    outputs.check_output_path(arguments.out, "--out", "WAV audio file", {**inputs, "the picture": arguments.picture})
    outputs.check_picture_path(arguments.picture, "--picture", {**inputs, "the noise file": arguments.out})


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    try:
        import numpy as np

        from acoustics import audio, plots

        check_outputs(arguments)
        settings, settings_source = load_settings(arguments.db)
        rate = settings.sample_rate
        seconds = arguments.seconds if arguments.seconds is not None else DEFAULT_SECONDS
        if arguments.synthetic:
            signal = audio.synthetic_room_noise(seconds, rate, np.random.default_rng(settings.seed))
            source = f"synthetic room noise (pink noise and 50 Hz hum, seed {settings.seed})"
        elif arguments.from_file:
            signal, info = audio.load_audio(arguments.from_file, rate)
            if arguments.seconds is not None:
                signal = signal[: int(round(arguments.seconds * rate))]
            source = (f"the file {arguments.from_file} ({info.sample_rate} Hz, {info.channels} channel"
                      f"{'s' if info.channels != 1 else ''}, converted to {rate} Hz mono)")
        else:
            signal, source = record(seconds, rate)

        level = audio.level_dbfs(signal)
        duration = signal.size / rate
        print(f"Got {duration:.1f} s from {source}; level {level:.1f} dBFS ({settings_source}: {rate} Hz).")
        if level < audio.NO_SOUND_DBFS:
            raise BadParameterError(
                f"The noise from {source} is digital silence ({level:.0f} dBFS), which cannot be mixed into speech; "
                "nothing was saved. Record again with the microphone unmuted, or use --from-file PATH (another file) or --synthetic."
            )
        if level < audio.SILENCE_DBFS:
            print(f"WARNING: the noise is nearly silent ({level:.1f} dBFS, below {audio.SILENCE_DBFS:.0f} dBFS): the "
                  "microphone may be muted or its gain turned down (check with 'pavucontrol' or 'alsamixer').")
            kept = None if arguments.force else existing_level(arguments.out, rate)
            if kept is not None:
                raise BadParameterError(
                    f"Kept the existing {arguments.out} (level {kept:.1f} dBFS) instead of overwriting it with a "
                    "silent recording; record again after checking the microphone, or add --force to replace it."
                )
        fraction = audio.clipped_fraction(signal)
        if fraction > audio.CLIP_FRACTION:
            print(f"WARNING: {fraction:.1%} of the samples are at full scale (clipped): the input gain is too high. "
                  "The noise is saved, but record again with a lower gain for realistic noise.")
        try:
            saved = audio.write_wav(arguments.out, signal, rate)
        except OSError as error:
            raise AcousticsError(f"{arguments.out}: cannot write the noise ({error.strerror or error}); "
                                 "choose another --out.") from None
        print(f"Saved {saved} ({duration:.1f} s, {rate} Hz mono, 16 bit, level {level:.1f} dBFS).")
        try:
            picture = plots.plot_noise(signal, rate, arguments.picture,
                                       title=f"Background noise: {os.path.basename(str(saved))}, {level:.1f} dBFS")
            print(f"Saved a picture of the noise (waveform and spectrogram): {picture}")
        except OSError as error:
            print(f"WARNING: could not save the picture {arguments.picture} ({error.strerror or error}).")
    except AcousticsError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopped; nothing was saved.", file=sys.stderr)
        return 130
    paths = Paths()
    print("Next: " + command_line("speech_prep.py", ("--db", arguments.db, paths.database),
                                  ("--noise", arguments.out, paths.background_noise)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

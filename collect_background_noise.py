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

from acoustics.errors import AcousticsError
from acoustics.settings import Paths, command_line

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
        from acoustics import audio, noise

        check_outputs(arguments)
        settings, settings_source = noise.settings_for(arguments.db)
        rate = settings.sample_rate
        seconds = arguments.seconds if arguments.seconds is not None else DEFAULT_SECONDS
        if arguments.synthetic:
            signal, source = noise.synthetic(seconds, settings)
        elif arguments.from_file:
            signal, source = noise.from_file(arguments.from_file, rate, arguments.seconds)
        else:
            signal, source = record(seconds, rate)
        level = audio.level_dbfs(signal)
        print(f"Got {signal.size / rate:.1f} s from {source}; level {level:.1f} dBFS ({settings_source}: {rate} Hz).")
        noise.refuse_silence(level, source)
        if noise.nearly_silent(level):
            print(f"WARNING: the noise is nearly silent ({level:.1f} dBFS, below {audio.SILENCE_DBFS:.0f} dBFS): the "
                  "microphone may be muted or its gain turned down (check with 'pavucontrol' or 'alsamixer').")
            if not arguments.force:
                noise.refuse_to_replace(arguments.out, rate)
        fraction = audio.clipped_fraction(signal)
        if fraction > audio.CLIP_FRACTION:
            print(f"WARNING: {fraction:.1%} of the samples are at full scale (clipped): the input gain is too high. "
                  "The noise is saved, but record again with a lower gain for realistic noise.")
        saved = noise.save(arguments.out, signal, rate)
        print(f"Saved {saved} ({signal.size / rate:.1f} s, {rate} Hz mono, 16 bit, level {level:.1f} dBFS).")
        save_picture(arguments, signal, rate, f"Background noise: {os.path.basename(str(saved))}, {level:.1f} dBFS")
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


def save_picture(arguments, signal, rate: int, title: str) -> None:
    """Save the picture of the noise (waveform and spectrogram); a picture that cannot be written is a warning."""
    from acoustics import plots

    try:
        picture = plots.plot_noise(signal, rate, arguments.picture, title=title)
        print(f"Saved a picture of the noise (waveform and spectrogram): {picture}")
    except OSError as error:
        print(f"WARNING: could not save the picture {arguments.picture} ({error.strerror or error}).")


if __name__ == "__main__":
    sys.exit(main())

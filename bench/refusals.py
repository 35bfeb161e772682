#!/usr/bin/env python3
"""Refusals benchmark: how many real clips get no verdict from stage 5's speech check.

    python bench/refusals.py [--data ../shared/data]

Runs the decision that stands between a recording and a verdict (``speechcheck.usable_speech``: trim, then
silence, clipping, length and speech; no model) over every clip of ``{emodb,ravdess,librispeech}/labels.csv``
under ``--data``, loaded as stage 5 loads a file (``audio.load_audio`` at the default settings' rate),
in one process. Every clip of these corpora holds speech that a person hears, so each refusal is a
mistake. Prints the refused clips with their reasons, the count per corpus and reason, and the notes
given to accepted clips; the last line is one JSON object {"refused": {corpus: count},
"clips": {corpus: count}, "seconds": s}. Goal: 0 refused.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import re
import sys
import time
from pathlib import Path

from common import CORPORA, DATA  # noqa: E402  (also puts the project on sys.path)

from acoustics import audio, speechcheck  # noqa: E402
from acoustics.errors import AcousticsError, reason_of  # noqa: E402
from acoustics.settings import Settings  # noqa: E402



def kind(text: str) -> str:
    """The words of a reason or note without its numbers: 'silent', 'no speech detected', 'quiet'."""
    return re.split(r"[(;:0-9]", text, maxsplit=1)[0].strip()


def judge(path: Path, settings: Settings) -> tuple:
    """``(refusal, note)`` of one clip: the reason it gets no verdict ("" if it gets one), its note."""
    try:
        signal, _ = audio.load_audio(path, settings.sample_rate)
        speech = speechcheck.usable_speech(signal, settings.sample_rate, settings.trim_top_db, path)
    except AcousticsError as error:
        return reason_of(error, path), ""
    return "", speech.note


def run_corpus(folder: Path, settings: Settings) -> tuple:
    """``(clips, refusals, notes)``: the number of clips, and Counters of refusal and note kinds."""
    with open(folder / "labels.csv", newline="") as handle:
        files = [row["file"] for row in csv.DictReader(handle)]
    refusals, notes = collections.Counter(), collections.Counter()
    for name in files:
        refusal, note = judge(folder / name, settings)
        if refusal:
            refusals[kind(refusal)] += 1
            print(f"  refused {folder.name}/{name}: {refusal}")
        for part in filter(None, note.split(", ")):
            notes[kind(part)] += 1
    return len(files), refusals, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA), help="folder of the corpora")
    arguments = parser.parse_args()
    settings = Settings()
    started = time.perf_counter()
    refused, clips = {}, {}
    for corpus in CORPORA:
        folder = Path(arguments.data) / corpus
        if not (folder / "labels.csv").exists():
            print(f"{corpus}: not found under {arguments.data}, left out.")
            continue
        clips[corpus], refusals, notes = run_corpus(folder, settings)
        refused[corpus] = sum(refusals.values())
        print(f"{corpus}: {refused[corpus]} of {clips[corpus]} clips refused {dict(refusals)}; notes {dict(notes)}")
    print(json.dumps({"refused": refused, "clips": clips, "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What stage 5's --segments reports over many files: each file's lines and CSV rows, its timeline picture,
and the totals. The segmentation itself is :mod:`acoustics.segments`; this module only words and files it.
"""

from __future__ import annotations

import collections
import csv
from pathlib import Path

from .errors import shown
from .fileverdicts import ending
from .outputs import save_warning, write_atomically
from .segments import LABELS

#: The CSV table's columns, one row per segment.
CSV_COLUMNS = ("path", "label", "start", "stop", "p_male")


def summary(result) -> str:
    """E.g. "5 segments in 12.3 s: 4.1 s male, 3.2 s female, 5.0 s without speech"."""
    count = len(result.segments)
    return (f"{count} segment{'s' if count != 1 else ''} in {result.duration:.1f} s: {result.seconds_of('male'):.1f} s male, "
            f"{result.seconds_of('female'):.1f} s female, {result.seconds_of('no_speech'):.1f} s without speech")


def segment_line(segment) -> str:
    """One segment as a line: start and stop in seconds, the label, and P(male) where there is speech."""
    p_male = "" if segment.p_male is None else f"  p_male {segment.p_male:.2f}"
    return f"  {segment.start:9.3f} {segment.stop:9.3f}  {segment.label:<9}{p_male}".rstrip()


def segment_row(path, segment) -> list:
    """One segment as a CSV row (:data:`CSV_COLUMNS`; seconds and P(male) with 3 decimals)."""
    return [str(path), segment.label, f"{segment.start:.3f}", f"{segment.stop:.3f}",
            "" if segment.p_male is None else f"{segment.p_male:.3f}"]


class SegmentReport:
    """The segmented files of one run: their CSV rows, timeline pictures (in ``folder``) and seconds per label."""

    def __init__(self, folder) -> None:
        self.folder = Path(folder)
        self.rows, self.pictures, self.done, self.seconds = [], [], 0, collections.Counter()

    def add(self, path, result) -> list:
        """Count one file's :class:`~acoustics.segments.Segmentation` and return its lines: the summary, then a line per segment."""
        self.done += 1
        for label in LABELS:
            self.seconds[label] += result.seconds_of(label)
        self.rows += [segment_row(path, segment) for segment in result.segments]
        return [f"{shown(path)}: {summary(result)}"] + [segment_line(segment) for segment in result.segments]

    def picture_path(self, path) -> Path:
        """FOLDER/segments-NAME.png for the file ``path``, or -2, -3 ... when an earlier file took that name."""
        stem = Path(path).stem
        name, number = self.folder / f"segments-{stem}.png", 1
        while name in self.pictures:
            number += 1
            name = self.folder / f"segments-{stem}-{number}.png"
        return name

    def save_timeline(self, path, result) -> str:
        """Save the timeline picture of one segmented file (:meth:`picture_path`); '' when saved, else the
        warning line (the folder cannot be written to)."""
        from .plots import plot_segments

        picture = self.picture_path(path)
        try:
            self.pictures.append(plot_segments(result, picture, f"{Path(path).name}: {summary(result)}"))
        except OSError as error:
            return save_warning(f"the picture {picture}", error)
        return ""

    def write_csv(self, path) -> None:
        """Write the rows of every segment (:data:`CSV_COLUMNS`) to ``path``, atomically."""
        def write(temporary) -> None:
            with open(temporary, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:  # names as they are
                writer = csv.writer(handle)
                writer.writerow(CSV_COLUMNS)
                writer.writerows(self.rows)

        write_atomically(path, write, "--csv")

    def totals_line(self, count: int) -> str:
        """E.g. "Segmented 2 of 3 files: 4.1 s male, 3.2 s female, 5.0 s without speech; 1 file got no segments."."""
        return (f"Segmented {self.done} of {count} files: {self.seconds['male']:.1f} s male, "
                f"{self.seconds['female']:.1f} s female, {self.seconds['no_speech']:.1f} s without speech"
                + ending(count - self.done, "segments"))

"""What stage 5 shows while it listens: plain lines, or a live screen when a person watches a terminal.

:class:`PlainView` prints each line the stage gives it and nothing else (logs, pipes, CI, tests parse
these lines). :class:`LiveView` prints the same lines and, below them, redraws with ``rich`` at
:data:`REFRESH_PER_SECOND`: a level meter that moves with the voice, the state (waiting for speech,
hearing speech, deciding), and the last verdict with a bar of P(male) from 0 to 1 and the seconds of
speech it used. Ignored utterances (:mod:`acoustics.gate`) get a dim line there; in plain mode nothing.
The caller decides the words; the views only show them.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

#: Redraws per second of the live screen: smooth enough for a meter, a few % of a core.
REFRESH_PER_SECOND = 12
#: Width in characters of the level meter and of the probability bar.
METER_WIDTH = BAR_WIDTH = 40
#: The meter's range in dBFS: empty at QUIETEST_DBFS, full at 0.
QUIETEST_DBFS = -60.0
STATES = {"waiting": ("waiting for speech", "dim"), "speech": ("hearing speech", "bold green"),
          "deciding": ("deciding", "bold yellow")}


def wants_live_view(plain: bool = False) -> bool:
    """True when stdout is a terminal that can redraw (not TERM=dumb) and the person did not ask for plain lines."""
    return not plain and sys.stdout.isatty() and os.environ.get("TERM", "") not in ("", "dumb")


def choose_view(plain: bool = False) -> "PlainView":
    """The live view when a person watches a terminal (:func:`wants_live_view`), else plain lines."""
    return LiveView() if wants_live_view(plain) else PlainView()


def chunk_level_dbfs(chunk: np.ndarray) -> float:
    """RMS level of one chunk in dBFS (-inf for digital silence)."""
    power = float(np.mean(np.square(chunk, dtype=np.float64))) if chunk.size else 0.0
    return 10 * math.log10(power) if power > 0 else -math.inf


class PlainView:
    """The plain lines, each printed once; meter, state and ignored utterances are not shown."""

    def __enter__(self) -> "PlainView":
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def say(self, line: str) -> None:
        print(line, flush=True)

    def hear(self, chunk: np.ndarray, in_speech: bool) -> None:
        """One chunk from the microphone, and whether the detector is inside an utterance."""

    def deciding(self) -> None:
        """An utterance ended; the model is at work."""

    def verdict(self, line: str, result) -> None:
        """The verdict ``line`` and its :class:`acoustics.verdict.Verdict`."""
        self.say(line)

    def ignored(self, reason: str) -> None:
        """An utterance the gate ignored, and why."""


class LiveView(PlainView):
    """The same lines, and a live screen below them (see the module); use as a context manager."""

    def __init__(self, console=None) -> None:
        from rich.console import Console

        self.console = console or Console(highlight=False)
        self.level_dbfs = -math.inf
        self.state = "waiting"
        self.result = None
        self.ignored_reason = ""
        self._live = None

    def __enter__(self) -> "LiveView":
        from rich.live import Live

        self._live = Live(self, console=self.console, refresh_per_second=REFRESH_PER_SECOND, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self.level_dbfs = -math.inf
        self.state = "waiting"
        self._live.__exit__(*exc_info)

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def hear(self, chunk: np.ndarray, in_speech: bool) -> None:
        self.level_dbfs = chunk_level_dbfs(chunk)
        if self.state != "deciding" or in_speech:
            self.state = "speech" if in_speech else "waiting"

    def deciding(self) -> None:
        self.state = "deciding"

    def verdict(self, line: str, result) -> None:
        self.say(line)
        self.result, self.ignored_reason, self.state = result, "", "waiting"

    def ignored(self, reason: str) -> None:
        from rich.text import Text

        self.console.print(Text(f"ignored: {reason}", style="dim"), soft_wrap=True)
        self.ignored_reason, self.state = reason, "waiting"

    # Drawing -----------------------------------------------------------------------------------------
    def __rich__(self):
        from rich.console import Group

        parts = [self._meter()]
        if self.result is not None:
            parts += self._verdict_lines(self.result)
        return Group(*parts)

    def _meter(self):
        from rich.text import Text

        level = self.level_dbfs
        filled = 0 if not math.isfinite(level) else round(METER_WIDTH * min(max(1 - level / QUIETEST_DBFS, 0), 1))
        words, style = STATES[self.state]
        shown = f"{level:4.0f} dBFS" if math.isfinite(level) else "  silence"
        return Text.assemble(("level ", "bold"), ("█" * filled, "green" if self.state == "speech" else "grey50"),
                             ("░" * (METER_WIDTH - filled), "grey23"), f" {shown}  ", (words, style))

    @staticmethod
    def _verdict_lines(result) -> list:
        from rich.text import Text

        if result.label is None:
            return [Text(f"last: {result.sentence()}", style="dim")]
        filled = round(BAR_WIDTH * result.probability_male)
        colour = "bold cyan" if result.label == "male" else "bold magenta"
        return [
            Text.assemble(("Verdict: ", "bold"), (f"{result.label} voice", colour),
                          f"  ({result.confidence}; {result.speech_seconds:.1f} s of speech used)"),
            Text.assemble("female 0 ", ("█" * filled, "cyan"), ("░" * (BAR_WIDTH - filled), "magenta"),
                          f" 1 male   P(male) {result.probability_male:.2f}"),
        ]

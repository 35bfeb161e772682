"""Two models side by side on the same labelled voices: what stage 5's ``--compare`` prints (:func:`report`).

``make demo`` ends with it: the model trained on the synthetic demo corpus against the reference model
trained on real people, on a handful of real voices (EmoDB where present), so that an attendee sees
why real voices matter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .corpus import read_manifest
from .errors import shown


def labelled_sample(manifest, count: int, seed: int) -> tuple:
    """``(paths, sexes)``: ``count`` recordings of ``manifest`` (0: all), as many of each sex, spread over
    the speakers (each speaker's clips drawn in turn), in an order fixed by ``seed``."""
    recordings, _ = read_manifest(manifest)
    rng = np.random.default_rng(seed)
    chosen = []
    for sex in ("female", "male"):
        by_speaker = {}
        for recording in recordings:
            if recording.sex == sex:
                by_speaker.setdefault(recording.speaker, []).append(recording)
        queues = [list(rng.permutation(len(clips))) for clips in by_speaker.values()]
        groups = list(by_speaker.values())
        wanted = len([r for r in recordings if r.sex == sex]) if count == 0 else (count + (sex == "female")) // 2
        picked = []
        while len(picked) < wanted and any(queues):
            for clips, queue in zip(groups, queues):
                if queue and len(picked) < wanted:
                    picked.append(clips[queue.pop()])
        chosen += picked
    order = rng.permutation(len(chosen))
    return [chosen[i].path for i in order], [chosen[i].sex for i in order]


def truth_from_name(path) -> str | None:
    """The sex a demo hold-out file's name starts with ("female-de-f1-p52.wav"), or None."""
    stem = Path(path).name.lower()
    return "female" if stem.startswith("female") else "male" if stem.startswith("male") else None


def truths_of(paths, known: dict) -> list:
    """Each file's true sex: from ``known`` (path string to sex, a manifest's), else from its name (:func:`truth_from_name`)."""
    return [known.get(str(path)) or truth_from_name(path) for path in paths]


def column_name(metadata: dict, path) -> str:
    """A model as its column is headed: "reference (PATH)" for the shipped model, else "NAME (PATH)"."""
    from .verdict import REFERENCE_MODEL, same_file

    return f"{'reference' if same_file(path, REFERENCE_MODEL) else metadata['model_name']} ({shown(path)})"


def report(models, paths, truths) -> tuple:
    """``(lines, unanswered)``: the lines of --compare (the table of both models' verdicts, a line per file
    without verdict, what each model heard in training, each model's score) and how many files got no
    verdict. ``models``: two ``(model, metadata, path)``."""
    from .fileverdicts import file_verdicts
    from .verdict import describe_provenance

    names = [column_name(metadata, path) for _, metadata, path in models]
    results = [[result for _, result in file_verdicts(model, metadata, paths)] for model, metadata, _ in models]
    lines = table(paths, truths, names, results)
    unanswered = [f"{shown(path)}: {result.note}" for path, result in zip(paths, results[0]) if result.label is None]
    lines += unanswered
    first, second = (describe_provenance(metadata) for _, metadata, _ in models)
    lines.append(f"\n{len(paths)} recordings. The first model {first}; the second {second}.")
    return lines + [score_line(name, model_results, truths) for name, model_results in zip(names, results)], len(unanswered)


def table(paths, truths, names, verdicts) -> list:
    """Lines of a side-by-side table: each file, its true sex, and each model's verdict (``verdicts``:
    one list of :class:`~acoustics.verdict.Verdict` per model, in the order of ``names``)."""
    width = max([len(shown(Path(path).name)) for path in paths] + [4])
    columns = max(len(name) for name in names + ["probability 0.00, wrong"])
    lines = [f"{'file':<{width}}  {'truth':<6}  " + "  ".join(f"{name:<{columns}}" for name in names)]
    for position, (path, truth) in enumerate(zip(paths, truths)):
        cells = [_cell(results[position], truth) for results in verdicts]
        lines.append(f"{shown(Path(path).name):<{width}}  {truth or '?':<6}  " + "  ".join(f"{cell:<{columns}}" for cell in cells))
    return lines


def _cell(result, truth) -> str:
    if result.label is None:
        return "no verdict"
    mark = "" if truth is None else ", right" if result.label == truth else ", WRONG"
    return f"{result.label} {result.probability:.2f}{mark}"


def score_line(name: str, results, truths) -> str:
    """"NAME: right on 18 of 20 (female 9 of 10, male 9 of 10); 1 wrong while 'sure'"."""
    judged = [(result, truth) for result, truth in zip(results, truths) if truth is not None]
    if not judged:
        return f"{name}: the true sex of these files is not known."
    right = [result.label == truth for result, truth in judged]
    per_sex = []
    for sex in ("female", "male"):
        of_sex = [result.label == truth for result, truth in judged if truth == sex]
        per_sex.append(f"{sex} {sum(of_sex)} of {len(of_sex)}")
    sure_but_wrong = sum(result.label not in (None, truth) and result.confidence == "sure" for result, truth in judged)
    return (f"{name}: right on {sum(right)} of {len(judged)} ({', '.join(per_sex)}); "
            f"{sure_but_wrong} wrong while 'sure'")

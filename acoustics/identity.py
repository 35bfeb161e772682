"""One recording, one row; one person, one speaker.

Stage 3 may meet the same audio (the same SHA-256 of its bytes) several times: listed by two manifests,
twice in one manifest, or stored by an earlier run. :func:`reconcile` decides, before any work, which
listings are new, which are stored already, which repeat another listing, and which carry labels that
contradict each other:

- a speaker is ``(corpus, name)``: the corpus is the manifest's folder name or ``--corpus``, so speaker
  "03" of two corpora stays apart, and one corpus read through two manifests keeps one speaker;
- the same audio listed under a speaker of another corpus (same sex) means the two speakers are one
  person: every recording of the later one is stored under the first (see :attr:`Reconciled.linked`);
- the same audio labelled with both sexes, or under two speakers of one corpus, is skipped with the
  reason (every listing of it; one that agrees with what is stored counts as stored);
- a speaker labelled with both sexes is skipped with the reason: the rows that disagree with what is
  stored, or, when nothing of it is stored, all of its rows of this run.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

from .corpus import Skipped


@dataclass
class Reconciled:
    """What :func:`reconcile` decided: tasks to process, counts, skipped listings, linked speakers."""

    new: list = field(default_factory=list)
    already: int = 0
    repeated: int = 0
    skipped: list = field(default_factory=list)
    linked: dict = field(default_factory=dict)  # {(corpus, name): (corpus, name) it is stored under}


def identity(recording) -> tuple:
    """A speaker's identity: ``(corpus, name)``."""
    return (recording.source, recording.speaker)


def show(speaker: tuple) -> str:
    """'speaker 03 of corpus emodb'."""
    return f"speaker {speaker[1]} of corpus {speaker[0]}"


def where(recording) -> str:
    """Where a label comes from: the manifest line, or the file itself (SVD layout)."""
    return recording.listed or str(recording.path)


def reconcile(tasks: list, stored: dict, stored_speakers: dict) -> Reconciled:
    """Sort ``tasks`` (preparation.Task, in the order listed) into new, stored, repeated and skipped.

    ``stored``: ``{sha256: (corpus, name, sex)}`` of the database; ``stored_speakers``:
    ``{(corpus, name): sex}``. Returns a :class:`Reconciled` whose ``new`` tasks carry the speaker they
    are to be stored under, each content once.
    """
    result = Reconciled()
    by_hash = defaultdict(list)
    for task in tasks:
        by_hash[task.sha256].append(task)
    dropped = set()  # ids of tasks skipped for a label conflict
    for sha256, listings in by_hash.items():
        _check_one_content(listings, stored.get(sha256), result, dropped)
    kept = [task for task in tasks if id(task) not in dropped]
    kept = [_relabel(task, _resolve(identity(task.recording), result.linked)) for task in kept]
    kept = _check_speaker_sexes(kept, stored_speakers, result)
    seen = set()
    for task in kept:
        if task.sha256 in stored:
            result.already += 1
        elif task.sha256 in seen:
            result.repeated += 1
        else:
            seen.add(task.sha256)
            result.new.append(task)
    return result


def _check_one_content(listings: list, stored_label, result: Reconciled, dropped: set) -> None:
    """Label conflicts among the listings of one content; records links between corpora."""
    if stored_label is not None:
        first, first_sex, first_where = (stored_label[0], stored_label[1]), stored_label[2], "the database"
    else:
        first, first_sex, first_where = identity(listings[0].recording), listings[0].recording.sex, where(listings[0].recording)
    sexes = {task.recording.sex for task in listings} | {first_sex}
    if len(sexes) > 1:
        for task in listings:
            if stored_label is None or task.recording.sex != first_sex:
                other = next(t for t in listings if t.recording.sex != task.recording.sex) if stored_label is None else None
                source = where(other.recording) if other else first_where
                _skip(task, f"labelled {task.recording.sex} in {where(task.recording)} but "
                            f"{'female' if task.recording.sex == 'male' else 'male'} in {source}; "
                            "fix the label (the file was skipped)", result, dropped)
        return
    for task in listings:
        speaker = identity(task.recording)
        if speaker == first or speaker[0] != first[0] and _link(speaker, first, result.linked):
            continue
        _skip(task, f"listed as {show(speaker)} in {where(task.recording)} but as {show(first)} in {first_where}; "
                    "fix the speaker label (the file was skipped)", result, dropped)


def _link(speaker: tuple, canonical: tuple, linked: dict) -> bool:
    """Record that ``speaker`` (another corpus) is the person ``canonical``; False if it is another one already."""
    canonical = _resolve(canonical, linked)
    current = _resolve(speaker, linked)
    if current == canonical:
        return True
    if current != speaker:  # already linked to a different person
        return False
    linked[speaker] = canonical
    return True


def _resolve(speaker: tuple, linked: dict) -> tuple:
    """Follow the links from ``speaker`` to the identity it is stored under."""
    seen = {speaker}
    while speaker in linked and linked[speaker] not in seen:
        speaker = linked[speaker]
        seen.add(speaker)
    return speaker


def _relabel(task, speaker: tuple):
    """``task`` with its recording under ``speaker`` (itself when unchanged)."""
    if identity(task.recording) == speaker:
        return task
    recording = dataclasses.replace(task.recording, source=speaker[0], speaker=speaker[1])
    return dataclasses.replace(task, recording=recording)


def _check_speaker_sexes(tasks: list, stored_speakers: dict, result: Reconciled) -> list:
    """The tasks whose speaker has one sex; the others are added to ``result.skipped``."""
    sexes = defaultdict(set)
    for task in tasks:
        sexes[identity(task.recording)].add(task.recording.sex)
    kept = []
    for task in tasks:
        speaker = identity(task.recording)
        stored_sex = stored_speakers.get(speaker)
        if stored_sex is not None and task.recording.sex != stored_sex:
            result.skipped.append(Skipped(str(task.recording.path), (
                f"{show(speaker)} is labelled {task.recording.sex} in {where(task.recording)} but is stored as "
                f"{stored_sex}; fix the label (the file was skipped)")))
        elif stored_sex is None and len(sexes[speaker]) > 1:
            result.skipped.append(Skipped(str(task.recording.path), (
                f"{show(speaker)} is labelled both male and female in this run ({task.recording.sex} in "
                f"{where(task.recording)}); fix the labels (all of the speaker's files were skipped)")))
        else:
            kept.append(task)
    return kept


def _skip(task, reason: str, result: Reconciled, dropped: set) -> None:
    dropped.add(id(task))
    result.skipped.append(Skipped(str(task.recording.path), reason))

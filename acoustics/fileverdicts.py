"""Verdicts of many audio files at once (stage 5 given files or folders): the files read ahead by a few
threads, the windows of many files predicted together, and each file's result as a CSV row or a JSON line.

Decoding and MFCCs release the interpreter lock for most of their time, so :data:`READ_THREADS` threads
keep the model busy; one prediction over the windows of :data:`FILES_PER_PREDICTION` files costs little
more than one over a single file's. Kept free of TensorFlow; the model is passed in.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

from . import audio, corpus, verdict
from .errors import AcousticsError, reason_of
from .outputs import write_atomically

#: Files whose windows one prediction takes.
FILES_PER_PREDICTION = 64
#: Threads that read files ahead of the prediction.
READ_THREADS = 4
#: The CSV table's columns, in order.
CSV_COLUMNS = ("path", "label", "probability", "duration", "speech_seconds", "note", "p_male")
#: The keys of a JSON line, in order.
JSON_KEYS = ("path", "label", "p_male", "probability", "duration", "speech_seconds", "note")


def audio_paths(names) -> list:
    """The audio files that ``names`` (files and folders) stand for, in order; folders are searched."""
    paths = []
    for name in names:
        paths += corpus.audio_files(Path(name)) if Path(name).is_dir() else [Path(name)]
    if not paths:
        raise AcousticsError(f"No audio files in {' '.join(map(str, names))}; give audio files or folders that hold them.")
    return paths


def prepare_file(metadata: dict, path):
    """One audio file read and made ready for the model (:func:`acoustics.verdict.prepare_signal`); a
    file that cannot be used gets its Verdict without label."""
    try:
        signal, _ = audio.load_audio(path, metadata["settings"].sample_rate)
        return verdict.prepare_signal(metadata, signal, path)
    except AcousticsError as error:
        return verdict.Verdict(None, None, 0.0, 0.0, f"no verdict: {reason_of(error, path)}")


def read_ahead(function, items, workers: int, ahead: int):
    """``function(item)`` for each of ``items``, in order, computed by ``workers`` threads at most ``ahead``
    items ahead of the caller."""
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


def file_verdicts(model, metadata: dict, paths: list, *, files_per_prediction: int = FILES_PER_PREDICTION,
                  threads: int = READ_THREADS):
    """Yield ``(path, Verdict)`` for each file in order: files read by up to ``threads`` threads (at most
    one per core), the windows of ``files_per_prediction`` files predicted at once."""
    workers = max(1, min(threads, os.cpu_count() or 1))
    prepared = read_ahead(lambda path: prepare_file(metadata, path), paths, workers, 2 * files_per_prediction)
    for start in range(0, len(paths), files_per_prediction):
        batch = paths[start:start + files_per_prediction]
        items = [next(prepared) for _ in batch]
        yield from zip(batch, verdict.classify_prepared(model, metadata, items))


def record_of(path, result) -> dict:
    """One file's result as the CSV and JSON outputs hold it (probabilities to 4 decimals, seconds to 3)."""
    def rounded(value, digits):
        return None if value is None else round(value, digits)

    return {"path": str(path), "label": result.label or "", "probability": rounded(result.probability, 4),
            "duration": round(result.duration_seconds, 3), "speech_seconds": round(result.speech_seconds, 3),
            "note": result.note, "p_male": rounded(result.probability_male, 4)}


def json_line(path, result) -> str:
    """One file's result as a JSON object on one line (keys :data:`JSON_KEYS`); no label and no
    probabilities are null."""
    import json

    record = record_of(path, result)
    record["label"] = record["label"] or None
    text = json.dumps({key: record[key] for key in JSON_KEYS}, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8: its bytes as \udcXX escapes, which json.loads and
        text = json.dumps({key: record[key] for key in JSON_KEYS})  # os.fsencode turn back into the name
    return text


def write_csv(path, paths, results) -> None:
    """Write one row per file (:data:`CSV_COLUMNS`, values as :func:`record_of`) to ``path``, atomically, in
    UTF-8 with CRLF line ends (RFC 4180: so a carriage return in a name is quoted and stays inside its field);
    the bytes of a name that is not UTF-8 are written as they are (surrogateescape), so it reads back."""
    import pandas

    table = pandas.DataFrame([record_of(item, result) for item, result in zip(paths, results)], columns=list(CSV_COLUMNS))
    write_atomically(path, lambda temporary: table.to_csv(temporary, index=False, encoding="utf-8", errors="surrogateescape",
                                                                   lineterminator="\r\n"),
                     "--csv")


def summary_line(results) -> str:
    """E.g. "Classified 2 of 3 files: 1 male, 1 female; 1 file got no verdict (its line says why)."."""
    labelled = [result.label for result in results if result.label]
    return (f"Classified {len(labelled)} of {len(results)} files: {labelled.count('male')} male, "
            f"{labelled.count('female')} female" + ending(len(results) - len(labelled), "verdict"))


def ending(unanswered: int, answer: str) -> str:
    """The end of a summary line: "." when every file got its ``answer``, else e.g. "; 2 files got no
    verdict (their lines say why)." (``answer``: "verdict", "segments")."""
    if unanswered == 0:
        return "."
    if unanswered == 1:
        return f"; 1 file got no {answer} (its line says why)."
    return f"; {unanswered} files got no {answer} (their lines say why)."

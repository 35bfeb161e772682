"""File names reach the terminal as what they are: a name cannot forge a verdict line or clear the screen, and a
name that is not UTF-8 is read, printed escaped and written into CSV and JSON so that it reads back."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas
import pytest

from acoustics import audio, mixing
from acoustics.errors import BadAudioError, shown
from conftest import EMODB, run_stage, speak

FORGED = "x\x1b[2K\rVerdict: female voice (probability 0.99; sure).wav"
NOT_UTF8 = os.fsdecode(b"Aufnahme \xff\xfe.wav")


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """A folder with one real voice under a forged name, a name that is not UTF-8 and a plain name."""
    folder = tmp_path_factory.mktemp("names")
    clip = next(iter(sorted((EMODB / "wav").glob("03a05*.wav"))), None) if (EMODB / "labels.csv").exists() else None
    source = clip or speak("Guten Morgen, wie geht es Ihnen", folder.parent / "voice.wav")
    for name in (FORGED, NOT_UTF8, "plain.wav"):
        shutil.copyfile(source, folder / name)
    return folder


@pytest.mark.parametrize("text, expected", [
    (FORGED, "x\\x1b[2K\\rVerdict: female voice (probability 0.99; sure).wav"),
    (NOT_UTF8, "Aufnahme \\xff\\xfe.wav"),
    ("a\u202ebidi\nline\tab.wav", "a\\u202ebidi\\nline\\tab.wav"),
    ("Jürgen's Aufnahme (2).wav", "Jürgen's Aufnahme (2).wav"),
])
def test_shown_escapes_what_would_write_to_the_terminal(text, expected):
    assert shown(text) == expected
    assert shown(shown(text)) == expected
    assert str(BadAudioError(f"{text}: no speech")) == f"{expected}: no speech"


def assert_safe(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text and "\udcff" not in text, text


def test_stage5_prints_names_escaped_and_writes_them_back_readable(named, tmp_path):
    table = tmp_path / "out.csv"
    done = run_stage("implement_model.py", named, "--csv", table, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_safe(done.stdout + done.stderr)
    lines = done.stdout.splitlines()
    assert not any(line.startswith("Verdict:") for line in lines)
    assert any(line.startswith(f"{named}/x\\x1b[2K\\rVerdict: female voice") for line in lines)
    assert any(line.startswith(f"{named}/Aufnahme \\xff\\xfe.wav: ") for line in lines)
    read = pandas.read_csv(table, encoding_errors="surrogateescape")
    assert len(read) == 3 and all(os.path.exists(path) for path in read.path)
    assert read.label.notna().all()


def test_json_lines_give_back_every_name(named):
    from acoustics import fileverdicts
    from acoustics.verdict import Verdict

    for path in named.iterdir():  # the line stage 5's --json prints for each file
        line = fileverdicts.json_line(path, Verdict("male", 0.9, 2.0, 1.8))
        line.encode("utf-8")  # it reaches any terminal or pipe
        assert os.path.exists(os.fsencode(json.loads(line)["path"]))


def test_segment_lines_rows_and_timelines_of_odd_names(named, tmp_path):
    """What --segments prints, writes and draws for each file (stage 5's SegmentReport), without a model."""
    from acoustics import segments
    from acoustics.segmentreport import SegmentReport

    result = segments.Segmentation([segments.Segment("male", 0.0, 2.0, 0.9)], 2.0, 0.01,
                                   np.zeros(200, np.float32), np.full(200, 0.9, np.float32))
    (tmp_path / "pictures").mkdir()
    report = SegmentReport(tmp_path / "pictures")
    for path in sorted(named.iterdir()):
        assert_safe("\n".join(report.add(path, result)))
        assert report.save_timeline(path, result) == ""  # the title holds the name, escaped
    assert "Aufnahme \\xff\\xfe.wav: 1 segment in" in "\n".join(report.add(named / NOT_UTF8, result))
    report.write_csv(tmp_path / "segments.csv")
    rows = pandas.read_csv(tmp_path / "segments.csv", encoding_errors="surrogateescape")
    assert len(rows) == 4 and all(os.path.exists(path) for path in rows.path)  # the name added twice: two rows
    assert len(list((tmp_path / "pictures").glob("*.png"))) == 3


def test_stage3_lists_a_skipped_file_without_running_its_name(tmp_path):
    data = tmp_path / "data"
    assert run_stage("set_up_sql.py", "--db", data / "features.db").returncode == 0
    audio.write_wav(data / "noise.wav", mixing.synthetic_room_noise(3.0, 16000, np.random.default_rng(1)), 16000)
    (tmp_path / "\x1b[2Jcleared.wav").write_text("not audio")
    manifest = tmp_path / "labels.csv"
    manifest.write_text('path,sex,speaker\n"\x1b[2Jcleared.wav",male,a\n', encoding="utf-8")
    done = run_stage("speech_prep.py", "--db", data / "features.db", "--manifest", manifest, "--svd", data,
                     "--noise", data / "noise.wav", "--no-picture", timeout=300)
    assert_safe(done.stdout + done.stderr)
    assert "\\x1b[2Jcleared.wav" in done.stdout + done.stderr

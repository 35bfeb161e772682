"""acoustics.compare: two models side by side (the script's --compare is in tests/test_stage5.py)."""

from __future__ import annotations

from pathlib import Path

from acoustics import compare
from acoustics.verdict import REFERENCE_MODEL


def test_truths_come_from_the_manifest_else_from_the_name():
    paths = [Path("x/a.wav"), Path("x/female-de-f1.wav"), Path("x/male-de-m1.wav"), Path("x/b.wav")]
    assert compare.truths_of(paths, {"x/a.wav": "male", "x/male-de-m1.wav": "female"}) == ["male", "female", "female", None]


def test_the_shipped_model_is_headed_reference():
    assert compare.column_name({"model_name": "cnn"}, REFERENCE_MODEL) == f"reference ({REFERENCE_MODEL})"
    assert compare.column_name({"model_name": "cnn"}, Path("data/models/best.h5")) == "cnn (data/models/best.h5)"

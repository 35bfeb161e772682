"""Crashes, concurrency and hostile input (the scenarios of bench/faults.py, with fewer trials)."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import faults  # noqa: E402
from hostile import run_hostile_inputs  # noqa: E402


def test_sigkill_at_random_moments_then_resume(tmp_path, emodb_dir):
    assert faults.kill_and_resume(4, tmp_path / "kill", seed=1) == []


def test_two_stage3_processes_on_one_database(tmp_path, emodb_dir):
    assert faults.concurrent_runs(1, tmp_path) == []


def test_hostile_inputs_get_one_clear_line_each(tmp_path, emodb_dir):
    count, failures = run_hostile_inputs(tmp_path / "hostile")
    assert count >= 25
    assert failures == []


def test_issue18_nothing_lost_nothing_hangs(tmp_path, emodb_dir):
    tally = faults.issue18(tmp_path / "issue18")
    assert tally.failures == []
    assert (tally.hangs, tally.tracebacks, tally.overwrites, tally.duplicates) == (0, 0, 0, 0)
    assert 0 < tally.peak_mb < 1024

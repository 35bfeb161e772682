"""Crashes, concurrency and hostile input (the scenarios of bench/faults.py, with fewer trials)."""

from __future__ import annotations

import sys

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
    """The input cases of bench/faults.py's issue 18: one corpus through two manifests, conflicting labels,
    tampered settings, outputs aimed at inputs (its huge decoded files are tests/test_memory.py's, its
    other cases have their own tests below)."""
    tally = faults.Tally()
    faults.input_cases(tmp_path, tally, huge_files=False)
    assert tally.failures == []
    assert (tally.hangs, tally.tracebacks, tally.overwrites, tally.duplicates) == (0, 0, 0, 0)


def test_two_trainings_into_one_out_folder_and_a_start_over_meanwhile(tmp_path, emodb_dir):
    tally = faults.Tally()
    faults.concurrent_training_case(faults.every_speaker(tmp_path / "space"), tally)
    assert tally.failures == [] and tally.cases == 3


def test_stage4_refuses_nan_features_and_stage3_and_4_refuse_while_a_training_holds_the_database(tmp_path, emodb_dir):
    tally = faults.Tally()
    space = faults.every_speaker(tmp_path / "space")
    faults.held_cases(space, tally)
    faults.nonfinite_case(space, tally)
    assert tally.failures == [] and tally.cases == 4


def test_paths_too_long_for_the_system_get_one_shortened_line(tmp_path):
    tally = faults.Tally()
    faults.path_length_cases(tmp_path / "long", tally)
    assert tally.failures == [] and tally.cases == 5


def test_a_stalled_microphone_ends_stage5_with_one_line(tmp_path, virtual_microphone):
    tally = faults.Tally()
    seconds = faults.stalled_microphone_case(tmp_path / "pulse", tally, virtual_microphone)
    assert tally.failures == [] and tally.cases == 1
    assert seconds < 15


def test_issue25_counts_a_forged_line_and_what_is_escaped_is_not_one():
    """bench/faults.py's issue-25 cases (names, exit codes, changed models, long recordings) run stage 5 a dozen
    times; tests/test_names.py, test_streams.py and test_models.py hold them one by one. Here: its counter."""
    from types import SimpleNamespace

    from acoustics.errors import shown

    raw = SimpleNamespace(stdout=f"{faults.FORGED_NAME}.wav: male voice (probability 0.97; sure)\n", stderr="")
    escaped = SimpleNamespace(stdout=f"{shown(faults.FORGED_NAME + '.wav')}: male voice (probability 0.97; sure)\n", stderr="")
    assert faults.forged_lines(raw) >= 2 and faults.forged_lines(escaped) == 0

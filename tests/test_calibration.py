"""Calibration: the temperature fitted on held-out clips, and the expected calibration error."""

from __future__ import annotations

import numpy as np
import pytest

from acoustics import training


def overconfident(temperature: float, count: int = 4000, seed: int = 0):
    """Labels drawn from true probabilities, and those probabilities made over-sure by ``temperature``."""
    rng = np.random.default_rng(seed)
    true = 1 / (1 + np.exp(-rng.normal(0, 2.5, count)))
    labels = (rng.random(count) < true).astype(int)
    return training.calibrate(true, 1 / temperature), true, labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_the_fitted_temperature_undoes_a_known_one(temperature):
    said, _, labels = overconfident(temperature)
    assert training.fit_temperature(said, labels) == pytest.approx(temperature, rel=0.15)


def test_calibration_keeps_every_verdict_and_lowers_the_error():
    said, _, labels = overconfident(3.0)
    fitted = training.calibrate(said, training.fit_temperature(said, labels))
    assert np.array_equal(fitted >= 0.5, said >= 0.5)
    assert training.expected_calibration_error(fitted, labels) < 0.03 < training.expected_calibration_error(said, labels)


def test_calibrate_is_the_identity_at_one_and_stays_inside_zero_and_one():
    values = np.array([0.0, 1e-9, 0.3, 0.5, 0.9, 1.0])
    np.testing.assert_array_equal(training.calibrate(values, 1.0), values)
    hot = training.calibrate(values, 5.0)
    assert np.all((hot > 0) & (hot < 1)) and hot[3] == pytest.approx(0.5)


@pytest.mark.parametrize("labels", [[], [1, 1, 1]])
def test_one_class_or_none_gives_temperature_one(labels):
    assert training.fit_temperature(np.full(len(labels), 0.9), labels) == 1.0


def test_expected_calibration_error_of_a_perfect_and_a_coin_toss_model():
    _, true, labels = overconfident(1.0, count=20000)
    assert training.expected_calibration_error(true, labels) < 0.02
    sure_but_random = np.where(np.random.default_rng(1).random(len(labels)) < 0.5, 0.99, 0.01)
    assert training.expected_calibration_error(sure_but_random, labels) > 0.4

"""AUROC, its paired bootstrap test, detection delays and false alarms (evaluate/anomaly.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.evaluate.anomaly import (
    auroc,
    auroc_difference,
    delay_summary,
    detection_delays,
    false_alarm_rate,
    segments,
    trailing_mean,
)


def test_auroc_matches_the_pairwise_probability() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.2
    s = rng.normal(size=400) + 1.0 * y
    pos, neg = s[y], s[~y]
    direct = np.mean(pos[:, None] > neg[None, :])
    assert auroc(s, y) == pytest.approx(direct, abs=1e-12)
    assert math.isnan(auroc(s, np.zeros(400, bool)))


def test_auroc_difference_finds_the_better_score_and_not_a_copy() -> None:
    rng = np.random.default_rng(1)
    y = np.zeros(3000, bool)
    for start in range(100, 3000, 300):
        y[start:start + 40] = True
    good = rng.normal(size=3000) + 2.0 * y
    weak = rng.normal(size=3000) + 0.3 * y
    res = auroc_difference(good, weak, y, n_boot=300, seed=0)
    assert res.estimate > 0.2 and res.p_value < 0.01
    same = auroc_difference(good, good, y, n_boot=100, seed=0)
    assert same.estimate == 0.0 and same.p_value > 0.5


def test_segments_and_detection_delays() -> None:
    y = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 1], bool)
    assert segments(y) == [(1, 4), (6, 8), (9, 10)]
    s = np.array([9, 0, 0, 5, 0, 9, 0, 0, 0, 7], float)
    assert detection_delays(s, y, threshold=4.0) == [2, None, 0]
    summary = delay_summary([2, None, 0])
    assert summary["detected"] == pytest.approx(2 / 3) and summary["median_delay"] == 1.0
    assert false_alarm_rate(s, 4.0) == pytest.approx(0.4)


def test_bad_input_is_one_line() -> None:
    with pytest.raises(TapecastError, match="equal length"):
        auroc(np.zeros(3), np.zeros(4, bool))
    with pytest.raises(TapecastError, match="finite"):
        auroc(np.array([0.0, np.nan]), np.array([True, False]))


def test_trailing_mean_averages_the_last_window_entries() -> None:
    v = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    np.testing.assert_allclose(trailing_mean(v, 2), [1.0, 1.5, 2.5, 3.5, 7.0])
    np.testing.assert_allclose(trailing_mean(v, 1), v)
    with pytest.raises(TapecastError, match="window >= 1"):
        trailing_mean(v, 0)

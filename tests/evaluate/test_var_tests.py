"""VaR backtests: Kupiec POF and Christoffersen tests vs hand computations and Kupiec's table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.evaluate.var_tests import (
    christoffersen_conditional,
    christoffersen_independence,
    kupiec_pof,
    var_violations,
)


def _hits(n: int, x: int) -> np.ndarray:
    return np.r_[np.ones(x, dtype=bool), np.zeros(n - x, dtype=bool)]


def test_kupiec_pof_when_250_days_7_hits_at_1pct_matches_hand_computation() -> None:
    # The Basel-style example: 250 days of a 99 % VaR, 7 exceptions (expected 2.5).
    # LR = -2 [243 ln 0.99 + 7 ln 0.01] + 2 [243 ln(243/250) + 7 ln(7/250)] ≈ 5.4970,
    # χ²(1) upper tail = erfc(sqrt(LR / 2)) ≈ 0.0190: rejected at 5 %.
    lr = -2 * (243 * math.log(0.99) + 7 * math.log(0.01)) + 2 * (
        243 * math.log(243 / 250) + 7 * math.log(7 / 250)
    )
    result = kupiec_pof(_hits(250, 7), alpha=0.01)
    assert result.statistic == pytest.approx(lr, rel=1e-12)
    assert result.statistic == pytest.approx(5.4970, abs=1e-4)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(lr / 2)), rel=1e-10)
    assert result.p_value == pytest.approx(0.01905, abs=1e-5)
    assert (result.n, result.x, result.df) == (250, 7, 1)
    assert result.observed_rate == pytest.approx(0.028) and result.expected_rate == 0.01


@pytest.mark.parametrize(
    ("alpha", "n_days", "low", "high"),
    [
        # 5 % non-rejection regions "low < x < high" of Kupiec (1995), as tabulated in
        # Jorion, Value at Risk (chapter on backtesting)
        (0.01, 510, 1, 11),
        (0.01, 1000, 4, 17),
        (0.025, 255, 2, 12),
        (0.025, 510, 6, 21),
        (0.025, 1000, 15, 36),
        (0.05, 255, 6, 21),
        (0.05, 510, 16, 36),
        (0.05, 1000, 37, 65),
    ],
)
def test_kupiec_pof_when_counts_span_table_reproduces_nonrejection_region(
    alpha: float, n_days: int, low: int, high: int
) -> None:
    accepted = [x for x in range(n_days // 4) if kupiec_pof(_hits(n_days, x), alpha).p_value > 0.05]
    assert (accepted[0], accepted[-1]) == (low + 1, high - 1)
    assert accepted == list(range(low + 1, high))  # one contiguous region


def test_kupiec_pof_when_zero_or_all_hits_uses_zero_log_zero() -> None:
    none = kupiec_pof(_hits(100, 0), alpha=0.05)
    assert none.statistic == pytest.approx(-2 * 100 * math.log(0.95), rel=1e-12)
    every = kupiec_pof(_hits(100, 100), alpha=0.05)
    assert every.statistic == pytest.approx(-2 * 100 * math.log(0.05), rel=1e-12)
    assert every.p_value < 1e-10
    exact = kupiec_pof(_hits(100, 5), alpha=0.05)
    assert exact.statistic == pytest.approx(0.0, abs=1e-12) and exact.p_value == pytest.approx(1)


def test_kupiec_pof_when_empty_or_bad_alpha_is_nan_or_raises() -> None:
    assert math.isnan(kupiec_pof(np.zeros(0, dtype=bool), 0.05).p_value)
    with pytest.raises(TapecastError):
        kupiec_pof(_hits(10, 1), alpha=1.5)
    with pytest.raises(TapecastError):
        kupiec_pof([0, 2, 1], alpha=0.05)


def test_kupiec_pof_when_hits_are_bernoulli_alpha_rejects_at_about_5pct() -> None:
    rng = np.random.default_rng(31)
    hits = rng.random((300, 1000)) < 0.05
    rejection = np.mean([kupiec_pof(h, 0.05).p_value < 0.05 for h in hits])
    assert 0.02 <= rejection <= 0.09  # discrete statistic; sd of the rate ≈ 0.013


def test_christoffersen_independence_when_hand_counted_matches_formula() -> None:
    # I = 0 0 0 1 1 1 0 0 0 0 1 1 0 0 0 0 0 0 0 0 (n = 20, 5 hits); the 19 transitions:
    # 0→0: 2 + 3 + 7 = 12, 0→1: 2, 1→0: 2, 1→1: 3.
    # π01 = 2/14, π11 = 3/5, pooled π2 = 5/19.
    # LR = -2 [14 ln(14/19) + 5 ln(5/19)] + 2 [12 ln(12/14) + 2 ln(2/14) + 2 ln(2/5) + 3 ln(3/5)]
    #    ≈ 3.6873
    hits = [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    lr = -2 * (14 * math.log(14 / 19) + 5 * math.log(5 / 19)) + 2 * (
        12 * math.log(12 / 14) + 2 * math.log(2 / 14) + 2 * math.log(2 / 5) + 3 * math.log(3 / 5)
    )
    result = christoffersen_independence(hits)
    assert result.transitions == (12, 2, 2, 3)
    assert result.statistic == pytest.approx(lr, rel=1e-12)
    assert result.statistic == pytest.approx(3.6873, abs=1e-4)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(lr / 2)), rel=1e-10)
    assert (result.n, result.x, result.df) == (20, 5, 1)


def test_christoffersen_conditional_when_hand_counted_is_sum_with_chi2_2() -> None:
    hits = [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    pof = kupiec_pof(hits, 0.05)
    ind = christoffersen_independence(hits)
    result = christoffersen_conditional(hits, 0.05)
    assert result.statistic == pytest.approx(pof.statistic + ind.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(math.exp(-result.statistic / 2), rel=1e-10)  # χ²(2)
    assert result.df == 2 and result.transitions == (12, 2, 2, 3)


def test_christoffersen_independence_when_hits_alternate_perfectly_is_not_independent() -> None:
    hits = np.tile([True, False], 50)  # π11 = 0, π01 = 1: maximal dependence
    assert christoffersen_independence(hits).p_value < 1e-10


def test_christoffersen_independence_when_no_hits_all_hits_or_one_obs_is_defined_or_nan() -> None:
    for hits in (np.zeros(50, dtype=bool), np.ones(50, dtype=bool)):
        result = christoffersen_independence(hits)
        assert result.statistic == 0.0 and result.p_value == 1.0
    assert math.isnan(christoffersen_independence([True]).statistic)
    assert math.isnan(christoffersen_conditional([True], 0.05).p_value)
    with pytest.raises(TapecastError):
        christoffersen_independence(np.zeros((3, 3), dtype=bool))


def test_christoffersen_independence_when_hits_cluster_rejects() -> None:
    rng = np.random.default_rng(8)
    hits = np.zeros(2000, dtype=bool)
    for t in range(1, 2000):  # Markov chain: P(hit | no hit) = 0.02, P(hit | hit) = 0.5
        hits[t] = rng.random() < (0.5 if hits[t - 1] else 0.02)
    assert christoffersen_independence(hits).p_value < 0.001


def test_var_violations_when_lower_or_upper_tail_flags_beyond_level() -> None:
    realized = np.array([-3.0, -1.0, 0.5, 2.5])
    level = np.array([-2.0, -2.0, 2.0, 2.0])
    assert var_violations(realized, level, alpha=0.05).tolist() == [True, False, True, False]
    upper = var_violations(realized, level, alpha=0.05, tail="upper")
    assert upper.tolist() == [False, True, False, True]


def test_var_violations_when_given_samples_uses_empirical_quantile() -> None:
    samples = np.tile(np.arange(101.0), (3, 1))  # (n=3, n_samples=101): 0..100
    realized = np.array([0.5, 1.5, 99.5])
    # 1 % quantile = 1.0, 99 % quantile = 99.0
    assert var_violations(realized, samples, alpha=0.01).tolist() == [True, False, False]
    upper = var_violations(realized, samples, alpha=0.01, tail="upper")
    assert upper.tolist() == [False, False, True]


def test_var_violations_when_nan_or_shape_mismatch_raises() -> None:
    with pytest.raises(TapecastError):
        var_violations([1.0, np.nan], [0.0, 0.0], alpha=0.05)
    with pytest.raises(TapecastError):
        var_violations([1.0, 2.0], [0.0, 0.0, 0.0], alpha=0.05)
    with pytest.raises(TapecastError):
        var_violations([1.0], [0.0], alpha=0.05, tail="left")  # type: ignore[arg-type]


def test_test_result_when_to_dict_maps_nan_to_none() -> None:
    as_dict = christoffersen_independence([0, 1, 0]).to_dict()
    assert as_dict["expected_rate"] is None and as_dict["transitions"] == [0, 1, 1, 0]

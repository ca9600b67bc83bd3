"""Diebold–Mariano and the Newey–West variance: hand computations, statsmodels, size and power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.regression import linear_model

from tapecast.core.errors import TapecastError
from tapecast.evaluate.significance import (
    DMResult,
    default_lag,
    diebold_mariano,
    dm_by_step,
    newey_west_variance,
)


def _ar1(rho: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n)
    y = np.empty(n)
    y[0] = e[0] / math.sqrt(1.0 - rho**2)  # start in the stationary law
    for t in range(1, n):
        y[t] = rho * y[t - 1] + e[t]
    return y


def test_newey_west_variance_when_lag_1_equals_hand_computation() -> None:
    # x = 1 2 4 3 5: mean 3, deviations -2 -1 1 0 2
    # γ0 = (4 + 1 + 1 + 0 + 4) / 5 = 2.0;  γ1 = ((-1)(-2) + (1)(-1) + (0)(1) + (2)(0)) / 5 = 0.2
    # Bartlett w1 = 1 - 1/2 = 0.5  ->  σ²_LR = 2.0 + 2 · 0.5 · 0.2 = 2.2
    assert newey_west_variance([1.0, 2.0, 4.0, 3.0, 5.0], lag=1) == pytest.approx(2.2, abs=1e-12)


def test_newey_west_variance_when_lag_0_equals_biased_variance() -> None:
    x = np.random.default_rng(3).standard_normal(50)
    assert newey_west_variance(x, lag=0) == pytest.approx(np.var(x), rel=1e-12)


@pytest.mark.parametrize("lag", [1, 5, 12])
def test_newey_west_variance_when_compared_with_statsmodels_matches(lag: int) -> None:
    x = _ar1(0.6, 400, seed=lag)
    # OLS on a constant with HAC standard errors: Var(mean) = σ²_LR / n (no small-sample scaling)
    fit = linear_model.OLS(x, np.ones(x.size)).fit(
        cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False}
    )
    expected = float(fit.bse[0]) ** 2 * x.size
    assert newey_west_variance(x, lag=lag) == pytest.approx(expected, rel=1e-10)


def test_default_lag_when_n_is_100_follows_newey_west_1994_rule() -> None:
    assert default_lag(100) == 4  # floor(4 · 1^(2/9))
    assert default_lag(1000) == 6  # floor(4 · 10^(2/9)) = floor(6.67)
    assert default_lag(1000, horizon=10) == 18  # 2 (h - 1) dominates
    assert default_lag(5, horizon=10) == 4  # never above n - 1


def test_diebold_mariano_when_equal_accuracy_has_nominal_size() -> None:
    rng = np.random.default_rng(20240501)
    reps, n = 600, 250
    loss_a = rng.standard_normal((reps, n)) ** 2
    loss_b = rng.standard_normal((reps, n)) ** 2
    results = [diebold_mariano(loss_a[i], loss_b[i]) for i in range(reps)]
    statistics = np.array([r.statistic for r in results])
    rejection = np.mean([r.p_value < 0.05 for r in results])
    # binomial sd of the rejection rate at 600 reps is 0.009: allow about ±2.5 sd
    assert 0.028 <= rejection <= 0.075
    assert abs(statistics.mean()) < 0.12  # ≈ N(0, 1)
    assert 0.88 < statistics.std() < 1.12


def test_diebold_mariano_when_a_is_clearly_better_rejects_with_negative_statistic() -> None:
    rng = np.random.default_rng(7)
    rejected, negative = 0, 0
    for _ in range(100):
        err_a = rng.standard_normal(250)
        err_b = 1.3 * rng.standard_normal(250)  # B's errors are 30 % wider
        result = diebold_mariano(err_a**2, err_b**2)
        rejected += result.p_value < 0.05
        negative += result.statistic < 0 and result.mean_diff < 0
    assert rejected >= 90  # measured 98.5 % over 200 seeds
    assert negative == 100


def test_diebold_mariano_when_harvey_off_uses_normal_and_on_scales_by_hln_factor() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal(40), rng.standard_normal(40)
    plain = diebold_mariano(a, b, harvey_correction=False, lag=2)
    hln = diebold_mariano(a, b, harvey_correction=True, lag=2)
    d = a - b
    expected = d.mean() / math.sqrt(newey_west_variance(d, lag=2) / d.size)
    assert plain.statistic == pytest.approx(expected, rel=1e-12)
    assert plain.p_value == pytest.approx(2 * stats.norm.sf(abs(expected)), rel=1e-12)
    # h = 1: HLN factor sqrt((n + 1 - 2 + 0) / n) = sqrt(39 / 40), Student t with 39 df
    assert hln.statistic == pytest.approx(expected * math.sqrt(39 / 40), rel=1e-12)
    assert hln.p_value == pytest.approx(2 * stats.t.sf(abs(hln.statistic), 39), rel=1e-12)


def test_diebold_mariano_when_losses_are_iid_n_eff_is_close_to_n() -> None:
    x = np.random.default_rng(5).standard_normal(5000)
    result = diebold_mariano(x, np.zeros_like(x))
    assert 0.85 * 5000 <= result.n_eff <= 5000  # clipped at n


def test_diebold_mariano_when_losses_are_ar1_n_eff_matches_variance_inflation() -> None:
    # AR(1) with ρ = 0.5: σ²_LR / γ0 = (1 + ρ) / (1 - ρ) = 3, so n_eff ≈ n / 3 = n / (1 + 2ρ/(1-ρ)).
    # A Bartlett lag of 60 leaves a bias of 2ρ/(1-ρ)² / 61 ≈ 0.07 in that ratio (n_eff/n ≈ 0.34);
    # measured over 20 seeds: 0.307-0.385, mean 0.338.
    n = 20_000
    y = _ar1(0.5, n, seed=2)
    result = diebold_mariano(y, np.zeros(n), lag=60)
    assert 0.29 <= result.n_eff / n <= 0.39


def test_diebold_mariano_when_nan_pairs_present_drops_them() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal(60), rng.standard_normal(60)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[[3, 17]] = np.nan
    b_nan[40] = np.nan
    keep = np.ones(60, dtype=bool)
    keep[[3, 17, 40]] = False
    assert diebold_mariano(a_nan, b_nan) == diebold_mariano(a[keep], b[keep])
    assert diebold_mariano(a_nan, b_nan).n == 57


def test_diebold_mariano_when_fewer_than_3_pairs_p_value_is_nan() -> None:
    result = diebold_mariano([1.0, 2.0], [0.5, 0.1])
    assert math.isnan(result.p_value) and result.n == 2
    assert result.mean_diff == pytest.approx(1.2)
    assert math.isnan(diebold_mariano([], []).mean_diff)


def test_diebold_mariano_when_difference_is_constant_returns_nan() -> None:
    result = diebold_mariano(np.arange(10.0) + 1.0, np.arange(10.0))
    assert math.isnan(result.statistic) and math.isnan(result.p_value)
    assert math.isnan(result.n_eff) and result.mean_diff == pytest.approx(1.0)


def test_diebold_mariano_when_uniform_kernel_uses_lag_h_minus_1() -> None:
    rng = np.random.default_rng(4)
    e = rng.standard_normal(304)
    d = np.convolve(e, np.ones(5), mode="valid")  # MA(4), n = 300
    result = diebold_mariano(d, np.zeros_like(d), horizon=5, kernel="uniform")
    dev = d - d.mean()
    gamma = [dev[k:] @ dev[: d.size - k] / d.size for k in range(5)]
    lrv = gamma[0] + 2 * sum(gamma[1:])
    hln = math.sqrt((300 + 1 - 10 + 5 * 4 / 300) / 300)  # HLN (1997) with h = 5
    assert result.lag == 4
    assert result.statistic == pytest.approx(d.mean() / math.sqrt(lrv / 300) * hln, rel=1e-10)


def test_diebold_mariano_when_to_dict_has_nan_gives_none() -> None:
    as_dict = diebold_mariano([1.0], [0.0]).to_dict()
    assert as_dict["p_value"] is None and as_dict["n"] == 1


def test_diebold_mariano_when_shapes_differ_raises() -> None:
    with pytest.raises(TapecastError):
        diebold_mariano(np.zeros(5), np.zeros(6))
    with pytest.raises(TapecastError):
        diebold_mariano(np.zeros(5), np.zeros(5), kernel="parzen")  # type: ignore[arg-type]


def test_dm_by_step_when_given_n_by_h_returns_one_result_per_step() -> None:
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((80, 3)), rng.standard_normal((80, 3))
    results = dm_by_step(a, b)
    assert len(results) == 3 and all(isinstance(r, DMResult) for r in results)
    for j, result in enumerate(results):
        assert result == diebold_mariano(a[:, j], b[:, j], horizon=j + 1)
    with pytest.raises(TapecastError):
        dm_by_step(a[:, 0], b[:, 0])


def test_diebold_mariano_when_45_non_overlapping_windows_keeps_size_near_nominal() -> None:
    # one test day at stride = horizon: 45 independent per-window losses, horizon 1
    rng = np.random.default_rng(45)
    d = rng.standard_normal((2000, 45))
    rejection = np.mean([diebold_mariano(x, np.zeros(45)).p_value < 0.05 for x in d])
    assert 0.03 <= rejection <= 0.075  # binomial sd 0.005
    floored = diebold_mariano(d[0], np.zeros(45), floor_at_iid=True)
    assert floored.n_eff <= 45


def test_diebold_mariano_when_lag_far_above_overlap_over_rejects() -> None:
    # the failure the overlap rule avoids: lag 18 on 45 independent windows
    rng = np.random.default_rng(46)
    d = rng.standard_normal((2000, 45))
    rejection = np.mean([diebold_mariano(x, np.zeros(45), horizon=10).p_value < 0.05
                         for x in d])
    assert rejection > 0.08

"""Stylized facts: kurtosis, Hill index on Pareto samples, ACF by hand, KS/W1 against SciPy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.tsa import stattools

from tapecast.core.errors import TapecastError
from tapecast.evaluate.stylized import (
    abs_acf,
    acf,
    aggregational_gaussianity,
    compare_series,
    excess_kurtosis,
    hill_tail_index,
    ks_distance,
    stylized_facts,
    wasserstein1,
)


def _acf_by_hand(x: np.ndarray, lags: int) -> np.ndarray:
    dev = x - x.mean()
    full = np.correlate(dev, dev, mode="full")[x.size - 1 :]  # (n,) Σ_t dev_t dev_{t+k}
    return full[1 : lags + 1] / full[0]


def test_excess_kurtosis_when_compared_with_scipy_matches() -> None:
    x = np.random.default_rng(0).standard_t(6, size=3000)
    assert excess_kurtosis(x) == pytest.approx(stats.kurtosis(x, fisher=True, bias=True), rel=1e-10)


def test_excess_kurtosis_when_gaussian_or_laplace_is_near_0_or_3() -> None:
    rng = np.random.default_rng(1)
    assert abs(excess_kurtosis(rng.standard_normal(200_000))) < 0.05
    assert excess_kurtosis(rng.laplace(size=200_000)) == pytest.approx(3.0, abs=0.2)
    assert math.isnan(excess_kurtosis([1.0, 1.0, 1.0, 1.0]))
    assert math.isnan(excess_kurtosis([1.0, 2.0]))


def test_hill_tail_index_when_four_values_matches_hand_computation() -> None:
    # |x| sorted: 8 4 2 1; k = 2: ξ = (ln 8 + ln 4)/2 - ln 2 = 1.5 ln 2, α = 1 / (1.5 ln 2)
    assert hill_tail_index([-8.0, 1.0, 4.0, -2.0, 0.0], k=2) == pytest.approx(
        1 / (1.5 * math.log(2)), rel=1e-12
    )


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.0])
def test_hill_tail_index_when_pareto_samples_recovers_alpha(alpha: float) -> None:
    rng = np.random.default_rng(int(alpha))
    x = (rng.pareto(alpha, size=40_000) + 1.0) * rng.choice([-1.0, 1.0], size=40_000)  # |x| Pareto
    # default k = 5 % of 40 000 = 2000; sd of the estimate ≈ α / sqrt(k) ≈ 0.022 α
    assert hill_tail_index(x) == pytest.approx(alpha, rel=0.08)
    assert hill_tail_index(x, k=500) == pytest.approx(alpha, rel=0.15)
    assert hill_tail_index(x, k=0.01) == pytest.approx(alpha, rel=0.12)


def test_hill_tail_index_when_gaussian_is_larger_than_for_heavy_tails() -> None:
    rng = np.random.default_rng(6)
    assert hill_tail_index(rng.standard_normal(20_000)) > hill_tail_index(
        rng.standard_t(3, size=20_000)
    )


def test_hill_tail_index_when_too_few_values_or_bad_k_is_nan_or_raises() -> None:
    assert math.isnan(hill_tail_index([1.0, 2.0], k=5))
    assert math.isnan(hill_tail_index([3.0, 3.0, 3.0], k=2))  # top values tie: ξ = 0
    with pytest.raises(TapecastError):
        hill_tail_index([1.0, 2.0, 3.0], k=1.5)
    with pytest.raises(TapecastError):
        hill_tail_index([1.0, 2.0, 3.0], k=0)


def test_acf_when_compared_with_numpy_hand_computation_matches() -> None:
    x = np.random.default_rng(2).standard_normal(500).cumsum()  # strongly autocorrelated
    np.testing.assert_allclose(acf(x, lags=50), _acf_by_hand(x, 50), rtol=1e-12)


def test_acf_when_compared_with_statsmodels_matches() -> None:
    x = np.random.default_rng(3).standard_normal(400)
    expected = stattools.acf(x, nlags=20, adjusted=False, fft=False)[1:]
    np.testing.assert_allclose(acf(x, lags=20), expected, rtol=1e-10, atol=1e-14)


def test_acf_when_ar1_lag1_is_near_rho_and_beyond_n_is_nan() -> None:
    rng = np.random.default_rng(4)
    e = rng.standard_normal(20_000)
    y = np.empty_like(e)
    y[0] = e[0]
    for t in range(1, y.size):
        y[t] = 0.6 * y[t - 1] + e[t]
    assert acf(y, lags=1)[0] == pytest.approx(0.6, abs=0.03)
    short = acf([1.0, 2.0, 0.0, 3.0], lags=5)
    assert np.isfinite(short[:3]).all() and np.isnan(short[3:]).all()
    assert np.isnan(acf(np.ones(10), lags=3)).all()


def test_abs_acf_when_volatility_clusters_is_positive_while_acf_is_not() -> None:
    rng = np.random.default_rng(5)
    vol = np.repeat(rng.choice([0.5, 3.0], size=200), 50)  # regimes of 50 steps
    x = vol * rng.standard_normal(vol.size)
    np.testing.assert_allclose(abs_acf(x, lags=10), acf(np.abs(x), lags=10))
    assert abs_acf(x, lags=10).min() > 0.2
    assert np.abs(acf(x, lags=10)).max() < 0.05


def test_aggregational_gaussianity_when_iid_student_t_kurtosis_shrinks_with_scale() -> None:
    x = np.random.default_rng(6).standard_t(5, size=100_000)  # excess kurtosis 6
    kurt = aggregational_gaussianity(x, scales=(1, 10, 50))
    assert kurt[0] > 3.0
    assert abs(kurt[2]) < 0.5  # iid sums: 6 / 50 = 0.12
    assert kurt[0] > kurt[1] > kurt[2] - 0.3


def test_aggregational_gaussianity_when_scale_2_sums_pairs() -> None:
    x = np.random.default_rng(7).standard_normal(101)
    pairs = x[:100].reshape(50, 2).sum(axis=1)
    assert aggregational_gaussianity(x, scales=(2,))[0] == pytest.approx(excess_kurtosis(pairs))
    assert np.isnan(aggregational_gaussianity(x[:10], scales=(5,))).all()  # 2 blocks < 4
    with pytest.raises(TapecastError):
        aggregational_gaussianity(x, scales=(0,))


def test_ks_distance_and_wasserstein1_when_compared_with_scipy_match() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal(700), 0.3 + rng.standard_normal(500)
    reference = stats.ks_2samp(a, b)
    assert ks_distance(a, b) == (
        pytest.approx(reference.statistic),
        pytest.approx(reference.pvalue),
    )
    assert wasserstein1(a, b) == pytest.approx(stats.wasserstein_distance(a, b))


def test_ks_distance_and_wasserstein1_when_disjoint_samples_match_hand_values() -> None:
    assert ks_distance([0.0, 1.0], [2.0, 3.0])[0] == 1.0
    assert wasserstein1([0.0, 1.0], [2.0, 3.0]) == pytest.approx(2.0)  # each point moves 2
    assert math.isnan(wasserstein1([], [1.0])) and math.isnan(ks_distance([np.nan], [1.0])[1])


def test_stylized_facts_when_serialized_is_strict_json_with_expected_keys() -> None:
    x = np.random.default_rng(9).standard_t(4, size=2000)
    x[5] = np.nan
    facts = stylized_facts(x)
    json.dumps(facts, allow_nan=False)  # raises on NaN or inf
    assert facts["n"] == 1999 and facts["hill_k"] == 99
    assert len(facts["acf"]) == 50 and len(facts["abs_acf"]) == 50
    assert set(facts["aggregational_kurtosis"]) == {"1", "5", "10", "50"}
    assert facts["excess_kurtosis"] == pytest.approx(excess_kurtosis(x))


def test_stylized_facts_when_series_too_short_reports_none() -> None:
    facts = stylized_facts([0.1, -0.2, 0.3])
    json.dumps(facts, allow_nan=False)
    assert facts["excess_kurtosis"] is None and facts["acf"][5] is None


def test_compare_series_when_identical_distances_are_zero_and_when_shifted_positive() -> None:
    rng = np.random.default_rng(10)
    real = rng.standard_t(4, size=3000)
    same = compare_series(real, real)
    json.dumps(same, allow_nan=False)
    assert same["ks"]["statistic"] == 0.0 and same["wasserstein1"] == 0.0
    assert same["acf_mae"] == 0.0 and same["abs_acf_mae"] == 0.0
    shifted = compare_series(real + 1.0, real)
    assert shifted["wasserstein1"] == pytest.approx(1.0)
    assert shifted["ks"]["p_value"] < 1e-6
    assert shifted["generated"]["n"] == shifted["real"]["n"] == 3000


def test_acf_when_input_not_1d_or_bad_lags_raises() -> None:
    with pytest.raises(TapecastError):
        acf(np.zeros((3, 3)))
    with pytest.raises(TapecastError):
        acf(np.zeros(5), lags=0)


def test_acf_when_many_lags_fft_path_equals_dot_per_lag() -> None:
    x = np.random.default_rng(5).standard_t(3, 300)
    fft = acf(x, lags=400)  # > FFT_LAGS: one FFT; lags >= n are NaN
    np.testing.assert_allclose(fft[:299], _acf_by_hand(x, 299), rtol=1e-9, atol=1e-13)
    assert np.isnan(fft[299:]).all()

"""Randomized PIT, rank coverage and PIT statistics (src/tapecast/evaluate/calibration.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.evaluate import calibration

LEVELS = (0.5, 0.8, 0.9, 0.95)


def _calibrated(
    n_samples: int, seed: int, n_origins: int = 5000, spread: float = 1.0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Samples (B, S, 2, 2) and realized (B, 2, 2) drawn from the same per-origin Gaussian.

    ``spread`` scales the forecast's std against the truth's (1 = calibrated, < 1 over-confident).
    """
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 3.0, size=(n_origins, 1, 2, 2))  # each origin its own law
    sigma = np.exp(rng.normal(0.0, 0.5, size=(n_origins, 1, 2, 2)))
    samples = mu + spread * sigma * rng.standard_normal((n_origins, n_samples, 2, 2))
    realized = (mu + sigma * rng.standard_normal((n_origins, 1, 2, 2)))[:, 0]
    return samples, realized


def _tolerance(level: float, n: int) -> float:
    """Four binomial standard errors of a coverage estimated from n independent entries."""
    return 4 * math.sqrt(level * (1 - level) / n)


@pytest.mark.parametrize("n_samples", [8, 32, 128])
def test_rank_coverage_when_forecast_is_calibrated_is_nominal_at_any_ensemble_size(
    n_samples: int,
) -> None:
    samples, realized = _calibrated(n_samples, seed=n_samples)
    pit = calibration.randomized_pit(samples, realized, np.random.default_rng(1))
    for level in LEVELS:
        coverage = calibration.rank_coverage(pit, level).mean()
        assert abs(coverage - level) < _tolerance(level, pit.size), (n_samples, level, coverage)


def test_quantile_interval_coverage_when_calibrated_with_32_samples_is_below_nominal() -> None:
    samples, realized = _calibrated(32, seed=7)
    covered, width = calibration.quantile_interval_coverage(samples, realized, 0.9)
    pit = calibration.randomized_pit(samples, realized, np.random.default_rng(2))
    rank = calibration.rank_coverage(pit, 0.9).mean()
    # order statistics 2.55 and 30.45 of 32 (linear interpolation): (30.45 - 2.55) / 33 ≈ 0.845
    assert 0.825 < covered.mean() < 0.865
    assert abs(rank - 0.9) < _tolerance(0.9, pit.size)
    lo, hi = np.quantile(samples, [0.05, 0.95], axis=1)
    np.testing.assert_allclose(width, hi - lo)
    assert (width > 0).all()


def test_randomized_pit_when_samples_tie_with_realized_is_still_uniform() -> None:
    rng = np.random.default_rng(3)
    samples = rng.poisson(1.5, size=(20_000, 8, 1, 1)).astype(np.float64)  # many ties
    realized = rng.poisson(1.5, size=(20_000, 1, 1)).astype(np.float64)
    pit = calibration.randomized_pit(samples, realized, np.random.default_rng(4))
    for level in LEVELS:
        coverage = calibration.rank_coverage(pit, level).mean()
        assert abs(coverage - level) < _tolerance(level, pit.size), (level, coverage)
    mask = np.ones(pit.shape, dtype=bool)
    assert calibration.pit_uniformity(pit, mask)["ks_pvalue"] > 1e-3
    covered, _ = calibration.quantile_interval_coverage(samples, realized, 0.5)
    assert abs(covered.mean() - 0.5) > 0.05  # closed quantile intervals over-cover with ties


def test_randomized_pit_when_float32_lattice_samples_ties_at_their_precision() -> None:
    """A correct forecast on a price lattice, samples in float32 as Samples stores them, the
    realized return computed another way (log of a price ratio): still uniform."""
    rng = np.random.default_rng(0)
    b, s, price, step = 4000, 256, 47.31, 0.005
    k_true = rng.integers(-3, 4, size=b)  # (B,)
    k_samples = rng.integers(-3, 4, size=(b, s))  # same law
    realized = np.log((price + k_true * step) / price)[:, None, None]  # (B, 1, 1) float64
    samples = np.log1p(k_samples * step / price).astype(np.float32)[:, :, None, None]
    pit = calibration.randomized_pit(samples, realized, np.random.default_rng(1))
    assert calibration.pit_uniformity(pit, np.ones_like(pit, dtype=bool))["chi2_pvalue"] > 0.01
    assert abs(calibration.rank_coverage(pit, 0.9).mean() - 0.9) < 0.015


def test_randomized_pit_when_hand_example_equals_formula() -> None:
    samples = np.array([1.0, 2.0, 2.0, 3.0]).reshape(1, 4, 1, 1)
    realized = np.array([2.0, 2.5]).reshape(1, 1, 2)
    samples = samples.repeat(2, axis=3)
    pit = calibration.randomized_pit(samples, realized, np.random.default_rng(5))
    u = 1.0 - np.random.default_rng(5).random((1, 1, 2))
    # y = 2: r = 1 below, e = 2 ties -> (1 + 3u) / 5; y = 2.5: r = 3, e = 0 -> (3 + u) / 5
    np.testing.assert_allclose(pit[0, 0], [(1 + 3 * u[0, 0, 0]) / 5, (3 + u[0, 0, 1]) / 5])


def test_randomized_pit_when_realized_is_nan_gives_nan_and_no_coverage() -> None:
    samples, realized = _calibrated(8, seed=6, n_origins=3)
    realized[1, 0, 1] = np.nan
    pit = calibration.randomized_pit(samples, realized, np.random.default_rng(0))
    assert np.isnan(pit[1, 0, 1])
    assert np.isfinite(pit).sum() == pit.size - 1
    assert ((pit[np.isfinite(pit)] > 0) & (pit[np.isfinite(pit)] <= 1)).all()
    assert not calibration.rank_coverage(pit, 0.9)[1, 0, 1]


def test_rank_coverage_when_pit_is_on_a_bound_uses_half_open_interval() -> None:
    pit = np.array([0.25, 0.2500001, 0.75, 0.7500001])  # bounds of the 50 % interval, exact
    np.testing.assert_array_equal(calibration.rank_coverage(pit, 0.5), [False, True, True, False])


def test_pit_uniformity_when_calibrated_is_not_rejected_and_overconfident_is() -> None:
    samples, realized = _calibrated(32, seed=8)
    mask = np.ones(realized.shape, dtype=bool)
    good = calibration.randomized_pit(samples, realized, np.random.default_rng(9))
    stats_good = calibration.pit_uniformity(good, mask)
    assert stats_good["n"] == realized.size
    assert stats_good["chi2_pvalue"] > 0.01
    assert stats_good["ks_pvalue"] > 0.01
    samples_narrow, realized_narrow = _calibrated(32, seed=8, spread=0.5)
    narrow = calibration.randomized_pit(samples_narrow, realized_narrow, np.random.default_rng(9))
    stats_narrow = calibration.pit_uniformity(narrow, mask)
    assert stats_narrow["chi2_pvalue"] < 1e-10
    assert stats_narrow["ks_pvalue"] < 1e-10
    counts = calibration.pit_histogram(narrow, mask)
    assert min(counts[0], counts[-1]) > 2 * counts[4:6].max()  # the U shape of over-confidence


def test_pit_histogram_when_masked_or_nan_counts_only_scored_entries() -> None:
    pit = np.array([[0.05, 0.15, np.nan], [0.95, 1.0, 0.55]])
    mask = np.array([[True, True, True], [True, True, False]])
    counts = calibration.pit_histogram(pit, mask, bins=10)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, [1, 1, 0, 0, 0, 0, 0, 0, 0, 2])


def test_pit_uniformity_when_nothing_is_scored_returns_nan() -> None:
    out = calibration.pit_uniformity(np.full((2, 1, 1), 0.5), np.zeros((2, 1, 1), dtype=bool))
    assert out["n"] == 0
    assert math.isnan(out["chi2_pvalue"])
    assert math.isnan(out["ks"])


def test_reliability_when_calibrated_follows_the_diagonal() -> None:
    samples, realized = _calibrated(16, seed=10)
    mask = np.ones(realized.shape, dtype=bool)
    pit = calibration.randomized_pit(samples, realized, np.random.default_rng(11))
    taus = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    observed = calibration.reliability(pit, mask, taus)
    np.testing.assert_allclose(observed, taus, atol=0.02)
    central = calibration.reliability(pit, mask, LEVELS, kind="central")
    expected = [calibration.rank_coverage(pit, level).mean() for level in LEVELS]
    np.testing.assert_allclose(central, expected)


def test_reliability_when_overconfident_departs_from_the_diagonal() -> None:
    samples, realized = _calibrated(16, seed=12, spread=0.5)
    mask = np.ones(realized.shape, dtype=bool)
    pit = calibration.randomized_pit(samples, realized, np.random.default_rng(13))
    central = calibration.reliability(pit, mask, (0.5, 0.9), kind="central")
    assert (central < np.array([0.5, 0.9]) - 0.15).all()


def test_calibration_when_arguments_are_invalid_raises_tapecast_error() -> None:
    pit = np.full((2, 1, 1), 0.5)
    with pytest.raises(TapecastError, match="level"):
        calibration.rank_coverage(pit, 90)
    with pytest.raises(TapecastError, match="mask"):
        calibration.pit_histogram(pit, np.ones((2, 1), dtype=bool))
    with pytest.raises(TapecastError, match="bin"):
        calibration.pit_histogram(pit, np.ones((2, 1, 1), dtype=bool), bins=0)
    with pytest.raises(TapecastError, match="kind"):
        calibration.reliability(pit, np.ones((2, 1, 1), dtype=bool), kind="pit")  # type: ignore[arg-type]

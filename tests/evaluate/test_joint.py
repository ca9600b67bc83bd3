"""Pooled covariance/correlation errors and sample diversity (src/tapecast/evaluate/joint.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.evaluate import joint

SIGMA = np.array([[1.0, 0.8, -0.4], [0.8, 1.0, -0.2], [-0.4, -0.2, 1.0]])


def _shared_law(
    seed: int, independent_forecast: bool = False, n_origins: int = 2000, n_samples: int = 20
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Forecast and realized with one joint law per origin: mean mu_b + correlated noise.

    With ``independent_forecast`` the samples keep the marginals but lose the noise correlation.
    Shapes: samples (B, S, 3, 4), realized (B, 3, 4), mask all True.
    """
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(SIGMA)
    horizon = 4
    mu = rng.normal(0.0, 0.5, size=(n_origins, 1, 3, 1))  # (B, 1, K, 1), independent channels
    noise_real = np.einsum("kl,blh->bkh", chol, rng.standard_normal((n_origins, 3, horizon)))
    realized = mu[:, 0] + noise_real
    raw = rng.standard_normal((n_origins, n_samples, 3, horizon))
    noise_fc = raw if independent_forecast else np.einsum("kl,bslh->bskh", chol, raw)
    samples = mu + noise_fc
    return samples, realized, np.ones(realized.shape, dtype=bool)


def _pooled(
    samples: NDArray[np.float64], realized: NDArray[np.float64], scored: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Reference pooled (forecast, realized) rows over scored (window, step) pairs."""
    k = realized.shape[1]
    y = np.moveaxis(realized, 1, 2)[scored]  # (N, K)
    x = np.moveaxis(samples, 3, 1)[scored].reshape(-1, k)  # (N*S, K)
    return x, y


def test_cov_rel_error_when_forecast_shares_the_joint_law_is_near_zero() -> None:
    samples, realized, mask = _shared_law(0)
    assert joint.cov_rel_error(samples, realized, mask, 0, 1) < 0.05
    assert joint.cov_rel_error(samples, realized, mask, 0, 2) < 0.12  # smaller covariance
    assert joint.cov_rel_error(samples, realized, mask, 1, 1) < 0.05  # a variance


def test_cov_rel_error_when_forecast_channels_are_independent_is_large() -> None:
    samples, realized, mask = _shared_law(1, independent_forecast=True)
    # forecast covariance is ~0 (means independent across channels): relative error ~1
    assert joint.cov_rel_error(samples, realized, mask, 0, 1) > 0.9


def test_cov_rel_error_when_compared_with_numpy_pooled_covariance_agrees() -> None:
    samples, realized, mask = _shared_law(2, n_origins=50, n_samples=7)
    rng = np.random.default_rng(3)
    mask = rng.random(mask.shape) > 0.2
    realized = np.where(mask, realized, 1e9)  # unscored values must not matter
    scored = mask[:, 0] & mask[:, 2]  # (B, H)
    x, y = _pooled(samples[:, :, [0, 2]], realized[:, [0, 2]], scored)
    cov_fc = np.cov(x.T, bias=True)[0, 1]
    cov_real = np.cov(y.T, bias=True)[0, 1]
    expected = abs(cov_fc - cov_real) / abs(cov_real)
    assert joint.cov_rel_error(samples, realized, mask, 0, 2) == pytest.approx(expected, rel=1e-10)


def test_corr_frobenius_rel_error_when_shared_law_is_small_and_independent_is_large() -> None:
    shared = joint.corr_frobenius_rel_error(*_shared_law(4))
    independent = joint.corr_frobenius_rel_error(*_shared_law(4, independent_forecast=True))
    assert shared < 0.03
    assert independent > 0.4


def test_corr_frobenius_rel_error_when_masked_uses_fully_observed_pairs_only() -> None:
    samples, realized, mask = _shared_law(5, n_origins=60, n_samples=5)
    rng = np.random.default_rng(6)
    mask = rng.random(mask.shape) > 0.15
    realized = np.where(mask, realized, np.nan)
    x, y = _pooled(samples, realized, mask.all(axis=1))
    c_fc, c_real = np.corrcoef(x.T), np.corrcoef(y.T)
    expected = np.linalg.norm(c_fc - c_real) / np.linalg.norm(c_real)
    got = joint.corr_frobenius_rel_error(samples, realized, mask)
    assert got == pytest.approx(expected, rel=1e-10)


def test_joint_errors_when_realized_covariance_is_zero_return_nan() -> None:
    samples, realized, mask = _shared_law(7, n_origins=30, n_samples=4)
    realized[:, 1] = 2.0  # a constant channel: zero covariance with everything
    assert math.isnan(joint.cov_rel_error(samples, realized, mask, 0, 1))
    assert math.isnan(joint.corr_frobenius_rel_error(samples, realized, mask))
    mask[:] = False
    assert math.isnan(joint.cov_rel_error(samples, realized, mask, 0, 2))


def test_cov_rel_error_when_channel_is_out_of_range_raises_tapecast_error() -> None:
    samples, realized, mask = _shared_law(8, n_origins=5, n_samples=2)
    with pytest.raises(TapecastError, match="channel indices"):
        joint.cov_rel_error(samples, realized, mask, 0, 3)


def test_diversity_ratio_when_hand_example_equals_definition() -> None:
    # window 0: samples 0, 2 (mean 1, std √2); window 1: samples 1, 3 (mean 2, std √2)
    samples = np.array([[0.0, 2.0], [1.0, 3.0]]).reshape(2, 2, 1, 1)
    # within = √2; across = std([1, 2], ddof=1) = 1/√2 -> ratio 2
    assert joint.diversity_ratio(samples)[0] == pytest.approx(2.0)


def test_diversity_ratio_when_samples_are_wide_and_means_still_is_above_one() -> None:
    rng = np.random.default_rng(9)
    mu = rng.normal(0.0, 0.1, size=(500, 1, 2, 3))
    wide = mu + rng.standard_normal((500, 32, 2, 3))
    ratio = joint.diversity_ratio(wide)
    assert ratio.shape == (2,)
    # about 1 / sqrt(0.1² + 1/32) = 4.9 (the mean's Monte Carlo noise caps it near sqrt(S))
    assert (ratio > 3).all()


def test_diversity_ratio_when_samples_collapse_on_a_moving_mean_is_below_one() -> None:
    rng = np.random.default_rng(10)
    mu = rng.normal(0.0, 1.0, size=(500, 1, 2, 3))
    collapsed = mu + 0.01 * rng.standard_normal((500, 32, 2, 3))
    assert (joint.diversity_ratio(collapsed) < 0.05).all()


def test_diversity_ratio_when_masked_ignores_unused_windows() -> None:
    rng = np.random.default_rng(11)
    samples = rng.standard_normal((40, 8, 2, 2))
    mask = np.ones((40, 2, 2), dtype=bool)
    mask[:10, 0] = False
    corrupted = samples.copy()
    corrupted[:10, :, 0] = np.where(rng.random((10, 8, 2)) > 0.5, np.nan, 1e6)
    got = joint.diversity_ratio(corrupted, mask)
    assert got[0] == pytest.approx(joint.diversity_ratio(samples[10:])[0], rel=1e-12)
    assert got[1] == pytest.approx(joint.diversity_ratio(samples)[1], rel=1e-12)


def test_diversity_ratio_when_undefined_returns_nan() -> None:
    same = np.tile(np.array([0.0, 1.0, 2.0]).reshape(1, 3, 1, 1), (5, 1, 1, 2))
    assert np.isnan(joint.diversity_ratio(same)).all()  # constant mean across windows
    assert np.isnan(joint.diversity_ratio(np.zeros((5, 1, 1, 2)))).all()  # one sample

"""Scores against scoringrules, properscoring and closed forms (src/tapecast/evaluate/scores.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import properscoring as ps
import pytest
import scoringrules as sr
from numpy.typing import NDArray
from scipy import stats

from tapecast.core.errors import TapecastError
from tapecast.evaluate import scores

B, S, K, H = 12, 9, 3, 4


def _draw(seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Samples (B, S, K, H), realized (B, K, H) and a random mask with ~30 % left out."""
    rng = np.random.default_rng(seed)
    samples = rng.normal(3.0, 2.0, size=(B, S, K, H))
    realized = rng.normal(3.0, 2.0, size=(B, K, H))
    mask = rng.random((B, K, H)) > 0.3
    return samples, realized, mask


def _gaussian_crps(mu: float, sigma: float, y: NDArray[np.float64]) -> NDArray[np.float64]:
    """CRPS of N(mu, sigma²) at y, the closed form of Gneiting et al. (2005)."""
    z = (y - mu) / sigma
    cdf, pdf = stats.norm.cdf(z), stats.norm.pdf(z)
    return sigma * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def test_crps_ensemble_when_fair_matches_scoringrules_exactly() -> None:
    samples, realized, _ = _draw()
    ours = scores.crps_ensemble(samples, realized)
    ref = sr.crps_ensemble(realized, np.moveaxis(samples, 1, -1), estimator="fair", backend="numba")
    assert ours.shape == (B, K, H)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_crps_ensemble_when_nrg_matches_properscoring() -> None:
    samples, realized, _ = _draw(1)
    ours = scores.crps_ensemble(samples, realized, estimator="nrg")
    ref = ps.crps_ensemble(realized, samples, axis=1)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_crps_ensemble_when_fair_differs_from_nrg_by_the_spread_correction() -> None:
    samples, realized, _ = _draw(2)
    fair = scores.crps_ensemble(samples, realized)
    nrg = scores.crps_ensemble(samples, realized, estimator="nrg")
    # fair - nrg = E|X-X'|_nrg / 2 - E|X-X'|_fair / 2 = -mean_{i,j}|x_i - x_j| / (2 (S - 1))
    pair_mean = np.abs(samples[:, :, None] - samples[:, None]).mean(axis=(1, 2))  # (B, K, H)
    np.testing.assert_allclose(fair - nrg, -pair_mean / (2 * (S - 1)), atol=1e-12)


@pytest.mark.parametrize(
    ("y", "fair", "nrg"),
    [(0.5, 0.0, 0.5), (3.0, 1.0, 1.5), (0.0, 0.0, 0.5)],
)
def test_crps_ensemble_when_two_members_equals_hand_computation(
    y: float, fair: float, nrg: float
) -> None:
    # members 0 and 2: E|X - y| averages two distances; sum_{i,j}|x_i - x_j| = 4
    samples = np.array([0.0, 2.0]).reshape(1, 2, 1, 1)
    realized = np.array([[[y]]])
    assert scores.crps_ensemble(samples, realized)[0, 0, 0] == pytest.approx(fair, abs=1e-12)
    got_nrg = scores.crps_ensemble(samples, realized, estimator="nrg")[0, 0, 0]
    assert got_nrg == pytest.approx(nrg, abs=1e-12)


def test_crps_ensemble_when_gaussian_ensemble_is_large_matches_closed_form() -> None:
    rng = np.random.default_rng(3)
    n_samples, mu, sigma = 10_000, 1.0, 2.0
    ys = np.array([-3.0, 1.0, 6.0])
    samples = rng.normal(mu, sigma, size=(1, n_samples, 1, 1)).repeat(ys.size, axis=2)
    closed = _gaussian_crps(mu, sigma, ys)
    np.testing.assert_allclose(closed, sr.crps_normal(ys, mu, sigma), atol=1e-6)
    ours = scores.crps_ensemble(samples, ys.reshape(1, -1, 1))[0, :, 0]
    # Monte Carlo error of E|X - y| is below sigma / sqrt(S) = 0.02
    np.testing.assert_allclose(ours, closed, atol=0.06)


def test_crps_ensemble_when_many_small_gaussian_ensembles_fair_is_unbiased() -> None:
    rng = np.random.default_rng(16)
    n_origins, n_samples, mu, sigma, y = 20_000, 8, 0.0, 2.0, 1.0
    samples = rng.normal(mu, sigma, size=(n_origins, n_samples, 1, 1))
    realized = np.full((n_origins, 1, 1), y)
    closed = float(_gaussian_crps(mu, sigma, np.array([y]))[0])
    fair = scores.crps_ensemble(samples, realized).mean()
    nrg = scores.crps_ensemble(samples, realized, estimator="nrg").mean()
    # fair: unbiased (standard error about 0.006); nrg: high by E|X - X'| / (2 S) = 0.141
    assert fair == pytest.approx(closed, abs=0.025)
    assert nrg - closed == pytest.approx(sigma / (n_samples * math.sqrt(math.pi)), abs=0.025)


def test_crps_ensemble_when_realized_is_nan_gives_nan() -> None:
    samples, realized, _ = _draw(4)
    realized[0, 1, 2] = np.nan
    out = scores.crps_ensemble(samples, realized)
    assert np.isnan(out[0, 1, 2])
    assert np.isfinite(np.delete(out.ravel(), np.ravel_multi_index((0, 1, 2), out.shape))).all()


@pytest.mark.parametrize("estimator", ["fair", "nrg"])
def test_energy_score_when_fully_observed_matches_scoringrules(estimator: str) -> None:
    samples, realized, _ = _draw(5)
    mask = np.ones((B, K, H), dtype=bool)
    ours = scores.energy_score(samples, realized, mask, estimator=estimator)  # type: ignore[arg-type]
    ref = sr.es_ensemble(
        realized.reshape(B, -1), samples.reshape(B, S, -1), estimator=estimator, backend="numba"
    )
    assert ours.shape == (B,)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


def test_energy_score_when_masked_equals_score_over_scored_entries_only() -> None:
    samples, realized, mask = _draw(6)
    mask[0] = False
    realized = np.where(mask, realized, np.nan)  # masked realized values may be missing
    ours = scores.energy_score(samples, realized, mask)
    assert np.isnan(ours[0])
    for b in range(1, B):
        keep = mask[b].ravel()
        ref = sr.es_ensemble(
            realized[b].ravel()[keep], samples[b].reshape(S, -1)[:, keep], estimator="fair"
        )
        assert ours[b] == pytest.approx(float(ref), rel=1e-12)


def test_energy_score_when_one_dimensional_equals_fair_crps() -> None:
    samples, realized, _ = _draw(7)
    one = samples[:, :, :1, :1], realized[:, :1, :1]
    es = scores.energy_score(*one, np.ones((B, 1, 1), dtype=bool))
    np.testing.assert_allclose(es, scores.crps_ensemble(*one)[:, 0, 0], atol=1e-12)


def test_energy_score_per_step_when_masked_matches_scoringrules_per_step() -> None:
    samples, realized, mask = _draw(8)
    mask[1, :, 2] = False
    ours = scores.energy_score_per_step(samples, realized, mask)
    assert ours.shape == (B, H)
    assert np.isnan(ours[1, 2])
    xz = np.where(mask[:, None], samples, 0.0)
    yz = np.where(mask, realized, 0.0)
    ref = sr.es_ensemble(
        np.moveaxis(yz, 2, 1), np.moveaxis(xz, 3, 1), estimator="fair", backend="numba"
    )
    expected = np.where(mask.any(axis=1), ref, np.nan)  # steps with no scored channel: NaN
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [0.5, 1.0, 1.7])
def test_variogram_score_when_masked_matches_scoringrules_with_pair_weights(p: float) -> None:
    samples, realized, mask = _draw(9)
    ours = scores.variogram_score(samples, realized, mask, p=p)
    w = mask.reshape(B, -1).astype(np.float64)
    weights = w[:, :, None] * w[:, None, :]  # (B, D, D): 1 where both entries are scored
    ref = sr.vs_ensemble(
        realized.reshape(B, -1), samples.reshape(B, S, -1), w=weights, p=p, backend="numba"
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-9)


def test_variogram_score_when_fully_observed_matches_scoringrules_default_weights() -> None:
    samples, realized, _ = _draw(10)
    ours = scores.variogram_score(samples, realized, np.ones((B, K, H), dtype=bool))
    ref = sr.vs_ensemble(realized.reshape(B, -1), samples.reshape(B, S, -1), backend="numba")
    np.testing.assert_allclose(ours, ref, rtol=1e-9)


def test_variogram_score_when_forecast_has_the_true_correlation_is_lower() -> None:
    rng = np.random.default_rng(11)
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    n, n_samples = 400, 50
    realized = rng.multivariate_normal([0, 0], cov, size=n).reshape(n, 2, 1)
    right = rng.multivariate_normal([0, 0], cov, size=(n, n_samples)).reshape(n, n_samples, 2, 1)
    independent = rng.normal(size=(n, n_samples, 2, 1))
    mask = np.ones((n, 2, 1), dtype=bool)
    vs_right = scores.variogram_score(right, realized, mask).mean()
    vs_indep = scores.variogram_score(independent, realized, mask).mean()
    es_right = scores.energy_score(right, realized, mask).mean()
    es_indep = scores.energy_score(independent, realized, mask).mean()
    assert vs_right < 0.7 * vs_indep
    assert es_right < es_indep


def test_pinball_loss_when_compared_with_scoringrules_quantile_score_agrees() -> None:
    samples, realized, _ = _draw(12)
    taus = [0.05, 0.5, 0.9]
    ours = scores.pinball_loss(samples, realized, taus)
    q = np.quantile(samples, taus, axis=1)
    ref = np.stack([sr.quantile_score(realized, q[i], tau) for i, tau in enumerate(taus)])
    assert ours.shape == (3, B, K, H)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_pinball_loss_when_hand_example_gives_textbook_values() -> None:
    samples = np.array([1.0, 2.0, 3.0, 4.0, 5.0]).reshape(1, 5, 1, 1)  # median 3
    below, above = np.array([[[1.0]]]), np.array([[[7.0]]])
    assert scores.pinball_loss(samples, below, [0.5])[0, 0, 0, 0] == pytest.approx(1.0)
    assert scores.pinball_loss(samples, above, [0.5])[0, 0, 0, 0] == pytest.approx(2.0)
    # τ = 0.25 quantile is 2: y = 1 lies below -> (1 - τ)(q - y) = 0.75
    assert scores.pinball_loss(samples, below, [0.25])[0, 0, 0, 0] == pytest.approx(0.75)


def test_pinball_loss_when_averaged_over_dense_levels_approaches_half_crps() -> None:
    samples, realized, _ = _draw(13)
    taus = np.linspace(0.0005, 0.9995, 1000)
    twice_mean_pinball = 2 * scores.pinball_loss(samples, realized, taus).mean(axis=0)
    nrg = scores.crps_ensemble(samples, realized, estimator="nrg")
    # quantile averaging of the interpolated quantiles approximates the empirical CRPS
    assert np.abs(twice_mean_pinball - nrg).mean() < 0.1 * nrg.mean()


def test_scores_when_shapes_disagree_raise_tapecast_error() -> None:
    samples, realized, mask = _draw(14)
    with pytest.raises(TapecastError, match="realized must have shape"):
        scores.crps_ensemble(samples, realized[:, :, :-1])
    with pytest.raises(TapecastError, match="mask must have"):
        scores.energy_score(samples, realized, mask[:-1])
    with pytest.raises(TapecastError, match="samples must have shape"):
        scores.variogram_score(samples[0], realized, mask)


def test_scores_when_options_are_invalid_raise_tapecast_error() -> None:
    samples, realized, mask = _draw(15)
    with pytest.raises(TapecastError, match="estimator"):
        scores.crps_ensemble(samples, realized, estimator="pwm")  # type: ignore[arg-type]
    with pytest.raises(TapecastError, match="at least 2 samples"):
        scores.crps_ensemble(samples[:, :1], realized)
    with pytest.raises(TapecastError, match="order p"):
        scores.variogram_score(samples, realized, mask, p=0.0)
    with pytest.raises(TapecastError, match="quantile levels"):
        scores.pinball_loss(samples, realized, [0.0, 0.5])


def _crps_by_integration(x: np.ndarray, y: float) -> float:
    """∫ (F_m(z) - 1{y <= z})² dz for the empirical CDF F_m of ensemble x, integrated exactly
    over the pieces between consecutive sorted points of x and y (the integrand is constant on
    each piece and 0 outside [min, max])."""
    points = np.sort(np.append(x, y))
    total = 0.0
    for lo, hi in itertools.pairwise(points):
        z = 0.5 * (lo + hi)
        cdf = np.mean(x <= z)
        total += (cdf - float(y <= z)) ** 2 * (hi - lo)
    return total


def test_crps_ensemble_when_compared_with_exact_integral_agrees_to_1e_12() -> None:
    rng = np.random.default_rng(12)
    for m in (2, 5, 17):
        x = rng.standard_t(3, size=m)
        for y in (-2.5, 0.1, x[0], 4.0):
            exact = _crps_by_integration(x, float(y))
            nrg = scores.crps_ensemble(x[None, :, None, None], np.array(y).reshape(1, 1, 1),
                                estimator="nrg")
            assert abs(float(nrg.squeeze()) - exact) < 1e-12
            # the fair estimator removes the ensemble-spread bias: nrg - E|X-X'| / (2m(m-1)) * m
            spread = np.abs(x[:, None] - x[None, :]).sum()
            fair_by_hand = np.abs(x - y).mean() - spread / (2 * m * (m - 1))
            fair = scores.crps_ensemble(x[None, :, None, None], np.array(y).reshape(1, 1, 1))
            assert abs(float(fair.squeeze()) - fair_by_hand) < 1e-12

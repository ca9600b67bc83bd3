"""VAR(1): coefficient recovery, within-session fitting, paths from the last context value."""

from __future__ import annotations

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.models import get_baseline
from tapecast.models.baselines.var import VAR1, fit_var1
from tests.models.batches import batch_from_series, sessions_batch

A_TRUE = np.array([[0.5, 0.2, 0.0],
                   [-0.1, 0.3, 0.2],
                   [0.1, 0.0, 0.6]])
C_TRUE = np.array([0.1, -0.2, 0.3])
CHOL = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [0.0, 0.3, 0.5]])


def simulate_var1(rng: np.random.Generator, n: int, offset: float = 0.0) -> np.ndarray:
    """n steps of the VAR(1) above (plus ``offset``), shape (n, 3)."""
    x = np.zeros((n, 3))
    for t in range(1, n):
        x[t] = C_TRUE + A_TRUE @ x[t - 1] + CHOL @ rng.standard_normal(3)
    return x + offset


def test_var_when_fitted_on_simulated_var1_recovers_coefficients() -> None:
    series = simulate_var1(np.random.default_rng(0), 6000)
    train = batch_from_series(series, 20, 5, stride=3)
    forecaster = get_baseline("var").fit(train)
    assert isinstance(forecaster, VAR1)
    params = forecaster.params_for("SPY")
    assert np.abs(params.A - A_TRUE).max() < 0.05
    assert np.abs(params.c - C_TRUE).max() < 0.08
    assert np.abs(params.Sigma - CHOL @ CHOL.T).max() < 0.08
    assert forecaster.spectral_radius < 1.0


def test_var_when_contexts_cross_sessions_fits_within_session_transitions_only() -> None:
    rng = np.random.default_rng(1)
    series = [simulate_var1(rng, 400, offset=20.0 * s) for s in range(3)]
    fitted = get_baseline("var").fit(sessions_batch(series, 20, 5)).params_for("SPY")
    # horizon transitions: t >= C = 20 within the first session, every t in the later ones
    parts = [series[0][20:], *series[1:]]
    within = fit_var1(np.concatenate([np.stack([x[:-1], x[1:]], axis=1) for x in parts]))
    whole = np.concatenate(series)
    across = fit_var1(np.stack([whole[:-1], whole[1:]], axis=1))  # includes the 2 jumps
    assert fitted.n_transitions == 379 + 2 * 399
    assert np.allclose(fitted.A, within.A) and np.allclose(fitted.Sigma, within.Sigma)
    assert not np.allclose(fitted.Sigma, across.Sigma, rtol=0.05)


def test_var_when_noise_is_small_follows_the_recursion_from_last_context_value() -> None:
    rng = np.random.default_rng(2)
    train_series = simulate_var1(rng, 3000)
    forecaster = get_baseline("var").fit(batch_from_series(train_series, 20, 5, stride=5))
    test = batch_from_series(simulate_var1(rng, 60), 20, 5, stride=10, first_id=9000)
    mean = forecaster.sample(test, 4000, seed=0).values.mean(axis=1)  # (B, K, H)
    p = forecaster.params_for("SPY")
    x = test.context[:, :, -1]  # (B, K)
    for step in range(5):
        x = p.c + x @ p.A.T
        assert np.allclose(mean[:, :, step], x, atol=0.1)


def test_fit_var1_when_too_few_transitions_raises() -> None:
    with pytest.raises(TapecastError, match="need at least 5"):
        fit_var1(np.zeros((4, 2, 3)))


def test_var_when_horizon_is_one_has_no_transitions_and_says_so() -> None:
    batch = batch_from_series(simulate_var1(np.random.default_rng(3), 50), 20, 1)
    with pytest.raises(TapecastError, match="0 complete training transitions"):
        get_baseline("var").fit(batch)

"""GARCH(1,1)-t: sensible conditional variance on a simulated GARCH series; graceful fallbacks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from arch.univariate import ConstantMean
from arch.utility.exceptions import ConvergenceWarning

from tapecast.models import get_baseline
from tapecast.models.baselines.garch import Garch
from tests.models.batches import batch_from_series

OMEGA, ALPHA, BETA, NU = 0.05, 0.12, 0.85, 6.0
SCALE = 1e-4  # like per-window log returns


def simulate_garch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1)-t returns (n,) and the conditional variance of the step after each, (n,)."""
    y, next_var = np.empty(n), np.empty(n)
    var = OMEGA / (1 - ALPHA - BETA)
    for t in range(n):
        y[t] = np.sqrt(var) * rng.standard_t(NU) * np.sqrt((NU - 2) / NU)
        var = OMEGA + ALPHA * y[t] ** 2 + BETA * var
        next_var[t] = var
    return y * SCALE, next_var * SCALE**2


def test_garch_when_series_is_garch_tracks_the_conditional_variance() -> None:
    context = 300
    y, next_var = simulate_garch(np.random.default_rng(0), 4000)
    batch = batch_from_series(y[:, None], context, 5, stride=300, channels=("log_ret",))
    forecaster = get_baseline("garch").fit(batch)
    garch_var = forecaster.sample(batch, 4000, seed=0).values[:, :, 0, 0].astype(float).var(1)
    hist_var = get_baseline("hist-vol").fit(batch).sample(batch, 4000, seed=0).values[
        :, :, 0, 0].astype(float).var(1)
    true_var = next_var[np.arange(batch.size) * 300 + context - 1]  # sigma^2_{T+1}
    garch_err = np.abs(np.log(garch_var / true_var))
    hist_err = np.abs(np.log(hist_var / true_var))
    assert forecaster.fallback_counts["log_ret"] == 0
    assert np.median(garch_err) < np.log(1.6)
    assert garch_err.mean() < hist_err.mean()  # the conditional variance beats the flat one
    assert np.corrcoef(np.log(garch_var), np.log(true_var))[0, 1] > 0.6


def test_garch_when_channel_constant_or_short_falls_back_and_counts() -> None:
    rng = np.random.default_rng(1)
    series = np.column_stack([np.full(112, 0.5), rng.standard_normal(112)])
    series[:90, 1] = np.nan  # 10 to 12 defined context values: below min_points
    batch = batch_from_series(series, 100, 10, channels=("imb_a0", "log_ret"))  # 3 origins
    forecaster = get_baseline("garch").fit(batch)
    values = forecaster.sample(batch, 16, seed=0).values
    # the 3 constant contexts are one distinct series, counted once
    assert forecaster.fallback_counts == {"imb_a0": 1, "log_ret": 3}
    assert forecaster.fit_counts == {"imb_a0": 1, "log_ret": 3}
    assert np.all(values[:, :, 0] == 0.5)  # constant context: zero-variance Gaussian


@pytest.mark.parametrize("failure", ["warning", "exception"])
def test_garch_when_arch_fit_fails_falls_back_to_hist_vol(failure: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    original = ConstantMean.fit

    def failing_fit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if failure == "exception":
            raise ValueError("optimizer blew up")
        warnings.warn("did not converge", ConvergenceWarning, stacklevel=1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ConstantMean, "fit", failing_fit)
    y, _ = simulate_garch(np.random.default_rng(2), 230)
    batch = batch_from_series(y[:, None], 100, 10, stride=20, channels=("log_ret",))
    forecaster = get_baseline("garch").fit(batch)
    assert isinstance(forecaster, Garch)
    values = forecaster.sample(batch, 4000, seed=0).values.astype(float)
    assert forecaster.fallback_counts == {"log_ret": batch.size}
    assert np.allclose(values.std(axis=(1, 3))[:, 0], batch.context[:, 0].std(axis=1, ddof=1),
                       rtol=0.05)


def test_garch_when_same_origins_sampled_again_reuses_cached_fits() -> None:
    y, _ = simulate_garch(np.random.default_rng(3), 130)
    batch = batch_from_series(y[:, None], 100, 10, stride=10, channels=("log_ret",))
    cached = get_baseline("garch").fit(batch)
    first = cached.sample(batch, 8, seed=0).values
    again = cached.sample(batch, 8, seed=0).values
    cached.sample(batch, 8, seed=1)
    assert cached.fit_counts == {"log_ret": batch.size}  # each distinct series fitted once
    uncached = get_baseline("garch", cache_fits=False).fit(batch)
    fresh = uncached.sample(batch, 8, seed=0).values
    uncached.sample(batch, 8, seed=0)
    assert uncached.fit_counts == {"log_ret": 2 * batch.size}
    assert np.array_equal(first, again) and np.array_equal(first, fresh)

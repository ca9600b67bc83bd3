"""Historical volatility: a driftless Gaussian random walk with the context's 1-s volatility.

The seed's MVP bar. For each origin, σ is the NaN-aware standard deviation (ddof = 1) of the
context's 1-s log returns ``log_ret``; the log price then moves as a driftless Brownian motion
with variance σ² per second, so the return h seconds ahead is ``N(0, σ²·h)`` and a path's
cumulative returns are the partial sums of independent ``N(0, σ²·Δh)`` increments (exact
marginals σ·√h at every step, the joint law of a random walk). A context with fewer than
``min_returns`` finite returns takes the training σ of its instrument (pooled for an unseen
one): the standard deviation of the distinct training 1-s returns.

A context whose price never moved has σ = 0 and forecasts an unchanged price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models.price_baselines.base import (
    PriceBaseline,
    PriceBaselineConfig,
    PriceTraining,
    context_returns,
    per_instrument,
    register,
)


@dataclass(frozen=True)
class PriceHistVolConfig(PriceBaselineConfig):
    """Options of :class:`PriceHistVol`.

    Parameters
    ----------
    min_returns : int
        Fewest finite context returns for the context's own σ (>= 2); fewer take the
        training σ.
    """

    min_returns: int = 10

    def validate(self) -> None:
        self.check_range("min_returns", low=2)


def context_sigma(returns: NDArray[np.float64], min_returns: int, fallback: NDArray[np.float64]
                  ) -> NDArray[np.float64]:
    """σ per origin: the std (ddof = 1) of the finite returns (B, C), else ``fallback`` (B,)."""
    ok = np.isfinite(returns)
    n = ok.sum(axis=1)  # (B,)
    r0 = np.where(ok, returns, 0.0)
    mean = r0.sum(axis=1) / np.maximum(n, 1)
    dev2 = np.where(ok, (returns - mean[:, None]) ** 2, 0.0).sum(axis=1)
    sigma = np.sqrt(dev2 / np.maximum(n - 1, 1))
    return np.where(n >= min_returns, sigma, fallback)


def training_sigmas(data: PriceTraining) -> tuple[dict[str, float], float]:
    """Std (ddof = 1) of the distinct training 1-s returns, per instrument and pooled."""
    if data.returns.size < 2:
        raise TapecastError("the training contexts hold fewer than 2 finite 1-s returns")
    per = {str(name): float(np.std(data.returns_of(str(name))[0], ddof=1))
           for name in np.unique(data.return_instruments)
           if data.returns_of(str(name))[0].size >= 2}
    return per, float(np.std(data.returns, ddof=1))


@register
class PriceHistVol(PriceBaseline[PriceHistVolConfig]):
    """Gaussian random walk with the context's 1-s volatility; see the module docstring."""

    name = "price-histvol"
    config_class = PriceHistVolConfig

    def _fit(self, data: PriceTraining, seed: int) -> None:
        self.sigma, self.pooled_sigma = training_sigmas(data)

    def _draw(self, batch: ForecastBatch, steps: NDArray[np.int64], n_samples: int,
              rng: np.random.Generator) -> NDArray[np.float64]:
        fallback = np.full(batch.size, self.pooled_sigma)  # (B,)
        for name, rows in per_instrument(batch.instruments, self.sigma):
            if name is not None:
                fallback[rows] = self.sigma[name]
        sigma = context_sigma(context_returns(batch), self.config.min_returns, fallback)  # (B,)
        dh = np.diff(steps, prepend=0)  # (H,) seconds between horizon columns
        z = rng.standard_normal((batch.size, n_samples, steps.size))  # (B, S, H)
        out: NDArray[np.float64] = np.cumsum(z * np.sqrt(dh) * sigma[:, None, None], axis=2)
        return out

"""Historical volatility: a Gaussian per channel with the context's mean and standard deviation.

For each origin and channel, the H horizon values are i.i.d. ``N(m, s^2)`` with ``m`` and ``s``
the NaN-aware mean and standard deviation (ddof = 1) of that channel's context; channels are
independent. Three kinds of channel are told apart:

* level channels (imbalances, log realized variance, log volume): ``N(m, s^2)`` as above;
* ``driftless_channels``, increments of a price such as the per-window ``log_ret``:
  ``N(0, s^2)``. Their cumulative sum, the log price, is then a driftless Gaussian random walk
  with the context's volatility — the textbook "random walk with historical volatility" — and
  no drift is extrapolated from 100 noisy returns;
* ``random_walk_channels``, price levels (e.g. a log price in bar features):
  ``x_{T+h} = x_T + sum_{i<=h} e_i`` with ``e_i ~ N(0, s_d^2)``, ``s_d`` the std of the
  context's first differences and ``x_T`` the last finite context value.

Channel names not present in a batch are ignored, so one config serves several feature sets.
A context channel with fewer than 2 finite values takes the training windows' mean and std
(for a random-walk channel: the training std of one-step changes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.models.base import (
    Baseline,
    BaselineConfig,
    ChannelStats,
    TrainingWindows,
    context_moments,
    forward_fill,
    nan_moments,
    register,
)


@dataclass(frozen=True)
class HistVolConfig(BaselineConfig):
    """Options of :class:`HistVol`.

    Parameters
    ----------
    driftless_channels : tuple of str
        Price increments, forecast with zero mean (default ``("log_ret",)``). A string is read
        as comma-separated names (``"log_ret,ret_1s"``; ``""`` for none).
    random_walk_channels : tuple of str
        Price levels, forecast as a driftless random walk from the last context value.
    """

    driftless_channels: tuple[str, ...] = ("log_ret",)
    random_walk_channels: tuple[str, ...] = ()

    def validate(self) -> None:
        both = set(self.driftless_channels) & set(self.random_walk_channels)
        if both:
            self.fail("random_walk_channels", f"channel(s) {sorted(both)} cannot be both "
                      "driftless increments and random-walk levels")


@register
class HistVol(Baseline[HistVolConfig]):
    """Context-moment Gaussian; see the module docstring."""

    name = "hist-vol"
    config_class = HistVolConfig

    def _fit(self, windows: TrainingWindows, seed: int) -> None:
        self._driftless = np.isin(windows.channels, self.config.driftless_channels)  # (K,)
        self._walk = np.isin(windows.channels, self.config.random_walk_channels)  # (K,)
        steps = windows.pairs[:, 1] - windows.pairs[:, 0]  # (M, K)
        _, step_std, _ = nan_moments(steps, axis=0)
        # training std of one-step changes: the fallback of a random-walk channel's step std
        self._train_step_std = np.where(np.isfinite(step_std), step_std, 0.0)

    def _draw(self, batch: ForecastBatch, n_samples: int, rng: np.random.Generator,
              stats: ChannelStats) -> NDArray[np.float64]:
        b, k, h = batch.target.shape
        mean, std = context_moments(batch.context, stats)  # (B, K)
        mean = np.where(self._driftless, 0.0, mean)
        z = rng.standard_normal((b, n_samples, k, h))
        out = mean[:, None, :, None] + std[:, None, :, None] * z
        if self._walk.any():
            fallback = ChannelStats(stats.mean[self._walk], self._train_step_std[self._walk])
            out[:, :, self._walk] = _random_walk(batch.context[:, self._walk], fallback,
                                                 z[:, :, self._walk])
        return out


def _random_walk(context: NDArray[np.float64], fallback: ChannelStats,
                 z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Driftless random walk from the last context value.

    Parameters
    ----------
    context : (B, K_w, C) the random-walk channels' context
    fallback : training level mean (start of an empty context) and step std, each (K_w,)
    z : (B, S, K_w, H) standard normal draws

    Returns
    -------
    ndarray, float64, shape (B, S, K_w, H)
    """
    last = forward_fill(context, fallback.mean)[:, :, -1]  # (B, K_w)
    steps = np.diff(context, axis=2)  # (B, K_w, C-1); NaN next to a missing value
    _, step_std = context_moments(steps, fallback)  # (B, K_w); fallback std where < 2 steps
    return last[:, None, :, None] + np.cumsum(z, axis=3) * step_std[:, None, :, None]

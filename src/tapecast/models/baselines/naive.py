"""Persistence: every sample is the last context value (the NAIVE control of issue 4).

The forecast is a degenerate ensemble: all ``n_samples`` draws equal the last defined context
value of each channel, repeated over the horizon, whatever the seed. Its CRPS is the mean
absolute error of persistence. An undefined last value is forward filled from the latest defined
one (a channel with none takes the training mean).
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
    forward_fill,
    register,
)


@dataclass(frozen=True)
class NaiveConfig(BaselineConfig):
    """:class:`Naive` has no options."""


@register
class Naive(Baseline[NaiveConfig]):
    """Last context value, repeated; see the module docstring."""

    name = "naive"
    config_class = NaiveConfig

    def _fit(self, windows: TrainingWindows, seed: int) -> None:
        """Nothing to fit beyond the training means kept by the base class."""

    def _draw(self, batch: ForecastBatch, n_samples: int, rng: np.random.Generator,
              stats: ChannelStats) -> NDArray[np.float64]:
        b, k, h = batch.target.shape
        last = forward_fill(batch.context, stats.mean)[:, :, -1]  # (B, K)
        return np.broadcast_to(last[:, None, :, None], (b, n_samples, k, h)).copy()

"""Moving-block bootstrap of the context (Künsch 1989, Ann. Statist. 17(3), 1217-1241).

Each sample's horizon is filled by concatenating blocks of ``block_length`` consecutive whole
K-channel context windows, each block starting at a uniformly drawn position
``0 .. C - block_length``, then cut to H steps. Blocks keep the cross-channel dependence and the
short-range serial dependence of the context; joins between blocks do not. With
``block_length = 1`` this is the i.i.d. bootstrap of context windows; a block longer than the
context is shortened to C.

Undefined values in the context are forward filled first (leading gaps take the first defined
value, a channel with none takes the training mean), so every sample is finite.
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
class BootstrapConfig(BaselineConfig):
    """Options of :class:`BlockBootstrap`.

    Parameters
    ----------
    block_length : int
        Windows per block (>= 1).
    """

    block_length: int = 5

    def validate(self) -> None:
        self.check_range("block_length", low=1)


@register
class BlockBootstrap(Baseline[BootstrapConfig]):
    """Moving blocks of the context; see the module docstring."""

    name = "bootstrap"
    config_class = BootstrapConfig

    def _fit(self, windows: TrainingWindows, seed: int) -> None:
        """Nothing to fit beyond the training means kept by the base class."""

    def _draw(self, batch: ForecastBatch, n_samples: int, rng: np.random.Generator,
              stats: ChannelStats) -> NDArray[np.float64]:
        b, _, c = batch.context.shape
        h = batch.horizon
        length = min(self.config.block_length, c)
        n_blocks = -(-h // length)
        starts = rng.integers(0, c - length + 1, size=(b, n_samples, n_blocks))
        idx = starts[..., None] + np.arange(length)  # (B, S, n_blocks, length)
        idx = idx.reshape(b, n_samples, n_blocks * length)[:, :, :h]  # (B, S, H)
        filled = forward_fill(batch.context, stats.mean)  # (B, K, C)
        return np.take_along_axis(filled[:, None], idx[:, :, None, :], axis=3)  # (B, S, K, H)

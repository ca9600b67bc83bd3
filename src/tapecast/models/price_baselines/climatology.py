"""Climatology: the empirical distribution of the training targets, per instrument.

Each sample is a training target (the whole 30-s return, or the whole 30-step path) of the
origin's instrument, drawn uniformly with replacement; an instrument absent from training draws
from all instruments' targets pooled. The forecast ignores the context: it is the unconditional
bar every conditional model must clear. Training targets already lie on their own origins'
lattices; with ``lattice=True`` they are snapped to the forecast origin's lattice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.models.price_baselines.base import (
    PriceBaseline,
    PriceBaselineConfig,
    PriceTraining,
    per_instrument,
    register,
)


@dataclass(frozen=True)
class PriceClimatologyConfig(PriceBaselineConfig):
    """Options of :class:`PriceClimatology` (``lattice`` only)."""


@register
class PriceClimatology(PriceBaseline[PriceClimatologyConfig]):
    """Training targets of the origin's instrument, resampled; see the module docstring."""

    name = "price-climatology"
    config_class = PriceClimatologyConfig
    learns_target = True

    def _fit(self, data: PriceTraining, seed: int) -> None:
        self.targets: dict[str, NDArray[np.float64]] = {
            str(name): data.targets[data.target_instruments == name]
            for name in np.unique(data.target_instruments)}  # (N_i, H) each
        self.pooled: NDArray[np.float64] = data.targets  # (N, H)

    def _draw(self, batch: ForecastBatch, steps: NDArray[np.int64], n_samples: int,
              rng: np.random.Generator) -> NDArray[np.float64]:
        out = np.empty((batch.size, n_samples, steps.size))  # (B, S, H)
        for name, rows in per_instrument(batch.instruments, self.targets):
            pool = self.pooled if name is None else self.targets[name]  # (N_i, H)
            out[rows] = pool[rng.integers(pool.shape[0], size=(rows.size, n_samples))]
        return out

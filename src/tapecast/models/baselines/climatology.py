"""Climatology: joint draws of whole training windows, blind to the context.

Each horizon step of each sample is an independent draw, with replacement, of one whole
K-channel training window, so the forecast keeps the training split's cross-channel dependence
(e.g. the near-identical imbalances, volume with realized variance) and its marginals, and
ignores the context and any serial dependence. It is the RANDOM control of the walk-forward
(issue 4) and the reference that a first look at real data found hard to beat on mean CRPS.

Windows with any undefined channel (e.g. imbalances of a window without signed trades) are
left out, so every draw is a complete, finite window; how many were left out is kept in
``n_incomplete``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models.base import Baseline, BaselineConfig, ChannelStats, TrainingWindows, register


@dataclass(frozen=True)
class ClimatologyConfig(BaselineConfig):
    """Options of :class:`Climatology`.

    Parameters
    ----------
    per_instrument : bool
        Draw an origin's windows from its own instrument's training windows (default); an
        instrument absent from training falls back to the pooled windows.
    """

    per_instrument: bool = True


@register
class Climatology(Baseline[ClimatologyConfig]):
    """Draws of complete training windows; see the module docstring."""

    name = "climatology"
    config_class = ClimatologyConfig

    def _fit(self, windows: TrainingWindows, seed: int) -> None:
        pooled = windows.complete_rows()
        if pooled.shape[0] == 0:
            raise TapecastError("climatology: no training window has every channel defined")
        self.n_incomplete = int(windows.values.shape[0] - pooled.shape[0])
        self._pooled = pooled  # (N, K)
        self._by_instrument: dict[str, NDArray[np.float64]] = {}
        if self.config.per_instrument:
            for inst in np.unique(windows.instruments):
                rows = windows.for_instrument(str(inst)).complete_rows()
                if rows.shape[0]:
                    self._by_instrument[str(inst)] = rows

    def _draw(self, batch: ForecastBatch, n_samples: int, rng: np.random.Generator,
              stats: ChannelStats) -> NDArray[np.float64]:
        b, k, h = batch.target.shape
        out = np.empty((b, n_samples, k, h))
        for inst in np.unique(batch.instruments):
            at = np.flatnonzero(batch.instruments == inst)
            pool = self._by_instrument.get(str(inst), self._pooled)  # (N, K)
            idx = rng.integers(0, pool.shape[0], size=(at.size, n_samples, h))
            out[at] = pool[idx].transpose(0, 1, 3, 2)  # (b_i, S, H, K) -> (b_i, S, K, H)
        return out

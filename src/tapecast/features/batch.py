"""The batch every forecaster receives: raw-unit context and target of a set of forecast origins.

Forecasters (models and baselines alike) get a :class:`ForecastBatch` and return
:class:`tapecast.core.forecast.Samples` in the same raw units; models that work in normalized
space normalize inside (the normalizer travels with the model). Axis conventions::

    context : (B, K, C)   the C windows before each origin
    target  : (B, K, H)   the H windows being forecast (realized values; NaN when unknown)

with ``B`` origins, ``K`` channels, ``C`` context length and ``H`` horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError


@dataclass(frozen=True, eq=False)
class ForecastBatch:
    """Context and target windows of ``B`` forecast origins, in raw (original) units.

    Parameters
    ----------
    channels : tuple of str, length K
        Channel names in axis order.
    context : ndarray, float64, shape (B, K, C)
        Raw channel values of the C context windows (NaN where undefined).
    target : ndarray, float64, shape (B, K, H)
        Realized raw values of the H horizon windows (NaN where undefined or unknown).
    n_trades : ndarray, int64, shape (B, C + H)
        Trades per window over context then horizon.
    n_signed : ndarray, int64, shape (B, C + H)
        Signed trades per window (the ``T`` of the imbalance T-scaling).
    window_ids : ndarray, int64, shape (B, C + H)
        Window ids over context then horizon (``window`` column of the features table).
    timestamps : ndarray, datetime64[ns], shape (B, C + H)
        Window end times.
    instruments : ndarray of str, shape (B,)
    regimes : ndarray of str, shape (B,)
        Volatility regime of each origin (``low``/``mid``/``high``), from its context.
    """

    channels: tuple[str, ...]
    context: NDArray[np.float64]
    target: NDArray[np.float64]
    n_trades: NDArray[np.int64]
    n_signed: NDArray[np.int64]
    window_ids: NDArray[np.int64]
    timestamps: NDArray[np.datetime64]
    instruments: NDArray[np.str_]
    regimes: NDArray[np.str_]

    def __post_init__(self) -> None:
        b, k, c = self.context.shape
        h = self.target.shape[2]
        if self.target.shape[:2] != (b, k) or len(self.channels) != k:
            raise TapecastError(f"inconsistent batch: context {self.context.shape}, target "
                                f"{self.target.shape}, {len(self.channels)} channel names")
        for name in ("n_trades", "n_signed", "window_ids", "timestamps"):
            if getattr(self, name).shape != (b, c + h):
                raise TapecastError(f"{name} must have shape ({b}, {c + h}), "
                                    f"got {getattr(self, name).shape}")

    @property
    def size(self) -> int:
        return int(self.context.shape[0])

    @property
    def context_length(self) -> int:
        return int(self.context.shape[2])

    @property
    def horizon(self) -> int:
        return int(self.target.shape[2])

    def select(self, index: NDArray[np.intp] | slice) -> ForecastBatch:
        """The origins at ``index``."""
        return ForecastBatch(self.channels, self.context[index], self.target[index],
                             self.n_trades[index], self.n_signed[index], self.window_ids[index],
                             self.timestamps[index], self.instruments[index],
                             self.regimes[index])

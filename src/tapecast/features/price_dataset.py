"""Price windows as forecast origins: the :class:`~tapecast.core.batch.OriginSource` a price model
trains and forecasts on.

::

    grid, _ = price_grid(bars, quote_bars, config)
    windows, _ = price_windows(grid, config)
    data = PriceDataset(grid, windows, config)                # target: the 30-s log return
    batch = data.batch(np.arange(64))   # context (64, K, C), target (64, 1, 1), target "log_return"

The context channels are :func:`~tapecast.features.price_windows.context_features` (raw units,
NaN where undefined); the target is ``log_return`` = log(P(t+H) / P(t)) with horizon 1 (one
30-second step), or with ``target="path"`` the cumulative returns ``log(P(t+h) / P(t))``,
h = 1..H, as horizon H. The batch names its ``target_channels``: a price model forecasts a return
from K features, not its context channels. Positions are grid rows: the C context rows, then the
row the return ends at (or the H path rows). Per-origin extras: ``price_source`` (mid or trade),
``origin_price`` P_t and ``lattice_step`` δ (half a tick for a mid, a tick for a trade price;
:mod:`tapecast.features.price_lattice`), which a forecaster needs to put its samples on the
lattice.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.features.price import PriceGridConfig
from tapecast.features.price_lattice import lattice_step
from tapecast.features.price_windows import PriceArrays, context_features

Target = Literal["return", "path"]
TARGET_CHANNEL = "log_return"


class PriceDataset:
    """The valid origins of ``windows`` over ``grid``, gathered into batches on demand.

    Parameters
    ----------
    grid : polars.DataFrame
        A :func:`~tapecast.features.price.price_grid` grid.
    windows : polars.DataFrame
        Its :func:`~tapecast.features.price_windows.price_windows` origins (invalid ones, when
        present, are left out).
    config : PriceGridConfig
        The config both were built with.
    target : {"return", "path"}
        The 30-s return (horizon 1) or the cumulative return path (horizon H).
    """

    def __init__(self, grid: pl.DataFrame, windows: pl.DataFrame, config: PriceGridConfig,
                 target: Target = "return") -> None:
        if target not in ("return", "path"):
            raise TapecastError(f"target must be 'return' or 'path', got {target!r}")
        valid = windows.filter(pl.col("valid")) if "valid" in windows.columns else windows
        self.config, self.target_kind = config, target
        self.channels = context_features(config)
        self.arrays = PriceArrays.from_grid(grid, config)
        self.rows: NDArray[np.int64] = valid["row"].cast(pl.Int64).to_numpy()
        self.instruments: NDArray[np.str_] = valid["instrument"].cast(pl.String).to_numpy()
        self.price_source: NDArray[np.str_] = valid["price_source"].cast(pl.String).to_numpy()
        self.timestamps: NDArray[np.datetime64] = (
            grid["ts"].dt.replace_time_zone(None).to_numpy().astype("datetime64[ns]"))

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def horizon(self) -> int:
        """H of the batches: 1 for the return, ``horizon_s`` for the path."""
        return 1 if self.target_kind == "return" else self.config.horizon_s

    def batch(self, index: Any) -> ForecastBatch:
        """The origins at ``index`` (a slice, an int array or a boolean mask).

        Returns
        -------
        ForecastBatch
            context (B, K, C), target (B, 1, H) under ``target_channels = ("log_return",)``,
            window ids = grid rows (B, C + H), their time stamps, instruments, regimes ``""``,
            extras ``price_source`` (B,) str, ``origin_price`` (B,) P_t and ``lattice_step``
            (B,) δ, float64.
        """
        sel = np.atleast_1d(np.arange(len(self))[index])  # (B,)
        rows = self.rows[sel]
        c, h = self.config.context_s, self.config.horizon_s
        context = self.arrays.context(rows)  # (B, K, C)
        path = self.arrays.target(rows)  # (B, H_s)
        if self.target_kind == "return":
            target, ahead = path[:, -1:], rows[:, None] + h  # (B, 1), (B, 1)
        else:
            target, ahead = path, rows[:, None] + np.arange(1, h + 1)  # (B, H), (B, H)
        positions = np.concatenate([rows[:, None] + np.arange(-c + 1, 1), ahead], axis=1)
        return ForecastBatch(self.channels, context, target[:, None, :], positions,
                             self.timestamps[positions], self.instruments[sel],
                             np.full(sel.size, "", dtype=str),
                             {"price_source": self.price_source[sel],
                              "origin_price": self.arrays.price[rows],
                              "lattice_step": lattice_step(self.price_source[sel],
                                                           self.config.tick_size)},
                             target_channels=(TARGET_CHANNEL,))

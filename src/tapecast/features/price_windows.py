"""Price windows: origins on the 1-second grid of :mod:`tapecast.features.price`, their
targets, and their context arrays gathered on demand.

An origin is a grid row t; its context is rows ``t - C + 1 .. t`` (C = ``context_s``), its target
r = log(P_{t+H} / P_t) (H = ``horizon_s``). It is valid when the context and horizon lie inside
one session, every 1-s return the context's features need and every return of the horizon
exists (a price and one price source throughout), and no context row is staler than
``max_gap_s`` (the horizon's staleness is not known at t and is not checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.features.price import (
    _SOURCE,
    _TS,
    PRICE_SOURCES,
    REASONS,
    PriceGridConfig,
    rv_name,
)

__all__ = ["WINDOWS_SCHEMA", "PriceArrays", "context_features", "gather_windows",
           "price_windows"]


# --- windows ------------------------------------------------------------------------------------
WINDOWS_SCHEMA: Final = pl.Schema({
    "instrument": pl.String(), "session_date": pl.Date(), "origin_ts": _TS, "row": pl.Int64(),
    "target": pl.Float64(), "price_source": _SOURCE, "valid": pl.Boolean(),
    "reason": pl.Enum(list(REASONS)),
})


def _window_sums(flag: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Prefix counts: ``c[b] - c[a]`` is the number of flagged rows in ``[a, b)``."""
    return np.concatenate([[0], np.cumsum(flag)]).astype(np.int64)


def _window_reasons(grid: pl.DataFrame, config: PriceGridConfig
                    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Per grid row as an origin: the reason code (-1 valid, else an index of :data:`REASONS`)
    and the target log(P_{t+H} / P_t)."""
    n, c, h = grid.height, config.context_s, config.horizon_s
    session = grid.select(pl.struct("instrument", "session_date").rle_id()).to_series()
    start = np.searchsorted(session.to_numpy(), session.to_numpy()).astype(np.int64)
    length = np.bincount(session.to_numpy())[session.to_numpy()].astype(np.int64)
    rows = np.arange(n, dtype=np.int64)
    position = rows - start
    price = grid["price"].fill_null(np.nan).to_numpy()
    missing = _window_sums(~np.isfinite(grid["log_ret"].fill_null(np.nan).to_numpy()))
    stale = grid["staleness_s"].fill_null(config.max_gap_s + 1).to_numpy() > config.max_gap_s
    stale_sums = _window_sums(stale)
    lo = position - config.warmup_s + 1  # first return the context's features need
    reason = np.full(n, -1, dtype=np.int64)
    inside = (lo >= 1) & (position + h <= length - 1)
    a = np.where(inside, rows - config.warmup_s + 1, 0)
    b = np.where(inside, rows + h + 1, 0)
    no_price = inside & (missing[b] - missing[a] > 0)
    # staleness is judged on the context only: at t a forecaster cannot know whether the next
    # H seconds will be stale, and a stale horizon still has a forward-filled target (a real
    # zero return on the price lattice)
    a = np.where(inside, rows - c + 1, 0)
    b_context = np.where(inside, rows + 1, 0)
    too_stale = inside & ~no_price & (stale_sums[b_context] - stale_sums[a] > 0)
    reason[too_stale] = REASONS.index("stale")
    reason[no_price] = REASONS.index("no_price")
    reason[position + h > length - 1] = REASONS.index("session_end")
    reason[lo < 1] = REASONS.index("session_start")
    target = np.full(n, np.nan)
    ok = reason < 0
    target[ok] = np.log(price[rows[ok] + h] / price[rows[ok]])
    return reason, target


def price_windows(grid: pl.DataFrame, config: PriceGridConfig | None = None, *,
                  valid_only: bool = True) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One row per forecast origin of the grid: where it is, its target and whether it is valid.

    Parameters
    ----------
    grid : pl.DataFrame
        From :func:`price_grid` with the same ``config`` (row order unchanged).
    config : PriceGridConfig, optional
    valid_only : bool, default True
        Keep only valid origins; False keeps every grid row, with ``reason`` why not.

    Returns
    -------
    windows : pl.DataFrame
        Columns :data:`WINDOWS_SCHEMA`: ``row`` indexes the grid (context rows ``row - C + 1 ..
        row``), ``target`` = log(P_{t+H} / P_t) (null when invalid), ``reason`` one of
        :data:`REASONS` (null when valid).
    summary : dict
        Per instrument: ``origins`` (grid rows), ``valid``, ``invalid`` by reason,
        ``zero_return_share`` (share of valid targets exactly 0: the price lattice) overall,
        ``by_source`` and ``by_session`` (ISO date -> ``valid``, ``zero_return_share``).

    Raises
    ------
    TapecastError
        Not a single valid window in the whole grid (too few bars).
    """
    config = config or PriceGridConfig()
    missing = [c for c in ("instrument", "session_date", "ts", "price", "log_ret",
                           "staleness_s", "price_source") if c not in grid.columns]
    if missing:
        raise TapecastError(f"price windows: grid lacks column(s) {missing}; build it with "
                            f"price_grid")
    reason, target = _window_reasons(grid, config)
    windows = pl.DataFrame({
        "instrument": grid["instrument"], "session_date": grid["session_date"],
        "origin_ts": grid["ts"], "row": np.arange(grid.height, dtype=np.int64),
        "target": pl.Series(target, nan_to_null=True), "price_source": grid["price_source"],
        "valid": reason < 0,
        "reason": pl.Series(np.asarray((*REASONS, None), dtype=object)[reason],
                            dtype=pl.String).cast(pl.Enum(list(REASONS))),
    }, schema=WINDOWS_SCHEMA)
    summary = _windows_summary(windows, config)
    if not windows["valid"].any():
        raise TapecastError(_too_few(grid, summary, config))
    return (windows.filter(pl.col("valid")) if valid_only else windows), summary


def _too_few(grid: pl.DataFrame, summary: dict[str, Any], config: PriceGridConfig) -> str:
    per = grid.group_by("instrument", "session_date", maintain_order=True).agg(
        pl.len(), (pl.col("has_trade_bar") | pl.col("has_quote_bar")).sum().alias("bars"))
    where = "; ".join(f"{i} {d}: {b:,} of {n:,} seconds with a bar" for i, d, n, b in
                      per.head(4).rows()) + ("; ..." if per.height > 4 else "")
    reasons = {r: sum(s["invalid"][r] for s in summary.values()) for r in REASONS}
    return (f"price windows: too few bars for one window ({where}); a window needs "
            f"{config.warmup_s} s of returns before its origin and {config.horizon_s} s after, "
            f"with no gap over {config.max_gap_s} s; invalid origins by reason: {reasons}")


def _windows_summary(windows: pl.DataFrame, config: PriceGridConfig) -> dict[str, Any]:
    del config
    out: dict[str, Any] = {}
    valid = windows.filter(pl.col("valid"))
    for (name,), part in windows.group_by("instrument", maintain_order=True):
        ok = valid.filter(pl.col("instrument") == name)
        zero = (ok["target"] == 0.0).sum()
        by_source = {}
        for source in PRICE_SOURCES:
            sub = ok.filter(pl.col("price_source") == source)
            by_source[source] = {"valid": sub.height, "zero_return_share":
                                 (sub["target"] == 0.0).sum() / sub.height if sub.height else None}
        per_day = ok.group_by("session_date", maintain_order=True).agg(
            pl.len(), (pl.col("target") == 0.0).mean().alias("zero"))
        out[str(name)] = {
            "origins": part.height, "valid": ok.height,
            "invalid": {r: int((part["reason"] == r).sum()) for r in REASONS},
            "zero_return_share": zero / ok.height if ok.height else None,
            "by_source": by_source,
            "by_session": {d.isoformat(): {"valid": int(k), "zero_return_share": z}
                           for d, k, z in per_day.rows()},
        }
    return out


# --- context and target arrays ------------------------------------------------------------------
def context_features(config: PriceGridConfig) -> tuple[str, ...]:
    """The K context channels, in order."""
    return ("log_ret", "spread_bps", "imbalance", "log1p_volume",
            *(rv_name(m) for m in config.realized_spans), "time_of_day", "staleness_s")


@dataclass(frozen=True, eq=False)
class PriceArrays:
    """The grid's context channels and prices as arrays, for gathering windows.

    Parameters
    ----------
    features : ndarray, float64, shape (N, K)
        :func:`context_features` per grid row; NaN where undefined (spread and imbalance on a
        row without quotes, returns before the first price).
    price : ndarray, float64, shape (N,)
    config : PriceGridConfig
    """

    features: NDArray[np.float64]
    price: NDArray[np.float64]
    config: PriceGridConfig

    @classmethod
    def from_grid(cls, grid: pl.DataFrame, config: PriceGridConfig) -> PriceArrays:
        """Arrays of a :func:`price_grid` grid built with ``config``."""
        columns = []
        for name in context_features(config):
            if name == "log1p_volume":
                columns.append(np.log1p(grid["volume"].to_numpy()))
            else:
                columns.append(grid[name].cast(pl.Float64).fill_null(np.nan).to_numpy())
        features = np.stack(columns, axis=1) if columns else np.zeros((grid.height, 0))
        return cls(features, grid["price"].fill_null(np.nan).to_numpy(), config)

    def _rows(self, rows: NDArray[np.int64], ahead: int) -> NDArray[np.int64]:
        """``rows`` as int64, checked to leave C - 1 rows before and ``ahead`` after them."""
        out = np.asarray(rows, dtype=np.int64)
        low, high = self.config.context_s - 1, self.price.shape[0] - 1 - ahead
        if out.size and (int(out.min()) < low or int(out.max()) > high):
            raise TapecastError(f"origin rows must lie in {low}..{high} of the grid (use "
                                f"price_windows' valid rows), got {int(out.min())}.."
                                f"{int(out.max())}")
        return out

    def context(self, rows: NDArray[np.int64]) -> NDArray[np.float64]:
        """Context of the origins at grid ``rows``: float64 ``(B, K, C)``, oldest first."""
        offsets = np.arange(-self.config.context_s + 1, 1)  # (C,)
        block = self.features[self._rows(rows, 0)[:, None] + offsets]  # (B, C, K)
        return np.ascontiguousarray(block.transpose(0, 2, 1))  # (B, K, C)

    def target(self, rows: NDArray[np.int64]) -> NDArray[np.float64]:
        """The path log(P_{t+h} / P_t), h = 1..H: float64 ``(B, H)``; the last column is r."""
        rows = self._rows(rows, self.config.horizon_s)
        ahead = rows[:, None] + np.arange(1, self.config.horizon_s + 1)  # (B, H)
        path: NDArray[np.float64] = np.log(self.price[ahead] / self.price[rows][:, None])
        return path  # (B, H)


def gather_windows(grid: pl.DataFrame, rows: NDArray[np.int64], config: PriceGridConfig
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Context ``(B, K, C)`` and target path ``(B, H)`` of the origins at grid ``rows``
    (``windows["row"]``); see :class:`PriceArrays` to gather many batches from one grid."""
    arrays = PriceArrays.from_grid(grid, config)
    return arrays.context(rows), arrays.target(rows)

"""Market-state vectors: one per bar, from the canonical ``bars`` table (issue 16, first piece).

The features are those of ``compute_market_state`` in the seed
``../shared/seeds/score-matching-trading.txt`` ("Feature Engineering for Score Matching"),
computed for every bar of every instrument instead of for the last row of a window.

**Legend** (row t of one instrument, bars in time order; L = ``lookback`` = 20, S =
``short_vol`` = 5, R = ``rsi_span`` = 14, ε = ``epsilon`` = 1e-8):

- C_t, H_t, L_t, V_t: the bar's close, high, low and volume;
- r_t = C_t / C_{t-1} - 1, the simple return (the seed's ``pct_change``);
- ``return_p`` = Σ_{i=0}^{p-1} r_{t-i}, p in ``return_spans`` (1, 5, 10, 20);
- ``volatility`` = std(r_{t-L+1..t}), sample std (ddof 1, pandas' default);
- ``volatility_ratio`` = std(r_{t-S+1..t}) / std(r_{t-L+1..t});
- ``momentum`` = C_t / C_{t-L+1} - 1 (the seed's ``close.iloc[-1] / close.iloc[-lookback]``:
  L - 1 bars back, kept as the seed has it);
- ``volume_ratio`` = V_t / mean(V_{t-L+1..t});
- ``price_position`` = (C_t - min L_{t-L+1..t}) / (max H_{t-L+1..t} - min L_{t-L+1..t} + ε);
- ``rsi`` = g / (g + l + ε), g = mean(max(r, 0)) and l = mean(max(-r, 0)) over r_{t-R+1..t}.

**Causality.** Row t uses bars 0..t of its instrument only. A bar is stamped at its start
(``ts``) and known at its end, ``known_at`` = ts + bar_length (ts where the bar length is
unknown). :class:`tapecast.features.state_streaming.StreamingState` computes the same rows one
bar at a time.

**Warm-up.** Rows 0..``warmup`` - 1 (20 by default: a 20-bar return needs 21 closes) lack some
feature and are dropped, counted in the summary; an instrument with no row left is an error.

**Deviations from the seed.** (1) The seed's backtest passes windows of exactly ``lookback``
bars, which hold only L - 1 returns, so its ``return_20`` and ``volatility`` are NaN there; here
every row sees its whole history and the warm-up is L bars. (2) The seed's ``volatility_ratio``
and ``volume_ratio`` divide without ε: a flat stretch (L equal closes, or L zero-volume bars)
gives NaN or inf, which is reported as an error rather than forward-filled (the seed's
"forward fill then drop"), so nothing silently enters a training set. (3) ε is in price units
for ``price_position`` (as in the seed); it is negligible for prices above a cent.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.features.state_config import StateConfig

__all__ = ["BAR_COLUMNS", "check_finite", "state_features", "state_schema"]

BAR_COLUMNS: Final = ("ts", "instrument", "high", "low", "close", "volume")
_TS: Final = pl.Datetime("ns", "UTC")
Arrays = dict[str, NDArray[np.float64]]


def state_schema(config: StateConfig) -> pl.Schema:
    """Columns of the table :func:`state_features` returns."""
    return pl.Schema({"instrument": pl.String(), "ts": _TS, "known_at": _TS, "row": pl.Int64(),
                      "close": pl.Float64(), **{name: pl.Float64() for name in config.names}})


def _windows(x: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """(n, width) windows ending at each row; rows before ``width`` - 1 are NaN-padded."""
    padded = np.concatenate([np.full(width - 1, np.nan), x])
    return sliding_window_view(padded, width)  # (n, width), row t = x[t-width+1..t]


def state_arrays(high: NDArray[np.float64], low: NDArray[np.float64],
                 close: NDArray[np.float64], volume: NDArray[np.float64],
                 config: StateConfig) -> Arrays:
    """Every feature of :attr:`StateConfig.all_features` for each bar of one instrument.

    Parameters
    ----------
    high, low, close, volume : (n,) float64
        One instrument's bars in time order.

    Returns
    -------
    dict of str to (n,) float64
        NaN where a feature lacks history (rows before :attr:`StateConfig.warmup`).
    """
    n, lb = close.shape[0], config.lookback
    r = np.full(n, np.nan)
    r[1:] = close[1:] / close[:-1] - 1.0
    out: Arrays = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for p in config.return_spans:
            out[f"return_{p}"] = _windows(r, p).sum(axis=1)
        vol = _windows(r, lb).std(axis=1, ddof=1)
        out["volatility"] = vol
        out["volatility_ratio"] = _windows(r, config.short_vol).std(axis=1, ddof=1) / vol
        back = np.full(n, np.nan)
        back[lb - 1:] = close[: n - lb + 1]
        out["momentum"] = close / back - 1.0
        out["volume_ratio"] = volume / _windows(volume, lb).mean(axis=1)
        hi, lo = _windows(high, lb).max(axis=1), _windows(low, lb).min(axis=1)
        out["price_position"] = (close - lo) / (hi - lo + config.epsilon)
        rw = _windows(r, config.rsi_span)
        gains = np.maximum(rw, 0.0).mean(axis=1)
        losses = np.maximum(-rw, 0.0).mean(axis=1)
        out["rsi"] = gains / (gains + losses + config.epsilon)
    return out


def _check_bars(bars: pl.DataFrame) -> pl.DataFrame:
    """The needed columns, a Datetime ``ts``, positive closes, sorted unique times."""
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise TapecastError(f"bars table lacks column(s) {missing}; expected the canonical bars "
                            "table (tapecast.data.schemas.BARS)")
    if not isinstance(bars["ts"].dtype, pl.Datetime):
        raise TapecastError(f"bars column 'ts' must be a Datetime, got {bars['ts'].dtype}")
    if bars.height == 0:
        raise TapecastError("state features: no bars given")
    frame = bars.with_columns(pl.col("ts").dt.cast_time_unit("ns").dt.replace_time_zone(None)
                              .dt.replace_time_zone("UTC") if bars["ts"].dtype.time_zone is None
                              else pl.col("ts").dt.convert_time_zone("UTC")
                              .dt.cast_time_unit("ns"))
    length = (pl.col("bar_length").cast(pl.Duration("ns")) if "bar_length" in frame.columns
              else pl.lit(None, dtype=pl.Duration("ns")))
    frame = frame.with_columns(known_at=pl.col("ts") + length.fill_null(pl.duration(nanoseconds=0)))
    frame = frame.with_row_index("_input_row").sort("instrument", "ts", maintain_order=True)
    dup = frame.filter((pl.col("ts") == pl.col("ts").shift(1))
                       & (pl.col("instrument") == pl.col("instrument").shift(1)))
    if dup.height:
        raise TapecastError(f"bars: {dup.height:,} duplicated timestamp(s), first "
                            f"{dup['instrument'][0]} at {dup['ts'][0]}; drop duplicates")
    bad = frame.filter(~(pl.col("close") > 0))
    if bad.height:
        raise TapecastError(f"bars: {bad.height:,} close(s) not > 0, first {bad['close'][0]} of "
                            f"{bad['instrument'][0]} at {bad['ts'][0]} (input row "
                            f"{bad['_input_row'][0]}); a return divides by the close")
    return frame


def check_finite(table: pl.DataFrame, names: tuple[str, ...], where: str = "") -> None:
    """Every feature of every row finite, else one line naming the instrument, row and field."""
    for name in names:
        bad = table.filter(~pl.col(name).is_finite() | pl.col(name).is_null())
        if bad.height:
            first = bad.row(0, named=True)
            raise TapecastError(
                f"{where}{first['instrument']} bar {first['row']} (0-based, ts {first['ts']}): "
                f"state feature '{name}' is {first[name]} after the warm-up ({bad.height:,} "
                f"row(s)); a flat stretch (equal closes, zero volume) divides by zero")


def state_features(bars: pl.DataFrame, config: StateConfig | None = None
                   ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The market-state vector of every bar after the warm-up, per instrument.

    Parameters
    ----------
    bars : pl.DataFrame
        Canonical bars (:data:`tapecast.data.schemas.BARS`; ``ts``, ``instrument``, ``high``,
        ``low``, ``close``, ``volume`` needed, ``bar_length`` used when present), any order.
    config : StateConfig, optional

    Returns
    -------
    table : pl.DataFrame
        Columns :func:`state_schema`: ``row`` is the bar's 0-based index within its
        instrument, sorted by instrument then time; features are float64, raw (not z-scored).
    summary : dict
        Per instrument ``bars``, ``rows``, ``warmup_dropped``, ``first_ts``, ``last_ts``.

    Raises
    ------
    TapecastError
        Missing columns, duplicated timestamps, a close <= 0, an instrument with no more bars
        than the warm-up, a NaN or infinite feature after the warm-up.
    """
    config = config or StateConfig()
    frame = _check_bars(bars)
    parts, summary = [], {}
    for (name,), group in frame.group_by("instrument", maintain_order=True):
        n = group.height
        if n <= config.warmup:
            raise TapecastError(
                f"{name}: {n:,} bar(s), fewer than the {config.warmup + 1} the longest lookback "
                f"needs (warm-up {config.warmup} bars: lookback {config.lookback}, return spans "
                f"{list(config.return_spans)}, RSI {config.rsi_span})")
        cols = {c: group[c].cast(pl.Float64).to_numpy() for c in ("high", "low", "close",
                                                                    "volume")}
        feats = state_arrays(cols["high"], cols["low"], cols["close"], cols["volume"], config)
        part = pl.DataFrame({
            "instrument": group["instrument"], "ts": group["ts"],
            "known_at": group["known_at"], "row": np.arange(n, dtype=np.int64),
            "close": cols["close"], **{f: pl.Series(f, feats[f]) for f in config.names}})
        part = part.slice(config.warmup)
        check_finite(part, config.names)
        parts.append(part)
        summary[str(name)] = {"bars": n, "rows": part.height, "warmup_dropped": config.warmup,
                              "first_ts": str(part["ts"][0]), "last_ts": str(part["ts"][-1])}
    return pl.concat(parts).cast(state_schema(config)), summary

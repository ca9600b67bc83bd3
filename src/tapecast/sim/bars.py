"""1-second trade and quote bars from a tape: the synthetic market in the price family's tables.

:func:`market_bars` aggregates the canonical ``trades`` and ``quotes`` of
:func:`tapecast.sim.market.generate_market` (or of any reader) into 1-second ``bars`` and
``quote_bars`` (:data:`tapecast.data.schemas.BARS`, :data:`~tapecast.data.schemas.QUOTE_BARS`),
stamped, as LEAN's second bars are, at the start of their second: a bar at ``ts`` covers
``[ts, ts + 1 s)``. A second without a trade has no trade bar, one without a quote no quote bar.

Usage::

    from tapecast.sim import SyntheticMarketConfig, generate_market
    from tapecast.sim.bars import market_bars
    bars = market_bars(generate_market(SyntheticMarketConfig(n_sessions=2), seed=0))
    bars.bars, bars.quote_bars
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.data.tables import Tables
from tapecast.data.validate import finalize

SECOND: Final = timedelta(seconds=1)


def trade_bars(trades: pl.DataFrame, source: str) -> pl.DataFrame:
    """1-second OHLCV bars of canonical trades.

    Returns
    -------
    pl.DataFrame
        Schema ``BARS``: open/high/low/close of the second's prints, ``volume`` = Σ size,
        ``amount`` = Σ price · size, ``vwap`` = amount / volume, ``n_trades``, ``bar_length``
        1 s; sorted by ts then instrument.
    """
    price, size = pl.col("price"), pl.col("size")
    frame = (trades.with_columns(pl.col("ts").dt.truncate("1s"))
             .group_by("instrument", "ts", maintain_order=True)
             .agg(price.first().alias("open"), price.max().alias("high"),
                  price.min().alias("low"), price.last().alias("close"),
                  size.sum().alias("volume"), (price * size).sum().alias("amount"),
                  pl.len().cast(pl.Int64).alias("n_trades"))
             .with_columns((pl.col("amount") / pl.col("volume")).alias("vwap"),
                           pl.lit(SECOND, dtype=pl.Duration("ns")).alias("bar_length"))
             .sort("ts", "instrument"))
    return finalize(frame, "bars", source, ordered_by="ts")


def quote_bars(quotes: pl.DataFrame, source: str) -> pl.DataFrame:
    """1-second bid and ask OHLC bars of canonical top-of-book quotes.

    Returns
    -------
    pl.DataFrame
        Schema ``QUOTE_BARS``: per side open/high/low/close of the second's quoted prices and
        the size of its last quote; ``bar_length`` 1 s; sorted by ts then instrument.
    """
    sides = []
    for side in ("bid", "ask"):
        px = pl.col(f"{side}_px")
        sides += [px.first().alias(f"{side}_open"), px.max().alias(f"{side}_high"),
                  px.min().alias(f"{side}_low"), px.last().alias(f"{side}_close"),
                  pl.col(f"{side}_sz").last().alias(f"{side}_size")]
    frame = (quotes.with_columns(pl.col("ts").dt.truncate("1s"))
             .group_by("instrument", "ts", maintain_order=True).agg(sides)
             .with_columns(pl.lit(SECOND, dtype=pl.Duration("ns")).alias("bar_length"))
             .sort("ts", "instrument"))
    return finalize(frame, "quote_bars", source, ordered_by="ts")


def market_bars(tables: Tables) -> Tables:
    """1-second ``bars`` and ``quote_bars`` of a tape's ``trades`` and ``quotes``.

    Parameters
    ----------
    tables : Tables
        With canonical ``trades`` (and ``quotes``, optional), sorted by ts, as
        :func:`tapecast.sim.market.generate_market` returns them.

    Returns
    -------
    Tables
        ``bars`` and ``quote_bars`` (None without quotes), same ``format``; ``counters``:
        ``trades``, ``quotes``, ``bars``, ``quote_bars`` (rows in and out).

    Raises
    ------
    TapecastError
        No trades.
    """
    if tables.trades is None or tables.trades.height == 0:
        raise TapecastError(f"{tables.source}: no trades to aggregate into 1-second bars")
    source = f"{tables.source} (1-second bars)"
    bars = trade_bars(tables.trades, source)
    quotes = tables.quotes
    qbars = quote_bars(quotes, source) if quotes is not None and quotes.height else None
    counters = {"trades": tables.trades.height, "quotes": 0 if quotes is None else quotes.height,
                "bars": bars.height, "quote_bars": 0 if qbars is None else qbars.height}
    return Tables(source=source, format=tables.format, bars=bars, quote_bars=qbars,
                  counters=counters)

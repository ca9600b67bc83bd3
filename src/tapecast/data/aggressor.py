"""Trade signing: the venue's aggressor side where known, else Lee–Ready, else the tick rule.

References
----------
Lee, C. M. C. and Ready, M. J. (1991), "Inferring Trade Direction from Intraday Data",
*Journal of Finance* 46(2), 733-746: a trade above the prevailing quote midpoint is
buyer-initiated, below it seller-initiated, and a trade at the midpoint is classified by the tick
rule (up-tick or zero-up-tick: buy; down-tick or zero-down-tick: sell).

The tie rule for quotes stamped at the same timestamp as the trade is a parameter
(``same_timestamp_quotes``); by default such quotes are *excluded*, because a quote update that
shares the trade's timestamp is most often the book's reaction to that trade (the touch it just
consumed), not the quote the aggressor saw. See ``docs/aggressor.md`` for the measurement behind
this choice.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from tapecast.data.schemas import SideSource

SameTimestampQuotes = Literal["exclude", "include"]


def tick_rule(price: pl.Expr, by: str | None = "instrument") -> pl.Expr:
    """The tick-rule sign of each trade: +1 up-tick, -1 down-tick, a zero tick repeats the last
    non-zero tick's sign; 0 before the first non-zero tick (the first trade is 0).

    Parameters
    ----------
    price : pl.Expr
        Trade prices in time order.
    by : str or None
        Column whose groups (instruments) have separate tick sequences.

    Returns
    -------
    pl.Expr
        Int8 signs, one per trade.
    """
    diff = price.diff()
    if by is not None:
        diff = diff.over(by)
    sign = pl.when(diff > 0).then(1).when(diff < 0).then(-1)
    carried = sign.forward_fill()
    if by is not None:
        carried = carried.over(by)
    return carried.fill_null(0).cast(pl.Int8)


def prevailing_quotes(
    trades: pl.DataFrame,
    quotes: pl.DataFrame,
    same_timestamp_quotes: SameTimestampQuotes = "exclude",
) -> pl.DataFrame:
    """The quote in force at each trade: the last one before the trade's ``ts``.

    Parameters
    ----------
    trades : pl.DataFrame
        Canonical trades (``ts``, ``instrument``), sorted by ``ts`` within each instrument.
    quotes : pl.DataFrame
        Canonical quotes (``ts``, ``instrument``, ``bid_px``, ``ask_px``), sorted by ``ts``.
    same_timestamp_quotes : {"exclude", "include"}
        "exclude": only quotes stamped strictly before the trade count; "include": a quote with
        the trade's own timestamp counts too (the last such quote in the file's order).

    Returns
    -------
    pl.DataFrame
        ``trades.height`` rows in the trades' order: ``bid_px``, ``ask_px`` (null: no quote yet).
    """
    left = trades.select("ts", "instrument").with_row_index("_pos")
    right = quotes.select("ts", "instrument", "bid_px", "ask_px")
    joined = left.sort("instrument", "ts", maintain_order=True).join_asof(
        right.sort("instrument", "ts", maintain_order=True),  # ties keep the file's order
        on="ts", by="instrument", strategy="backward",
        allow_exact_matches=same_timestamp_quotes == "include",
        check_sortedness=False,  # sorted just above; polars cannot check within 'by' groups
    )
    return joined.sort("_pos").select("bid_px", "ask_px")


def lee_ready(price: pl.Expr, bid: pl.Expr, ask: pl.Expr, tick: pl.Expr) -> pl.Expr:
    """Lee–Ready sign: +1 above the midpoint, -1 below, the tick rule at the midpoint.

    Null where there is no usable quote (a side missing, or a crossed quote).
    """
    mid = (bid + ask) / 2
    at_mid = (price - mid).abs() <= 1e-9 * mid.abs()
    usable = bid.is_not_null() & ask.is_not_null() & (bid <= ask)
    return (
        pl.when(~usable).then(None)
        .when(at_mid).then(tick)
        .when(price > mid).then(1)
        .otherwise(-1)
        .cast(pl.Int8)
    )


def sign_trades(
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None = None,
    *,
    same_timestamp_quotes: SameTimestampQuotes = "exclude",
) -> pl.DataFrame:
    """Set ``side`` and ``side_source`` of every trade.

    A trade keeps the venue's side where it is known (non-zero ``side``; ``side_source``
    "exchange" unless it already names another source); otherwise Lee–Ready against the
    prevailing quote (``side_source`` "lee_ready", where a usable quote exists and Lee–Ready gives
    a non-zero sign); otherwise the tick rule ("tick_rule"); a trade still unsigned has side 0 and
    a null ``side_source``.

    Parameters
    ----------
    trades : pl.DataFrame
        Canonical trades table, in time order within each instrument.
    quotes : pl.DataFrame or None
        Canonical quotes table (top of book), in time order; None: no Lee–Ready step.
    same_timestamp_quotes : {"exclude", "include"}
        Whether a quote stamped at the trade's own timestamp may be the prevailing quote
        (default "exclude"; see the module docstring).

    Returns
    -------
    pl.DataFrame
        ``trades`` with ``side`` (Int8: +1, -1, 0) and ``side_source`` replaced, same rows/order.
    """
    frame = trades.with_columns(_tick=tick_rule(pl.col("price")))
    if quotes is not None and quotes.height:
        frame = pl.concat([frame, prevailing_quotes(trades, quotes, same_timestamp_quotes)
                           .rename({"bid_px": "_bid", "ask_px": "_ask"})], how="horizontal")
        lr = lee_ready(pl.col("price"), pl.col("_bid"), pl.col("_ask"), pl.col("_tick"))
    else:
        lr = pl.lit(None, dtype=pl.Int8)
    venue = pl.col("side").fill_null(0).cast(pl.Int8)
    frame = frame.with_columns(_lr=lr)
    known, by_lr, by_tick = venue != 0, pl.col("_lr").fill_null(0) != 0, pl.col("_tick") != 0
    side = (pl.when(known).then(venue).when(by_lr).then(pl.col("_lr"))
            .otherwise(pl.col("_tick")).cast(pl.Int8))
    source = (
        pl.when(known).then(pl.col("side_source").cast(pl.String).fill_null("exchange"))
        .when(by_lr).then(pl.lit("lee_ready"))
        .when(by_tick).then(pl.lit("tick_rule"))
        .cast(SideSource)
    )
    return frame.with_columns(side=side, side_source=source).select(trades.columns)

"""The canonical tables every reader produces, with fixed Polars schemas.

Timestamps are UTC nanoseconds (``pl.Datetime("ns", "UTC")``). Empty fields are nulls, never
sentinels (no ``0`` prices for an empty book side, no ``INT64_MAX`` for an undefined price).

Tables
------
events
    L3 / market-by-order events, one row per venue message, in the venue's order.
trades
    Trade prints with the aggressor side (+1 buyer-initiated, -1 seller-initiated, 0 unknown) and
    where it came from (``side_source``); the venue's exchange, sale-condition and suspicious
    fields where the format has them.
quotes
    Top-of-book states (a one-sided update is carried forward into a full state).
bars
    OHLCV bars, ``ts`` = bar start, ``bar_length`` the bar's duration.
quote_bars
    Bid and ask OHLC bars with sizes; an empty side is null.
levels
    Top-N book (LOBSTER orderbook-file layout: ask_px_1, ask_sz_1, bid_px_1, bid_sz_1, ...)
    with the event timestamp; the number of levels varies, see :func:`levels_schema`.
"""

from __future__ import annotations

from typing import Final, Literal

import polars as pl

TS: Final = pl.Datetime("ns", "UTC")


ACTIONS: Final = ("add", "cancel", "modify", "trade", "fill", "clear")
BOOK_SIDES: Final = ("bid", "ask", "none")
SIDE_SOURCES: Final = ("exchange", "lee_ready", "tick_rule", "synthetic")

Action = pl.Enum(list(ACTIONS))
BookSide = pl.Enum(list(BOOK_SIDES))
SideSource = pl.Enum(list(SIDE_SOURCES))

TableName = Literal["events", "trades", "quotes", "bars", "quote_bars", "levels"]
TABLE_NAMES: Final[tuple[TableName, ...]] = (
    "events",
    "trades",
    "quotes",
    "bars",
    "quote_bars",
    "levels",
)

EVENTS: Final = pl.Schema(
    {
        "ts_event": TS,
        "ts_recv": TS,  # null where the format has no receive clock
        "instrument": pl.String(),
        "action": Action,
        "side": BookSide,
        "price": pl.Float64(),  # null where undefined (a clear, a market order)
        "size": pl.Int64(),
        "order_id": pl.UInt64(),
        "flags": pl.UInt8(),  # Databento flags (0x80 F_LAST, 0x20 F_SNAPSHOT, ...); null elsewhere
        "sequence": pl.Int64(),
    }
)

TRADES: Final = pl.Schema(
    {
        "ts": TS,
        "instrument": pl.String(),
        "price": pl.Float64(),
        "size": pl.Float64(),  # fractional for crypto
        "side": pl.Int8(),  # +1 buyer-initiated, -1 seller-initiated, 0 unknown
        "side_source": SideSource,  # null when side is 0
        "exchange": pl.String(),
        "sale_condition": pl.String(),
        "suspicious": pl.Boolean(),
    }
)

QUOTES: Final = pl.Schema(
    {
        "ts": TS,
        "instrument": pl.String(),
        "bid_px": pl.Float64(),
        "bid_sz": pl.Float64(),
        "ask_px": pl.Float64(),
        "ask_sz": pl.Float64(),
    }
)

BARS: Final = pl.Schema(
    {
        "ts": TS,  # bar start
        "instrument": pl.String(),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
        "volume": pl.Float64(),
        "amount": pl.Float64(),  # traded value, where given
        "vwap": pl.Float64(),
        "n_trades": pl.Int64(),
        "bar_length": pl.Duration("ns"),
    }
)

QUOTE_BARS: Final = pl.Schema(
    {
        "ts": TS,
        "instrument": pl.String(),
        "bid_open": pl.Float64(),
        "bid_high": pl.Float64(),
        "bid_low": pl.Float64(),
        "bid_close": pl.Float64(),
        "bid_size": pl.Float64(),
        "ask_open": pl.Float64(),
        "ask_high": pl.Float64(),
        "ask_low": pl.Float64(),
        "ask_close": pl.Float64(),
        "ask_size": pl.Float64(),
        "bar_length": pl.Duration("ns"),
    }
)

SCHEMAS: Final[dict[str, pl.Schema]] = {
    "events": EVENTS,
    "trades": TRADES,
    "quotes": QUOTES,
    "bars": BARS,
    "quote_bars": QUOTE_BARS,
}


def levels_schema(n_levels: int) -> pl.Schema:
    """Schema of a top-``n_levels`` book table in LOBSTER's orderbook-file column order.

    Columns: ``ts`` (the event timestamp), ``instrument``, then for level i = 1..n
    ``ask_px_i, ask_sz_i, bid_px_i, bid_sz_i``. An empty level is null.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    fields: dict[str, pl.DataType] = {"ts": TS, "instrument": pl.String()}
    for i in range(1, n_levels + 1):
        fields[f"ask_px_{i}"] = pl.Float64()
        fields[f"ask_sz_{i}"] = pl.Int64()
        fields[f"bid_px_{i}"] = pl.Float64()
        fields[f"bid_sz_{i}"] = pl.Int64()
    return pl.Schema(fields)


def schema_of(table: str, frame: pl.DataFrame | None = None) -> pl.Schema:
    """The canonical schema of ``table`` (for ``levels``, sized from ``frame``'s columns)."""
    if table == "levels":
        if frame is None:
            raise ValueError("the levels schema depends on the frame's number of levels")
        n = sum(1 for c in frame.columns if c.startswith("ask_px_"))
        return levels_schema(n)
    return SCHEMAS[table]


def conform(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """Select and cast ``frame`` to ``table``'s canonical schema, adding missing optional columns
    as nulls (a reader's own validation, :func:`tapecast.data.validate.finalize`, decides which
    columns are required). Raises a Polars error where a column cannot be cast."""
    schema = schema_of(table, frame)
    cols = []
    for name, dtype in schema.items():
        if name in frame.columns:
            cols.append(pl.col(name).cast(dtype, strict=True))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(cols)


def empty(table: str, n_levels: int | None = None) -> pl.DataFrame:
    """An empty frame with ``table``'s canonical schema."""
    if table == "levels":
        return pl.DataFrame(schema=levels_schema(n_levels or 1))
    return pl.DataFrame(schema=SCHEMAS[table])

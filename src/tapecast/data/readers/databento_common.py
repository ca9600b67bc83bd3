"""Databento records (DBN or CSV) -> canonical tables, shared by both Databento readers.

Both readers first bring a file into one *raw frame*: a Polars frame with Databento's own field
names and already-decoded values, so that everything after that point is identical whatever the
encoding was (which is what makes the DBN -> ``to_csv`` -> CSV round trip exact):

=================  ==========================================================================
column             meaning
=================  ==========================================================================
``_row``           1-based record (DBN) or data-row (CSV) number in the source file
``ts_recv``        ``Datetime("ns", "UTC")``, null where the file has none (ohlcv, a to_df export)
``ts_event``       ``Datetime("ns", "UTC")``
``instrument``     the raw symbol where the file's symbology resolves it, else the instrument_id
``action``         one character (``A C M T F R N``), as the venue sent it
``side``           one character (``B A N``)
``price``          float, null for UNDEF_PRICE
``size``           int64
``order_id``       uint64 (mbo)
``flags``          uint8
``sequence``       int64
``depth``          int64 (mbp)
``bid_px_NN`` ...  per level ``NN``: px float (null = empty), sz int64 (mbp-1, mbp-10, tbbo)
``open`` ...       ohlcv: open, high, low, close (float), volume (int64)
=================  ==========================================================================

Format reference: Databento schemas and conventions,
https://databento.com/docs/schemas-and-data-formats (MBO, MBP-1, MBP-10, TBBO, Trades, OHLCV)
and https://databento.com/docs/standards-and-conventions/common-fields-enums-types (actions,
sides, flags, UNDEF_PRICE = INT64_MAX, prices as int64 in units of 1e-9).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from os import PathLike
from typing import Final

import polars as pl

from tapecast.core.errors import InputError, UnsupportedFormatError
from tapecast.data.schemas import TS, empty, levels_schema
from tapecast.data.tables import Tables
from tapecast.data.validate import ROW, check_values, finalize

FIXED_PRICE_SCALE: Final = 1_000_000_000  # DBN prices are int64 in units of 1e-9
UNDEF_PRICE: Final = 2**63 - 1  # INT64_MAX: "no price"
UNDEF_TIMESTAMP: Final = 2**64 - 1  # UINT64_MAX: "no timestamp"
F_LAST: Final = 0x80
F_SNAPSHOT: Final = 0x20

# DBN action / side characters -> canonical names (None: record carries no book action)
ACTION_NAMES: Final[dict[str, str | None]] = {
    "A": "add", "C": "cancel", "M": "modify", "T": "trade", "F": "fill", "R": "clear", "N": None,
}
SIDE_NAMES: Final[dict[str, str]] = {"B": "bid", "A": "ask", "N": "none"}
# Databento's side on a trade is the aggressor's side (buyer B, seller A, N unknown)
AGGRESSOR: Final[dict[str, int]] = {"B": 1, "A": -1, "N": 0}

BAR_LENGTHS: Final[dict[str, timedelta]] = {
    "ohlcv-1s": timedelta(seconds=1),
    "ohlcv-1m": timedelta(minutes=1),
    "ohlcv-1h": timedelta(hours=1),
    "ohlcv-1d": timedelta(days=1),
}
SUPPORTED_SCHEMAS: Final = ("mbo", "trades", "tbbo", "mbp-1", "mbp-10", *BAR_LENGTHS)
# record types (rtype) of the supported schemas, for files that name the rtype but no schema
RTYPE_SCHEMAS: Final[dict[int, str]] = {
    160: "mbo", 0: "trades", 1: "mbp-1", 10: "mbp-10",
    32: "ohlcv-1s", 33: "ohlcv-1m", 34: "ohlcv-1h", 35: "ohlcv-1d",
}
MBP_LEVELS: Final[dict[str, int]] = {"tbbo": 1, "mbp-1": 1, "mbp-10": 10}


def unsupported_schema(file: str | PathLike[str], schema: str) -> UnsupportedFormatError:
    """The error for a Databento schema tapecast does not read."""
    return UnsupportedFormatError(
        f"{file}: unsupported schema {schema!r}; supported: {', '.join(SUPPORTED_SCHEMAS)}")


def raw_columns(schema: str) -> tuple[str, ...]:
    """The raw-frame columns (besides ``_row``, timestamps and instrument) ``schema`` needs."""
    if schema == "mbo":
        return ("action", "side", "price", "size", "order_id", "flags", "sequence")
    if schema == "trades":
        return ("action", "side", "depth", "price", "size", "flags", "sequence")
    if schema in MBP_LEVELS:
        levels = tuple(f"{s}_{f}_{i:02d}" for i in range(MBP_LEVELS[schema])
                       for s in ("bid", "ask") for f in ("px", "sz"))
        return ("action", "side", "depth", "price", "size", "flags", "sequence", *levels)
    if schema in BAR_LENGTHS:
        return ("open", "high", "low", "close", "volume")
    raise ValueError(f"not a supported schema: {schema}")


def _check_codes(raw: pl.DataFrame, column: str, codes: Mapping[str, object],
                 file: str | PathLike[str]) -> None:
    bad = raw.select(pl.col(ROW).filter(~pl.col(column).is_in(list(codes))).first(),
                     pl.col(column).filter(~pl.col(column).is_in(list(codes))).first())
    row, value = bad.row(0)
    if row is not None:
        raise InputError(file, int(row), column, f"one of {', '.join(codes)}", value)


def _snapshot(flags: pl.Expr) -> pl.Expr:
    """Records of a snapshot: flag 0x20 on a record that is not the clear (``R``) opening it.

    The clear that starts a snapshot carries the flag too, but it adds nothing to the book; so
    ``snapshot_records`` is the number of orders (mbo) or updates the snapshot replays.
    """
    return ((flags & F_SNAPSHOT) != 0) & (pl.col("action") != "R")


def _events(raw: pl.DataFrame, file: str | PathLike[str],
            ordered: str | None) -> tuple[pl.DataFrame, dict[str, int]]:
    _check_codes(raw, "action", ACTION_NAMES, file)
    _check_codes(raw, "side", SIDE_NAMES, file)
    flags = pl.col("flags").cast(pl.UInt8)
    counters = raw.select(
        (pl.col("action") == "N").sum().alias("no_action_records"),
        _snapshot(flags).sum().alias("snapshot_records"),
        (pl.col("action") == "R").sum().alias("clears"),
    ).row(0, named=True)
    frame = raw.filter(pl.col("action") != "N").with_columns(
        pl.col("action").replace_strict(ACTION_NAMES, return_dtype=pl.String),
        pl.col("side").replace_strict(SIDE_NAMES, return_dtype=pl.String),
    )
    _require_price(frame, file)
    events = finalize(frame, "events", file, ordered_by=ordered)
    return events, {k: int(v) for k, v in counters.items() if v}


def _require_price(frame: pl.DataFrame, file: str | PathLike[str]) -> None:
    """An add or a modify places an order at a price: its price cannot be undefined."""
    needs = pl.col("action").is_in(["add", "modify"]) & pl.col("price").is_null()
    row = frame.select(pl.col(ROW).filter(needs).first()).item()
    if row is not None:
        raise InputError(file, int(row), "price", "a price on an add or a modify (got none)")


def _trades(raw: pl.DataFrame, file: str | PathLike[str], ordered: str | None) -> pl.DataFrame:
    _check_codes(raw, "side", AGGRESSOR, file)
    side = pl.col("side").replace_strict(AGGRESSOR, return_dtype=pl.Int8)
    frame = raw.filter(pl.col("action") == "T").with_columns(
        pl.col("ts_event").alias("ts"),
        side.alias("side"),
        pl.when(side != 0).then(pl.lit("exchange")).alias("side_source"),
        pl.col("size").cast(pl.Float64),
    )
    if frame.height == 0:
        return empty("trades")  # a file without trades has an empty trades table
    return finalize(frame, "trades", file, ordered_by=ordered)


def _empty_level(px: str, sz: str) -> list[pl.Expr]:
    """An empty book level is null price and null size (never UNDEF_PRICE or a 0 size)."""
    return [pl.col(px), pl.when(pl.col(px).is_not_null()).then(pl.col(sz)).alias(sz)]


def _quotes(raw: pl.DataFrame, file: str | PathLike[str], ordered: str | None) -> pl.DataFrame:
    frame = raw.with_columns(
        pl.col("ts_event").alias("ts"),
        *_empty_level("bid_px_00", "bid_sz_00"),
        *_empty_level("ask_px_00", "ask_sz_00"),
    ).rename({"bid_px_00": "bid_px", "bid_sz_00": "bid_sz",
              "ask_px_00": "ask_px", "ask_sz_00": "ask_sz"})
    return finalize(frame, "quotes", file, ordered_by=ordered)


def _levels(raw: pl.DataFrame, n_levels: int, file: str | PathLike[str]) -> pl.DataFrame:
    cols: list[pl.Expr] = [pl.col("ts_event").alias("ts"), pl.col("instrument")]
    for i in range(n_levels):
        for s in ("ask", "bid"):
            px, sz = f"{s}_px_{i:02d}", f"{s}_sz_{i:02d}"
            cols.append(pl.col(px).alias(f"{s}_px_{i + 1}"))
            cols.append(pl.when(pl.col(px).is_not_null()).then(pl.col(sz))
                        .alias(f"{s}_sz_{i + 1}"))
    schema = levels_schema(n_levels)
    frame = raw.select(pl.col(ROW), *cols)
    for name in schema:
        if "_px_" in name or "_sz_" in name:
            check_values(frame, name, "positive" if "_px_" in name else "nonneg", file)
    return frame.select([pl.col(n).cast(t) for n, t in schema.items()])


def _bars(raw: pl.DataFrame, schema: str, file: str | PathLike[str]) -> pl.DataFrame:
    frame = raw.with_columns(
        pl.col("ts_event").alias("ts"),
        pl.col("volume").cast(pl.Float64),
        pl.lit(BAR_LENGTHS[schema], dtype=pl.Duration("ns")).alias("bar_length"),
    )
    return finalize(frame, "bars", file, ordered_by="ts_event")


def to_tables(raw: pl.DataFrame, schema: str, file: str | PathLike[str], fmt: str) -> Tables:
    """Canonical tables of one Databento file given as a raw frame (see the module docstring).

    Parameters
    ----------
    raw : pl.DataFrame
        The raw frame, one row per record, in file order.
    schema : str
        The Databento schema (one of :data:`SUPPORTED_SCHEMAS`).
    file : path-like
        The source, for error messages.
    fmt : str
        The reader's format name (``"dbn"`` or ``"databento-csv"``).

    Returns
    -------
    Tables
        mbo: events (n_records - no-action records) and trades (its ``T`` records);
        trades: trades; tbbo / mbp-1: trades and quotes; mbp-10: trades, quotes and levels (10);
        ohlcv-*: bars. Counters: ``records``, ``snapshot_records`` (flag 0x20, clears excluded),
        ``clears``, ...

    Raises
    ------
    InputError
        Empty file, unknown action/side code, a bad value, ts_recv (ts_event for ohlcv) going
        backwards; the message names the file, the record and the field.
    """
    if schema not in SUPPORTED_SCHEMAS:
        raise unsupported_schema(file, schema)
    if raw.height == 0:
        raise InputError(file, None, None, "at least one record (the file has 0 records)")
    out = Tables(source=str(file), format=fmt, counters={"records": raw.height})
    if schema in BAR_LENGTHS:
        out.bars = _bars(raw, schema, file)
        return out
    ordered = _receive_clock(raw, file)
    if schema == "mbo":
        out.events, counts = _events(raw, file, ordered)
        out.counters.update(counts)
        out.trades = _trades(raw, file, None)  # a subset of ordered events: already checked
        return out
    _check_codes(raw, "action", ACTION_NAMES, file)
    out.trades = _trades(raw, file, ordered)
    if schema in MBP_LEVELS:
        out.quotes = _quotes(raw, file, ordered)
        snapshot = raw.select(_snapshot(pl.col("flags").cast(pl.UInt8)).sum()).item()
        out.counters.update({k: v for k, v in {
            "snapshot_records": int(snapshot),
            "clears": int((raw["action"] == "R").sum())}.items() if v})
    if schema == "mbp-10":
        out.levels = _levels(raw, 10, file)
    return out


def _receive_clock(raw: pl.DataFrame, file: str | PathLike[str]) -> str | None:
    """``"ts_recv"`` when the file has the receive clock (then on every record), else None."""
    missing = raw["ts_recv"].is_null()
    if missing.all():
        return None  # e.g. a to_df() export without its ts_recv index: nothing to check
    if missing.any():
        row = int(raw[ROW][int(missing.arg_true()[0])])
        raise InputError(file, row, "ts_recv", "a receive timestamp on every record")
    return "ts_recv"


def timestamps(ns: pl.Expr) -> pl.Expr:
    """UTC nanosecond timestamps from uint64 nanoseconds, UNDEF_TIMESTAMP -> null."""
    return (pl.when(ns != UNDEF_TIMESTAMP).then(ns).cast(pl.Int64).cast(TS))


def fixed_prices(px: pl.Expr) -> pl.Expr:
    """Float prices from int64 fixed-point 1e-9 units, UNDEF_PRICE -> null.

    A division (not a multiplication by 1e-9) so that the result is the correctly rounded
    double of the exact decimal, the same number that parsing the decimal text gives.
    """
    return pl.when(px != UNDEF_PRICE).then(px).cast(pl.Float64) / FIXED_PRICE_SCALE

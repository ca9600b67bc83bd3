"""Generic CSV / Parquet trades, bars, quotes or L3 events, with an automatic or explicit mapping.

A ``mapping`` maps canonical column -> source column (a name, or a 0-based position as an int).
Canonical columns not in the mapping are looked up among common header names
(case-insensitive; see :data:`ALIASES`), so most files need no mapping at all, e.g.

* the 1-second bars of ``seeds/price-distribution-diffusion-plan.md`` (Appendix B):
  ``symbol,bob,eob,close,high,low,volume,amount`` -> ``bars`` with ``ts = bob`` (bar open
  begin, UTC), ``bar_length = eob - bob``, ``open`` null (the format has none),
  ``amount`` (traded value) kept, ``instrument`` from ``symbol``;
* ``timestamp_utc,open,high,low,close,volume`` (nautilus 6EH4), ``timestamp,open,...``;
* ``timestamp,trade_id,price,quantity,buyer_maker`` (Binance trades, Parquet) -> ``trades``
  with the side from ``buyer_maker`` (true: the seller crossed, -1);
* header-less files with a known shape: 3 columns = ``ts,price,size`` trades (freqtrade's
  Kraken ``unix_s,price,volume``), 6 = ``ts,open,high,low,close,volume`` bars,
  12 = Binance kline CSV (``open_time,o,h,l,c,volume,close_time,quote_volume,n_trades,...``).

The table is ``table=`` or detected from the columns: an order id, an action and a side ->
``events`` (order-by-order, with ``action_mapping`` and ``size_kind``: see
:mod:`tapecast.data.readers.generic_events`), a close -> ``bars``, a price -> ``trades``, a
bid and an ask -> ``quotes``. Timestamps: see
:func:`tapecast.data.readers._columns.parse_timestamps` (ISO strings, epoch s/ms/us/ns with the
unit inferred from magnitude unless ``ts_unit`` is given, naive times read in ``timezone``).
Trades without a side get side 0 and a null ``side_source``; a given side is the aggressor's
and is recorded as ``side_source="exchange"`` (``buy``/``b``/``1`` -> +1, ``sell``/``s``/``-1`` ->
-1, empty/``0``/``n`` -> 0). ``bar_length`` comes from a bar-end column (``eob``), else from
the ``bar_length`` option (``"1s"``, ``"1m"``, ``"500ms"``...), else the most common gap
between consecutive bars of an instrument. Time must not decrease within an instrument.
``instrument`` is the ``instrument`` option, else an instrument column, else derived from the
file name by :func:`~tapecast.data.readers._columns.instrument_from_name` (dates, resolutions
and table words dropped, upper-cased: ``gbpusd-m1-bid-2012.csv`` -> ``GBPUSD``). Every bad
field raises :class:`InputError` with the file, the 1-based data row (header excluded;
Parquet: record) and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from tapecast.core.errors import InputError
from tapecast.data.readers._columns import (
    TsUnit,
    check_ordered,
    decode_text,
    instrument_from_name,
    parse_timestamps,
    raise_first,
    read_bytes,
    to_float,
)
from tapecast.data.readers.generic_events import (
    EVENT_ALIASES,
    EVENT_COLUMNS,
    SizeKind,
    read_events,
)
from tapecast.data.schemas import conform
from tapecast.data.tables import Tables
from tapecast.data.validate import ROW, finalize

GenericTable = Literal["trades", "bars", "quotes", "events"]

ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "ts": ("ts", "timestamp", "timestamp_utc", "time", "datetime", "date", "bob", "ts_event",
           "open_time"),
    "ts_end": ("eob", "ts_end", "end_time", "close_time"),
    "instrument": ("instrument", "symbol", "ticker", "pair", "sym"),
    "price": ("price", "px", "trade_price"),
    "size": ("size", "qty", "quantity", "amount", "volume"),
    "side": ("side", "aggressor_side", "taker_side", "aggressor"),
    "buyer_maker": ("buyer_maker", "is_buyer_maker", "buyer_is_maker"),
    "open": ("open",), "high": ("high",), "low": ("low",), "close": ("close",),
    "volume": ("volume", "vol"),
    "amount": ("amount", "turnover", "quote_volume", "value", "notional"),
    "vwap": ("vwap",),
    "n_trades": ("n_trades", "trades", "trade_count", "num_trades", "number_of_trades"),
    "bid_px": ("bid", "bid_px", "bid_price", "best_bid"),
    "ask_px": ("ask", "ask_px", "ask_price", "best_ask"),
    "bid_sz": ("bid_size", "bid_sz", "bid_qty"),
    "ask_sz": ("ask_size", "ask_sz", "ask_qty"),
    "exchange": ("exchange", "venue"),
    "sale_condition": ("sale_condition", "condition"),
    "suspicious": ("suspicious",),
    **EVENT_ALIASES,
}
_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "trades": ("ts", "instrument", "price", "size", "side", "buyer_maker", "exchange",
               "sale_condition", "suspicious"),
    "bars": ("ts", "ts_end", "instrument", "open", "high", "low", "close", "volume", "amount",
             "vwap", "n_trades"),
    "quotes": ("ts", "instrument", "bid_px", "bid_sz", "ask_px", "ask_sz"),
    "events": EVENT_COLUMNS,
}
_HEADERLESS: Final[dict[int, tuple[str, dict[str, int]]]] = {
    3: ("trades", {"ts": 0, "price": 1, "size": 2}),
    6: ("bars", {"ts": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}),
    12: ("bars", {"ts": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5,
                  "amount": 7, "n_trades": 8}),
}
_NUMBER_RE: Final = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_BUY: Final = ("buy", "b", "1", "+1", "1.0")
_SELL: Final = ("sell", "s", "-1", "-1.0")
_NONE: Final = ("n", "none", "0", "0.0", "unknown")
_DURATION_RE: Final = re.compile(r"^\s*(\d+)\s*(ns|us|ms|s|m|min|h|d)\s*$")
_DURATION_NS: Final = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                       "m": 60_000_000_000, "min": 60_000_000_000, "h": 3_600_000_000_000,
                       "d": 86_400_000_000_000}


def read_generic(
    path: Path,
    *,
    table: GenericTable | None = None,
    mapping: Mapping[str, str | int] | None = None,
    instrument: str | None = None,
    timezone: str = "UTC",
    ts_unit: TsUnit | None = None,
    ts_format: str | None = None,
    bar_length: str | None = None,
    has_header: bool | None = None,
    separator: str = ",",
    quote_side: str | None = None,
    action_mapping: Mapping[str, str] | str | None = None,
    size_kind: SizeKind = "delta",
) -> Tables:
    """Read a CSV (plain, gzip or zstd) or Parquet file of trades, bars, quotes or L3 events.

    Parameters
    ----------
    path : Path
        The file; Parquet by extension or magic bytes, else CSV.
    table : {"trades", "bars", "quotes", "events"}, optional
        The table to produce; detected from the columns when omitted.
    mapping : mapping of str to str or int, optional
        Canonical column (``ts``, ``ts_end``, ``instrument``, ``price``, ``size``, ``side``,
        ``buyer_maker``, ``open``..``close``, ``volume``, ``amount``, ``vwap``, ``n_trades``,
        ``bid_px``, ``bid_sz``, ``ask_px``, ``ask_sz``, ``exchange``, ``sale_condition``,
        ``suspicious``; for events also ``action``, ``order_id``, ``ts_recv``, ``sequence``)
        -> source column name or 0-based position.
    instrument : str, optional
        The instrument of every row (overrides an instrument column). Default: the
        instrument column, else the file name's instrument (``instrument_from_name``).
    timezone : str
        IANA zone of naive timestamps (default UTC).
    ts_unit : {"s", "ms", "us", "ns"}, optional
        Unit of epoch timestamps; inferred from magnitude when omitted.
    ts_format : str, optional
        ``strftime`` format of text timestamps; inferred when omitted.
    bar_length : str, optional
        Bar duration (``"1s"``, ``"1m"``, ``"1h"``, ``"1d"``...) when the file has no bar-end.
    has_header : bool, optional
        Whether a CSV's first line is a header; by default, it is unless it holds a number.
    separator : str
        CSV field separator.
    quote_side : {"bid", "ask", "none"}, optional
        Bars of one quote side become ``quote_bars`` (that side filled, the other null).
        Default: ``bid`` or ``ask`` when the file name has that word
        (``gbpusd-m1-bid-2012.csv``), else plain ``bars``; ``"none"`` keeps plain bars.
    action_mapping : mapping of str to str, or str, optional
        Events: source action value -> canonical action (``add``, ``modify``, ``cancel``,
        ``fill``, ``trade``, ``clear`` or ``skip``), case-insensitive, on top of the common
        vocabularies (``new/amend/cancel``, ``created/changed/deleted``...); a string
        ``"created=add,deleted=cancel"`` is the same.
    size_kind : {"delta", "remaining"}
        Events: whether ``size`` is the event's quantity (canonical, as Databento) or the
        order's remaining size after the event (converted per order id, see
        :mod:`tapecast.data.readers.generic_events`).

    Returns
    -------
    Tables
        One table (``trades``, ``bars``, ``quotes``, or ``quote_bars`` for one-sided bid or
        ask bars), n_rows rows in file order; for events, ``events`` (n_rows - skipped rows)
        and the ``trades`` among them.
    """
    _check_timezone(timezone, path)
    source = _load(path, has_header, separator)
    table, resolved = _resolve(source, path, mapping, table)
    fmt = "parquet" if _is_parquet(path) else "csv"
    if table == "events":
        return read_events(source, resolved, path, instrument=instrument or
                           instrument_from_name(path), override=instrument is not None,
                           timezone=timezone, ts_unit=ts_unit, ts_format=ts_format,
                           action_mapping=action_mapping, size_kind=size_kind, fmt=fmt)
    frame = _build(source, resolved, path, table,
                   instrument=instrument or instrument_from_name(path),
                   override="instrument" in resolved and instrument is not None,
                   timezone=timezone, ts_unit=ts_unit, ts_format=ts_format,
                   bar_length=bar_length)
    out = Tables(source=str(path), format=fmt)
    side = _quote_side(path, quote_side) if table == "bars" else None
    if side is not None:
        out.quote_bars = _one_sided_quote_bars(frame, side)
    else:
        setattr(out, table, frame)
    return out


def _quote_side(path: Path, quote_side: str | None) -> str | None:
    """``bid``/``ask`` from the option, else from a ``bid``/``ask`` word in the file name."""
    if quote_side is not None:
        if quote_side.lower() not in ("bid", "ask", "none"):
            raise InputError(path, None, "quote_side", "bid, ask or none", quote_side)
        return None if quote_side.lower() == "none" else quote_side.lower()
    words = {w.lower() for w in re.split(r"[-_.\s]+", path.name)}
    found = words & {"bid", "ask"}
    return found.pop() if len(found) == 1 else None


def _one_sided_quote_bars(bars: pl.DataFrame, side: str) -> pl.DataFrame:
    """Bars of one quote side (validated as bars) as ``quote_bars`` with the other side null.

    Returns
    -------
    pl.DataFrame
        ``quote_bars``, shape (n_bars, 13); ``{side}_size`` is null (a bar volume is not a
        quoted size), as is every column of the other side.
    """
    fields = ("open", "high", "low", "close")
    return conform(bars.select("ts", "instrument", *[pl.col(f).alias(f"{side}_{f}")
                                                     for f in fields], "bar_length"),
                   "quote_bars")


def _check_timezone(timezone: str, path: Path) -> None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(path, None, "timezone", "an IANA time zone name such as "
                         "'America/New_York'", timezone) from None


def _is_parquet(path: Path) -> bool:
    if path.name.lower().endswith(".parquet"):
        return True
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _load(path: Path, has_header: bool | None, separator: str) -> pl.DataFrame:
    """The source table with all its columns and a 1-based ``_row``."""
    if _is_parquet(path):
        try:
            frame = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputError(path, None, None, f"a readable Parquet file ({exc})") from None
        if frame.height == 0:
            raise InputError(path, None, None, "at least one row (the file is empty)")
        return frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return read_csv_strings(read_bytes(path), path, has_header=has_header, separator=separator)


def _first_line_is_header(first: str, separator: str) -> bool:
    fields = [f.strip().strip('"') for f in first.split(separator)]
    return not any(re.match(_NUMBER_RE, f) for f in fields)


def read_csv_strings(raw: bytes, file: Path, *, has_header: bool | None = True,
                     separator: str = ",") -> pl.DataFrame:
    """Parse CSV bytes into String columns plus ``_row`` (1-based data row, header excluded).

    Blank lines are skipped (rows keep their line-based numbers); a line with a different
    number of fields than the header raises (checked when the file has no quote characters,
    where a line is exactly a row). A leading unnamed index column (a pandas export) is dropped.
    """
    text = decode_text(raw, file).replace("\r\n", "\n")
    first = text.split("\n", 1)[0]
    if not text.strip():
        raise InputError(file, None, None, "at least one data row (the file is empty)")
    header = _first_line_is_header(first, separator) if has_header is None else has_header
    lines = pl.Series("line", text.removesuffix("\n").split("\n")[1 if header else 0:],
                      dtype=pl.String)
    n_fields = first.count(separator) + 1
    if '"' not in text:
        _check_ragged(lines, n_fields, separator, file)
    try:
        frame = pl.read_csv(text.encode(), infer_schema=False, has_header=header,
                            separator=separator)
    except pl.exceptions.PolarsError as exc:
        raise InputError(file, None, None, f"a CSV table ({str(exc).splitlines()[0]})") from None
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    if '"' not in text and frame.height == lines.len():
        frame = frame.filter((lines.str.strip_chars() != "").alias("_keep"))
    if frame.columns[1] in ("", "Unnamed: 0") and frame.width > 2:
        frame = frame.drop(frame.columns[1])
    if frame.height == 0:
        raise InputError(file, None, None, "at least one data row (the file is empty)")
    return frame


def _check_ragged(lines: pl.Series, n_fields: int, separator: str, file: Path) -> None:
    frame = lines.to_frame().with_row_index(ROW, offset=1)
    count = pl.col("line").str.count_matches(separator, literal=True) + 1
    bad = (pl.col("line").str.strip_chars() != "") & (count != n_fields)
    raise_first(frame, bad, file, None,
                f"{n_fields} fields separated by {separator!r} (as in the first line)",
                value="line")


def _resolve(source: pl.DataFrame, path: Path, mapping: Mapping[str, str | int] | None,
             table: GenericTable | None) -> tuple[GenericTable, dict[str, str]]:
    """The table, and canonical column -> source column name; raises on an unknown column."""
    columns = [c for c in source.columns if c != ROW]
    explicit = dict(mapping or {})
    if not explicit and all(c.startswith("column_") for c in columns):
        layout = _HEADERLESS.get(len(columns))
        if layout is None or table not in (None, layout[0]):
            raise InputError(path, None, None, "a header, or mapping= for a header-less file "
                             f"with {len(columns)} columns (known shapes: 3, 6, 12 columns)")
        table, explicit = layout[0], dict(layout[1])  # type: ignore[assignment]
    resolved: dict[str, str] = {}
    for canonical, src in explicit.items():
        if canonical not in ALIASES:
            raise InputError(path, None, canonical, "a canonical column in mapping= (one of "
                             f"{', '.join(ALIASES)})")
        resolved[canonical] = _source_column(columns, src, path, canonical)
    lower = {c.strip().lower(): c for c in columns}

    def lookup(canonical: str) -> str | None:
        used = set(resolved.values())
        return next((lower[n] for n in ALIASES[canonical] if n in lower
                     and lower[n] not in used), None)

    table = table or _detect_table(set(resolved) | {c for c in ALIASES if lookup(c)}, path,
                                   columns)
    for canonical in _COLUMNS[table]:
        hit = resolved.get(canonical) or lookup(canonical)
        if hit is not None:
            resolved[canonical] = hit
    return table, {k: v for k, v in resolved.items() if k in _COLUMNS[table]}


def _source_column(columns: list[str], src: str | int, path: Path, canonical: str) -> str:
    if isinstance(src, int) and not isinstance(src, bool):
        if not 0 <= src < len(columns):
            raise InputError(path, None, canonical, f"a column position below {len(columns)}",
                             src)
        return columns[src]
    if src in columns:
        return src
    raise InputError(path, None, str(src), f"a column named {src!r} for {canonical} (the file "
                     f"has {', '.join(columns)})")


def _detect_table(found: set[str], path: Path, columns: list[str]) -> GenericTable:
    if {"order_id", "action", "side"} <= found:
        return "events"
    if "close" in found:
        return "bars"
    if "price" in found:
        return "trades"
    if "bid_px" in found and "ask_px" in found:
        return "quotes"
    raise InputError(path, None, None, "columns of bars (close), trades (price), quotes "
                     "(bid, ask) or events (order_id, action, side); pass table= and mapping=",
                     ",".join(columns))


_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "trades": ("ts", "price", "size"), "bars": ("ts", "close"), "quotes": ("ts",),
}


def _build(source: pl.DataFrame, resolved: dict[str, str], path: Path, table: GenericTable,
           *, instrument: str, override: bool, timezone: str, ts_unit: TsUnit | None,
           ts_format: str | None, bar_length: str | None) -> pl.DataFrame:
    for canonical in _REQUIRED[table]:
        if canonical not in resolved:
            raise InputError(path, None, canonical, f"a column for {canonical} (pass "
                             f"mapping={{'{canonical}': <column>}})",
                             ",".join(c for c in source.columns if c != ROW))
    cols: dict[str, pl.Series] = {ROW: source[ROW]}
    for canonical, src in resolved.items():
        field = f"{src}"
        if canonical in ("ts", "ts_end"):
            cols[canonical] = parse_timestamps(source, src, path, unit=ts_unit,
                                               timezone=timezone, ts_format=ts_format,
                                               field=field)
        elif canonical in ("instrument", "exchange", "sale_condition"):
            cols[canonical] = source[src].cast(pl.String)
        elif canonical in ("side", "buyer_maker", "suspicious"):
            continue
        else:
            cols[canonical] = to_float(source, src, path, field=field)
    frame = pl.DataFrame(cols)
    if "instrument" not in frame.columns or override:
        frame = frame.with_columns(pl.lit(instrument).alias("instrument"))
    raise_first(frame, pl.col("instrument").is_null(), path, resolved.get("instrument"),
                "an instrument (the field is required)")
    frame = _finish(frame, source, resolved, path, table, bar_length)
    for canonical in _REQUIRED[table]:
        raise_first(frame, pl.col(canonical).is_null(), path, resolved[canonical],
                    "a value (the field is required)")
    by = "instrument" if frame["instrument"].n_unique() > 1 else None
    check_ordered(frame, "ts", path, by=by, field=resolved["ts"])
    return finalize(frame.drop("ts_end", strict=False), table, path)


def _finish(frame: pl.DataFrame, source: pl.DataFrame, resolved: dict[str, str], path: Path,
            table: GenericTable, bar_length: str | None) -> pl.DataFrame:
    if table == "trades":
        side = _side(source, resolved, path)
        frame = frame.with_columns(side.alias("side"))
        frame = frame.with_columns(pl.when(pl.col("side") != 0).then(pl.lit("exchange"))
                                   .alias("side_source"))
        if "suspicious" in resolved:
            frame = frame.with_columns(_bool(source, resolved["suspicious"], path)
                                       .alias("suspicious"))
    if table == "bars":
        frame = frame.with_columns(_bar_length(frame, path, bar_length).alias("bar_length"))
        if "n_trades" in frame.columns:
            frame = frame.with_columns(pl.col("n_trades").round(0).cast(pl.Int64))
    return frame


def _bool(source: pl.DataFrame, column: str, path: Path) -> pl.Series:
    """A true/false/1/0 column as Boolean (empty -> null)."""
    if source.schema[column] == pl.Boolean:
        return source[column]
    text = source[column].cast(pl.String).str.strip_chars().str.to_lowercase()
    frame = source.select(ROW).with_columns(text.alias("_s"))
    truth = pl.col("_s").replace_strict({"true": True, "1": True, "t": True, "false": False,
                                         "0": False, "f": False, "": None}, default=None,
                                        return_dtype=pl.Boolean)
    frame = frame.with_columns(truth.alias("_b"))
    raise_first(frame, pl.col("_b").is_null() & pl.col("_s").is_not_null() & (pl.col("_s") != ""),
                path, column, "true or false", value="_s")
    return frame["_b"]


def _side(source: pl.DataFrame, resolved: dict[str, str], path: Path) -> pl.Series:
    """Aggressor side (Int8 +1/-1/0) from a side column, else buyer_maker, else 0."""
    if "side" in resolved:
        col = resolved["side"]
        text = source[col].cast(pl.String).str.strip_chars().str.to_lowercase()
        frame = source.select(ROW).with_columns(text.fill_null("").alias("_s"))
        mapping = {**dict.fromkeys(_BUY, 1), **dict.fromkeys(_SELL, -1),
                   **dict.fromkeys((*_NONE, ""), 0)}
        frame = frame.with_columns(pl.col("_s").replace_strict(
            mapping, default=None, return_dtype=pl.Int8).alias("_v"))
        raise_first(frame, pl.col("_v").is_null(), path, col,
                    "a side: buy/b/1 (buyer-initiated), sell/s/-1, or empty/0/n (unknown)",
                    value="_s")
        return frame["_v"]
    if "buyer_maker" in resolved:
        maker = _bool(source, resolved["buyer_maker"], path)
        return maker.to_frame("m").select(
            pl.when(pl.col("m")).then(-1).when(pl.col("m").not_()).then(1).otherwise(0)
            .cast(pl.Int8).alias("m"))["m"]
    return pl.Series("side", [0] * source.height, dtype=pl.Int8)


def parse_duration(text: str, path: Path | None = None) -> int:
    """``"1s"``, ``"500ms"``, ``"1m"``/``"1min"``, ``"1h"``, ``"1d"`` -> nanoseconds."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise InputError(path, None, "bar_length", "a duration like 1s, 500ms, 1m, 1h or 1d",
                         text)
    return int(match.group(1)) * _DURATION_NS[match.group(2)]


def _bar_length(frame: pl.DataFrame, path: Path, bar_length: str | None) -> pl.Series:
    """Bar durations: ts_end - ts, else the option, else the modal gap per instrument."""
    if "ts_end" in frame.columns:
        length = frame["ts_end"] - frame["ts"]
        raise_first(frame.with_columns(length.alias("_l")), pl.col("_l") <= pl.duration(),
                    path, "ts_end", "a bar end after the bar start")
        return length.cast(pl.Duration("ns"))
    if bar_length is not None:
        ns = parse_duration(bar_length, path)
        return pl.Series([ns] * frame.height, dtype=pl.Int64).cast(pl.Duration("ns"))
    gaps = frame.select(pl.col("ts").diff().over("instrument").dt.total_nanoseconds()
                        .alias("g"))["g"]
    gaps = gaps.filter(gaps > 0)
    mode = gaps.mode().sort().first() if gaps.len() else None
    return pl.Series([mode] * frame.height, dtype=pl.Int64).cast(pl.Duration("ns"))

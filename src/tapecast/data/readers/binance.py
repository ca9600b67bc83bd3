"""Binance trade prints: hftbacktest websocket captures and freqtrade trade lists.

hftbacktest captures
--------------------
The hftbacktest collector (https://github.com/nkaz001/hftbacktest, ``collector/``) writes one
line per websocket message, ``<local receive ns> <raw JSON>``, gzipped. The JSON is Binance's
combined-stream envelope ``{"stream": "<symbol>@<stream>", "data": {...}}``; a REST depth
snapshot (``{"lastUpdateId": ...}``, no envelope) may appear among the first lines. Payloads
follow Binance's stream documentation (spot: developers.binance.com/docs/binance-spot-api-docs/
web-socket-streams; USD-M / COIN-M futures: developers.binance.com/docs/derivatives/
usds-margined-futures/websocket-market-streams):

* ``@trade`` (and ``@aggTrade``) -> ``trades``: ``T`` trade time (ms), ``p`` price, ``q``
  quantity (COIN-M: contracts), ``m`` buyer is the maker. The aggressor is the venue's:
  ``m`` true -> the seller crossed -> side -1, else +1; ``side_source`` = ``"exchange"``.
* ``@bookTicker`` -> ``quotes``: ``b``/``B`` best bid price/qty, ``a``/``A`` best ask.
  Futures payloads carry the transaction time ``T`` (ms), used as ``ts``; the spot payload
  carries **no time at all**, so spot quotes are stamped with the local receive clock.
  In these captures the local clock runs about 1.27 s behind Binance's (median ``E`` minus
  local receive time on the trade stream), so spot quotes and trades are on clocks 1.27 s apart;
  pass ``clock="local"`` to stamp every table with the local receive clock instead.
* ``@depth...`` (``depthUpdate``) L2 diffs and the REST snapshot are counted in ``counters``
  (``depth_update_lines``, ``depth_snapshot_lines``), not turned into tables: L2 diffs are out
  of scope for the canonical tables. Any other stream is counted as ``<stream>_lines``.

The file is ordered by the local receive clock, and only that order is checked (an
:class:`InputError` names the line); the interleaved exchange event time ``E`` is not monotone
across streams and is not checked. ``instrument`` is the payload's symbol (``BTCUSDT`` spot,
``BTCUSD_PERP`` COIN-M), except that a USD-M perpetual, whose Binance symbol is the same as the
spot pair's, gets ``-PERP`` appended (``BTCUSDT-PERP``): the store partitions by instrument, and
spot and perpetual prints must not share one tape. ``exchange`` also names the market
(``binance``, ``binance-usdm``, ``binance-coinm``), and ``instrument=`` overrides the symbol.

freqtrade trade lists
---------------------
freqtrade stores downloaded trades (``freqtrade/data/converter/trade_converter.py``,
``DEFAULT_TRADES_COLUMNS``) as ``[timestamp_ms, id, type, side, price, amount, cost]`` rows
(``<PAIR>-trades.json(.gz)``) or as a CSV with the header
``timestamp,id,type,side,price,amount,cost[,date]`` (a leading pandas index column is
ignored). ``side`` is the taker side the exchange reports: ``buy`` -> +1, ``sell`` -> -1
(an empty side -> 0 with a null ``side_source``). Timestamps must not decrease.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final, Literal

import polars as pl

from tapecast.core.errors import InputError
from tapecast.data.readers._columns import (
    check_ordered,
    decode_text,
    instrument_from_name,
    parse_timestamps,
    raise_first,
    read_bytes,
    to_float,
)
from tapecast.data.tables import Tables
from tapecast.data.validate import ROW, finalize

Clock = Literal["exchange", "local"]

_STREAM_RE: Final = r'^\{"stream":"[^"@]*@([A-Za-z]+)'
_TRADE_DATA: Final = pl.Struct({"s": pl.String, "T": pl.Int64, "p": pl.String,
                                "q": pl.String, "m": pl.Boolean, "M": pl.Boolean})
_QUOTE_DATA: Final = pl.Struct({"s": pl.String, "T": pl.Int64, "E": pl.Int64, "b": pl.String,
                                "B": pl.String, "a": pl.String, "A": pl.String})


def read_hftbacktest(path: Path, *, instrument: str | None = None,
                     clock: Clock = "exchange") -> Tables:
    """Read an hftbacktest Binance websocket capture into ``trades`` and ``quotes``.

    Parameters
    ----------
    path : Path
        A capture (``.gz`` or plain): lines ``<local receive ns> <websocket JSON>``.
    instrument : str, optional
        Overrides the payload's symbol.
    clock : {"exchange", "local"}
        ``"exchange"`` (default): trades at the trade time ``T``, futures quotes at ``T``, spot
        quotes at the local receive time (the spot payload has no time). ``"local"``: every row
        at the local receive time (one clock for all tables).

    Returns
    -------
    Tables
        ``trades`` (n_trades rows) and ``quotes`` (n_book_ticker rows) in file order, or
        ``None`` for a stream the file lacks; ``counters`` counts lines per stream.

    Raises
    ------
    InputError
        A line without the ns prefix, invalid JSON, a non-numeric price or size, a decreasing
        local receive clock, or no trade or bookTicker line at all.
    """
    lines = _capture_lines(path)
    counters = _stream_counts(lines, path)
    out = Tables(source=str(path), format="hftbacktest", counters=counters)
    trades = lines.filter(pl.col("stream").is_in(["trade", "aggTrade"]))
    if trades.height:
        out.trades = _capture_trades(trades, path, instrument, clock)
    quotes = lines.filter(pl.col("stream") == "bookTicker")
    if quotes.height:
        out.quotes = _capture_quotes(quotes, path, instrument, clock)
    if out.trades is None and out.quotes is None:
        raise InputError(path, None, "stream", "at least one @trade or @bookTicker line")
    return out


def _capture_lines(path: Path) -> pl.DataFrame:
    """Split lines into ``_row``, ``local_ns`` (Int64), ``js`` (JSON text) and ``stream``."""
    text = decode_text(read_bytes(path), path)
    lines = pl.DataFrame({"line": text.split("\n")}).with_row_index(ROW, offset=1)
    lines = lines.with_columns(pl.col(ROW).cast(pl.Int64), pl.col("line").str.strip_chars_end())
    lines = lines.filter(pl.col("line") != "")
    if lines.height == 0:
        raise InputError(path, None, None, "at least one line (the file is empty)")
    space = pl.col("line").str.find(" ", literal=True)
    lines = lines.select(
        ROW,
        pl.col("line").str.slice(0, space).cast(pl.Int64, strict=False).alias("local_ns"),
        pl.col("line").str.slice(space + 1).alias("js"),
        space.alias("_space"),
    )
    raise_first(lines, pl.col("local_ns").is_null() | pl.col("_space").is_null(), path,
                "local_ts", "'<local receive ns> <json>' (digits, a space, then JSON)")
    check_ordered(lines, "local_ns", path, field="local_ts")
    stream = pl.col("js").str.extract(_STREAM_RE, 1)
    snapshot = pl.col("js").str.starts_with('{"lastUpdateId"')
    return lines.with_columns(
        pl.when(snapshot).then(pl.lit("depth_snapshot")).otherwise(stream).alias("stream"))


def _stream_counts(lines: pl.DataFrame, path: Path) -> dict[str, int]:
    """Lines per stream; a line whose stream cannot be named is an error."""
    raise_first(lines, pl.col("stream").is_null(), path, "stream",
                'a Binance combined-stream message {"stream": "<symbol>@<name>", "data": ...}')
    counts = lines.group_by("stream").len()
    renamed = {"depth": "depth_update", "bookTicker": "book_ticker", "aggTrade": "agg_trade"}
    return {f"{renamed.get(s, s)}_lines": int(n) for s, n in counts.iter_rows()}


def _decode(frame: pl.DataFrame, dtype: pl.Struct, path: Path) -> pl.DataFrame:
    """JSON-decode ``frame.js`` and unnest its ``data`` payload; bad JSON names its line."""
    try:
        decoded = frame.select(pl.col("js").str.json_decode(pl.Struct({"data": dtype})))
    except pl.exceptions.PolarsError:
        for row, js in zip(frame[ROW], frame["js"], strict=True):  # error path only
            try:
                json.loads(js)
            except json.JSONDecodeError as exc:
                raise InputError(path, int(row), "json", f"valid JSON ({exc.msg})",
                                 js[:60]) from None
        raise InputError(path, None, "json", "payload fields of the documented types") from None
    data = decoded["js"].struct.field("data")
    raise_first(frame.with_columns(data.is_null().alias("_bad")), pl.col("_bad"), path, "data",
                "a 'data' object in the stream message")
    return data.struct.unnest().with_columns(frame[ROW], frame["local_ns"])


def _ts(frame: pl.DataFrame, column: str, path: Path, field: str) -> pl.Series:
    return parse_timestamps(frame, column, path, unit="ns" if column == "local_ns" else "ms",
                            field=field)


def _capture_trades(lines: pl.DataFrame, path: Path, instrument: str | None,
                    clock: Clock) -> pl.DataFrame:
    data = _decode(lines, _TRADE_DATA, path)
    raise_first(data, pl.col("m").is_null(), path, "m", "the buyer-is-maker flag true/false")
    ts_col, field = ("local_ns", "local_ts") if clock == "local" else ("T", "T")
    spot = data["M"].is_not_null().any()  # the spot trade payload alone carries "M"
    frame = pl.DataFrame({
        ROW: data[ROW],
        "ts": _ts(data, ts_col, path, field),
        "instrument": _symbol(data, usd_m=not spot) if instrument is None
        else pl.Series([instrument] * data.height),
        "price": to_float(data, "p", path),
        "size": to_float(data, "q", path),
        "side": pl.Series(data["m"].not_().cast(pl.Int8) * 2 - 1, dtype=pl.Int8),
        "side_source": pl.Series(["exchange"] * data.height),
        "exchange": pl.Series([_market(data, spot)] * data.height),
    })
    return finalize(frame, "trades", path)


def _symbol(data: pl.DataFrame, usd_m: bool) -> pl.Series:
    """The payload symbol; a futures symbol without '_' (a USD-M perpetual) gets ``-PERP``."""
    symbol = data["s"]
    if not usd_m:
        return symbol
    perpetual = ~symbol.str.contains("_")
    return pl.select(pl.when(pl.lit(perpetual)).then(pl.lit(symbol) + "-PERP")
                     .otherwise(pl.lit(symbol)).alias("s")).to_series()


def _market(data: pl.DataFrame, spot: bool) -> str:
    if spot:
        return "binance"
    coin_m = data["s"].str.contains("_").any()  # COIN-M symbols: BTCUSD_PERP, BTCUSD_240927
    return "binance-coinm" if coin_m else "binance-usdm"


def _capture_quotes(lines: pl.DataFrame, path: Path, instrument: str | None,
                    clock: Clock) -> pl.DataFrame:
    data = _decode(lines, _QUOTE_DATA, path)
    has_time = data["T"].null_count() < data.height
    ts_col, field = ("T", "T") if clock == "exchange" and has_time else ("local_ns", "local_ts")
    frame = pl.DataFrame({
        ROW: data[ROW],
        "ts": _ts(data, ts_col, path, field),
        # futures bookTicker payloads carry the transaction time "T"; spot ones do not
        "instrument": _symbol(data, usd_m=has_time) if instrument is None
        else pl.Series([instrument] * data.height),
        "bid_px": to_float(data, "b", path),
        "bid_sz": to_float(data, "B", path),
        "ask_px": to_float(data, "a", path),
        "ask_sz": to_float(data, "A", path),
    })
    return finalize(frame, "quotes", path)


# ------------------------------------------------------------------------------------ freqtrade

_FREQTRADE_COLUMNS: Final = ("timestamp", "id", "type", "side", "price", "amount", "cost")


def read_freqtrade(path: Path, *, instrument: str | None = None) -> Tables:
    """Read a freqtrade trade list (JSON ``[[ts, id, type, side, price, amount, cost], ...]`` or
    the CSV with header ``timestamp,id,type,side,price,amount,cost``) into ``trades``.

    Parameters
    ----------
    path : Path
        ``<BASE>_<QUOTE>-trades.json(.gz)`` or a CSV (plain or gzip).
    instrument : str, optional
        The pair; by default from the file name (``XRP_ETH-trades`` -> ``XRP/ETH``,
        ``BTC_USDT_USDT-futures-trades`` -> ``BTC/USDT:USDT``; the rule of
        :func:`~tapecast.data.readers._columns.instrument_from_name`).

    Returns
    -------
    Tables
        ``trades`` with shape (n_trades, 9): side from the venue (``side_source="exchange"``).

    Raises
    ------
    InputError
        Malformed JSON or CSV, a row of the wrong length, an unknown side, a bad number, an
        empty required field, a decreasing timestamp, an empty list.
    """
    raw = read_bytes(path)
    body = raw.lstrip()
    if body.startswith(b"["):
        frame = _freqtrade_json(decode_text(raw, path), path)
    else:
        frame = _freqtrade_csv(raw, path)
    frame = frame.with_columns(
        pl.lit(instrument or instrument_from_name(path)).alias("instrument"))
    trades = _freqtrade_trades(frame, path)
    return Tables(source=str(path), format="freqtrade", trades=trades)


def _freqtrade_json(text: str, path: Path) -> pl.DataFrame:
    """Rows of the JSON list as String columns named as freqtrade's, with ``_row``.

    Python's ``json`` (hence pandas and freqtrade) writes a missing float as a bare ``NaN`` /
    ``Infinity``, which is not JSON; such values are read as text, so that the row and field
    are named by the number checks (a NaN price is an error, a NaN ``cost`` is not used).
    """
    target = pl.List(pl.List(pl.String))
    try:
        rows = pl.Series([text]).str.json_decode(target)
    except pl.exceptions.PolarsError:
        rows = _decode_with_nan(text, target, path)
    if rows[0] is None:
        raise InputError(path, None, "json", "a list of trade rows")
    lists = rows.explode().alias("r").to_frame().with_row_index(ROW, offset=1)
    lists = lists.with_columns(pl.col(ROW).cast(pl.Int64))
    if lists["r"].null_count() == lists.height and lists.height == 1:
        raise InputError(path, None, None, "at least one trade (the list is empty)")
    raise_first(lists, pl.col("r").list.len().fill_null(0) != len(_FREQTRADE_COLUMNS), path,
                "record", f"{len(_FREQTRADE_COLUMNS)} values [ts, id, type, side, price, amount,"
                " cost]")
    return lists.select(ROW, *[pl.col("r").list.get(i).alias(name)
                               for i, name in enumerate(_FREQTRADE_COLUMNS)])


_BARE_CONSTANT: Final = r"([\[,]\s*)(NaN|-?Infinity)\b"


def _decode_with_nan(text: str, target: pl.List, path: Path) -> pl.Series:
    """Decode again with bare NaN/Infinity quoted; else raise the JSON error (error path)."""
    quoted = pl.Series([text]).str.replace_all(_BARE_CONSTANT, '${1}"${2}"')
    try:
        return quoted.str.json_decode(target)
    except pl.exceptions.PolarsError:
        pass
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, None, "json", f"valid JSON ({exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno})") from None
    raise InputError(path, None, "json", "a list of [ts, id, type, side, price, amount, "
                     "cost] lists") from None


def _freqtrade_csv(raw: bytes, path: Path) -> pl.DataFrame:
    from tapecast.data.readers.generic import read_csv_strings

    frame = read_csv_strings(raw, path, has_header=True)
    missing = [c for c in ("timestamp", "side", "price", "amount") if c not in frame.columns]
    if missing:
        raise InputError(path, None, missing[0], "the freqtrade header "
                         "timestamp,id,type,side,price,amount,cost", ",".join(frame.columns[1:]))
    return frame


def _freqtrade_trades(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    side = pl.col("side").str.strip_chars().str.to_lowercase()
    side = pl.when(side == "").then(None).otherwise(side)
    frame = frame.with_columns(side.alias("side"))
    raise_first(frame, pl.col("side").is_not_null() & ~pl.col("side").is_in(["buy", "sell"]),
                path, "side", "'buy' or 'sell'", value="side")
    out = pl.DataFrame({
        ROW: frame[ROW],
        "ts": parse_timestamps(frame, "timestamp", path, unit="ms"),
        "instrument": frame["instrument"],
        "price": to_float(frame, "price", path),
        "size": to_float(frame, "amount", path, field="amount"),
        "side": frame.select(pl.when(pl.col("side") == "buy").then(1)
                             .when(pl.col("side") == "sell").then(-1).otherwise(0)
                             .cast(pl.Int8).alias("side"))["side"],
    })
    out = out.with_columns(pl.when(pl.col("side") != 0).then(pl.lit("exchange"))
                           .alias("side_source"))
    raise_first(out, pl.col("ts").is_null(), path, "timestamp", "a value (the field is required)")
    raise_first(out, pl.col("size").is_null(), path, "amount", "a value (the field is required)")
    check_ordered(out, "ts", path, field="timestamp")
    return finalize(out, "trades", path)

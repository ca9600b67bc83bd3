"""QuantConnect LEAN data zips -> canonical trades, quotes, bars and quote_bars.

Format: LEAN's ``Data/<security_type>/readme.md`` files and ``LeanData`` (QuantConnect/Lean,
``Common/Util/LeanData.cs``), as staged in ``shared/data/lean`` (see its ``SUMMARY.tsv``).

* Paths: ``<security_type>/<market>/<resolution>/<symbol>/<YYYYMMDD>_<ticktype>.zip`` for tick,
  second and minute data; ``<security_type>/<market>/<resolution>/<symbol>[_<ticktype>].zip``
  for hour and daily data (equity hour/daily zips are trades).
* Every zip holds header-less CSVs: one, or for futures one per contract, named
  ``<date>_<symbol>_<resolution>_<ticktype>_<expiry yyyyMM>.csv`` (the contract is read from it).
* Time: milliseconds since midnight of the file's date (tick/second/minute) or
  ``YYYYMMDD HH:MM`` (hour/daily); equity in America/New_York, futures and crypto in UTC.
* Prices: equity in deci-cents (x 10000); futures and crypto plain decimals.
* Layouts: tick trade ``Time,Price,Size,Exchange,SaleCondition,Suspicious``; tick quote
  ``Time,BidPx,BidSize,AskPx,AskSize,Exchange,Condition,Suspicious`` (one side per row, the
  other 0); trade bars ``Time,Open,High,Low,Close,Volume``; quote bars
  ``Time,BidOpen,BidHigh,BidLow,BidClose,BidSize,AskOpen,AskHigh,AskLow,AskClose,AskSize``
  (an empty side is blank with size 0); open interest ``Time,OpenInterest``.

Open-interest zips carry no trade or quote data: their rows are counted in
``counters["open_interest_rows_skipped"]`` and yield no table. Trade prints of size 0 (COMEX GC
ticks have a few hundred a day) are not trades: they are dropped and counted in
``counters["zero_size_trades_dropped"]``.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import polars as pl

from tapecast.core.errors import InputError, UnsupportedFormatError
from tapecast.data.readers._headerless import divide_exact, read_headerless
from tapecast.data.schemas import conform
from tapecast.data.tables import Tables, concat_tables
from tapecast.data.validate import ROW, finalize

F64, STR = pl.Float64(), pl.String()
SECURITY_TYPES: Final = {  # security type -> (price divisor, time zone of the timestamps)
    "equity": (10_000.0, "America/New_York"),
    "future": (1.0, "UTC"),
    "crypto": (1.0, "UTC"),
    "cryptofuture": (1.0, "UTC"),
}
RESOLUTIONS: Final = {"tick": None, "second": "1s", "minute": "1m", "hour": "1h", "daily": "1d"}
TICK_TYPES: Final = ("trade", "quote", "openinterest")
_OHLC: Final = ("Open", "High", "Low", "Close")
LAYOUTS: Final[dict[str, dict[str, pl.DataType]]] = {
    "tick_trade": {"Time": F64, "Price": F64, "Size": F64, "Exchange": STR,
                   "SaleCondition": STR, "Suspicious": pl.Int64()},
    "tick_quote": {"Time": F64, "BidPx": F64, "BidSize": F64, "AskPx": F64, "AskSize": F64,
                   "Exchange": STR, "Condition": STR, "Suspicious": pl.Int64()},
    "bar_trade": {"Time": F64, **{c: F64 for c in _OHLC}, "Volume": F64},
    "bar_quote": {"Time": F64, **{f"Bid{c}": F64 for c in _OHLC}, "BidSize": F64,
                  **{f"Ask{c}": F64 for c in _OHLC}, "AskSize": F64},
    "openinterest": {"Time": F64, "OpenInterest": F64},
}
_DATED_ZIP: Final = re.compile(r"^(?P<date>\d{8})_(?P<tick>trade|quote|openinterest)\.zip$")
_BAR_ZIP: Final = re.compile(r"^(?P<symbol>[^_]+)(?:_(?P<tick>trade|quote|openinterest))?\.zip$")
_EXPIRY: Final = re.compile(r"_(?P<expiry>\d{6}(?:\d{2})?)\.csv$")


@dataclass(frozen=True)
class LeanPath:
    """What a LEAN data path says about its zip."""

    security_type: str
    market: str
    resolution: str
    symbol: str
    tick_type: str
    date: str | None  # YYYYMMDD for tick/second/minute zips, None for hour/daily

    @property
    def layout(self) -> str:
        """Key of :data:`LAYOUTS` for this zip's CSVs."""
        if self.tick_type == "openinterest":
            return "openinterest"
        return f"{'tick' if self.resolution == 'tick' else 'bar'}_{self.tick_type}"


def parse_lean_path(path: Path) -> LeanPath:
    """Read security type, market, resolution, symbol, tick type and date from a LEAN path.

    Raises
    ------
    UnsupportedFormatError
        When the path does not follow LEAN's data layout or names an unsupported security type.
    """
    parts = path.parts
    for i in range(len(parts) - 3, -1, -1):
        if parts[i] in SECURITY_TYPES and i + 2 < len(parts) and parts[i + 2] in RESOLUTIONS:
            return _parse_from(path, parts[i], parts[i + 1], parts[i + 2], parts[i + 3:])
    raise UnsupportedFormatError(
        f"{path}: not a LEAN data path; expected <security_type>/<market>/<resolution>/"
        f"<symbol>/<YYYYMMDD>_<trade|quote>.zip or <security_type>/<market>/<hour|daily>/"
        f"<symbol>[_<trade|quote>].zip with security_type one of {', '.join(SECURITY_TYPES)}")


def _parse_from(path: Path, security: str, market: str, resolution: str,
                rest: tuple[str, ...]) -> LeanPath:
    if resolution in ("hour", "daily") and len(rest) == 1:
        m = _BAR_ZIP.match(rest[0])
        if m:
            return LeanPath(security, market, resolution, m["symbol"].upper(),
                            m["tick"] or "trade", None)
    elif len(rest) == 2:
        m = _DATED_ZIP.match(rest[1])
        if m:
            return LeanPath(security, market, resolution, rest[0].upper(), m["tick"], m["date"])
    raise UnsupportedFormatError(
        f"{path}: not a LEAN {resolution} zip name; expected "
        + ("<symbol>[_<trade|quote|openinterest>].zip" if resolution in ("hour", "daily")
           else "<symbol>/<YYYYMMDD>_<trade|quote|openinterest>.zip"))


def read_lean(path: Path, **options: Any) -> Tables:
    """Read one LEAN data zip into canonical tables.

    Parameters
    ----------
    path : Path
        A zip inside a LEAN data tree (the layout gives security type, resolution, symbol,
        tick type and, for tick/second/minute data, the date).
    **options
        None are used; accepted for the common reader signature.

    Returns
    -------
    Tables
        tick trades -> ``trades`` (side 0: unknown, with exchange, sale_condition, suspicious);
        tick quotes -> ``quotes`` (one carried-forward top-of-book state per input row);
        trade bars -> ``bars``; quote bars -> ``quote_bars``; open interest -> no table.
        Counters: ``rows`` (input rows), ``open_interest_rows_skipped``,
        ``zero_size_trades_dropped``, ``suspicious``, ``rows_rejected`` (0).

    Raises
    ------
    InputError
        A bad row (naming ``archive.zip:inner.csv``, row and field), an unreadable or empty zip.
    UnsupportedFormatError
        A path outside LEAN's layout.
    """
    del options
    lean = parse_lean_path(Path(path))
    members = _members(Path(path))
    parts = [_read_member(lean, f"{path}:{name}", name, data) for name, data in members]
    out = concat_tables(parts, source=str(path)) if len(parts) > 1 else parts[0]
    out.source, out.format = str(path), "lean"
    return out


def _members(path: Path) -> list[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if n.lower().endswith(".csv"))
            members = [(n, zf.read(n)) for n in names]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(path, None, None, f"a readable zip archive ({exc})") from None
    if not members:
        raise InputError(path, None, None, "at least one CSV inside the LEAN zip")
    return members


def _instrument(lean: LeanPath, inner: str) -> str:
    """The symbol; for futures the contract: symbol and LEAN's expiry ``yyyyMM[dd]``."""
    m = _EXPIRY.search(Path(inner).name)
    if lean.security_type == "future" and m:
        return f"{lean.symbol}_{m['expiry']}"
    return lean.symbol


def _read_member(lean: LeanPath, label: str, inner: str, data: bytes) -> Tables:
    layout = LAYOUTS[lean.layout]
    if lean.resolution in ("hour", "daily"):
        layout = {"Time": STR, **{k: v for k, v in layout.items() if k != "Time"}}
    # a quote bar's side may be blank; venue codes may be empty
    optional = ("Exchange", "SaleCondition", "Condition",
                *(f"{s}{c}" for s in ("Bid", "Ask") for c in _OHLC))
    required = [c for c in layout if c not in optional]
    raw = read_headerless(data, layout, label, required=required)
    raw = raw.with_columns(_timestamp(lean, label, raw).alias("ts"),
                           pl.lit(_instrument(lean, inner)).alias("instrument"))
    counters = {"rows": raw.height, "rows_rejected": 0}
    if lean.tick_type == "openinterest":
        return Tables(source=label, format="lean",
                      counters={**counters, "open_interest_rows_skipped": raw.height})
    scale = SECURITY_TYPES[lean.security_type][0]
    if lean.layout == "tick_trade":
        trades, dropped = _trades(raw, scale, label)
        suspicious = int(raw["Suspicious"].sum())
        return Tables(source=label, format="lean", trades=trades,
                      counters={**counters, "zero_size_trades_dropped": dropped,
                                "suspicious": suspicious})
    if lean.layout == "tick_quote":
        return Tables(source=label, format="lean", quotes=_quotes(raw, scale, label),
                      counters={**counters, "suspicious": int(raw["Suspicious"].sum())})
    length = pl.lit(_DURATION[lean.resolution], dtype=pl.Duration("ns"))
    if lean.layout == "bar_trade":
        return Tables(source=label, format="lean", bars=_bars(raw, scale, length, label),
                      counters=counters)
    return Tables(source=label, format="lean",
                  quote_bars=_quote_bars(raw, scale, length, label), counters=counters)


_DURATION: Final = {"second": timedelta(seconds=1), "minute": timedelta(minutes=1),
                    "hour": timedelta(hours=1), "daily": timedelta(days=1)}


def _timestamp(lean: LeanPath, label: str, raw: pl.DataFrame) -> pl.Expr:
    """UTC ns timestamps from LEAN's local time (ms since midnight, or ``YYYYMMDD HH:MM``)."""
    tz = SECURITY_TYPES[lean.security_type][1]
    if lean.date is None:
        local = pl.col("Time").str.strip_chars().str.to_datetime(
            "%Y%m%d %H:%M", time_unit="ns", strict=False)
        hit = raw.filter(local.is_null()).head(1)
        if hit.height:
            raise InputError(label, int(hit[ROW][0]), "Time", "a time as YYYYMMDD HH:MM",
                             hit["Time"][0])
    else:
        hit = raw.filter(~pl.col("Time").is_between(0, 86_400_000, closed="left")).head(1)
        if hit.height:
            raise InputError(label, int(hit[ROW][0]), "Time",
                             "milliseconds since midnight in [0, 86400000)", hit["Time"][0])
        midnight = pl.lit(lean.date).str.to_datetime("%Y%m%d", time_unit="ns")
        ns = (pl.col("Time") * 1_000_000).round(0).cast(pl.Int64)
        local = midnight + pl.duration(nanoseconds=ns)
    return local.dt.replace_time_zone(tz, ambiguous="earliest").dt.convert_time_zone("UTC")


def _trades(raw: pl.DataFrame, scale: float, label: str) -> tuple[pl.DataFrame, int]:
    """Tick trades, side unknown (0): signing them is the aggressor module's job."""
    if (hit := raw.filter(pl.col("Size") < 0).head(1)).height:
        raise InputError(label, int(hit[ROW][0]), "Size", "a non-negative size", hit["Size"][0])
    kept = raw.filter(pl.col("Size") != 0)
    frame = kept.select(
        "ts", "instrument", divide_exact(pl.col("Price"), scale).alias("price"),
        pl.col("Size").alias("size"),
        pl.lit(0, dtype=pl.Int8).alias("side"),
        pl.col("Exchange").str.strip_chars().alias("exchange"),
        pl.col("SaleCondition").str.strip_chars().alias("sale_condition"),
        (pl.col("Suspicious") != 0).alias("suspicious"), ROW,
    )
    dropped = raw.height - kept.height
    if frame.height == 0:  # every print of this contract had size 0
        return conform(frame, "trades"), dropped
    return finalize(frame, "trades", label, ordered_by="ts"), dropped


def _quotes(raw: pl.DataFrame, scale: float, label: str) -> pl.DataFrame:
    """One-sided quote ticks -> carried-forward top of book (null until a side is first seen).

    A row updates the side whose price is non-zero; rows flagged suspicious do not update the
    state (their row still appears, carrying the state forward).
    """
    trusted = pl.col("Suspicious") == 0
    cols = []
    for side, px, sz in (("bid", "BidPx", "BidSize"), ("ask", "AskPx", "AskSize")):
        seen = trusted & (pl.col(px) != 0)
        price = divide_exact(pl.col(px), scale)
        cols.append(pl.when(seen).then(price).forward_fill().alias(f"{side}_px"))
        cols.append(pl.when(seen).then(pl.col(sz)).forward_fill().alias(f"{side}_sz"))
    frame = raw.select("ts", "instrument", *cols, ROW)
    return finalize(frame, "quotes", label, ordered_by="ts")


def _bars(raw: pl.DataFrame, scale: float, length: pl.Expr, label: str) -> pl.DataFrame:
    frame = raw.select(
        "ts", "instrument", *[divide_exact(pl.col(c), scale).alias(c.lower()) for c in _OHLC],
        pl.col("Volume").alias("volume"), length.alias("bar_length"), ROW,
    )
    return finalize(frame, "bars", label, ordered_by="ts")


def _quote_bars(raw: pl.DataFrame, scale: float, length: pl.Expr, label: str) -> pl.DataFrame:
    """Bid and ask OHLC bars; a side with no prices (blank fields, size 0) is null."""
    cols = []
    for side, prefix in (("bid", "Bid"), ("ask", "Ask")):
        empty = pl.all_horizontal([pl.col(f"{prefix}{c}").is_null() for c in _OHLC])
        cols += [divide_exact(pl.col(f"{prefix}{c}"), scale).alias(f"{side}_{c.lower()}")
                 for c in _OHLC]
        cols.append(pl.when(empty).then(None).otherwise(pl.col(f"{prefix}Size"))
                    .alias(f"{side}_size"))
    frame = raw.select("ts", "instrument", *cols, length.alias("bar_length"), ROW)
    return finalize(frame, "quote_bars", label, ordered_by="ts")

"""Column parsing shared by the Binance and generic readers, with one-line errors.

Every helper works on a whole column at once (Polars expressions) and, when a value does not
parse, raises :class:`~tapecast.core.errors.InputError` naming the file, the source row (the
frame's ``_row`` column, 1-based) and the field.

Timestamps
----------
:func:`parse_timestamps` turns a column into UTC nanoseconds from any of:

* a Polars ``Datetime`` / ``Date`` column (Parquet): aware values are converted to UTC, naive
  ones are read in ``timezone``;
* epoch integers or decimals (as numbers or as digit strings) in s, ms, us or ns; the unit is
  inferred from the magnitude of the largest value unless given (< 1e11 s, < 1e14 ms,
  < 1e17 us, else ns). Decimal strings are converted exactly (no float rounding);
* ISO-8601-like strings (``2024-01-01 23:01:00``, ``...T...Z``, ``...+08:00``, dates), or any
  ``strftime`` format given as ``ts_format``. Strings with an offset are converted to UTC;
  naive strings are read in ``timezone`` (a time that does not exist or is ambiguous there is
  an error).
"""

from __future__ import annotations

import gzip
import os
import re
from os import PathLike
from typing import Final, Literal

import polars as pl

from tapecast.core.errors import InputError
from tapecast.data.schemas import TS
from tapecast.data.validate import ROW

TsUnit = Literal["s", "ms", "us", "ns"]
NS_PER: Final[dict[str, int]] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT64_MAX: Final = 9_223_372_036_854_775_807
_EPOCH_RE: Final = r"^\d+(\.\d*)?$"

File = str | PathLike[str]


def read_bytes(path: File) -> bytes:
    """The bytes of ``path``, gunzipped or zstd-decompressed when the content says so."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw.startswith(b"\x1f\x8b"):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(path, None, None, f"a complete gzip stream ({exc})") from None
    if raw.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        try:
            return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(raw))
        except zstandard.ZstdError as exc:
            raise InputError(path, None, None, f"a complete zstd stream ({exc})") from None
    return raw


def decode_text(raw: bytes, file: File) -> str:
    """``raw`` as UTF-8 text (a BOM is dropped); an error names the first undecodable line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(file, line, None, "UTF-8 text", raw[exc.start: exc.start + 8]) from None


def row_of(frame: pl.DataFrame, position: int) -> int:
    """Source row of ``frame``'s ``position`` (its ``_row`` column, else position + 1)."""
    if ROW in frame.columns:
        return int(frame[ROW][position])
    return position + 1


def raise_first(frame: pl.DataFrame, bad: pl.Expr, file: File, field: str | None, expected: str,
                value: str | None = None) -> None:
    """Raise :class:`InputError` at the first row where ``bad`` holds (nulls count as good)."""
    pos = frame.select(bad.fill_null(False).arg_true().first()).item()
    if pos is not None:
        got = None if value is None else frame[value][int(pos)]
        raise InputError(file, row_of(frame, int(pos)), field, expected, got)


def to_float(frame: pl.DataFrame, column: str, file: File, field: str | None = None) -> pl.Series:
    """``column`` cast to Float64; a non-empty value that is not a number raises.

    Returns
    -------
    pl.Series
        Float64, shape (n,); empty fields are null.
    """
    src = pl.col(column)
    if frame.schema[column] == pl.String:
        src = src.str.strip_chars()
        src = pl.when(src == "").then(None).otherwise(src)
    out = frame.select(src.cast(pl.Float64, strict=False).alias("_f"), src.alias("_s"))
    raise_first(out.with_columns(frame[ROW]) if ROW in frame.columns else out,
                pl.col("_f").is_null() & pl.col("_s").is_not_null(),
                file, field or column, "a number", value="_s")
    return out["_f"].alias(column)


def infer_unit(max_abs: float) -> TsUnit:
    """Epoch unit from the magnitude of the largest value (s < 1e11 <= ms < 1e14 <= us < 1e17)."""
    if max_abs < 1e11:
        return "s"
    if max_abs < 1e14:
        return "ms"
    if max_abs < 1e17:
        return "us"
    return "ns"


def _epoch_strings_to_ns(s: pl.Expr, unit: str) -> pl.Expr:
    """Exact decimal-string epoch -> int64 ns (integer part * unit + fraction to 9 digits)."""
    factor = NS_PER[unit]
    parts = s.str.split_exact(".", 1)
    whole = parts.struct.field("field_0").cast(pl.Int64, strict=False)
    frac = parts.struct.field("field_1").fill_null("").str.slice(0, 9).str.pad_end(9, "0")
    frac_ns = frac.cast(pl.Int64, strict=False) * factor // 1_000_000_000
    limit = _INT64_MAX // factor - 1
    return pl.when(whole <= limit).then(whole * factor + frac_ns)


def _epoch_numbers_to_ns(s: pl.Expr, unit: str, is_float: bool) -> pl.Expr:
    factor = NS_PER[unit]
    limit = _INT64_MAX // factor - 1
    ok = (s >= 0) & (s <= limit)
    if is_float:
        return pl.when(ok & s.is_finite()).then((s * factor).round(0).cast(pl.Int64))
    return pl.when(ok).then(s.cast(pl.Int64) * factor)


def parse_timestamps(
    frame: pl.DataFrame,
    column: str,
    file: File,
    *,
    unit: TsUnit | None = None,
    timezone: str = "UTC",
    ts_format: str | None = None,
    field: str | None = None,
) -> pl.Series:
    """Parse ``column`` into UTC nanosecond timestamps (see the module docstring for the rules).

    Returns
    -------
    pl.Series
        ``Datetime("ns", "UTC")``, shape (n,); an empty field is null (the caller decides
        whether that is allowed). A value that does not parse raises :class:`InputError`.
    """
    name = field or column
    dtype = frame.schema[column]
    src = pl.col(column)
    if dtype == pl.String:
        src = src.str.strip_chars()
        src = pl.when(src == "").then(None).otherwise(src)
    work = frame.select(src.alias("_s"), *([pl.col(ROW)] if ROW in frame.columns else []))
    if dtype == pl.String and ts_format is None:
        first = work.select(pl.col("_s").drop_nulls().first()).item()
        numeric = first is not None and re.match(_EPOCH_RE, first) is not None
        if numeric:
            return _epoch(work, file, name, unit, strings=True)
    if dtype.is_numeric():
        return _epoch(work, file, name, unit, strings=False)
    if dtype == pl.String:
        # on the Series, not in an expression: only there does Polars infer an offset format
        # from the data (an expression fixes a naive dtype up front and nulls "+00:00" values)
        try:
            parsed = work["_s"].str.to_datetime(ts_format, time_unit="ns", strict=False)
        except pl.exceptions.PolarsError:  # no format fits the first value
            parsed = pl.Series("_t", [None] * work.height, dtype=pl.Datetime("ns"))
        expected = (f"a timestamp in the format {ts_format!r}" if ts_format else
                    "a timestamp (ISO 8601 in the format of the first row, or epoch digits)")
        raise_first(work.with_columns(parsed.alias("_t")),
                    pl.col("_t").is_null() & pl.col("_s").is_not_null(), file, name, expected,
                    value="_s")
    elif isinstance(dtype, pl.Datetime | pl.Date):
        parsed = work["_s"].cast(pl.Datetime("ns", getattr(dtype, "time_zone", None)))
    else:
        raise InputError(file, None, name, "a timestamp column (text, integer or datetime)",
                         str(dtype))
    return _to_utc(work, parsed, file, name, timezone)


def _epoch(work: pl.DataFrame, file: File, name: str, unit: TsUnit | None,
           *, strings: bool) -> pl.Series:
    col = pl.col("_s")
    if unit is None:
        magnitude = col.cast(pl.Float64, strict=False).abs().max()
        top = work.select(magnitude).item()
        unit = infer_unit(float(top) if top is not None else 0.0)
    if strings:
        ns = _epoch_strings_to_ns(col, unit)
    else:
        ns = _epoch_numbers_to_ns(col, unit, work.schema["_s"].is_float())
    out = work.with_columns(ns.alias("_t"))
    raise_first(out, pl.col("_t").is_null() & col.is_not_null(), file, name,
                f"an epoch timestamp in {unit} within 1970..2262", value="_s")
    return out["_t"].cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias(name)


def _to_utc(work: pl.DataFrame, parsed: pl.Series, file: File, name: str,
            timezone: str) -> pl.Series:
    dtype = parsed.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return parsed.dt.convert_time_zone("UTC").cast(TS).alias(name)
    try:
        local = parsed.dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
    except pl.exceptions.PolarsError:
        raise InputError(file, None, name, "a known time zone name (timezone=...)",
                         timezone) from None
    out = work.with_columns(parsed.alias("_p"), local.alias("_t"))
    raise_first(out, pl.col("_t").is_null() & pl.col("_p").is_not_null(), file, name,
                f"a local time that exists once in {timezone}", value="_s")
    return local.dt.convert_time_zone("UTC").cast(TS).alias(name)


def check_ordered(frame: pl.DataFrame, column: str, file: File, by: str | None = None,
                  field: str | None = None) -> None:
    """Raise at the first row whose ``column`` is earlier than the row before it (within ``by``).

    Nulls are skipped (a required-field check reports them).
    """
    prev = pl.col(column).shift(1)
    if by is not None:
        prev = prev.over(by)
    bad = pl.col(column) < prev
    pos = frame.select(bad.fill_null(False).arg_true().first()).item()
    if pos is not None:
        what = f"{field or column} not decreasing" + (f" within each {by}" if by else "")
        raise InputError(file, row_of(frame, int(pos)), field or column, what,
                         str(frame[column][int(pos)]))


# ------------------------------------------------------------------- instrument from file name

_DATA_SUFFIXES: Final = (".gz", ".zst", ".zip", ".json", ".csv", ".txt", ".feather",
                         ".parquet", ".data")
_SEP: Final = r"[-_.\s]+"
_DATE: Final = (r"(19|20)\d{2}(-?\d{2}(-?\d{2})?)?"  # YYYY, YYYY-MM, YYYYMM, YYYY-MM-DD, YYYYMMDD
                r"(T\d{2}([-:]?\d{2}){0,2}Z?)?")  # ...T23-40, T00:00:00Z
_RESOLUTION: Final = (r"\d+(ns|us|ms|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|"
                      r"hour|hours|d|day|days|w|wk|week|mo|mon|month|tick|ticks)"
                      r"|[smhdw]\d+|tick|ticks|daily|hourly|minute|second|q[1-4]|ob\d+|l[1-3]")
_WORDS: Final = ("trades|trade|aggtrades|quotes|quote|bars|bar|bid|ask|bidask|ohlc|ohlcv|klines|"
                 "kline|candles|candle|book|books|depth|snap|snapshot|update|updates|"
                 "incremental|mbo|mbp|bbo|tbbo|futures|spot|data|public|list|funding|rate|"
                 "mark|index")
_NOISE: Final = rf"({_DATE}|{_RESOLUTION}|{_WORDS})"
_NOISE_TAIL: Final = re.compile(rf"{_SEP}{_NOISE}$", re.IGNORECASE)
_NOISE_WORD: Final = re.compile(rf"^{_NOISE}$", re.IGNORECASE)
_PAIR_PART: Final = re.compile(r"^(?!PERP$)(?!\d+$)[A-Z0-9]+$")


def instrument_from_name(path: File) -> str:
    """The instrument a file name implies, so one market's files share one instrument.

    Rule (documented in ``docs/formats.md``): drop data and compression suffixes, then strip,
    from the end, every part that is a date or date range (``2012``, ``2021-11-27``,
    ``20240101_20240131``, ``2024-07-01T23-40``), a resolution (``1m``, ``m1``, ``1min``,
    ``1s``, ``1h``, ``1d``, ``q2``, ``ob500``) or a table word (``trades``, ``quotes``,
    ``bars``, ``bid``, ``ask``, ``ohlcv``, ``klines``, ``futures``...); upper-case the rest.
    A freqtrade pair keeps its separator: ``XRP_ETH`` -> ``XRP/ETH``, ``BTC_USDT_USDT`` ->
    ``BTC/USDT:USDT`` (not when a part is ``PERP`` or all digits: ``BTCUSD_PERP`` stays).
    A name that is nothing but such parts is kept whole, upper-cased
    (``quote_tick_data.csv`` -> ``QUOTE_TICK_DATA``).

    Examples: ``btcusdt-trades.parquet`` -> ``BTCUSDT``; ``ADABTC-1m-2021-11-27.csv`` ->
    ``ADABTC``; ``gbpusd-m1-bid-2012.csv`` -> ``GBPUSD``;
    ``6EH4.XCME_1min_bars_20240101_20240131.csv.gz`` -> ``6EH4.XCME``.
    """
    name = os.path.basename(os.fspath(path))
    stripped = True
    while stripped:
        stripped = False
        for suffix in _DATA_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name, stripped = name[: -len(suffix)], True
    base = name
    while (match := _NOISE_TAIL.search(base)) is not None and match.start() > 0:
        base = base[: match.start()]
    if _NOISE_WORD.match(base):  # nothing but dates, resolutions and table words
        return name.upper()
    base = base.upper()
    parts = base.split("_")
    if len(parts) in (2, 3) and all(_PAIR_PART.match(p) and not _NOISE_WORD.match(p)
                                    for p in parts):
        return f"{parts[0]}/{parts[1]}" + (f":{parts[2]}" if len(parts) == 3 else "")
    return base

"""Databento CSV (``.csv``, ``.csv.zst``) -> canonical tables.

The official client writes CSV (``DBNStore.to_csv``) but reads none, so this module parses it with
Polars into the raw frame of :mod:`tapecast.data.readers.databento_common` and shares every step
after that with the DBN reader. Accepted variants:

* ``DBNStore.to_csv`` with its defaults (``pretty_px=True``: prices as decimals with 9 places,
  ``pretty_ts=True``: ISO 8601 ``...Z`` timestamps, ``map_symbols=True``: a ``symbol`` column) and
  without them (integer nanoseconds, int64 fixed-point prices in 1e-9 units, UNDEF_PRICE for no
  price, no ``symbol`` column);
* a pandas export of ``DBNStore.to_df()`` (``df.to_csv(...)``): timestamps as
  ``2020-12-28 00:00:00.246821748+00:00``, float prices, with the ``ts_recv`` index column written
  or not (``index=False``), and files with an extra leading pandas index column (blockhouse's
  ``mbp.csv``).

Format reference: https://databento.com/docs/standards-and-conventions/normalized-encodings (CSV)
and the field lists of https://databento.com/docs/schemas-and-data-formats.

Without ``ts_recv`` (a ``to_df`` export without its index) the ts_recv order Databento promises
cannot be checked, and the events' ``ts_recv`` is null.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from tapecast.core.errors import InputError, UnsupportedFormatError
from tapecast.data.readers.databento_common import (
    RTYPE_SCHEMAS,
    SUPPORTED_SCHEMAS,
    UNDEF_PRICE,
    UNDEF_TIMESTAMP,
    raw_columns,
    to_tables,
    unsupported_schema,
)
from tapecast.data.schemas import TS
from tapecast.data.tables import Tables
from tapecast.data.validate import ROW

ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_INT: Final = r"^-?\d+$"
_OPTIONAL: Final = frozenset({"flags", "sequence", "depth"})
_INT_TYPES: Final[dict[str, pl.DataType]] = {
    "size": pl.Int64(), "order_id": pl.UInt64(), "flags": pl.UInt8(), "sequence": pl.Int64(),
    "depth": pl.Int64(), "volume": pl.Int64(),
}


def read_databento_csv(path: Path, schema: str | None = None, **_: Any) -> Tables:
    """Read a Databento CSV file into canonical tables.

    Parameters
    ----------
    path : Path
        A ``.csv`` or ``.csv.zst`` file as written by ``DBNStore.to_csv`` or a pandas export of
        ``DBNStore.to_df()``.
    schema : str, optional
        The Databento schema; by default it comes from the ``rtype`` column, else from the
        columns present (ohlcv needs ``rtype`` or this argument for its bar length).

    Returns
    -------
    Tables
        As :func:`tapecast.data.readers.databento_common.to_tables`: mbo -> events + trades,
        trades -> trades, tbbo / mbp-1 -> trades + quotes, mbp-10 -> trades + quotes + levels,
        ohlcv-* -> bars.

    Raises
    ------
    InputError
        Unreadable or empty file, missing columns, unparsable values, bad prices or sizes,
        ts_recv going backwards: the message names the file, the 1-based data row and the field.
    UnsupportedFormatError
        A schema other than the supported ones.
    """
    text = _load(path)
    frame = _parse_csv(text, path)
    if frame.height == 0:
        raise InputError(path, None, None, "at least one data row (the file has only a header)")
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    schema = schema or _schema_of(frame, path)
    if schema not in SUPPORTED_SCHEMAS:
        raise unsupported_schema(path, schema)
    if schema == "tbbo":
        schema = "mbp-1"  # same record layout and the same tables
    raw = _raw_frame(frame, schema, path)
    return to_tables(raw, schema, path, "databento-csv")


def _load(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, None, None, f"a readable file ({exc.strerror})") from None
    if data.startswith(ZSTD_MAGIC):
        import zstandard

        try:
            with zstandard.ZstdDecompressor().stream_reader(
                    io.BytesIO(data), read_across_frames=True) as reader:
                data = reader.read()
        except zstandard.ZstdError as exc:
            raise InputError(path, None, None, f"a readable zstd stream ({exc})") from None
    if not data.strip():
        raise InputError(path, None, None, "a CSV header and rows (the file is empty)")
    return data


def _parse_csv(data: bytes, path: Path) -> pl.DataFrame:
    """All columns as strings (values are parsed per field later, so errors name the field).

    Databento CSV is UTF-8 (its symbols are ASCII): undecodable bytes are an error, never
    replaced. Every row must have as many fields as the header; Polars itself would pad a short
    row with nulls (a row missing its ``symbol`` would take the instrument_id), so the field
    counts are checked first.
    """
    _check_field_counts(data, path)
    _check_utf8(data[:data.find(b"\n")], path)  # Polars checks the rows, not the header
    try:
        return pl.read_csv(io.BytesIO(data), infer_schema=False, encoding="utf8")
    except pl.exceptions.PolarsError as exc:
        _check_utf8(data, path)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, None, None, f"a well-formed CSV ({detail})") from None


def _check_utf8(data: bytes, path: Path) -> None:
    """Raise naming the 1-based data row (None: the header) of the first non-UTF-8 byte."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = data[:exc.start].count(b"\n")
        raise InputError(path, row or None, None if row else "header", "UTF-8 text",
                         data[exc.start:exc.start + 8]) from None


def _check_field_counts(data: bytes, path: Path) -> None:
    """Raise at the first data row whose number of fields differs from the header's.

    Vectorized over the bytes: the commas and newlines outside double-quoted fields (an even
    number of quotes before them, so ``""`` escapes and quoted newlines are handled) are found
    with NumPy and counted per line. A blank line is a row of one empty field (Polars reads it
    as a row of nulls); only the empty remainder after the last newline is not a row.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    commas = np.flatnonzero(buf == ord(","))
    if b'"' in data:
        quotes = np.flatnonzero(buf == ord('"'))
        newlines = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
        commas = commas[np.searchsorted(quotes, commas) % 2 == 0]
    n_lines = len(newlines) + 1
    if len(newlines) and newlines[-1] == len(buf) - 1:
        n_lines -= 1  # the file ends with a newline
    fields = np.bincount(np.searchsorted(newlines, commas), minlength=n_lines)[:n_lines] + 1
    bad = np.flatnonzero(fields != fields[0])
    if bad.size:
        row = int(bad[0])  # line 0 is the header, so the line index is the 1-based data row
        raise InputError(path, row, None,
                         f"{int(fields[0])} comma-separated fields, as in the header",
                         f"{int(fields[row])} fields")


def _schema_of(frame: pl.DataFrame, path: Path) -> str:
    if "rtype" in frame.columns:
        rtypes = frame.select(pl.col(ROW), pl.col("rtype").str.strip_chars().cast(
            pl.Int64, strict=False))
        first = rtypes["rtype"][0]
        if first is None:
            raise InputError(path, 1, "rtype", "an integer record type", frame["rtype"][0])
        bad = rtypes.filter(pl.col("rtype") != first).head(1)
        if bad.height:
            raise InputError(path, int(bad[ROW][0]), "rtype",
                             f"one record type per file (rtype {first} on the first row)",
                             bad["rtype"][0])
        if first not in RTYPE_SCHEMAS:
            raise UnsupportedFormatError(
                f"{path}: unsupported record type rtype={first}; supported schemas: "
                f"{', '.join(SUPPORTED_SCHEMAS)}")
        return RTYPE_SCHEMAS[first]
    cols = set(frame.columns)
    if "order_id" in cols:
        return "mbo"
    if "bid_px_01" in cols:
        return "mbp-10"
    if "bid_px_00" in cols:
        return "mbp-1"
    if "open" in cols:
        raise InputError(path, None, "rtype", "an rtype column (or schema=) to know the bar "
                         "length of an ohlcv file")
    return "trades"


def _raw_frame(frame: pl.DataFrame, schema: str, path: Path) -> pl.DataFrame:
    needed = ("ts_event", *raw_columns(schema))
    missing = [c for c in needed if c not in frame.columns and c not in _OPTIONAL]
    if missing:
        raise InputError(path, None, missing[0],
                         f"a column {missing[0]!r} in the header (a Databento {schema} CSV has "
                         f"{', '.join(needed)})")
    if "symbol" not in frame.columns and "instrument_id" not in frame.columns:
        raise InputError(path, None, "symbol",
                         "a 'symbol' or 'instrument_id' column in the header")
    frame = frame.with_columns(pl.col(c).str.strip_chars() for c in frame.columns if c != ROW)
    out = frame.select(
        pl.col(ROW),
        _timestamps(frame, "ts_recv", path),
        _timestamps(frame, "ts_event", path),
        _instrument(frame, path),
    )
    prices = [c for c in raw_columns(schema) if _is_price(c)]
    fixed = _is_fixed_point(frame, prices)
    for column in raw_columns(schema):
        if column not in frame.columns:
            out = out.with_columns(pl.lit(None, dtype=_INT_TYPES[column]).alias(column))
        elif column in ("action", "side"):
            out = out.with_columns(frame[column])
        elif _is_price(column):
            out = out.with_columns(_prices(frame, column, fixed, path))
        else:
            out = out.with_columns(_integers(frame, column, path))
    return out


def _is_price(column: str) -> bool:
    return column in ("price", "open", "high", "low", "close") or "_px_" in column


def _is_fixed_point(frame: pl.DataFrame, prices: list[str]) -> bool:
    """Prices are int64 fixed point (``pretty_px=False``) when every price is an integer."""
    present = [c for c in prices if c in frame.columns]
    if not present:
        return False
    return bool(frame.select(pl.all_horizontal(
        pl.col(c).str.contains(_INT).fill_null(True).all() for c in present)).item())


def _raise_first(frame: pl.DataFrame, parsed: pl.Series, column: str, expected: str,
                 path: Path) -> None:
    bad = (frame[column].is_not_null() & parsed.is_null()).arg_true()
    if bad.len():
        pos = int(bad[0])
        raise InputError(path, int(frame[ROW][pos]), column, expected, frame[column][pos])


def _timestamps(frame: pl.DataFrame, column: str, path: Path) -> pl.Series:
    if column not in frame.columns:
        return pl.Series(column, [None] * frame.height, dtype=TS)
    text = frame[column]
    if text.drop_nulls().str.contains(_INT).all():
        ns = text.cast(pl.UInt64, strict=False)
        _raise_first(frame, ns, column, "nanoseconds since the UNIX epoch", path)
        ns = pl.select(pl.when(ns != UNDEF_TIMESTAMP).then(ns)).to_series()
        return ns.cast(pl.Int64).cast(TS).alias(column)
    iso = text.str.replace(r"Z$", "+00:00").str.replace("T", " ", literal=True)
    aware = iso.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%:z", time_unit="ns", strict=False)
    naive = iso.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns", strict=False)
    ts = pl.select(pl.coalesce(aware.dt.convert_time_zone("UTC"),
                               naive.dt.replace_time_zone("UTC"))).to_series()
    _raise_first(frame, ts, column, "a UTC timestamp (ISO 8601 or integer nanoseconds)", path)
    return ts.alias(column)


def _instrument(frame: pl.DataFrame, path: Path) -> pl.Series:
    """The ``symbol`` where given, else the instrument_id (as the DBN reader does)."""
    ids = pl.Series([None] * frame.height, dtype=pl.String)
    if "instrument_id" in frame.columns:
        parsed = frame["instrument_id"].cast(pl.UInt32, strict=False)
        _raise_first(frame, parsed, "instrument_id", "an integer instrument_id", path)
        ids = parsed.cast(pl.String)
    symbols = frame["symbol"] if "symbol" in frame.columns else ids
    instrument = pl.select(pl.coalesce(symbols, ids)).to_series().alias("instrument")
    missing = instrument.is_null().arg_true()
    if missing.len():
        field = "symbol" if "symbol" in frame.columns else "instrument_id"
        raise InputError(path, int(frame[ROW][int(missing[0])]), field,
                         "a symbol or an instrument_id")
    return instrument


def _prices(frame: pl.DataFrame, column: str, fixed: bool, path: Path) -> pl.Series:
    text = frame[column]
    if fixed:
        ints = text.cast(pl.Int64, strict=False)
        _raise_first(frame, ints, column, "an int64 fixed-point price", path)
        return pl.select(pl.when(ints != UNDEF_PRICE).then(ints).cast(pl.Float64)
                         / 1_000_000_000).to_series().alias(column)
    price = text.cast(pl.Float64, strict=False)
    _raise_first(frame, price, column, "a decimal price", path)
    return price


def _integers(frame: pl.DataFrame, column: str, path: Path) -> pl.Series:
    dtype = _INT_TYPES.get(column, pl.Int64())
    parsed = frame[column].cast(dtype, strict=False)
    _raise_first(frame, parsed, column, f"an integer ({dtype})", path)
    return parsed


"""Header-less, fixed-layout CSV parsing with one-line errors naming row and field.

LOBSTER and QuantConnect LEAN both write CSVs without a header whose columns are fixed by the
format. :func:`read_headerless` parses them with Polars' CSV reader on the bytes (the fast
path); only when that fails, or leaves a required field empty, does it re-read the bytes as
text lines to find the first bad row and field (vectorized, no Python loop over rows).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import polars as pl

from tapecast.core.errors import InputError
from tapecast.data.validate import ROW

_EXPECTED: dict[type[pl.DataType], str] = {
    pl.Int64: "an integer",
    pl.Float64: "a number",
    pl.String: "text",
}


def _describe(dtype: pl.DataType) -> str:
    return _EXPECTED.get(type(dtype), str(dtype))


def read_headerless(
    data: bytes,
    columns: Mapping[str, pl.DataType],
    file: str,
    required: Sequence[str] = (),
) -> pl.DataFrame:
    """Parse a header-less CSV with a fixed column layout.

    Parameters
    ----------
    data : bytes
        The whole CSV file.
    columns : mapping of str to polars dtype
        Column names and types, in file order; every row must have exactly these fields.
    file : str
        Name used in error messages (for a zip member: ``"archive.zip:inner.csv"``).
    required : sequence of str
        Columns that must never be empty (the last column always must: a short row fails).

    Returns
    -------
    pl.DataFrame
        Shape (n_rows, len(columns) + 1): the typed columns plus ``_row`` (UInt32, 1-based row).

    Raises
    ------
    InputError
        Empty file, a row with the wrong number of fields, or a field that is empty where
        required or does not parse as its type; names file, row and field.
    """
    if not data.strip():
        raise InputError(file, None, None, "at least one data row (the file is empty)")
    names = list(columns)
    must = [*required, names[-1]]
    try:
        frame = pl.read_csv(io.BytesIO(data), has_header=False, schema=pl.Schema(columns),
                            quote_char=None)
    except (pl.exceptions.PolarsError, OverflowError):
        _diagnose(data, columns, file, must)
        raise  # _diagnose always raises; kept for type checkers
    if frame.select(pl.any_horizontal(pl.col(must).is_null()).any()).item():
        _diagnose(data, columns, file, must)
    return frame.with_row_index(ROW, offset=1)


def _lines(data: bytes) -> pl.DataFrame:
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").rstrip("\n")
    return pl.DataFrame({"line": text.split("\n")}).with_row_index(ROW, offset=1)


def _diagnose(
    data: bytes, columns: Mapping[str, pl.DataType], file: str, must: Sequence[str]
) -> None:
    """Find the first malformed row of ``data`` and raise an :class:`InputError` for it."""
    names = list(columns)
    lines = _lines(data)
    n_fields = pl.col("line").str.count_matches(",", literal=True) + 1
    bad = lines.filter(n_fields != len(names))
    if bad.height:
        row, line = bad.row(0)
        raise InputError(file, row, None, f"{len(names)} comma-separated fields "
                         f"({','.join(names)})", line)
    fields = lines.with_columns(pl.col("line").str.split_exact(",", len(names) - 1)
                                .struct.rename_fields(names)).unnest("line")
    first: tuple[int, str, str, str] | None = None
    for name, dtype in columns.items():
        raw = pl.col(name).str.strip_chars()
        empty = raw.is_null() | (raw == "")
        unparsable = ~empty & raw.cast(dtype, strict=False).is_null()
        checks = [(unparsable, _describe(dtype))]
        if name in must:
            checks.append((empty, f"{_describe(dtype)} (the field is required)"))
        for bad_expr, expected in checks:
            hit = fields.filter(bad_expr).head(1)
            if hit.height and (first is None or hit[ROW][0] < first[0]):
                first = (int(hit[ROW][0]), name, expected, str(hit[name][0]))
    if first is not None:
        row, name, expected, got = first
        raise InputError(file, row, name, expected, got)
    raise InputError(file, None, None, "a CSV Polars can parse with columns "
                     + ",".join(names))


def divide_exact(expr: pl.Expr, divisor: float) -> pl.Expr:
    """``expr / divisor`` as IEEE division, correctly rounded (``5859100 / 10000 == 585.91``).

    Polars' own division by a constant can be off by one ulp (``585.9100000000001``), which
    would make a scaled price differ from the same price typed as a decimal.
    """
    if divisor == 1.0:
        return expr.cast(pl.Float64)
    return expr.cast(pl.Float64).map_batches(
        lambda s: _divide(s, divisor), return_dtype=pl.Float64)


def _divide(series: pl.Series, divisor: float) -> pl.Series:
    quotient = pl.Series(series.name, series.to_numpy() / divisor, dtype=pl.Float64)
    if series.null_count() == 0:
        return quotient
    return pl.select(pl.when(series.is_null()).then(None).otherwise(quotient)).to_series()

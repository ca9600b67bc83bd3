"""Validation shared by every reader: one-line errors that name file, row and field.

Readers may carry a ``_row`` column (the 1-based data row or record number in the source file);
error messages then name that row, otherwise the frame's own 1-based position.
"""

from __future__ import annotations

from os import PathLike

import polars as pl

from tapecast.core.errors import InputError
from tapecast.data.schemas import conform

ROW = "_row"

# (column, rule) per table; rules: "positive" (> 0, finite), "nonneg" (>= 0, finite)
_RULES: dict[str, list[tuple[str, str]]] = {
    "events": [("size", "nonneg")],
    "trades": [("price", "positive"), ("size", "positive")],
    "quotes": [("bid_px", "positive"), ("ask_px", "positive"), ("bid_sz", "nonneg"),
               ("ask_sz", "nonneg")],
    "bars": [("open", "positive"), ("high", "positive"), ("low", "positive"),
             ("close", "positive"), ("volume", "nonneg"), ("amount", "nonneg")],
    "quote_bars": [(f"{s}_{f}", "positive") for s in ("bid", "ask")
                   for f in ("open", "high", "low", "close")]
    + [("bid_size", "nonneg"), ("ask_size", "nonneg")],
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "events": ("ts_event", "action", "side"),
    "trades": ("ts", "price", "size"),
    "quotes": ("ts",),
    "bars": ("ts", "close"),  # some bar formats carry no open (seeds: 1-second bars)
    "quote_bars": ("ts",),
    "levels": ("ts",),
}


def _row_of(frame: pl.DataFrame, position: int) -> int:
    if ROW in frame.columns:
        return int(frame[ROW][position])
    return position + 1


def _first(frame: pl.DataFrame, bad: pl.Expr) -> int | None:
    idx = frame.select(bad.arg_true().first()).item()
    return None if idx is None else int(idx)


def check_not_null(frame: pl.DataFrame, column: str, file: str | PathLike[str]) -> None:
    """Raise if ``column`` holds a null (a required field left empty)."""
    pos = _first(frame, pl.col(column).is_null())
    if pos is not None:
        raise InputError(file, _row_of(frame, pos), column, "a value (the field is required)")


def check_values(frame: pl.DataFrame, column: str, rule: str, file: str | PathLike[str]) -> None:
    """Raise on NaN/inf, a negative value, or (``rule="positive"``) a zero, in ``column``.

    Nulls pass: whether a null is allowed is :func:`check_not_null`'s business.
    """
    col = pl.col(column).cast(pl.Float64)
    checks = [(col.is_nan() | col.is_infinite(), "a finite number")]
    if rule == "positive":
        checks.append((col <= 0, "a positive number"))
    else:
        checks.append((col < 0, "a non-negative number"))
    for bad, expected in checks:
        pos = _first(frame, bad.fill_null(False))
        if pos is not None:
            raise InputError(file, _row_of(frame, pos), column, expected, frame[column][pos])


def check_sorted(frame: pl.DataFrame, column: str, file: str | PathLike[str]) -> None:
    """Raise at the first row whose ``column`` is earlier than the row before it."""
    if frame.height < 2:
        return
    col = pl.col(column)
    if frame.schema[column].is_temporal():
        col = col.dt.epoch("ns")
    pos = _first(frame, (col.diff() < 0).fill_null(False))
    if pos is None:
        return
    shown = frame.select(pl.col(column).slice(pos - 1, 2))
    if frame.schema[column].is_temporal():
        shown = shown.select(pl.col(column).dt.to_string("%Y-%m-%dT%H:%M:%S.%9f"))
    before, here = shown[column].to_list()
    raise InputError(
        file, _row_of(frame, pos), column,
        f"{column} not decreasing (the format promises it ordered); the row before has {before}",
        here,
    )


def check_bar_range(frame: pl.DataFrame, prefix: str, file: str | PathLike[str]) -> None:
    """Raise where a bar's low exceeds its open, close or high, or its high is below them.

    ``prefix`` is ``""`` for trade bars and ``"bid_"`` / ``"ask_"`` for quote bars. A null open
    (formats without one) is skipped.
    """
    o, h, lo, c = (pl.col(f"{prefix}{k}") for k in ("open", "high", "low", "close"))
    checks = [(f"{prefix}high", h < pl.max_horizontal(o, c, lo), "a high >= open, low, close"),
              (f"{prefix}low", lo > pl.min_horizontal(o, c), "a low <= open and close")]
    for column, bad, expected in checks:
        pos = _first(frame, bad.fill_null(False))
        if pos is not None:
            raise InputError(file, _row_of(frame, pos), column, expected, frame[column][pos])


def finalize(
    frame: pl.DataFrame,
    table: str,
    file: str | PathLike[str],
    ordered_by: str | None = None,
) -> pl.DataFrame:
    """Validate ``frame`` as ``table`` and return it in the canonical schema.

    Checks required fields are present, numbers are finite and of the right sign (a zero price
    is an error where a price is required), bars' low <= open, close <= high, and, when
    ``ordered_by`` is given, that this column never decreases. Then drops helper columns
    (``_row``) and casts to the canonical schema.

    Raises
    ------
    InputError
        At the first offending row, naming file, row and field.
    """
    if frame.height == 0:
        raise InputError(file, None, None, f"at least one {table} row (the file is empty)")
    for column in _REQUIRED.get(table, ()):
        if column in frame.columns:
            check_not_null(frame, column, file)
    for column, rule in _RULES.get(table, []):
        if column in frame.columns:
            check_values(frame, column, rule, file)
    if table == "events" and "price" in frame.columns:
        # a price is required on adds, modifies, fills and trades; a zero price is never a price
        check_values(frame.with_columns(pl.when(pl.col("action").cast(pl.String) != "clear")
                                        .then(pl.col("price")).alias("price")),
                     "price", "positive", file)
    for prefix in {"bars": ("",), "quote_bars": ("bid_", "ask_")}.get(table, ()):
        if all(f"{prefix}{k}" in frame.columns for k in ("open", "high", "low", "close")):
            check_bar_range(frame, prefix, file)
    if ordered_by is not None:
        check_sorted(frame, ordered_by, file)
    return conform(frame, table)

"""Bars shipped inside installed wheels, the embedded defaults that need no ``../shared/data``.

:func:`sp500_daily_bars` is the S&P 500 index, daily, 1999-01-04 .. 2018-12-31 (5,031 bars),
from the ``arch`` wheel (``arch/data/sp500/sp500.csv.gz``, the file ``arch.data.sp500.load()``
reads, NCSA licence). It is read with polars, so no pandas frame crosses our API.
"""

from __future__ import annotations

from datetime import timedelta
from importlib.resources import files
from typing import Final

import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.data.schemas import BARS

__all__ = ["SP500_INSTRUMENT", "sp500_daily_bars"]

SP500_INSTRUMENT: Final = "SP500"
_OPEN: Final = timedelta(hours=9, minutes=30)  # New York regular session 09:30-16:00
_SESSION: Final = timedelta(hours=6, minutes=30)


def sp500_daily_bars() -> pl.DataFrame:
    """The S&P 500 daily bars of the ``arch`` wheel as the canonical ``bars`` table.

    Each bar starts at the 09:30 New York open of its date (``ts``, in UTC) and lasts the 6.5-hour
    regular session (``bar_length``), so it is known at the 16:00 close. ``close`` is the
    index close (for an index ``Adj Close`` is the same); ``volume`` the reported share volume.

    Returns
    -------
    pl.DataFrame
        :data:`tapecast.data.schemas.BARS` columns, 5,031 rows sorted by ``ts``.

    Raises
    ------
    TapecastError
        When ``arch`` or its data file is not installed.
    """
    try:
        source = files("arch").joinpath("data", "sp500", "sp500.csv.gz")
        raw = source.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise TapecastError("the embedded S&P 500 needs the 'arch' package (pip install "
                            "arch); it ships arch/data/sp500/sp500.csv.gz") from None
    frame = pl.read_csv(raw, try_parse_dates=False)
    # the file mixes ISO dates and US month/day/year ones (1,228 rows, 2003-12 .. 2008-11)
    frame = frame.with_columns(pl.coalesce(
        pl.col("Date").str.to_date("%Y-%m-%d", strict=False),
        pl.col("Date").str.to_date("%m/%d/%Y", strict=False)).alias("_day"))
    if (bad := frame.filter(pl.col("_day").is_null())).height:
        raise TapecastError(f"{source}: {bad.height} date(s) in neither YYYY-MM-DD nor M/D/YYYY, "
                            f"first {bad['Date'][0]!r}")
    day = pl.col("_day").cast(pl.Datetime("ns"))
    return (frame.select(
        ts=(day + _OPEN).dt.replace_time_zone("America/New_York").dt.convert_time_zone("UTC"),
        instrument=pl.lit(SP500_INSTRUMENT), open=pl.col("Open"), high=pl.col("High"),
        low=pl.col("Low"), close=pl.col("Close"), volume=pl.col("Volume").cast(pl.Float64),
        amount=pl.lit(None), vwap=pl.lit(None), n_trades=pl.lit(None),
        bar_length=pl.lit(_SESSION, dtype=pl.Duration("ns")))
        .cast(BARS).sort("ts"))

"""Canonical tables back to a venue format: the ``events`` table as a Databento MBO CSV.

Simulated order flow (:mod:`tapecast.sim.tradefm_loop`, ``tapecast generate``) is written in the
format of real data so that every command reads it like a recorded session: the Databento MBO
CSV that ``DBNStore.to_csv`` writes (``rtype`` 160; ISO-8601 nanosecond timestamps; prices as
decimals, the shortest that reads back to the same float; actions ``A C M T F R``; sides
``B A N``), which
:func:`tapecast.data.readers.databento_csv.read_databento_csv` reads back to the same events
(with their trades table). Written here because the official client writes DBN from its own
records only, not from a table.
"""

from __future__ import annotations

import os
from typing import Final

import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_path
from tapecast.data.schemas import conform

__all__ = ["MBO_CSV_COLUMNS", "write_mbo_csv"]

MBO_CSV_COLUMNS: Final = ("ts_recv", "ts_event", "rtype", "publisher_id", "instrument_id",
                          "action", "side", "price", "size", "channel_id", "order_id", "flags",
                          "ts_in_delta", "sequence", "symbol")
_ACTIONS: Final = {"add": "A", "cancel": "C", "modify": "M", "trade": "T", "fill": "F",
                   "clear": "R"}
_SIDES: Final = {"bid": "B", "ask": "A", "none": "N"}
MBO_RTYPE: Final = 160


def _iso(column: str) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%9fZ")


def write_mbo_csv(events: pl.DataFrame, path: str | os.PathLike[str], *,
                  publisher_id: int = 0, instrument_id: int = 0) -> None:
    """Write a canonical ``events`` table as a Databento MBO CSV, atomically.

    Parameters
    ----------
    events : pl.DataFrame
        Canonical events (:data:`tapecast.data.schemas.EVENTS`), in venue order; one
        instrument per file is what Databento writes, several are allowed (``symbol`` column).
    path : path
        The ``.csv`` file to write.
    publisher_id, instrument_id : int
        Written as given (a simulation has neither).

    Raises
    ------
    TapecastError
        An empty table.
    """
    if events.height == 0:
        raise TapecastError(f"{path}: no event to write")
    frame = conform(events, "events")
    recv = pl.coalesce("ts_recv", "ts_event").alias("ts_recv")
    out = frame.select(
        _iso("ts_recv").alias("ts_recv") if frame["ts_recv"].null_count() == 0 else
        recv.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%9fZ"),
        _iso("ts_event").alias("ts_event"),
        pl.lit(MBO_RTYPE).alias("rtype"), pl.lit(publisher_id).alias("publisher_id"),
        pl.lit(instrument_id).alias("instrument_id"),
        pl.col("action").cast(pl.String).replace_strict(_ACTIONS).alias("action"),
        pl.col("side").cast(pl.String).replace_strict(_SIDES).alias("side"),
        pl.col("price").cast(pl.String),  # shortest decimal that reads back to the same float
        pl.col("size").fill_null(0), pl.lit(0).alias("channel_id"),
        pl.col("order_id").fill_null(0), pl.col("flags").fill_null(0),
        pl.lit(0).alias("ts_in_delta"),
        pl.col("sequence").fill_null(pl.int_range(pl.len())).alias("sequence"),
        pl.col("instrument").alias("symbol"))
    with atomic_path(path) as tmp:
        out.select(MBO_CSV_COLUMNS).write_csv(tmp)

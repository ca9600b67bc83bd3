"""Tests of the Databento CSV reader (tapecast.data.readers.databento_csv)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tapecast.data.readers.databento_csv import read_databento_csv
from tests.conftest import shared_file


def test_read_databento_csv_when_arl_mbo_then_events_open_with_clear() -> None:
    path = shared_file("blockhouse_arl/mbo.csv")
    tables = read_databento_csv(path)
    events = tables["events"]
    assert events.height == 5886
    assert events["action"][0] == "clear"
    assert events["price"][0] is None
    assert events["instrument"].unique().to_list() == ["ARL"]
    assert tables.counters["clears"] == 1
    trades = tables["trades"]
    assert trades.height == int((events["action"] == "trade").sum())


def test_read_databento_csv_when_arl_mbp10_with_index_column_then_levels(tmp_path: Path) -> None:
    path = shared_file("blockhouse_arl/mbp.csv")
    tables = read_databento_csv(path)
    levels = tables["levels"]
    assert levels.height == 3928
    assert levels.columns[2:6] == ["ask_px_1", "ask_sz_1", "bid_px_1", "bid_sz_1"]
    # second row: one bid at 5.51 x 100, no ask: the empty side is null, not 0
    assert levels.row(1, named=True)["bid_px_1"] == 5.51
    assert levels.row(1, named=True)["ask_sz_1"] is None
    quotes = tables["quotes"]
    assert quotes.filter(pl.col("ask_px").is_null())["ask_sz"].null_count() == quotes.filter(
        pl.col("ask_px").is_null()).height

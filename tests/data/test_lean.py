"""Tests for the QuantConnect LEAN reader (tapecast.data.readers.lean)."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from tapecast.core.errors import InputError, UnsupportedFormatError
from tapecast.data.detect import detect
from tapecast.data.readers.lean import parse_lean_path, read_lean
from tests.conftest import shared_file


def _zip(path: Path, members: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def test_read_lean_when_equity_tick_trades_scales_price_and_converts_ny_time(
        tmp_path: Path) -> None:
    path = _zip(tmp_path / "equity/usa/tick/xyz/20131007_trade.zip",
                {"20131007_xyz_Trade_Tick.csv": "34200000.5,1674100,100,P,2000,0\n"
                 "34200001,1674200,0,Q,2000,0\n34200002,1674300,300,Q,20002020,1\n"})
    t = read_lean(path)
    trades = t["trades"]
    assert trades["price"].to_list() == pytest.approx([167.41, 167.43])
    assert trades["ts"][0] == datetime(2013, 10, 7, 13, 30, tzinfo=UTC) + timedelta(
        microseconds=500)  # 09:30 EDT
    assert trades["side"].to_list() == [0, 0] and trades["side_source"].null_count() == 2
    assert trades["exchange"].to_list() == ["P", "Q"]
    assert trades["sale_condition"].to_list() == ["2000", "20002020"]
    assert trades["suspicious"].to_list() == [False, True]
    assert trades["instrument"].to_list() == ["XYZ", "XYZ"]
    assert t.counters["zero_size_trades_dropped"] == 1


def test_read_lean_when_one_sided_quote_ticks_carries_top_of_book_forward(
        tmp_path: Path) -> None:
    path = _zip(tmp_path / "equity/usa/tick/xyz/20131007_quote.zip",
                {"20131007_xyz_Quote_Tick.csv": "14400152,0,0,494100,300,Q,1,0\n"
                 "14400547,491800,300,0,0,P,1,0\n14400600,491900,200,0,0,P,1,1\n"
                 "14400687,481800,100,0,0,P,1,0\n"})
    quotes = read_lean(path)["quotes"]
    assert quotes.height == 4
    assert quotes["bid_px"].to_list()[:2] == [None, pytest.approx(49.18)]
    assert quotes["bid_px"][2] == pytest.approx(49.18)  # suspicious row does not update
    assert quotes["ask_px"].to_list() == pytest.approx([49.41] * 4)
    assert quotes["bid_sz"][3] == 100


def test_read_lean_when_futures_quote_bars_splits_contracts_and_nulls_empty_side(
        tmp_path: Path) -> None:
    path = _zip(tmp_path / "future/cme/minute/es/20131007_quote.zip", {
        "20131007_es_minute_quote_201312.csv": "0,1676.5,1677,1676,1676.5,86,"
                                               "1676.75,1677,1676.5,1676.75,97\n",
        "20131007_es_minute_quote_201409.csv": "60000,1654,1654,1654,1654,1,,,,,0\n",
    })
    bars = read_lean(path)["quote_bars"]
    assert bars["instrument"].to_list() == ["ES_201312", "ES_201409"]
    assert bars["ts"][1] == datetime(2013, 10, 7, 0, 1, tzinfo=UTC)  # futures time is UTC
    assert bars["ask_open"][1] is None and bars["ask_size"][1] is None
    assert bars["bid_close"][0] == 1676.5
    assert bars["bar_length"][0] == timedelta(minutes=1)


def test_read_lean_when_daily_equity_bars_parses_date_time(tmp_path: Path) -> None:
    path = _zip(tmp_path / "equity/usa/daily/xyz.zip",
                {"xyz.csv": "19980102 00:00,973100,975300,965300,973600,2150000\n"})
    bars = read_lean(path)["bars"]
    assert bars["ts"][0] == datetime(1998, 1, 2, 5, tzinfo=UTC)  # NY midnight, EST
    assert bars["close"][0] == pytest.approx(97.36)
    assert bars["bar_length"][0] == timedelta(days=1)


def test_read_lean_when_open_interest_skips_and_counts(tmp_path: Path) -> None:
    path = _zip(tmp_path / "future/cme/minute/es/20131007_openinterest.zip",
                {"20131007_es_minute_openinterest_201312.csv": "21960000,2691941\n0,1\n"})
    t = read_lean(path)
    assert t.row_counts() == {} and t.counters["open_interest_rows_skipped"] == 2


@pytest.mark.parametrize(("line", "row", "field"), [
    ("34200001,abc,100,P,2000,0", 2, "Price"),
    ("34200001,-5,100,P,2000,0", 2, "price"),
    ("34200001,1674100,-1,P,2000,0", 2, "Size"),
    ("34200001,1674100,100,P,2000", 2, None),
    ("90000000,1674100,100,P,2000,0", 2, "Time"),
    ("1,1674100,100,P,2000,0", 2, "ts"),  # earlier than row 1
])
def test_read_lean_when_bad_row_names_zip_inner_file_row_field(
        tmp_path: Path, line: str, row: int, field: str | None) -> None:
    path = _zip(tmp_path / "equity/usa/tick/xyz/20131007_trade.zip",
                {"20131007_xyz_Trade_Tick.csv": f"34200000,1674100,100,P,2000,0\n{line}\n"})
    with pytest.raises(InputError) as info:
        read_lean(path)
    assert info.value.file is not None
    assert info.value.file.endswith("20131007_trade.zip:20131007_xyz_Trade_Tick.csv")
    assert (info.value.row, info.value.field) == (row, field)


def test_read_lean_when_path_is_not_lean_layout_raises(tmp_path: Path) -> None:
    path = _zip(tmp_path / "data/xyz.zip", {"xyz.csv": "0,1,1,1,1,1\n"})
    with pytest.raises(UnsupportedFormatError, match="LEAN"):
        read_lean(path)
    assert detect(path) == "lean"


def test_parse_lean_path_when_hour_zip_with_tick_type_reads_parts() -> None:
    lean = parse_lean_path(Path("/x/future/cme/hour/es_quote.zip"))
    assert (lean.security_type, lean.resolution, lean.symbol, lean.tick_type, lean.date) == (
        "future", "hour", "ES", "quote", None)


def test_read_lean_when_every_shared_zip_row_counts_equal_summary() -> None:
    """Every zip under shared/data/lean: rows per inner CSV equal SUMMARY.tsv's (~10 s)."""
    summary_path = shared_file("lean/SUMMARY.tsv")
    root = summary_path.parent
    summary = pl.read_csv(summary_path, separator="\t", quote_char=None)
    for (zip_name,), expected in summary.group_by("zip"):
        t = read_lean(root / str(zip_name))
        got = (sum(t.row_counts().values()) + t.counters.get("zero_size_trades_dropped", 0)
               + t.counters.get("open_interest_rows_skipped", 0))
        assert got == expected["rows"].sum(), zip_name
        assert t.counters["rows"] == expected["rows"].sum(), zip_name
        for _, frame in t.items():
            if zip_name.startswith("future/") and "zero_size_trades_dropped" not in t.counters:
                per_contract = dict(frame["instrument"].value_counts().iter_rows())
                assert sorted(per_contract.values()) == sorted(expected["rows"]), zip_name

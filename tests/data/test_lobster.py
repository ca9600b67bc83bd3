"""Tests for the LOBSTER reader (tapecast.data.readers.lobster) and its replay match rates."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tapecast.core.errors import InputError, UnsupportedFormatError
from tapecast.data.book import replay_tables
from tapecast.data.detect import detect
from tapecast.data.readers.lobster import read_lobster
from tapecast.data.readers.lobster_match import (
    lobster_match_rates,
    lobster_order_accounting,
    lobster_step_check,
)
from tests.conftest import shared_file

STEM = "XYZ_2012-06-21_34200000_57600000"
# Time, Type, OrderID, Size, Price, Direction   |   AskPx1, AskSz1, BidPx1, BidSz1
MESSAGES = [
    "34200.000000001,1,11,100,1000100,-1",  # add ask 100.01 x100
    "34200.5,1,12,50,999900,1",             # add bid 99.99 x50
    "34201.25,2,11,30,1000100,-1",          # partial cancel 30 of order 11
    "34202,4,12,20,999900,1",               # visible execution of the bid: aggressor sells
    "34203,5,0,7,1000000,-1",               # hidden execution: aggressor buys
    "34204,7,0,0,-1,-1",                    # halt
    "34205,6,0,40,1000000,1",               # cross
    "34206,3,11,70,1000100,-1",             # delete the rest of order 11
]
BOOK = [
    "1000100,100,-9999999999,0",
    "1000100,100,999900,50",
    "1000100,70,999900,50",
    "1000100,70,999900,30",
    "1000100,70,999900,30",
    "1000100,70,999900,30",
    "1000100,70,999900,30",
    "9999999999,0,999900,30",
]


def _write_pair(folder: Path, messages: list[str], book: list[str]) -> tuple[Path, Path]:
    msg = folder / f"{STEM}_message_1.csv"
    ob = folder / f"{STEM}_orderbook_1.csv"
    msg.write_text("\n".join(messages) + "\n")
    ob.write_text("\n".join(book) + "\n")
    return msg, ob


def _zip_pair(folder: Path, messages: list[str], book: list[str]) -> Path:
    path = folder / "LOBSTER_SampleFile_XYZ_2012-06-21_1.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{STEM}_message_1.csv", "\n".join(messages) + "\n")
        zf.writestr(f"{STEM}_orderbook_1.csv", "\n".join(book) + "\n")
    return path


def test_read_lobster_when_message_csv_given_maps_types_to_events(tmp_path: Path) -> None:
    msg, _ = _write_pair(tmp_path, MESSAGES, BOOK)
    t = read_lobster(msg)
    assert t.events is not None
    assert t.events["action"].cast(pl.String).to_list() == [
        "add", "add", "cancel", "fill", "trade", "trade", "cancel"]
    assert t.events["side"].cast(pl.String).to_list() == [
        "ask", "bid", "ask", "bid", "bid", "none", "ask"]
    assert t.events["size"].to_list() == [100, 50, 30, 20, 7, 40, 70]
    assert t.events["sequence"].to_list() == [1, 2, 3, 4, 5, 7, 8]  # message rows; halt left out
    assert t.events["order_id"].to_list()[4] is None
    assert t.counters["halts"] == 1
    # 09:30:00.000000001 New York (EDT) = 13:30 UTC
    assert t.events["ts_event"][0] == datetime(2012, 6, 21, 13, 30, tzinfo=UTC)
    assert t.events["ts_event"].dt.nanosecond()[0] == 1


def test_read_lobster_when_orderbook_csv_given_finds_message_partner(tmp_path: Path) -> None:
    _, ob = _write_pair(tmp_path, MESSAGES, BOOK)
    t = read_lobster(ob)
    assert t.levels is not None and t.levels.height == 7  # halt row dropped
    assert t.levels["bid_px_1"][0] is None  # LOBSTER's dummy -9999999999 -> null
    assert t.levels["ask_px_1"][6] is None and t.levels["ask_sz_1"][6] is None
    assert t.levels["ask_px_1"][0] == 100.01  # exactly the decimal price, not 100.01000000000001


def test_read_lobster_when_executions_gives_aggressor_as_minus_direction(tmp_path: Path) -> None:
    msg, _ = _write_pair(tmp_path, MESSAGES, BOOK)
    trades = read_lobster(msg)["trades"]
    assert trades["side"].to_list() == [-1, 1, 0]  # exec of a buy order = seller-initiated
    assert trades["side_source"].cast(pl.String).to_list() == ["exchange", "exchange", None]
    assert trades["sale_condition"].to_list() == ["visible", "hidden", "cross"]


def test_read_lobster_when_first_message_is_add_seed_undoes_it(tmp_path: Path) -> None:
    msg, _ = _write_pair(tmp_path, MESSAGES, BOOK)
    seed = read_lobster(msg).book_seed
    assert seed is not None and seed.height == 1
    assert seed["ask_px_1"][0] is None and seed["bid_px_1"][0] is None


def test_read_lobster_when_partner_missing_raises(tmp_path: Path) -> None:
    msg, ob = _write_pair(tmp_path, MESSAGES, BOOK)
    ob.unlink()
    with pytest.raises(InputError, match="orderbook"):
        read_lobster(msg)


def test_read_lobster_when_row_counts_differ_names_both_files(tmp_path: Path) -> None:
    msg, _ = _write_pair(tmp_path, MESSAGES, BOOK[:-1])
    with pytest.raises(InputError, match=r"message_1\.csv and .*orderbook_1\.csv"):
        read_lobster(msg)


@pytest.mark.parametrize(("row", "line", "field"), [
    (2, "34200.5,1,12,50,0,1", "Price"),
    (2, "34200.5,1,12,-5,999900,1", "Size"),
    (2, "34200.5,9,12,50,999900,1", "Type"),
    (2, "34200.5,1,12,50,999900,0", "Direction"),
    (2, "34200.5,1,12,50,abc,1", "Price"),
    (2, "34199,1,12,50,999900,1", "Time"),  # earlier than row 1
    (2, "34200.5,1,12,50,999900", None),  # a field short
])
def test_read_lobster_when_bad_row_in_zip_names_inner_file_row_field(
        tmp_path: Path, row: int, line: str, field: str | None) -> None:
    messages = list(MESSAGES)
    messages[row - 1] = line
    path = _zip_pair(tmp_path, messages, BOOK)
    with pytest.raises(InputError) as info:
        read_lobster(path)
    assert info.value.file is not None and info.value.file.endswith(f"{STEM}_message_1.csv")
    assert info.value.row == row
    assert info.value.field == field


def test_read_lobster_when_not_a_lobster_name_raises(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text("1,2\n")
    with pytest.raises(UnsupportedFormatError):
        read_lobster(path)


def test_detect_when_lobster_zip_or_csv_gives_lobster(tmp_path: Path) -> None:
    msg, ob = _write_pair(tmp_path, MESSAGES, BOOK)
    assert detect(_zip_pair(tmp_path, MESSAGES, BOOK)) == "lobster"
    assert detect(msg) == "lobster" and detect(ob) == "lobster"


def test_read_lobster_when_real_sample_counts_agree_with_files() -> None:
    t = read_lobster(shared_file("lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"))
    assert t.row_counts() == {"events": 155_935, "trades": 8_974 + 2_445, "quotes": 55_071,
                              "levels": 155_935}
    assert t.counters["halts"] == 0
    assert t["events"]["price"][1] == 223.81  # 2238100 / 10000, correctly rounded
    # message 67823 is written as 43002.632812672004 s: rounded to the ns
    ts = t["events"]["ts_event"][67_822]
    assert ts == datetime(2012, 6, 21, 15, 56, 42, 632812, tzinfo=UTC)
    assert t["events"]["ts_event"].dt.nanosecond()[67_822] == 632_812_672


@pytest.mark.parametrize("name", ["AAPL_2012-06-21_1", "AMZN_2012-06-21_1", "AMZN_2012-06-21_5"])
def test_lobster_replay_when_seeded_first_row_and_mapping_are_exact(name: str) -> None:
    t = read_lobster(shared_file(f"lobster/LOBSTER_SampleFile_{name}.zip"))
    assert t.levels is not None
    result = replay_tables(t, (len(t.levels.columns) - 2) // 4)
    px = [c for c in t.levels.columns if "_px_" in c]
    ours, ref = (f.head(1).drop("ts").with_columns(pl.col(px).round(6))
                 for f in (result.levels, t.levels))
    assert ours.equals(ref)
    step = lobster_step_check(t)
    assert step["checked"] > 50_000 and step["consistent"] == step["checked"]


# level-1 rows where price and size match LOBSTER's own book (ask, bid), as docs/lobster.md reports
LEVEL1_BOTH_MATCH = {
    "AAPL_2012-06-21_1": {"none": (5_400, 827), "window": (66_579, 61_491)},
    "AMZN_2012-06-21_5": {"none": (15_182, 7_011), "window": (128_403, 122_035)},
}


@pytest.mark.parametrize("name", ["AAPL_2012-06-21_1", "AMZN_2012-06-21_5"])
def test_lobster_match_rates_when_replayed_mismatches_fall_in_documented_classes(
        name: str) -> None:
    t = read_lobster(shared_file(f"lobster/LOBSTER_SampleFile_{name}.zip"))
    assert t.levels is not None
    n = (len(t.levels.columns) - 2) // 4
    accounting = lobster_order_accounting(t)
    for mode, window in (("none", None), ("window", n)):
        rates = lobster_match_rates(t, depth_window=window)
        matched = (rates["both_match"] * rates["rows"]).round().cast(pl.Int64)
        explained = rates["stale"] + rates["missing"] + rates["size_only"]
        assert (matched + explained == rates["rows"]).all()
        assert tuple(matched.head(2)) == LEVEL1_BOTH_MATCH[name][mode]
        if window is None:
            # without the window stale liquidity dominates: orders the file adds, never removes
            assert accounting["orders_never_removed"] > 0.15 * accounting["orders_added"]
            assert (rates["stale"] > rates["missing"]).all()
        else:
            # with it, what is left is mostly liquidity the file never showed
            assert (rates["missing"] > rates["stale"]).all()
        counters = replay_tables(t, n, depth_window=window).counters
        # events on orders the file never added are exactly the replay's unknown-order events
        assert accounting["events_on_unseen_orders"] == counters["unknown_order"]
        assert (counters["crossed_book"] == 0) == (window is not None)


def test_lobster_match_rates_when_depth_window_alternatives_compared_default_is_best() -> None:
    t = read_lobster(shared_file("lobster/LOBSTER_SampleFile_AMZN_2012-06-21_1.zip"))
    default = lobster_match_rates(t)["both_match"]
    assert default.equals(lobster_match_rates(t, depth_window=1)["both_match"])
    for other in (lobster_match_rates(t, depth_window=None),
                  lobster_match_rates(t, forgotten="drop"),
                  lobster_match_rates(t, uncross=False, forgotten="drop")):
        assert (default >= other["both_match"]).all()
    assert default.round(3).to_list() == [0.58, 0.535]

"""Tests of the replay checks (tapecast.data.book_checks) on hand-made books with known faults."""

from __future__ import annotations

import polars as pl

from tapecast.data.book import replay_book
from tapecast.data.book_checks import (
    compare_mbp10,
    crossed_at_packet_ends,
    judged_trades,
    negative_sizes,
    trades_inside_touch,
)
from tests.data.book_fixtures import CLEAR, events


def test_negative_sizes_when_a_level_size_is_negative_counts_it() -> None:
    ev = events([CLEAR, ("add", "bid", 10.0, 5, 1)])
    levels = replay_book(ev, 1).levels
    assert negative_sizes(levels) == 0
    assert negative_sizes(levels.with_columns(bid_sz_1=pl.lit(-1, pl.Int64))) == 2


def test_crossed_at_packet_ends_when_crossed_mid_packet_only_reports_packet_ends() -> None:
    ev = events([
        CLEAR,
        ("add", "ask", 10.0, 1, 1),
        ("add", "bid", 10.5, 1, 2, 0),  # crossed inside a packet
        ("cancel", "bid", 10.5, 1, 2),
        ("add", "bid", 10.0, 1, 3),  # locked at a packet end
    ])
    levels = replay_book(ev, 1).levels
    assert crossed_at_packet_ends(ev, levels)["row"].to_list() == [5]
    assert crossed_at_packet_ends(ev, levels, include_locked=False).height == 0


def test_trades_inside_touch_when_trade_inside_previous_packet_touch_flags_it() -> None:
    ev = events([
        CLEAR,
        ("add", "bid", 10.0, 5, 1),
        ("add", "ask", 11.0, 5, 2),
        ("trade", "bid", 11.0, 1, 0, 0),  # a buy at the ask: fine
        ("cancel", "ask", 11.0, 1, 2),
        ("trade", "bid", 10.5, 1, 0),  # a buy inside the spread: a violation
        ("trade", "ask", 10.0, 1, 0),  # a sell at the bid: fine
        ("trade", "none", 10.5, 1, 0),  # no aggressor: not judged
    ])
    levels = replay_book(ev, 1).levels
    bad = trades_inside_touch(ev, levels)
    assert bad["row"].to_list() == [6]
    assert bad["ask_before"].to_list() == [11.0]
    assert judged_trades(ev, levels) == 3


def _mbp10_reference(ev: pl.DataFrame, levels: pl.DataFrame) -> pl.DataFrame:
    """A Databento-layout MBP-10 reference built from our own replay (to perturb)."""
    codes = {"add": "A", "cancel": "C", "modify": "M", "trade": "T", "fill": "F", "clear": "R"}
    sides = {"bid": "B", "ask": "A", "none": "N"}
    cols = [pl.col(f"{s}_{f}_{i + 1}").alias(f"{s}_{f}_{i:02d}")
            for i in range(10) for s in ("bid", "ask") for f in ("px", "sz")]
    return pl.concat([
        ev.select("ts_event", "sequence", pl.col("action").cast(pl.String).replace_strict(codes),
                  pl.col("side").cast(pl.String).replace_strict(sides), "price", "size"),
        levels.select(cols),
    ], how="horizontal")


def test_compare_mbp10_when_reference_differs_names_the_row() -> None:
    ev = events([CLEAR, ("add", "bid", 10.0, 5, 1), ("add", "ask", 11.0, 5, 2),
                 ("cancel", "bid", 10.0, 2, 1)])
    levels = replay_book(ev, 10).levels
    reference = _mbp10_reference(ev, levels)
    same = compare_mbp10(ev, levels, reference)
    assert (same.reference_rows, same.joined_rows, same.matching_rows) == (3, 3, 3)
    assert same.match_rate == 1.0
    wrong = reference.with_columns(
        bid_sz_00=pl.when(pl.col("sequence") == 4).then(99).otherwise(pl.col("bid_sz_00")))
    result = compare_mbp10(ev, levels, wrong)
    assert result.matching_rows == 2
    assert result.mismatches["row"].to_list() == [4]

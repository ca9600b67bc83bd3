"""Tests of the L3 book replay (tapecast.data.book) on hand-made events and real Databento MBO."""

from __future__ import annotations

import importlib.util
from typing import Literal

import polars as pl
import pytest

from tapecast.core.errors import ReplayError
from tapecast.data.book import replay_book, replay_tables, source_depth
from tapecast.data.book_checks import (
    compare_mbp10,
    crossed_at_packet_ends,
    judged_trades,
    negative_sizes,
    trades_inside_touch,
)
from tapecast.data.schemas import levels_schema
from tapecast.data.tables import Tables
from tests.conftest import shared_file
from tests.data.book_fixtures import CLEAR, F_LAST, F_SNAPSHOT, events, top


def test_replay_book_when_adds_and_cancels_levels_aggregate_best_first() -> None:
    ev = events([
        CLEAR,
        ("add", "bid", 10.0, 5, 1),
        ("add", "bid", 10.5, 2, 2),
        ("add", "bid", 10.0, 1, 3),
        ("add", "ask", 11.0, 3, 4),
        ("cancel", "bid", 10.5, 2, 2),
        ("cancel", "bid", 10.0, 4, 1),
    ])
    levels = replay_book(ev, 2).levels
    assert levels.schema == levels_schema(2)
    assert levels.height == ev.height
    assert top(levels, 0, "bid") == [(None, None), (None, None)]
    assert top(levels, 3, "bid") == [(10.5, 2), (10.0, 6)]
    assert top(levels, 4, "ask") == [(11.0, 3), (None, None)]
    assert top(levels, 5, "bid") == [(10.0, 6), (None, None)]
    assert top(levels, 6, "bid") == [(10.0, 2), (None, None)]


def test_replay_book_when_more_levels_than_n_emits_only_top_n() -> None:
    ev = events([CLEAR] + [("add", "ask", 100.0 + i, 1, i + 1) for i in range(5)])
    levels = replay_book(ev, 3).levels
    assert top(levels, 5, "ask", 3) == [(100.0, 1), (101.0, 1), (102.0, 1)]
    assert levels.columns[:6] == ["ts", "instrument", "ask_px_1", "ask_sz_1", "bid_px_1",
                                  "bid_sz_1"]


def test_replay_book_when_modify_moves_price_level_follows() -> None:
    ev = events([
        CLEAR,
        ("add", "bid", 10.0, 5, 1),
        ("modify", "bid", 10.25, 7, 1),
        ("modify", "bid", 10.25, 3, 1),
    ])
    levels = replay_book(ev, 2).levels
    assert top(levels, 2, "bid") == [(10.25, 7), (None, None)]
    assert top(levels, 3, "bid") == [(10.25, 3), (None, None)]


def test_replay_book_when_clear_midway_book_empties() -> None:
    ev = events([CLEAR, ("add", "bid", 10.0, 5, 1), ("add", "ask", 11.0, 5, 2), CLEAR,
                 ("add", "ask", 12.0, 1, 3)])
    result = replay_book(ev, 1)
    assert top(result.levels, 3, "bid", 1) == [(None, None)]
    assert top(result.levels, 3, "ask", 1) == [(None, None)]
    assert top(result.levels, 4, "ask", 1) == [(12.0, 1)]
    assert result.counters["clears"] == 2


def test_replay_book_when_trade_row_book_unchanged() -> None:
    ev = events([CLEAR, ("add", "ask", 11.0, 5, 1), ("trade", "bid", 11.0, 2, 0)])
    levels = replay_book(ev, 1).levels
    assert top(levels, 2, "ask", 1) == [(11.0, 5)]


def test_replay_book_when_databento_flags_fill_leaves_book_to_following_cancel() -> None:
    ev = events([CLEAR, ("add", "ask", 11.0, 5, 1), ("trade", "bid", 11.0, 2, 0),
                 ("fill", "ask", 11.0, 2, 1), ("cancel", "ask", 11.0, 2, 1)])
    levels = replay_book(ev, 1).levels
    assert top(levels, 3, "ask", 1) == [(11.0, 5)]
    assert top(levels, 4, "ask", 1) == [(11.0, 3)]


def test_replay_book_when_no_flags_fill_reduces_resting_order() -> None:
    ev = events([("add", "ask", 11.0, 5, 1), ("fill", "ask", 11.0, 2, 1),
                 ("fill", "ask", 11.0, 3, 1)], flags=None)
    levels = replay_book(ev, 1).levels
    assert top(levels, 1, "ask", 1) == [(11.0, 3)]
    assert top(levels, 2, "ask", 1) == [(None, None)]


@pytest.mark.parametrize(
    ("bad_event", "field"),
    [
        (("add", "bid", 9.0, 1, 1), "order_id"),  # order 1 is live
        (("cancel", "bid", 10.0, 1, 99), "order_id"),  # unknown order
        (("modify", "bid", 10.0, 1, 99), "order_id"),
        (("cancel", "bid", 10.0, 6, 1), "size"),  # 6 > resting 5
    ],
)
def test_replay_book_when_full_state_impossible_event_raises_naming_row_and_field(
    bad_event: tuple[object, ...], field: str
) -> None:
    ev = events([CLEAR, ("add", "bid", 10.0, 5, 1), bad_event])
    with pytest.raises(ReplayError) as info:
        replay_book(ev, 1, source="day.dbn")
    message = str(info.value)
    assert message.startswith("day.dbn, row 3, field ")
    assert f"field '{field}'" in message
    assert "\n" not in message


def test_replay_book_when_mid_stream_unknown_orders_are_counted_not_raised() -> None:
    ev = events([
        ("add", "bid", 10.0, 5, 1),
        ("cancel", "bid", 10.0, 1, 99),
        ("modify", "ask", 11.0, 2, 98),  # unknown modify -> an add
        ("cancel", "bid", 10.0, 9, 1),  # more than resting: clamped
        ("add", "ask", 12.0, 1, 98),  # live id: replaces
    ])
    result = replay_book(ev, 2)
    assert result.counters["unknown_order"] == 2
    assert result.counters["negative_size_clamped"] == 1
    assert result.counters["duplicate_add"] == 1
    assert top(result.levels, 2, "ask") == [(11.0, 2), (None, None)]
    assert top(result.levels, 3, "bid") == [(None, None), (None, None)]
    assert top(result.levels, 4, "ask") == [(12.0, 1), (None, None)]


def test_replay_book_when_snapshot_records_open_the_file_replay_is_full_state() -> None:
    ev = events([("add", "bid", 10.0, 5, 1, F_SNAPSHOT), ("add", "ask", 11.0, 5, 2,
                                                            F_SNAPSHOT | F_LAST),
                 ("cancel", "bid", 10.0, 1, 99)])
    with pytest.raises(ReplayError, match="row 3"):
        replay_book(ev, 1)
    result = replay_book(ev, 1, full_state=False)
    assert result.counters["snapshot_records"] == 2
    assert result.counters["unknown_order"] == 1


def test_replay_book_when_crossed_only_mid_packet_not_counted() -> None:
    ev = events([
        CLEAR,
        ("add", "ask", 10.0, 1, 1),
        ("add", "bid", 10.5, 1, 2, 0),  # crossed, but the packet goes on
        ("cancel", "bid", 10.5, 1, 2),  # packet end: uncrossed
        ("add", "bid", 10.0, 1, 3),  # locked at a packet end
        ("add", "bid", 10.25, 1, 4),  # crossed at a packet end
    ])
    counters = replay_book(ev, 1).counters
    assert counters["crossed_book"] == 1
    assert counters["locked_book"] == 1


def test_replay_book_when_seeded_unknown_cancels_consume_anonymous_liquidity() -> None:
    seed = pl.DataFrame({"ts": [None], "instrument": ["X"], "ask_px_1": [11.0],
                         "ask_sz_1": [10], "bid_px_1": [10.0], "bid_sz_1": [4]})
    seed = seed.select([pl.col(c).cast(t) for c, t in levels_schema(1).items()])
    ev = events([
        ("cancel", "ask", 11.0, 3, 77),  # anonymous: 10 -> 7
        ("fill", "bid", 10.0, 4, 78),  # anonymous: 4 -> 0, level gone
        ("cancel", "ask", 12.0, 1, 79),  # nothing seeded there
        ("add", "ask", 11.0, 2, 80),
        ("cancel", "ask", 11.0, 9, 81),  # only 7 anonymous left: the named order stays
    ], flags=None)
    result = replay_book(ev, 1, seed=seed)
    assert top(result.levels, 0, "ask", 1) == [(11.0, 7)]
    assert top(result.levels, 1, "bid", 1) == [(None, None)]
    assert top(result.levels, 2, "ask", 1) == [(11.0, 7)]
    assert top(result.levels, 3, "ask", 1) == [(11.0, 9)]
    assert top(result.levels, 4, "ask", 1) == [(11.0, 2)]
    assert result.counters["unknown_order"] == 4
    assert result.counters["seed_absorbed"] == 3


def test_replay_tables_when_book_seed_present_replays_from_it() -> None:
    seed = pl.DataFrame({"ask_px_1": [11.0], "ask_sz_1": [10], "bid_px_1": [10.0],
                         "bid_sz_1": [4]}).with_columns(ts=None, instrument=pl.lit("X"))
    seed = seed.select([pl.col(c).cast(t) for c, t in levels_schema(1).items()])
    ev = events([("add", "bid", 10.0, 1, 1)], flags=None)
    result = replay_tables(Tables(source="s", format="lobster", events=ev, book_seed=seed), 1)
    assert top(result.levels, 0, "bid", 1) == [(10.0, 5)]
    assert top(result.levels, 0, "ask", 1) == [(11.0, 10)]


WINDOWED = [
    ("add", "bid", 10.0, 5, 1),
    ("add", "bid", 10.5, 2, 2),  # pushes 10.0 beyond depth 1: forgotten
    ("cancel", "bid", 10.5, 2, 2),
    ("cancel", "bid", 10.0, 1, 1),  # a message on order 1: it is inside depth 1 again
]


@pytest.mark.parametrize(("forgotten", "last"), [("recall", (10.0, 4)), ("drop", (None, None))])
def test_replay_book_when_depth_window_levels_beyond_it_are_forgotten(
    forgotten: Literal["recall", "drop"], last: tuple[float | None, int | None]
) -> None:
    result = replay_book(events(WINDOWED, flags=None), 2, depth_window=1, forgotten=forgotten)
    assert top(result.levels, 1, "bid") == [(10.5, 2), (None, None)]  # 10.0 not kept
    assert top(result.levels, 2, "bid") == [(None, None), (None, None)]
    assert top(result.levels, 3, "bid") == [last, (None, None)]
    assert result.counters["window_trims"] == 1
    assert result.counters["forgotten_order"] == 1
    assert result.counters["forgotten_recalled"] == (forgotten == "recall")


def test_replay_book_when_no_depth_window_pushed_out_levels_come_back() -> None:
    result = replay_book(events(WINDOWED, flags=None), 2)
    assert top(result.levels, 1, "bid") == [(10.5, 2), (10.0, 5)]
    assert top(result.levels, 2, "bid") == [(10.0, 5), (None, None)]
    assert top(result.levels, 3, "bid") == [(10.0, 4), (None, None)]
    assert result.counters["window_trims"] == result.counters["forgotten_order"] == 0


def test_replay_book_when_forgotten_level_reopens_old_orders_do_not_count() -> None:
    ev = events([
        *WINDOWED[:3],
        ("add", "bid", 10.0, 3, 3),  # a new order re-opens the forgotten price
        ("cancel", "bid", 10.0, 5, 1),  # deletes forgotten order 1: not part of the new level
    ], flags=None)
    modes: tuple[Literal["recall", "drop"], ...] = ("recall", "drop")
    for forgotten in modes:
        levels = replay_book(ev, 1, depth_window=1, forgotten=forgotten).levels
        assert top(levels, 3, "bid", 1) == [(10.0, 3)]
        assert top(levels, 4, "bid", 1) == [(10.0, 3)]


def test_replay_book_when_window_event_crosses_book_opposite_stale_levels_go() -> None:
    ev = events([
        ("add", "ask", 11.0, 1, 1),
        ("add", "ask", 11.5, 2, 2),
        ("add", "bid", 11.0, 4, 3),  # locks the 11.0 ask: it was cancelled unseen
        ("add", "bid", 12.0, 1, 4),  # crosses the 11.5 ask
    ], flags=None)
    result = replay_book(ev, 2, depth_window=2)
    assert top(result.levels, 2, "ask") == [(11.5, 2), (None, None)]
    assert top(result.levels, 3, "ask") == [(None, None), (None, None)]
    assert top(result.levels, 3, "bid") == [(12.0, 1), (11.0, 4)]
    assert result.counters["uncrossed"] == 2
    assert result.counters["crossed_book"] == result.counters["locked_book"] == 0
    kept = replay_book(ev, 2, depth_window=2, uncross=False).counters
    assert (kept["uncrossed"], kept["locked_book"], kept["crossed_book"]) == (0, 1, 1)


def test_replay_tables_when_lobster_depth_window_defaults_to_file_depth() -> None:
    seed = pl.DataFrame({"ask_px_1": [11.0], "ask_sz_1": [10], "bid_px_1": [10.0],
                         "bid_sz_1": [4]}).with_columns(ts=None, instrument=pl.lit("X"))
    seed = seed.select([pl.col(c).cast(t) for c, t in levels_schema(1).items()])
    ev = events([("add", "bid", 10.5, 1, 1)], flags=None)
    lobster = Tables(source="s", format="lobster", events=ev, book_seed=seed, levels=seed)
    assert source_depth(lobster) == 1
    assert top(replay_tables(lobster, 2).levels, 0, "bid") == [(10.5, 1), (None, None)]
    full = replay_tables(lobster, 2, depth_window=None).levels
    assert top(full, 0, "bid") == [(10.5, 1), (10.0, 4)]
    other = Tables(source="s", format="dbn", events=ev, book_seed=seed, levels=seed)
    assert source_depth(other) is None
    assert top(replay_tables(other, 2).levels, 0, "bid") == [(10.5, 1), (10.0, 4)]


def test_replay_book_when_depth_window_not_positive_raises() -> None:
    with pytest.raises(ValueError, match="depth_window"):
        replay_book(events(WINDOWED, flags=None), 1, depth_window=0)


def test_replay_book_when_no_events_returns_empty_levels() -> None:
    result = replay_book(events([]), 3)
    assert result.levels.schema == levels_schema(3)
    assert result.levels.height == 0
    assert result.counters["events"] == 0


def _read_events(relative: str) -> pl.DataFrame:
    """Events of a shared file through tapecast's own reader (skip while it is not written)."""
    path = shared_file(relative)
    module = ("tapecast.data.readers.dbn" if ".dbn" in relative
              else "tapecast.data.readers.databento_csv")
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not written yet")
    from tapecast.data import read

    events_table = read(path).events
    assert events_table is not None
    return events_table


def test_replay_book_when_arl_mbo_matches_mbp10_reference_on_every_add_and_cancel() -> None:
    ev = _read_events("blockhouse_arl/mbo.csv")
    reference = pl.read_csv(shared_file("blockhouse_arl/mbp.csv"), infer_schema_length=10_000)
    reference = reference.with_columns(
        pl.col("ts_event").str.to_datetime(time_unit="ns", time_zone="UTC"))
    result = replay_book(ev, 10, source="mbo.csv")
    match = compare_mbp10(ev, result.levels, reference)
    assert match.reference_rows > 3800
    assert match.joined_rows == match.reference_rows
    assert match.matching_rows == match.reference_rows
    # the reference's merged T rows sit on the resting side: they match our following cancel
    merged = reference.filter((pl.col("action") == "T") & (pl.col("side") != "N"))
    match_t = compare_mbp10(ev, result.levels, merged.with_columns(action=pl.lit("C")))
    assert match_t.reference_rows == match_t.matching_rows > 0


@pytest.mark.slow
def test_replay_book_when_es_mbo_day_invariants_hold_outside_preopen() -> None:
    ev = _read_events("nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst")
    result = replay_book(ev, 10, source="esh4")
    assert result.counters["snapshot_records"] == 8725
    assert negative_sizes(result.levels) == 0
    crossed = crossed_at_packet_ends(ev, result.levels)
    assert crossed.height > 0  # the pre-open crosses...
    reopen = pl.datetime(2023, 12, 25, 23, time_zone="UTC")
    assert crossed.filter(pl.col("ts") >= reopen).height == 0  # ...and only the pre-open
    assert trades_inside_touch(ev, result.levels).height == 0
    assert judged_trades(ev, result.levels) > 2900


def test_replay_book_when_two_instruments_each_has_its_own_book_in_input_order() -> None:
    a = events([CLEAR, ("add", "bid", 10.0, 5, 1)], instrument="A")
    b = events([CLEAR, ("add", "bid", 20.0, 1, 1)], instrument="B")
    mixed = pl.concat([a[0], b[0], a[1], b[1]])
    result = replay_book(mixed, 1)
    assert result.levels["instrument"].to_list() == ["A", "B", "A", "B"]
    assert result.levels["bid_px_1"].to_list() == [None, None, 10.0, 20.0]
    assert result.counters["events"] == 4
    assert result.counters["clears"] == 2

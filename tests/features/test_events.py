"""Token events and their features: the rules, the EW-VWAP, the fallback, streaming parity."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tapecast.data.detect import read
from tapecast.data.schemas import conform
from tapecast.features.events import (
    EventFeatureConfig,
    EventFeatureError,
    StreamingEventFeatures,
    event_features,
    event_features_from_tables,
    event_records,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ES = DATA / "nautilus" / "databento" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
AAPL = DATA / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
T0 = 1_700_000_000_000_000_000


def _events(rows: list[tuple[Any, ...]], *, flags: bool = True) -> pl.DataFrame:
    """(ms offset, action, side, price, size, order_id[, flags]) -> canonical events."""
    cols = ["ts", "action", "side", "price", "size", "order_id", "flags"]
    frame = pl.DataFrame([r + (0,) * (7 - len(r)) for r in rows], schema=cols, orient="row")
    ts = (pl.lit(T0) + pl.col("ts") * 1_000_000).cast(pl.Datetime("ns", "UTC"))
    frame = frame.with_columns(ts_event=ts, ts_recv=ts, instrument=pl.lit("X"),
                               sequence=pl.int_range(pl.len()))
    if not flags:
        frame = frame.with_columns(flags=pl.lit(None), ts_recv=pl.lit(None))
    return conform(frame.drop("ts"), "events")


def _parity(events: pl.DataFrame, config: EventFeatureConfig | None = None, **kw: Any) -> None:
    batch = event_features(events, config, **kw).tokens
    stream = StreamingEventFeatures(config, seeds=(
        {events["instrument"][0]: kw["seed"]} if kw.get("seed") is not None else None),
        depth_window=kw.get("depth_window"))
    rows = [r for e in event_records(events) for r in stream.update(e)]
    assert StreamingEventFeatures.frame(rows).equals(batch)


BOOK = [(0, "add", "bid", 99.0, 5, 1), (0, "add", "ask", 101.0, 5, 2)]


def test_modify_when_known_order_becomes_cancel_then_add() -> None:
    ev = _events([*BOOK, (1, "add", "bid", 98.0, 3, 3), (2, "modify", "bid", 98.5, 4, 3)])
    out = event_features(ev)
    tok = out.tokens
    assert tok["action"].to_list() == ["add", "cancel", "add"]  # no mid before a two-sided book
    assert tok["price"].to_list()[-2:] == [98.0, 98.5]
    assert tok["size"].to_list()[-2:] == [3, 4]
    assert tok["dt"].to_list()[-1] == 0.0
    c = next(iter(out.counters.values()))
    assert (c["modifies_split"], c["no_mid_dropped"]) == (1, 2)


def test_cancel_when_previous_event_is_fill_is_not_a_token() -> None:
    ev = _events([*BOOK, (1, "trade", "ask", 99.0, 5, 0), (1, "fill", "bid", 99.0, 5, 1),
                  (1, "cancel", "bid", 99.0, 5, 1), (3, "add", "bid", 98.0, 1, 4),
                  (4, "fill", "bid", 98.0, 1, 4), (9, "modify", "bid", 98.0, 2, 4)])
    out = event_features(ev)
    c = next(iter(out.counters.values()))
    assert c["outcome_cancels"] == 1
    assert c["fill_legs_of_trade"] == 1 and c["trade_prints"] == 1 and c["fill_prints"] == 1
    # the modify 5 ms after its fill is outside the 1 ms window: a participant's decision
    assert c["outcome_modifies"] == 0
    assert out.tokens["action"].to_list() == ["add", "cancel", "add"]
    wide = event_features(ev, EventFeatureConfig(outcome_window_s=None))
    assert next(iter(wide.counters.values()))["outcome_modifies"] == 1


def test_snapshot_records_when_flagged_seed_the_book_and_are_not_tokens() -> None:
    ev = _events([(0, "add", "bid", 99.0, 5, 1, 0x20), (0, "add", "ask", 101.0, 5, 2, 0x20),
                  (1, "add", "bid", 98.0, 1, 3)])
    out = event_features(ev)
    assert out.tokens.height == 1
    assert out.tokens["p_mid"][0] == 100.0 and out.tokens["book_mid"][0]
    assert next(iter(out.counters.values()))["snapshot_records"] == 2


def test_lobster_mapping_when_read_maps_types_to_actions(tmp_path: Path) -> None:
    msg = ("34200.05,5,0,10,1005000,1\n34200.1,1,11,100,1000000,1\n"
           "34200.2,1,12,50,1010000,-1\n34200.3,2,11,40,1000000,1\n"
           "34200.4,4,12,10,1010000,-1\n34200.5,3,11,60,1000000,1\n")
    book = ("9999999999,0,-9999999999,0\n1010000,0,1000000,100\n1010000,50,1000000,100\n"
            "1010000,50,1000000,60\n1010000,40,1000000,60\n1010000,40,-9999999999,0\n")
    (tmp_path / "X_2012-06-21_0_1_message_1.csv").write_text(msg)
    (tmp_path / "X_2012-06-21_0_1_orderbook_1.csv").write_text(book)
    tables = read(tmp_path / "X_2012-06-21_0_1_message_1.csv")
    out = event_features_from_tables(tables)
    assert out.tokens["action"].to_list() == ["add", "add", "cancel", "cancel"]
    c = next(iter(out.counters.values()))
    assert c["fill_prints"] == 1 and c["tokens"] == 4


def test_ew_vwap_when_compared_with_direct_formula_matches() -> None:
    rng = np.random.default_rng(7)
    t_ms = np.cumsum(rng.integers(1, 3000, 40))
    px = 100 + np.round(rng.normal(0, 0.5, 40), 2)
    q = rng.integers(1, 20, 40)
    rows: list[tuple[Any, ...]] = [*BOOK]
    for t, p, s in zip(t_ms, px, q, strict=True):
        rows += [(int(t), "trade", "bid", float(p), int(s), 0),
                 (int(t) + 1, "add", "bid", 90.0, 1, 1000 + int(t))]
    cfg = EventFeatureConfig(half_life_s=2.0, staleness_s=1e6)
    tok = event_features(_events(rows), cfg).tokens.filter(pl.col("price") == 90.0)
    for i, got in enumerate(tok["p_mid"].to_list()):
        w = 2.0 ** (-(t_ms[i] - t_ms[: i + 1]) / 2000.0)
        assert got == pytest.approx(float((w * px[: i + 1] * q[: i + 1]).sum()
                                          / (w * q[: i + 1]).sum()), rel=1e-12)
    assert tok["drift"].to_list()[-1] == pytest.approx(tok["p_mid"][-1] / px[0] - 1)
    assert tok["delta_p"][0] == pytest.approx(90.0 / px[0] - 1)
    assert tok["log_size"][0] == math.log(2.0)


def test_fallback_when_last_trade_is_stale_uses_book_mid_and_counts_it() -> None:
    ev = _events([*BOOK, (1, "add", "bid", 98.0, 1, 3), (2, "trade", "ask", 100.5, 1, 0),
                  (3, "add", "bid", 97.0, 1, 4), (5000, "add", "bid", 96.0, 1, 5)])
    out = event_features(ev, EventFeatureConfig(staleness_s=1.0))
    tok = out.tokens
    assert tok["book_mid"].to_list() == [True, False, True]
    assert tok["p_mid"].to_list() == [100.0, 100.5, 100.0]
    assert tok["drift"][0] == 0.0  # before the first trade: against the session's first mid
    assert tok["drift"][1] == 0.0  # p_open = the first trade
    assert out.summary()["book_mid_share"][0] == pytest.approx(2 / 3)


def test_events_when_no_add_or_cancel_raise_one_line_error() -> None:
    ev = _events([(0, "trade", "bid", 100.0, 1, 0)])
    with pytest.raises(EventFeatureError, match="expected add, cancel or modify") as err:
        event_features(ev)
    assert "\n" not in str(err.value)


def test_events_when_no_trade_and_one_sided_book_raise_with_dropped_count() -> None:
    ev = _events([(0, "add", "bid", 99.0, 5, 1), (1, "add", "bid", 98.0, 5, 2)])
    with pytest.raises(EventFeatureError, match="all 2 add/cancel events would be dropped"):
        event_features(ev)


def test_streaming_when_fed_hand_built_events_equals_batch() -> None:
    ev = _events([*BOOK, (1, "trade", "ask", 99.0, 5, 0), (1, "fill", "bid", 99.0, 5, 1),
                  (1, "cancel", "bid", 99.0, 5, 1), (3, "add", "bid", 98.0, 1, 4),
                  (9, "modify", "bid", 98.5, 2, 4), (10, "cancel", "ask", 101.0, 5, 2)],
                 flags=False)
    _parity(ev)


@pytest.mark.skipif(not ES.exists(), reason="shared ES MBO data absent")
def test_es_when_read_counts_outcomes_and_streaming_equals_batch() -> None:
    tables = read(ES)
    events = tables["events"]
    out = event_features(events)
    c = out.counters[("ESH4", date(2023, 12, 25))]
    assert (c["outcome_cancels"], c["outcome_modifies"]) == (5333, 974)
    assert c["tokens"] == 55675
    _parity(events.head(12_000))


@pytest.mark.skipif(not AAPL.exists(), reason="shared LOBSTER data absent")
def test_lobster_when_read_streaming_equals_batch() -> None:
    tables = read(AAPL)
    assert tables.events is not None and tables.book_seed is not None
    _parity(tables.events.head(5_000), seed=tables.book_seed, depth_window=1)


def test_level_when_orders_rest_behind_better_levels_counts_them_capped_at_five() -> None:
    bids = [(0, "add", "bid", 99.0 - i, 1, 10 + i) for i in range(6)]  # bids 99 .. 94
    ev = _events([*bids, (0, "add", "ask", 101.0, 5, 2), (1, "trade", "ask", 100.0, 1, 0),
                  (2, "add", "bid", 96.5, 1, 30),      # 3 better bid levels: level 3
                  (3, "add", "bid", 99.5, 1, 31),      # improves the best: level 0
                  (4, "add", "ask", 103.0, 1, 32),     # 1 better ask level
                  (5, "cancel", "bid", 94.0, 1, 15),   # behind 99.5, 99, 98, 97, 96.5, ...: 5
                  (6, "modify", "bid", 93.0, 1, 30)])  # cancel at 96.5 (4: 99.5 joined), add 5
    tok = event_features(ev).tokens  # the 1 ms trade gives the first mid: no earlier token
    assert tok["level"].to_list() == [3, 0, 1, 5, 4, 5]
    _parity(ev)

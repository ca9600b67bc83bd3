"""Generic CSV/Parquet L3 feeds -> canonical events (tapecast.data.readers.generic_events).

One ground-truth order stream is written as two feeds: delta sizes with a ``new/amend/cancel``
vocabulary (CSV) and remaining sizes with ``created/changed/deleted`` (Parquet). Both must read
to the same canonical events, and replaying them must rebuild the ground-truth book.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from tapecast.core.errors import InputError
from tapecast.data.book import replay_book
from tapecast.data.detect import read
from tapecast.data.readers.generic import read_generic
from tapecast.data.schemas import EVENTS, TRADES

T0 = 1_700_000_000_000_000_000
N_LEVELS = 5


@dataclass(frozen=True)
class Truth:
    """One ground-truth event: the canonical size and the order's size left after it."""

    action: str  # add, modify, cancel, fill, trade
    side: str  # bid / ask (the aggressor's on a trade)
    ticks: int  # price in cents
    size: int  # canonical: order size (add, modify), quantity removed (cancel, fill), traded
    remaining: int  # the order's size after the event (the traded quantity on a trade)
    order_id: int | None


def _stream(seed: int = 7, n: int = 400) -> tuple[list[Truth], dict[int, list[int | str]]]:
    """A random order stream and the live orders it leaves (order_id -> [side, ticks, size])."""
    rng = random.Random(seed)
    live: dict[int, list[int | str]] = {}
    out: list[Truth] = []
    next_id = 1

    def price(side: str) -> int:  # bids 9990-9999, asks 10001-10010: never crossed
        return 10_000 - rng.randint(1, 10) if side == "bid" else 10_000 + rng.randint(1, 10)

    for _ in range(n):
        kind = rng.choice(["add"] * 4 + ["modify", "cancel", "cancel", "fill", "trade"])
        if kind == "trade":
            q = rng.randint(1, 9)
            out.append(Truth("trade", rng.choice(["bid", "ask"]), 10_000, q, q, None))
            continue
        if kind == "add" or not live:
            side = rng.choice(["bid", "ask"])
            order = [side, price(side), rng.randint(1, 50)]
            live[next_id] = order
            out.append(Truth("add", side, int(order[1]), int(order[2]), int(order[2]), next_id))
            next_id += 1
            continue
        oid = rng.choice(sorted(live))
        side, ticks, have = str(live[oid][0]), int(live[oid][1]), int(live[oid][2])
        if kind == "modify":
            ticks, size = price(side), rng.randint(1, 60)
            live[oid] = [side, ticks, size]
            out.append(Truth("modify", side, ticks, size, size, oid))
            continue
        q = have if rng.random() < 0.4 else rng.randint(1, have)  # full or partial
        left = have - q
        out.append(Truth(kind, side, ticks, q, left, oid))
        if left:
            live[oid][2] = left
        else:
            del live[oid]
    return out, live


_DELTA_WORDS = {"add": "new", "modify": "amend", "cancel": "cancel", "fill": "fill",
                "trade": "trade"}
_REMAINING_WORDS = {"add": "created", "modify": "changed", "cancel": "deleted",
                    "fill": "executed", "trade": "TRADE"}


def _delta_csv(stream: list[Truth], path: Path) -> Path:
    lines = ["timestamp,symbol,order_id,action,side,price,size"]
    for i, e in enumerate(stream):
        side = "buy" if e.side == "bid" else "sell"
        oid = "" if e.order_id is None else str(e.order_id)
        lines.append(f"{T0 + i},XYZ,{oid},{_DELTA_WORDS[e.action]},{side},"
                     f"{e.ticks / 100:.2f},{e.size}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _remaining_parquet(stream: list[Truth], path: Path) -> Path:
    pl.DataFrame({
        "time": [T0 + i for i in range(len(stream))],
        "instrument": ["XYZ"] * len(stream),
        "oid": [e.order_id for e in stream],
        "event": [_REMAINING_WORDS[e.action] for e in stream],
        "side": ["B" if e.side == "bid" else "A" for e in stream],
        "price": [e.ticks / 100 for e in stream],
        "remaining": [e.remaining for e in stream],
    }).write_parquet(path)
    return path


def _truth_levels(live: dict[int, list[int | str]]) -> dict[str, list[tuple[float, int]]]:
    """Top N (price, size) per side of the live orders."""
    book: dict[str, dict[int, int]] = {"bid": {}, "ask": {}}
    for side, ticks, size in live.values():
        level = book[str(side)]
        level[int(ticks)] = level.get(int(ticks), 0) + int(size)
    return {s: [(t / 100, q) for t, q in sorted(book[s].items(), reverse=s == "bid")[:N_LEVELS]]
            for s in ("bid", "ask")}


def _book_levels(events: pl.DataFrame) -> dict[str, list[tuple[float, int]]]:
    """Top N (price, size) per side after the last event of a replay."""
    result = replay_book(events, N_LEVELS)
    assert result.counters.get("unknown_order", 0) == 0
    last = result.levels.row(-1, named=True)
    return {s: [(round(last[f"{s}_px_{i}"], 2), last[f"{s}_sz_{i}"])
                for i in range(1, N_LEVELS + 1) if last[f"{s}_px_{i}"] is not None]
            for s in ("bid", "ask")}


def test_read_generic_when_delta_and_remaining_feeds_of_one_stream_give_same_events(
        tmp_path: Path) -> None:
    stream, live = _stream()
    delta = read_generic(_delta_csv(stream, tmp_path / "xyz-l3.csv"))
    remaining = read_generic(_remaining_parquet(stream, tmp_path / "xyz-l3.parquet"),
                             size_kind="remaining", mapping={"size": "remaining"})
    assert delta.events is not None and remaining.events is not None
    assert delta.events.schema == EVENTS
    assert delta.events.height == len(stream)
    assert delta.events.equals(remaining.events)
    expected = [(e.action, e.size, e.order_id) for e in stream]
    assert list(zip(*delta.events.select("action", "size", "order_id").to_dict(
        as_series=False).values(), strict=True)) == expected
    assert _book_levels(delta.events) == _truth_levels(live)


def test_read_when_events_files_detected_and_read_through_format_detection(
        tmp_path: Path) -> None:
    stream, live = _stream(seed=11, n=250)
    delta = read(_delta_csv(stream, tmp_path / "xyz-l3.csv"))
    remaining = read(_remaining_parquet(stream, tmp_path / "xyz-l3.parquet"),
                     size_kind="remaining", mapping={"size": "remaining"})
    assert delta.format == "csv" and remaining.format == "parquet"
    assert delta.events is not None and remaining.events is not None
    assert delta.events.equals(remaining.events)
    assert _book_levels(remaining.events) == _truth_levels(live)


def test_read_generic_when_events_has_trades_the_trades_table_holds_them(tmp_path: Path) -> None:
    stream, _ = _stream(seed=3, n=120)
    tables = read_generic(_delta_csv(stream, tmp_path / "xyz.csv"))
    prints = [e for e in stream if e.action == "trade"]
    assert tables.trades is not None and tables.trades.schema == TRADES
    assert tables.trades["size"].to_list() == [float(e.size) for e in prints]
    assert tables.trades["side"].to_list() == [1 if e.side == "bid" else -1 for e in prints]


def test_read_generic_when_no_trade_rows_trades_come_from_fills(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("ts,order_id,action,side,price,size\n1,1,add,bid,10,5\n2,1,fill,bid,10,2\n")
    tables = read_generic(path)
    assert tables.trades is not None
    assert tables.trades.select("side", "size").row(0) == (-1, 2.0)  # seller hit the bid


def test_read_generic_when_remaining_modify_to_zero_becomes_cancel(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("ts,order_id,action,side,price,size\n1,7,created,ask,10,5\n"
                    "2,7,changed,ask,10,3\n3,7,changed,ask,10,0\n")
    events = read_generic(path, size_kind="remaining").events
    assert events is not None
    assert events.select(pl.col("action").cast(pl.String), "size").rows() == [
        ("add", 5), ("modify", 3), ("cancel", 3)]


def test_read_generic_when_remaining_sizes_tracked_per_instrument_and_between_clears(
        tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("ts,symbol,order_id,action,side,price,size\n"
                    "1,AAA,1,created,bid,10,5\n2,BBB,1,created,ask,20,9\n"
                    "3,AAA,1,deleted,bid,10,4\n4,BBB,1,executed,ask,20,2\n"
                    "5,AAA,,reset,none,,\n6,AAA,1,created,bid,11,3\n"
                    "7,AAA,1,deleted,bid,11,0\n")
    events = read_generic(path, size_kind="remaining").events
    assert events is not None
    assert events.select(pl.col("action").cast(pl.String), "size").rows() == [
        ("add", 5), ("add", 9), ("cancel", 1), ("fill", 7), ("clear", None), ("add", 3),
        ("cancel", 3)]


def test_read_generic_when_action_mapping_string_and_skip(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("ts,order_id,action,side,price,size\n1,1,OPEN,bid,10,5\n"
                    "2,1,heartbeat,bid,10,0\n3,1,KILL,bid,10,5\n")
    tables = read_generic(path, action_mapping="kill=cancel,heartbeat=skip")
    assert tables.events is not None
    assert tables.events["action"].cast(pl.String).to_list() == ["add", "cancel"]
    assert tables.counters["skipped_records"] == 1


def test_read_generic_when_order_ids_are_text_renumbers_them(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("ts,order_id,action,side,price,size\n1,ab-1,add,bid,10,5\n"
                    "2,cd-2,add,ask,11,5\n3,ab-1,cancel,bid,10,5\n")
    tables = read_generic(path)
    assert tables.events is not None
    assert tables.events["order_id"].to_list() == [1, 2, 1]
    assert tables.counters["order_ids_renumbered"] == 1


def test_read_generic_when_plain_trades_csv_still_detected_as_trades(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("timestamp,price,size,side,order_id\n1,10.5,3,buy,9\n2,10.6,1,sell,10\n")
    tables = read(path)
    assert tables.events is None
    assert tables.trades is not None and tables.trades["side"].to_list() == [1, -1]


_HEADER = "ts,order_id,action,side,price,size\n"


@pytest.mark.parametrize(
    ("rows", "options", "match"),
    [
        ("1,1,add,bid,10,5\n2,1,wiggle,bid,10,5\n", {},
         r"row 2, field 'action': expected an action .*got 'wiggle'"),
        ("1,,add,bid,10,5\n", {}, r"row 1, field 'order_id': expected an order id"),
        ("1,1,add,bid,0,5\n", {}, r"row 1, field 'price': expected a positive price"),
        ("1,1,add,bid,,5\n", {}, r"row 1, field 'price': expected a price on an add"),
        ("1,1,add,up,10,5\n", {}, r"row 1, field 'side': expected a side"),
        ("1,1,add,none,10,5\n", {}, r"row 1, field 'side': expected a bid or ask side"),
        ("1,1,add,bid,10,2.5\n", {}, r"row 1, field 'size': expected a whole-number size"),
        ("1,1,add,bid,10,-5\n", {}, r"row 1, field 'size': expected a non-negative size"),
        ("1,1,add,bid,10,5\n2,2,deleted,bid,10,0\n", {"size_kind": "remaining"},
         r"row 2, field 'order_id': expected an order resting before its change"),
        ("1,1,add,bid,10,5\n2,1,deleted,bid,10,0\n3,1,changed,bid,10,4\n",
         {"size_kind": "remaining"}, r"row 3, field 'order_id': expected an order resting"),
        ("1,1,add,bid,10,5\n2,1,deleted,bid,10,7\n", {"size_kind": "remaining"},
         r"row 2, field 'size': expected a remaining size below"),
        ("1,1,add,bid,10,5\n", {"size_kind": "left"}, r"field 'size_kind': expected delta"),
        ("1,1,add,bid,10,5\n", {"action_mapping": {"x": "zap"}},
         r"field 'action_mapping': expected a canonical action"),
        ("2,1,add,bid,10,5\n1,2,add,bid,10,5\n", {}, r"row 2, field 'ts': expected ts not"),
    ],
)
def test_read_generic_when_events_input_bad_raises_one_line(
        tmp_path: Path, rows: str, options: dict[str, object], match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(_HEADER + rows)
    with pytest.raises(InputError, match=match) as info:
        read_generic(path, **options)  # type: ignore[arg-type]
    assert str(path) in str(info.value) and "\n" not in str(info.value)

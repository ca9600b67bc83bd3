"""Tests of the matching engine (tapecast.sim.matching): hand-made cases, a brute-force reference
matcher on long random order streams, and replay mode on real ES, ARL and LOBSTER data."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.data import book_state as bs
from tapecast.data.book import replay_book, source_depth
from tapecast.data.book_orders import BookError, OrderBook
from tapecast.sim import matching_core as mc
from tapecast.sim.matching import MatchingEngine
from tests.conftest import shared_file

SIDES: tuple[Literal["bid"], Literal["ask"]] = ("bid", "ask")


# ---------------------------------------------------------------- the reference matcher


class Reference:
    """Brute force: per side a dict price -> [[id, size], ...] in time order, and anonymous
    size per price (consumed first in its level)."""

    def __init__(self, next_id: int = 1) -> None:
        self.book: list[dict[int, list[list[int]]]] = [{}, {}]
        self.anon: list[dict[int, int]] = [{}, {}]
        self.next_id = next_id
        self.trades: list[tuple[int, int, int, int, int]] = []  # price, size, side, rest, aggr
        self.submitted = self.traded = self.cancelled = self.dropped_market = 0
        self.dropped_cancels = 0

    def prices(self, side: int) -> list[int]:
        return sorted(set(self.book[side]) | set(self.anon[side]), reverse=side == 0)

    def add(self, side: int, price: int | None, size: int) -> None:
        oid, self.next_id = self.next_id, self.next_id + 1
        self.submitted += size
        other = 1 - side
        while size > 0 and self.prices(other):
            best = self.prices(other)[0]
            if price is not None and (best > price if side == 0 else best < price):
                break
            if self.anon[other].get(best, 0) > 0:
                q = min(size, self.anon[other][best])
                self.anon[other][best] -= q
                if self.anon[other][best] == 0:
                    del self.anon[other][best]
                rest = 0
            else:
                head = self.book[other][best][0]
                q, rest = min(size, head[1]), head[0]
                head[1] -= q
                if head[1] == 0:
                    self.book[other][best].pop(0)
                    if not self.book[other][best]:
                        del self.book[other][best]
            self.trades.append((best, q, side, rest, oid))
            self.traded += q
            size -= q
        if size > 0 and price is not None:
            self.book[side].setdefault(price, []).append([oid, size])
        elif size > 0:
            self.dropped_market += size

    def cancel_near(self, side: int, price: int, size: int | None) -> int:
        levels = self.prices(side)
        if not levels:
            self.dropped_cancels += 1
            return 0
        at = min(levels, key=lambda p: (abs(p - price), -p if side == 0 else p))
        queue = self.book[side].get(at)
        if queue:
            tail = queue[-1]
            q = tail[1] if size is None else min(size, tail[1])
            tail[1] -= q
            if tail[1] == 0:
                queue.pop()
                if not queue:
                    del self.book[side][at]
        else:
            q = self.anon[side][at] if size is None else min(size, self.anon[side][at])
            self.anon[side][at] -= q
            if self.anon[side][at] == 0:
                del self.anon[side][at]
        self.cancelled += q
        return q

    def levels(self, side: int) -> list[tuple[int, int]]:
        return [(p, self.anon[side].get(p, 0) + sum(s for _, s in self.book[side].get(p, [])))
                for p in self.prices(side)]

    def resting(self) -> int:
        return sum(s for side in (0, 1) for _, s in self.levels(side))


def engine_levels(eng: MatchingEngine, side: int) -> list[tuple[int, int]]:
    d = int(eng.state.meta[bs.M_DEPTH + side])
    prices, sizes = eng.top_n(d)
    return list(zip(prices[side].tolist(), sizes[side].tolist(), strict=True))


def random_stream(rng: np.random.Generator, n: int) -> list[tuple[str, int, int, int | None]]:
    """``n`` operations around a random-walk mid: limit adds within 6 ticks of it (crossing ones
    included), market orders, cancels near a price with full and partial sizes."""
    mid = 1000
    ops: list[tuple[str, int, int, int | None]] = []
    for _ in range(n):
        mid += int(rng.integers(-1, 2))
        side = int(rng.integers(2))
        u = rng.random()
        if u < 0.5:
            ops.append(("limit", side, mid + int(rng.integers(-6, 7)), int(rng.integers(1, 10))))
        elif u < 0.57:
            ops.append(("market", side, 0, int(rng.integers(1, 15))))
        else:
            size = None if rng.random() < 0.5 else int(rng.integers(1, 8))
            ops.append(("cancel_near", side, mid + int(rng.integers(-8, 9)), size))
    return ops


def seeded_engine() -> tuple[MatchingEngine, Reference]:
    """An engine and a reference both starting from a few anonymous levels around 1000."""
    state = bs.new_state(64)
    ref = Reference()
    for side, prices in ((0, range(995, 1000)), (1, range(1001, 1006))):
        for p in prices:
            bs.seed_level(state, side, p, 20)
            ref.anon[side][p] = 20
    eng = MatchingEngine.from_book(state)
    ref.submitted = 200
    return eng, ref


def apply(eng: MatchingEngine, op: tuple[str, int, int, int | None], ts: int) -> None:
    kind, side, price, size = op
    if kind == "limit":
        assert size is not None
        eng.add(SIDES[side], price, size, ts=ts)
    elif kind == "market":
        assert size is not None
        eng.market(SIDES[side], size, ts=ts)
    else:
        eng.cancel_near(SIDES[side], price, size, ts=ts)


def check_invariants(eng: MatchingEngine) -> None:
    c = eng.counters
    assert c["resting"] + 2 * c["traded"] + c["cancelled"] + c["dropped_market"] == c["submitted"]
    bid, ask = eng.best("bid"), eng.best("ask")
    assert bid is None or ask is None or bid[0] < ask[0]
    st = eng.state
    for side in (0, 1):
        d = int(st.meta[bs.M_DEPTH + side])
        lv = st.levels[st.ladder[side, :d]]
        assert (lv[:, bs.L_SIZE] > 0).all() and (lv[:, bs.L_ANON] >= 0).all()


@pytest.mark.parametrize(("seed", "seeded"), [(0, False), (1, False), (2, True)])
def test_engine_when_random_stream_equals_brute_force_reference_after_every_event(
        seed: int, seeded: bool) -> None:
    eng, ref = seeded_engine() if seeded else (MatchingEngine(), Reference())
    ops = random_stream(np.random.default_rng(seed), 20_000)
    for i, op in enumerate(ops):
        kind, side, price, size = op
        n_trades = len(ref.trades)
        if kind == "cancel_near":
            ref.cancel_near(side, price, size)
        else:
            assert size is not None
            ref.add(side, price if kind == "limit" else None, size)
        apply(eng, op, i)
        got = eng.trades(n_trades)
        assert list(zip(got["price"].tolist(), got["size"].tolist(),
                        got["aggressor_side"].tolist(), got["resting_id"].tolist(),
                        got["aggressor_id"].tolist(), strict=True)) == ref.trades[n_trades:]
        for s in (0, 1):
            assert engine_levels(eng, s) == ref.levels(s)
        if i % 97 == 0 or i == len(ops) - 1:  # every queue now and then (levels every event)
            for s in (0, 1):
                for p, queue in ref.book[s].items():
                    assert eng.queue(SIDES[s], p) == [tuple(o) for o in queue]
                    assert eng.anonymous(SIDES[s], p) == ref.anon[s].get(p, 0)
        check_invariants(eng)
    c = eng.counters
    assert (c["traded"], c["cancelled"], c["dropped_market"], c["dropped_cancels"]) == (
        ref.traded, ref.cancelled, ref.dropped_market, ref.dropped_cancels)
    assert c["resting"] == ref.resting()
    assert c["n_trades"] > 1000 and c["dropped_market"] > 0  # the stream did exercise these


def test_match_orders_when_stream_batched_equals_one_call_per_operation() -> None:
    ops = random_stream(np.random.default_rng(7), 20_000)
    one = MatchingEngine(order_capacity=16)
    for i, op in enumerate(ops):
        apply(one, op, i)
    codes = {"limit": mc.OP_LIMIT, "market": mc.OP_MARKET, "cancel_near": mc.OP_CANCEL_NEAR}
    batch = MatchingEngine(order_capacity=16)
    batch.run(np.array([codes[o[0]] for o in ops]), np.array([o[1] for o in ops]),
              np.array([o[2] for o in ops]), np.array([o[3] or 0 for o in ops]),
              ts=np.arange(len(ops)))
    assert batch.content_hash() == one.content_hash()
    assert batch.counters == one.counters
    for name, column in one.trades().items():
        np.testing.assert_array_equal(batch.trades()[name], column)
    assert batch.events(0.25, "X").equals(one.events(0.25, "X"))


# ---------------------------------------------------------------- hand-made rules


def test_add_when_crossing_sweeps_levels_head_first_and_rests_remainder() -> None:
    eng = MatchingEngine(next_order_id=10)
    eng.add("ask", 101, 3)  # 10
    eng.add("ask", 101, 4)  # 11
    eng.add("ask", 102, 5)  # 12
    r = eng.add("bid", 102, 10, ts=5)  # 13
    assert (r.order_id, r.filled, r.rested, r.n_trades) == (13, 10, 0, 3)
    t = eng.trades()
    assert t["resting_id"].tolist() == [10, 11, 12] and t["size"].tolist() == [3, 4, 3]
    assert t["price"].tolist() == [101, 101, 102] and (t["aggressor_id"] == 13).all()
    assert eng.queue("ask", 102) == [(12, 2)]
    r = eng.add("bid", 103, 4)
    assert (r.filled, r.rested) == (2, 2) and eng.best("bid") == (103, 2)
    assert eng.best("ask") is None and eng.mid() is None


def test_market_when_side_empties_remainder_dropped_and_counted() -> None:
    eng = MatchingEngine()
    eng.add("bid", 99, 2)
    assert eng.market("ask", 5) == 2
    assert eng.market("ask", 3) == 0
    assert eng.counters["dropped_market"] == 6


def test_cancel_near_when_tie_picks_level_nearer_touch_and_its_newest_order() -> None:
    eng = MatchingEngine()
    for price, size in ((100, 1), (100, 2), (98, 3)):
        eng.add("bid", price, size)
    assert eng.cancel_near("bid", 99, 1) == 1  # 98 and 100 tie: 100, newest order (id 2)
    assert eng.queue("bid", 100) == [(1, 1), (2, 1)]
    assert eng.cancel_near("bid", 97) == 3  # nearest is 98
    assert eng.cancel_near("bid", 150, 5) == 1  # size >= the order's: all of it
    assert eng.queue("bid", 100) == [(1, 1)]
    assert eng.cancel_near("ask", 100) == 0 and eng.counters["dropped_cancels"] == 1
    assert eng.best(bs.BID) == eng.best("bid") == (100, 1)  # side codes work too
    with pytest.raises(BookError, match="side"):
        eng.best(True)


def test_anonymous_size_when_level_seeded_fills_first_and_cancels_when_alone() -> None:
    book = OrderBook()
    book.add(50, "ask", 101, 4)
    bs.seed_level(book.state, bs.ASK, 101, 3)
    bs.seed_level(book.state, bs.ASK, 102, 6)
    eng = MatchingEngine.from_book(book)
    assert eng.next_order_id == 51
    eng.add("bid", 101, 5)
    t = eng.trades()
    assert t["resting_id"].tolist() == [0, 50] and t["size"].tolist() == [3, 2]
    assert eng.cancel_near("ask", 102, 2) == 2 and eng.anonymous("ask", 102) == 4
    assert eng.cancel_near("ask", 101) == 2  # the named order, not anonymous size


def test_cancel_when_id_known_partial_keeps_place_unknown_counted() -> None:
    eng = MatchingEngine()
    a = eng.add("bid", 100, 5).order_id
    eng.add("bid", 100, 5)
    assert eng.cancel(a, 2) == 2 and eng.queue("bid", 100)[0] == (a, 3)
    assert eng.cancel(a) == 3 and eng.cancel(a) == 0
    assert eng.counters["dropped_cancels"] == 1
    with pytest.raises(BookError):
        eng.add("bid", 100, 1, order_id=a + 1)  # resting
    assert eng.add("ask", 105, 1, order_id=1000).order_id == 1000 and eng.next_order_id == 1001


def test_engine_when_same_stream_twice_same_hash() -> None:
    hashes = []
    for _ in range(2):
        eng = MatchingEngine()
        for i, op in enumerate(random_stream(np.random.default_rng(3), 2000)):
            apply(eng, op, i)
        hashes.append(eng.content_hash())
    assert hashes[0] == hashes[1]


# ---------------------------------------------------------------- events read back


def _top(levels: pl.DataFrame, row: int, n: int, tick: float) -> np.ndarray:
    """(2, 2, n): [side, price/size, level] of a replay_book levels row, prices in ticks."""
    out = np.zeros((2, 2, n), dtype=np.int64)
    r = levels.row(row, named=True)
    for side, name in enumerate(SIDES):
        for j in range(n):
            px, sz = r[f"{name}_px_{j + 1}"], r[f"{name}_sz_{j + 1}"]
            if sz is not None:
                out[side, 0, j], out[side, 1, j] = round(px / tick), sz
    return out


@pytest.mark.parametrize("seeded", [False, True])
def test_events_when_replayed_give_engine_final_book(seeded: bool) -> None:
    eng = seeded_engine()[0] if seeded else MatchingEngine()
    for i, op in enumerate(random_stream(np.random.default_rng(11), 5000)):
        apply(eng, op, i * 1000)
    ev = eng.events(0.25, "SIM")
    result = replay_book(ev, 10, seed=eng.seed(0.25, "SIM") if seeded else None)
    prices, sizes = eng.top_n(10)
    assert (_top(result.levels, ev.height - 1, 10, 0.25) == np.stack([
        np.stack([prices[0], sizes[0]]), np.stack([prices[1], sizes[1]])])).all()
    assert result.counters["crossed_book"] == 0
    assert (ev["action"] == "trade").sum() == eng.counters["n_trades"]


def test_from_events_when_two_instruments_raises_one_line() -> None:
    ev = MatchingEngine().events(0.25, "A")
    two = pl.concat([ev, ev.with_columns(instrument=pl.lit("B"))])
    with pytest.raises(TapecastError, match="one instrument"):
        MatchingEngine.from_events(two, 0.25)


# ---------------------------------------------------------------- replay mode on real data


def _replay_matches(relative: str, tick: float, n: int) -> MatchingEngine:
    """Replay a shared file through the engine and through replay_book; every event's top-n
    must agree. Returns the engine after the replay."""
    from tapecast.data import read

    tables = read(shared_file(relative))
    ev = tables.events
    assert ev is not None and ev["instrument"].n_unique() == 1
    window = source_depth(tables)
    eng, loop = MatchingEngine.from_events(ev, tick, n_levels=n, seed=tables.book_seed,
                                           depth_window=window)
    ref = replay_book(ev, n, seed=tables.book_seed, depth_window=window).levels
    for side, name in enumerate(SIDES):
        for j in range(n):
            sz = ref[f"{name}_sz_{j + 1}"].fill_null(0).to_numpy()
            px = (ref[f"{name}_px_{j + 1}"].fill_null(0.0) / tick).round().cast(pl.Int64)
            np.testing.assert_array_equal(loop.sizes[side, j], sz)
            np.testing.assert_array_equal(loop.prices[side, j], px.to_numpy())
    last = eng.top_n(n)
    np.testing.assert_array_equal(last[1], loop.sizes[:, :, -1])
    return eng


def test_from_events_when_es_replayed_then_crossing_order_matches_replayed_queue() -> None:
    eng = _replay_matches("nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst", 0.25, 10)
    ask = eng.best("ask")
    assert ask is not None
    queue = eng.queue("ask", ask[0])
    r = eng.add("bid", ask[0], queue[0][1] + 1)
    t = eng.trades()
    assert t["resting_id"].tolist() == [queue[0][0], queue[1][0]]
    assert (r.filled, r.rested) == (queue[0][1] + 1, 0)
    assert r.order_id > max(q[0] for q in queue)
    check_invariants(eng)


def test_from_events_when_arl_replayed_top10_equals_replay_book() -> None:
    _replay_matches("blockhouse_arl/mbo.csv", 0.01, 10)


def test_from_events_when_lobster_replayed_at_depth5_equals_replay_book_then_matches() -> None:
    eng = _replay_matches("lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip", 0.01, 5)
    bid = eng.best("bid")
    assert bid is not None
    before = eng.counters
    filled = eng.market("ask", bid[1])
    assert filled == bid[1] and eng.best("bid") != bid
    after = eng.counters
    assert after["traded"] - before["traded"] == filled

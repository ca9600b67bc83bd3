"""The hot loop of the L3 book replay: plain-Python dicts and sorted lists, one pass over events.

This module holds the per-event state machine behind :func:`tapecast.data.book.replay_book`.
It works on integer columns (action and side codes, prices in integer ticks of 1e-9) so that the
loop touches only Python ints; the public module converts Polars frames to and from these.

Data structures
---------------
``orders``  order id -> ``[side, key, size]`` (one small list per resting order)
``qty[s]``  key -> total resting size at that price on side ``s`` (0 bid, 1 ask)
``keys[s]`` the side's keys in ascending order, best first: a bid's key is ``-price``, an ask's
            key is ``price``, so index 0 is always the touch (kept sorted with :mod:`bisect`)
``anon[s]`` key -> anonymous (seeded, order-id-less) size still resting at that price

The top ``n`` levels of a side are recorded only after an event that changed them (its key lies
within the first ``n`` keys); the caller forward-fills the other rows, vectorized.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from tapecast.core.errors import ReplayError

# action codes: the physical codes of schemas.Action (ACTIONS order)
ADD: Final = 0
CANCEL: Final = 1
MODIFY: Final = 2
TRADE: Final = 3
FILL: Final = 4
CLEAR: Final = 5
# side codes: the physical codes of schemas.BookSide
BID: Final = 0
ASK: Final = 1
NONE: Final = 2

F_LAST: Final = 0x80
F_SNAPSHOT: Final = 0x20


@dataclass
class EventColumns:
    """The integer columns the loop reads (Python lists, all of length n_events).

    Attributes
    ----------
    action, side : list of int
        Action and side codes (see the module constants).
    price : list of int
        Price in ticks of 1e-9 (0 where the event has no price).
    size, order_id, flags : list of int
        0 where null.
    """

    action: list[int]
    side: list[int]
    price: list[int]
    size: list[int]
    order_id: list[int]
    flags: list[int]


@dataclass
class BookState:
    """The resting book between events (see the module docstring for the layout)."""

    orders: dict[int, list[int]] = field(default_factory=dict)
    qty: tuple[dict[int, int], dict[int, int]] = field(default_factory=lambda: ({}, {}))
    keys: tuple[list[int], list[int]] = field(default_factory=lambda: ([], []))
    anon: tuple[dict[int, int], dict[int, int]] = field(default_factory=lambda: ({}, {}))

    def seed_level(self, side: int, price: int, size: int) -> None:
        """Add anonymous resting size ``size`` at ``price`` (ticks) on ``side``."""
        key = price if side == ASK else -price
        lv = self.qty[side]
        if key not in lv:
            lv[key] = 0
            insort(self.keys[side], key)
        lv[key] += size
        self.anon[side][key] = self.anon[side].get(key, 0) + size

    def clear(self) -> None:
        """Empty the book (orders, levels and seeded liquidity)."""
        self.orders.clear()
        for s in (BID, ASK):
            self.qty[s].clear()
            self.keys[s].clear()
            self.anon[s].clear()


@dataclass
class Snapshots:
    """The top-``n`` rows recorded for one side: event row (1-based; 0 = the initial state),
    the keys and the sizes (each a list of at most ``n`` ints, best first)."""

    rows: list[int] = field(default_factory=list)
    keys: list[list[int]] = field(default_factory=list)
    sizes: list[list[int]] = field(default_factory=list)


@dataclass
class LoopConfig:
    """How the loop treats anomalies (see :func:`tapecast.data.book.replay_book`)."""

    n_levels: int
    full_state: bool
    fills_reduce: bool
    source: str


_COUNTER_NAMES: Final = (
    "unknown_order", "seed_absorbed", "duplicate_add", "negative_size_clamped",
    "sideless_book_event", "snapshot_records", "clears",
)


def _fail(cfg: LoopConfig, i: int, field_name: str, expected: str, got: object) -> ReplayError:
    return ReplayError(
        f"{cfg.source}, row {i + 1}, field '{field_name}': expected {expected}, got {got!r}"
    )


def run_loop(
    cols: EventColumns, state: BookState, cfg: LoopConfig
) -> tuple[Snapshots, Snapshots, dict[str, int]]:
    """Apply every event to ``state`` in order; record each side's top ``n`` when it changes.

    Returns
    -------
    bids, asks : Snapshots
        Rows (1-based event index, 0 = before the first event) with that side's top-n keys and
        sizes after the event.
    counters : dict of str to int
        Anomalies counted (not raised) and records seen; see ``_COUNTER_NAMES``.

    Raises
    ------
    ReplayError
        In a full-state replay, on an add of a live order id, a cancel/modify/fill of an unknown
        order or a reduction bigger than the resting size.
    """
    n = cfg.n_levels
    qty, keys, anon = state.qty, state.keys, state.anon
    snaps = (Snapshots(), Snapshots())
    counts = dict.fromkeys(_COUNTER_NAMES, 0)
    for s in (BID, ASK):
        _record(snaps[s], 0, keys[s], qty[s], n)

    def level_add(s: int, k: int, q: int) -> bool:
        lv, ks = qty[s], keys[s]
        if k in lv:
            lv[k] += q
        else:
            lv[k] = q
            insort(ks, k)
        return len(ks) <= n or k <= ks[n - 1]

    def level_sub(s: int, k: int, q: int) -> bool:
        lv, ks = qty[s], keys[s]
        dirty = len(ks) <= n or k <= ks[n - 1]
        left = lv[k] - q
        if left > 0:
            lv[k] = left
        else:
            del lv[k]
            del ks[bisect_left(ks, k)]
            anon[s].pop(k, None)
        return dirty

    apply = _make_apply(cols, state, cfg, counts, level_add, level_sub)
    rec_b, rec_a = snaps
    for i in range(len(cols.action)):
        dirty = apply(i)
        if dirty & 1:
            _record(rec_b, i + 1, keys[BID], qty[BID], n)
        if dirty & 2:
            _record(rec_a, i + 1, keys[ASK], qty[ASK], n)
    return rec_b, rec_a, counts


def _record(snap: Snapshots, row: int, ks: list[int], lv: dict[int, int], n: int) -> None:
    top = ks[:n]
    snap.rows.append(row)
    snap.keys.append(top)
    snap.sizes.append(list(map(lv.__getitem__, top)))


def _make_apply(
    cols: EventColumns,
    state: BookState,
    cfg: LoopConfig,
    counts: dict[str, int],
    level_add: Callable[[int, int, int], bool],
    level_sub: Callable[[int, int, int], bool],
) -> Callable[[int], int]:
    """Build ``apply(i) -> dirty`` (bit 0: bid top-n changed, bit 1: ask top-n changed)."""
    act, sd, px, sz, oid, fl = (cols.action, cols.side, cols.price, cols.size, cols.order_id,
                                cols.flags)
    orders, anon = state.orders, state.anon
    full, fills_reduce = cfg.full_state, cfg.fills_reduce

    def reduce(i: int, field_name: str) -> int:
        """Cancel (or fill) ``size`` off order ``order_id``; return the dirty bits."""
        o, q = oid[i], sz[i]
        rest = orders.get(o)
        if rest is None:
            if full:
                raise _fail(cfg, i, "order_id", "a resting order", o)
            return unknown_reduce(i)
        s, k, have = rest
        if q > have:
            if full:
                raise _fail(cfg, i, field_name, f"at most the resting size {have}", q)
            counts["negative_size_clamped"] += 1
            q = have
        if q == have:
            del orders[o]
        else:
            rest[2] = have - q
        return (1 << s) if level_sub(s, k, q) else 0

    def unknown_reduce(i: int) -> int:
        counts["unknown_order"] += 1
        s = sd[i]
        if s == NONE:
            return 0
        k = px[i] if s == ASK else -px[i]
        seeded = anon[s].get(k, 0)
        if seeded <= 0:
            return 0
        q = min(sz[i], seeded)
        counts["seed_absorbed"] += 1
        anon[s][k] = seeded - q
        return (1 << s) if level_sub(s, k, q) else 0

    def add(i: int) -> int:
        s, o = sd[i], oid[i]
        if fl[i] & F_SNAPSHOT:
            counts["snapshot_records"] += 1
        if s == NONE:
            counts["sideless_book_event"] += 1
            return 0
        dirty = 0
        old = orders.get(o)
        if old is not None:
            if full:
                raise _fail(cfg, i, "order_id", "an order id not already resting", o)
            counts["duplicate_add"] += 1
            del orders[o]
            dirty = (1 << old[0]) if level_sub(old[0], old[1], old[2]) else 0
        k = px[i] if s == ASK else -px[i]
        orders[o] = [s, k, sz[i]]
        return dirty | ((1 << s) if level_add(s, k, sz[i]) else 0)

    def modify(i: int) -> int:
        o = oid[i]
        rest = orders.get(o)
        if rest is None:
            if full:
                raise _fail(cfg, i, "order_id", "a resting order", o)
            counts["unknown_order"] += 1
            return add(i)  # Databento's own book treats a modify of an unknown order as an add
        s_old, k_old, q_old = rest
        s = sd[i] if sd[i] != NONE else s_old
        k, q = (px[i] if s == ASK else -px[i]), sz[i]
        if s == s_old and k == k_old:
            if q == q_old:
                return 0
            rest[2] = q
            if q > q_old:
                return (1 << s) if level_add(s, k, q - q_old) else 0
            return (1 << s) if level_sub(s, k, q_old - q) else 0
        dirty = (1 << s_old) if level_sub(s_old, k_old, q_old) else 0
        rest[0], rest[1], rest[2] = s, k, q
        return dirty | ((1 << s) if level_add(s, k, q) else 0)

    def clear(i: int) -> int:
        counts["clears"] += 1
        state.clear()
        return 3

    def cancel(i: int) -> int:
        return reduce(i, "size")

    def fill(i: int) -> int:
        return reduce(i, "size") if fills_reduce else 0

    def trade(i: int) -> int:
        return 0

    table = (add, cancel, modify, trade, fill, clear)

    def apply(i: int) -> int:
        return table[act[i]](i)

    return apply

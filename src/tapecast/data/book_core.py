"""The hot loop of the L3 book replay: plain-Python dicts and sorted lists, one pass over events.

This module holds the per-event state machine behind :func:`tapecast.data.book.replay_book`.
It works on integer columns (action and side codes, prices in integer ticks of 1e-9) so that the
loop touches only Python ints; the public module converts Polars frames to and from these.

Data structures
---------------
``orders``   order id -> ``[side, key, size, since]`` (one small list per resting order;
             ``since`` is the event index at which it took its current price)
``keys[s]``  side ``s``'s (0 bid, 1 ask) price keys in ascending order, best first: a bid's key
             is ``-price``, an ask's is ``price``, so index 0 is the touch (kept with bisect)
``sizes[s]`` total resting size per level, aligned with ``keys[s]``
``anon[s]``  key -> anonymous (seeded, order-id-less) size still resting at that price
``gone[s]``  key -> the last event index after which a depth window dropped that level

Depth window (``LoopConfig.depth_window = N``): after every event each side keeps only its best
N levels, the rest is forgotten, because a depth-N source (LOBSTER) never reports what happens
beyond depth N. Forgetting is lazy: the dropped level's key is stamped in ``gone`` and an
order is forgotten when its level was dropped at or after ``since``, so no price -> orders
index is needed in the hot loop. A later event on a forgotten order is handled by
:meth:`_Anomalies.forgotten` (``"drop"``: as an unknown order; ``"recall"``: the size it has
left after the event is put back at its price, since a depth-N source only reports events on
orders inside the top N).

Keeping sizes in a list aligned with the sorted keys (rather than a price -> size dict) makes
recording the top ``n`` two C-level slices. A side's top ``n`` is recorded only after an event
that changed it (the level's rank is < ``n``); the caller forward-fills the other rows.
"""

from __future__ import annotations

import gc
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Final, Literal

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
    keys: tuple[list[int], list[int]] = field(default_factory=lambda: ([], []))
    sizes: tuple[list[int], list[int]] = field(default_factory=lambda: ([], []))
    anon: tuple[dict[int, int], dict[int, int]] = field(default_factory=lambda: ({}, {}))
    gone: tuple[dict[int, int], dict[int, int]] = field(default_factory=lambda: ({}, {}))

    def seed_level(self, side: int, price: int, size: int) -> None:
        """Add anonymous resting size ``size`` at ``price`` (ticks) on ``side``."""
        key = price if side == ASK else -price
        ks, vs = self.keys[side], self.sizes[side]
        j = bisect_left(ks, key)
        if j < len(ks) and ks[j] == key:
            vs[j] += size
        else:
            ks.insert(j, key)
            vs.insert(j, size)
        self.anon[side][key] = self.anon[side].get(key, 0) + size

    def clear(self) -> None:
        """Empty the book (orders, levels and seeded liquidity)."""
        self.orders.clear()
        for s in (BID, ASK):
            self.keys[s].clear()
            self.sizes[s].clear()
            self.anon[s].clear()
            self.gone[s].clear()

    def forget_beyond(self, depth: int, i: int) -> int:
        """Drop every level beyond the best ``depth`` on each side after event ``i``.

        Returns
        -------
        int
            Bit mask of the sides that lost levels (1 bid, 2 ask).
        """
        mask = 0
        for s in (BID, ASK):
            ks = self.keys[s]
            if len(ks) <= depth:
                continue
            gone, anon = self.gone[s], self.anon[s]
            for k in ks[depth:]:
                gone[k] = i
                if anon:
                    anon.pop(k, None)
            del ks[depth:]
            del self.sizes[s][depth:]
            mask |= 1 << s
        return mask

    def forget_crossed(self, side: int, i: int) -> int:
        """Drop the levels of the side opposite ``side`` at or through ``side``'s best price,
        after event ``i``; returns the bit mask of the side that lost levels (0 if none)."""
        other = 1 - side
        ks = self.keys[other]
        j = bisect_right(ks, -self.keys[side][0])  # other's keys <= -(side's best key) cross
        if j == 0:
            return 0
        gone, anon = self.gone[other], self.anon[other]
        for k in ks[:j]:
            gone[k] = i
            if anon:
                anon.pop(k, None)
        del ks[:j]
        del self.sizes[other][:j]
        return 1 << other

    def is_forgotten(self, rest: list[int]) -> bool:
        """Whether a window dropped the level of resting order ``rest`` after it got there."""
        return self.gone[rest[0]].get(rest[1], -1) >= rest[3]


@dataclass
class Snapshots:
    """The top-``n`` rows recorded for one side.

    ``rows`` holds the 1-based event row after which the side changed (0 = the initial state);
    ``keys`` and ``sizes`` that row's top levels (lists of at most ``n`` ints, best first).
    """

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
    depth_window: int | None = None
    forgotten: Literal["drop", "recall"] = "recall"
    uncross: bool = True


COUNTER_NAMES: Final = (
    "unknown_order", "seed_absorbed", "duplicate_add", "negative_size_clamped",
    "sideless_book_event", "snapshot_records", "clears", "window_trims", "forgotten_order",
    "forgotten_recalled", "uncrossed",
)


class _Anomalies:
    """The rare paths of the loop: raise in a full-state replay, else count and recover."""

    def __init__(self, cols: EventColumns, state: BookState, cfg: LoopConfig) -> None:
        self.cols, self.state, self.cfg = cols, state, cfg
        self.counts = dict.fromkeys(COUNTER_NAMES, 0)

    def fail(self, i: int, field_name: str, expected: str, got: object) -> ReplayError:
        return ReplayError(f"{self.cfg.source}, row {i + 1}, field '{field_name}': "
                           f"expected {expected}, got {got!r}")

    def unknown_order(self, i: int) -> None:
        """A cancel/modify/fill names an order that is not resting."""
        if self.cfg.full_state:
            raise self.fail(i, "order_id", "a resting order", self.cols.order_id[i])
        self.counts["unknown_order"] += 1

    def oversize(self, i: int, have: int) -> int:
        """A reduction bigger than the resting size; returns the size to take off."""
        if self.cfg.full_state:
            raise self.fail(i, "size", f"at most the resting size {have}", self.cols.size[i])
        self.counts["negative_size_clamped"] += 1
        return have

    def live_add(self, i: int) -> None:
        """An add names an order id that is already resting (the old order is replaced)."""
        if self.cfg.full_state:
            raise self.fail(i, "order_id", "an order id not already resting",
                            self.cols.order_id[i])
        self.counts["duplicate_add"] += 1

    def seeded_size(self, i: int) -> tuple[int, int, int]:
        """Side, key and size an unknown-order reduction takes off seeded liquidity (size 0:
        none at that price)."""
        s = self.cols.side[i]
        if s == NONE:
            return s, 0, 0
        k = self.cols.price[i] if s == ASK else -self.cols.price[i]
        seeded = self.state.anon[s].get(k, 0)
        q = min(self.cols.size[i], seeded)
        if q > 0:
            self.counts["seed_absorbed"] += 1
            self.state.anon[s][k] = seeded - q
        return s, k, q

    def forgotten(self, i: int, o: int, rest: list[int]) -> tuple[tuple[int, int, int], ...]:
        """A cancel/fill of order ``o`` whose level the depth window dropped; returns the level
        changes (see the module docstring for ``"drop"`` and ``"recall"``)."""
        self.counts["forgotten_order"] += 1
        del self.state.orders[o]
        if self.cfg.forgotten == "drop":
            s, k, q = self.seeded_size(i)
            return ((s, k, -q),) if q else ()
        s, k, have = rest[0], rest[1], rest[2]
        left = have - self.cols.size[i]
        if left <= 0:
            return ()
        self.counts["forgotten_recalled"] += 1
        self.state.orders[o] = [s, k, left, i]
        return ((s, k, left),)


def run_loop(
    cols: EventColumns, state: BookState, cfg: LoopConfig
) -> tuple[Snapshots, Snapshots, dict[str, int]]:
    """:func:`_run_loop` with the cyclic garbage collector paused.

    The loop allocates only acyclic objects (small lists and tuples), yet every 700 allocations
    the collector would rescan all resting orders and recorded rows: pausing it saves ~25%.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_loop(cols, state, cfg)
    finally:
        if was_enabled:
            gc.enable()


def _run_loop(
    cols: EventColumns, state: BookState, cfg: LoopConfig
) -> tuple[Snapshots, Snapshots, dict[str, int]]:
    """Apply every event to ``state`` in order; record each side's top ``n`` when it changes.

    The common paths are written inline in one loop (no per-event function calls: they would
    cost more than the book update itself); rare paths live in :class:`_Anomalies`.

    Returns
    -------
    bids, asks : Snapshots
        Each side's top-n keys and sizes after every event that changed them.
    counters : dict of str to int
        Anomalies counted (not raised) and records seen; see ``COUNTER_NAMES``.

    Raises
    ------
    ReplayError
        In a full-state replay, on an add of a live order id, a cancel/modify/fill of an unknown
        order or a reduction bigger than the resting size.
    """
    n = cfg.n_levels
    window = cfg.depth_window or 0  # 0: no window
    uncross = bool(window) and cfg.uncross
    if window:
        state.forget_beyond(window, -1)
    act, sd, px, sz, oid, fl = (cols.action, cols.side, cols.price, cols.size, cols.order_id,
                                cols.flags)
    orders, keys, sizes, anon = state.orders, state.keys, state.sizes, state.anon
    rare = _Anomalies(cols, state, cfg)
    counts = rare.counts
    snaps = (Snapshots([0], [keys[BID][:n]], [sizes[BID][:n]]),
             Snapshots([0], [keys[ASK][:n]], [sizes[ASK][:n]]))
    rows_b, keys_b, sizes_b = snaps[BID].rows, snaps[BID].keys, snaps[BID].sizes
    rows_a, keys_a, sizes_a = snaps[ASK].rows, snaps[ASK].keys, snaps[ASK].sizes
    fills_reduce = cfg.fills_reduce
    for i in range(len(act)):
        a = act[i]
        if a == TRADE or (a == FILL and not fills_reduce):
            continue
        # the event's level changes: (side, key, signed size change)
        changes: tuple[tuple[int, int, int], ...]
        if a == CANCEL or a == FILL:
            o = oid[i]
            rest = orders.get(o)
            if rest is None:
                rare.unknown_order(i)
                s, k, q = rare.seeded_size(i)
                if q == 0:
                    continue
                changes = ((s, k, -q),)
            elif window and state.is_forgotten(rest):
                changes = rare.forgotten(i, o, rest)
                if not changes:
                    continue
            else:
                s, k, have, _ = rest
                q = sz[i]
                if q >= have:
                    if q > have:
                        q = rare.oversize(i, have)
                    del orders[o]
                else:
                    rest[2] = have - q
                changes = ((s, k, -q),)
        elif a == ADD:
            s = sd[i]
            if fl[i] & F_SNAPSHOT:
                counts["snapshot_records"] += 1
            if s == NONE:
                counts["sideless_book_event"] += 1
                continue
            o = oid[i]
            k = px[i] if s == ASK else -px[i]
            old = orders.get(o)
            changes = ((s, k, sz[i]),)
            if old is not None:
                rare.live_add(i)
                if not (window and state.is_forgotten(old)):
                    changes = ((old[0], old[1], -old[2]), (s, k, sz[i]))
            orders[o] = [s, k, sz[i], i]
        elif a == MODIFY:
            o = oid[i]
            rest = orders.get(o)
            s = sd[i]
            if rest is None or (window and state.is_forgotten(rest)):
                if rest is None:
                    rare.unknown_order(i)  # then an add, as Databento's own book does
                else:
                    counts["forgotten_order"] += 1
                if s == NONE:
                    continue
                k = px[i] if s == ASK else -px[i]
                orders[o] = [s, k, sz[i], i]
                changes = ((s, k, sz[i]),)
            else:
                s_old, k_old, q_old, _ = rest
                if s == NONE:
                    s = s_old
                k = px[i] if s == ASK else -px[i]
                if s == s_old and k == k_old:
                    changes = ((s, k, sz[i] - q_old),)
                else:
                    changes = ((s_old, k_old, -q_old), (s, k, sz[i]))
                rest[0], rest[1], rest[2], rest[3] = s, k, sz[i], i
        else:  # CLEAR
            counts["clears"] += 1
            state.clear()
            changes = ()
        dirty = 3 if a == CLEAR else 0
        for s, k, q in changes:
            if q == 0:
                continue
            ks, vs = keys[s], sizes[s]
            j = bisect_left(ks, k)
            if j < n:
                dirty |= 1 << s
            if j < len(ks) and ks[j] == k:
                left = vs[j] + q
                if left > 0:
                    vs[j] = left
                else:
                    del ks[j]
                    del vs[j]
                    if anon[s]:
                        anon[s].pop(k, None)
            elif q > 0:
                ks.insert(j, k)
                vs.insert(j, q)
        if window and (len(keys[BID]) > window or len(keys[ASK]) > window):
            lost = state.forget_beyond(window, i)
            counts["window_trims"] += 1
            if window < n:
                dirty |= lost
        if uncross and keys[BID] and keys[ASK] and keys[ASK][0] <= -keys[BID][0] and changes:
            counts["uncrossed"] += 1
            dirty |= state.forget_crossed(changes[-1][0], i)
        if dirty & 1:
            rows_b.append(i + 1)
            keys_b.append(keys[BID][:n])
            sizes_b.append(sizes[BID][:n])
        if dirty & 2:
            rows_a.append(i + 1)
            keys_a.append(keys[ASK][:n])
            sizes_a.append(sizes[ASK][:n])
    return snaps[BID], snaps[ASK], counts

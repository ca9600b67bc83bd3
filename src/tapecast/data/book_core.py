"""The per-event loop of the L3 book replay: one compiled pass over the events on a book state.

This module holds the event semantics behind :func:`tapecast.data.book.replay_book`: which
book operation each event is, and what a replay does with impossible events (raise in a
full-state replay, count and recover mid-stream). The book itself and its operations (add,
cancel, modify, execute, clear, top-N, content hash) live in :mod:`tapecast.data.book_state`,
shared with the order-at-a-time :class:`~tapecast.data.book_orders.OrderBook`; the loop below is
a numba function that calls those kernels, so it costs no Python call per event.

The loop reads integer columns (action and side codes, prices in integer ticks of 1e-9) and
writes each side's top ``n`` after every event into (2, n, E) arrays; the public module converts
Polars frames to and from these.

Depth window (``LoopConfig.depth_window = N``): after every event each side keeps only its best
N levels; the orders of a dropped level are marked forgotten (kept, out of every level), because
a depth-N source (LOBSTER) never reports what happens beyond depth N. A later event on a
forgotten order: ``"drop"`` treats it as one on an unknown order; ``"recall"`` puts the size it
has left after the event back at its price (a depth-N source only reports events on orders
inside the top N).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numba
import numpy as np
from numpy.typing import NDArray

from tapecast.core.errors import ReplayError
from tapecast.data import book_state as bs
from tapecast.data.book_state import (
    ASK,
    BID,
    FORGOTTEN,
    M_DEPTH,
    O_LEVEL,
    O_PRICE,
    O_SIDE,
    O_SIZE,
    BookState,
)

__all__ = ["ASK", "BID", "COUNTER_NAMES", "EventColumns", "LoopConfig", "LoopResult",
           "run_loop"]

# action codes: the physical codes of schemas.Action (ACTIONS order)
ADD: Final = 0
CANCEL: Final = 1
MODIFY: Final = 2
TRADE: Final = 3
FILL: Final = 4
CLEAR: Final = 5
# side codes: the physical codes of schemas.BookSide (BID = 0, ASK = 1 as in book_state)
NONE: Final = 2

F_LAST: Final = 0x80
F_SNAPSHOT: Final = 0x20

COUNTER_NAMES: Final = (
    "unknown_order", "seed_absorbed", "duplicate_add", "negative_size_clamped",
    "sideless_book_event", "snapshot_records", "clears", "window_trims", "forgotten_order",
    "forgotten_recalled", "uncrossed",
)
(_UNKNOWN, _SEED_ABSORBED, _DUPLICATE_ADD, _CLAMPED, _SIDELESS, _SNAPSHOT, _CLEARS, _TRIMS,
 _FORGOTTEN, _RECALLED, _UNCROSSED) = range(len(COUNTER_NAMES))

# what stopped a full-state replay (0: nothing)
_ERR_UNKNOWN_ORDER: Final = 1
_ERR_LIVE_ADD: Final = 2
_ERR_OVERSIZE: Final = 3


@dataclass
class EventColumns:
    """The integer columns the loop reads (int64 arrays, all of length n_events).

    Attributes
    ----------
    action, side : ndarray, int64
        Action and side codes (see the module constants).
    price : ndarray, int64
        Price in ticks of 1e-9 (0 where the event has no price).
    size, order_id, flags : ndarray, int64
        0 where null.
    """

    action: NDArray[np.int64]
    side: NDArray[np.int64]
    price: NDArray[np.int64]
    size: NDArray[np.int64]
    order_id: NDArray[np.int64]
    flags: NDArray[np.int64]


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


@dataclass
class LoopResult:
    """The top-N book after every event, and what the loop counted.

    Attributes
    ----------
    prices, sizes : ndarray, int64, shape (2, n_levels, n_events)
        ``[side, level, event]``: side 0 bid, 1 ask; level 0 the best; the book after the event.
        Prices in ticks; an empty level has size 0 (and price 0).
    counters : dict of str to int
        See ``COUNTER_NAMES``.
    state : BookState
        The book after the last event.
    """

    prices: NDArray[np.int64]
    sizes: NDArray[np.int64]
    counters: dict[str, int]
    state: BookState


def run_loop(cols: EventColumns, state: BookState, cfg: LoopConfig) -> LoopResult:
    """Apply every event to ``state`` in order; record each side's top ``n`` after each.

    Raises
    ------
    ReplayError
        In a full-state replay, on an add of a live order id, a cancel/modify/fill of an unknown
        order or a reduction bigger than the resting size (naming the source, row and field).
    """
    n, n_events = cfg.n_levels, len(cols.action)
    prices = np.zeros((2, n, n_events), dtype=np.int64)  # (side, level, event)
    sizes = np.zeros((2, n, n_events), dtype=np.int64)
    counts = np.zeros(len(COUNTER_NAMES), dtype=np.int64)
    state, error, row, have = _replay(
        cols.action, cols.side, cols.price, cols.size, cols.order_id, cols.flags, state, n,
        cfg.full_state, cfg.fills_reduce, cfg.depth_window or 0,
        bool(cfg.depth_window) and cfg.uncross, cfg.forgotten == "recall", prices, sizes, counts)
    if error:
        raise _replay_error(cfg.source, cols, error, row, have)
    counters = {name: int(c) for name, c in zip(COUNTER_NAMES, counts, strict=True)}
    return LoopResult(prices, sizes, counters, state)


def _replay_error(source: str, cols: EventColumns, error: int, row: int, have: int) -> ReplayError:
    """The one-line error of a full-state replay stopped at 0-based ``row``."""
    if error == _ERR_OVERSIZE:
        field, expected, got = "size", f"at most the resting size {have}", cols.size[row]
    elif error == _ERR_LIVE_ADD:
        field, expected, got = "order_id", "an order id not already resting", cols.order_id[row]
    else:
        field, expected, got = "order_id", "a resting order", cols.order_id[row]
    return ReplayError(f"{source}, row {row + 1}, field '{field}': "
                       f"expected {expected}, got {int(got)!r}")


@numba.njit(cache=True)
def _take_seeded(st, side, price, size, counts):  # type: ignore[no-untyped-def]
    """An unknown-order reduction takes what it can off the seeded size at its price."""
    if side != BID and side != ASK:
        return 0
    q = bs.take_anonymous(st, side, price, size)
    if q > 0:
        counts[_SEED_ABSORBED] += 1
    return q


@numba.njit(cache=True)
def _replay(action, side, price, size, order_id, flags, st, n, full_state,  # type: ignore[no-untyped-def]
            fills_reduce, window, uncross, recall, out_prices, out_sizes, counts):
    """The loop behind :func:`run_loop`; returns ``(state, error, row, resting size)``.

    ``changed`` marks an event that did something to the book (the window and uncross checks
    run after it); ``last`` is the side it changed last (the side an uncross keeps).
    """
    top_prices = np.zeros((2, n), dtype=np.int64)
    top_sizes = np.zeros((2, n), dtype=np.int64)
    if window > 0:
        bs.forget_beyond(st, window)
    bs.top_n(st, n, top_prices, top_sizes)
    for i in range(action.shape[0]):
        a = action[i]
        changed = False
        last = -1
        if a == TRADE or (a == FILL and not fills_reduce):
            pass
        elif a == CANCEL or a == FILL:
            o = order_id[i]
            slot = bs.find_order(st, o)
            if slot < 0:
                if full_state:
                    return st, _ERR_UNKNOWN_ORDER, i, 0
                counts[_UNKNOWN] += 1
                changed = _take_seeded(st, side[i], price[i], size[i], counts) > 0
                last = side[i]
            elif st.orders[slot, O_LEVEL] == FORGOTTEN:
                counts[_FORGOTTEN] += 1
                s, p = st.orders[slot, O_SIDE], st.orders[slot, O_PRICE]
                left = st.orders[slot, O_SIZE] - size[i]
                bs.remove_order(st, slot)
                if not recall:
                    changed = _take_seeded(st, side[i], price[i], size[i], counts) > 0
                    last = side[i]
                elif left > 0:
                    counts[_RECALLED] += 1
                    if not bs.has_room(st):
                        st = bs.grow(st)
                    bs.add_order(st, o, s, p, left)
                    changed, last = True, s
            else:
                have = st.orders[slot, O_SIZE]
                if size[i] > have:
                    if full_state:
                        return st, _ERR_OVERSIZE, i, have
                    counts[_CLAMPED] += 1
                last = st.orders[slot, O_SIDE]
                bs.cancel_order(st, slot, size[i])
                changed = True
        elif a == ADD:
            s = side[i]
            if flags[i] & F_SNAPSHOT:
                counts[_SNAPSHOT] += 1
            if s == NONE:
                counts[_SIDELESS] += 1
            else:
                o = order_id[i]
                old = bs.find_order(st, o)
                if old >= 0:
                    if full_state:
                        return st, _ERR_LIVE_ADD, i, 0
                    counts[_DUPLICATE_ADD] += 1
                    bs.remove_order(st, old)
                if not bs.has_room(st):
                    st = bs.grow(st)
                bs.add_order(st, o, s, price[i], size[i])
                changed, last = True, s
        elif a == MODIFY:
            o = order_id[i]
            slot = bs.find_order(st, o)
            s = side[i]
            if slot < 0 or st.orders[slot, O_LEVEL] == FORGOTTEN:
                if slot < 0:
                    if full_state:
                        return st, _ERR_UNKNOWN_ORDER, i, 0
                    counts[_UNKNOWN] += 1  # then an add, as Databento's own book does
                else:
                    counts[_FORGOTTEN] += 1
                if s != NONE:
                    if slot >= 0:
                        bs.remove_order(st, slot)
                    if not bs.has_room(st):
                        st = bs.grow(st)
                    bs.add_order(st, o, s, price[i], size[i])
                    changed, last = True, s
            else:
                if s == NONE:
                    s = st.orders[slot, O_SIDE]
                if not bs.has_room(st):
                    st = bs.grow(st)
                bs.modify_order(st, slot, s, price[i], size[i])
                changed, last = True, s
        else:  # CLEAR
            counts[_CLEARS] += 1
            bs.clear(st)
            bs.top_n(st, n, top_prices, top_sizes)
        if changed:
            meta = st.meta
            if window > 0 and (meta[M_DEPTH + BID] > window or meta[M_DEPTH + ASK] > window):
                bs.forget_beyond(st, window)
                counts[_TRIMS] += 1
            if uncross and meta[M_DEPTH + BID] > 0 and meta[M_DEPTH + ASK] > 0:
                best_bid = st.ladder_key[BID, meta[M_DEPTH + BID] - 1]
                best_ask = -st.ladder_key[ASK, meta[M_DEPTH + ASK] - 1]
                if best_ask <= best_bid:
                    counts[_UNCROSSED] += 1
                    bs.forget_crossed(st, last)
            bs.top_n(st, n, top_prices, top_sizes)
        for s in range(2):
            for r in range(n):
                out_prices[s, r, i] = top_prices[s, r]
                out_sizes[s, r, i] = top_sizes[s, r]
    return st, 0, -1, 0

"""The resting L3 order book as flat int64 arrays, and its operations as numba kernels.

One :class:`BookState` holds a book for one instrument: orders in price-time priority, price
levels with aggregate size and order count, and per side the levels sorted by price. The replay
(:mod:`tapecast.data.book_core`) runs these kernels in its compiled per-event loop; a matching
engine can run the same kernels, and :class:`tapecast.data.book_orders.OrderBook` offers them
one call at a time from Python with checked arguments.

Prices are integer ticks (the replay uses ticks of 1e-9, a venue its own tick); sizes are
integers. Sides are ``BID = 0`` and ``ASK = 1``.

Layout
------
``orders``      (C, 7) one row per order slot: ``O_ID, O_SIDE, O_PRICE, O_SIZE, O_LEVEL,
                O_PREV, O_NEXT``. ``O_LEVEL`` is the level slot the order rests in, or
                ``DETACHED`` (size 0: in no level) or ``FORGOTTEN`` (a depth window dropped its
                level; the order is kept so that a later message on it can be recognised).
                ``O_PREV``/``O_NEXT`` link the orders of one level in time priority (-1 ends);
                a free slot's ``O_NEXT`` links the free list.
``levels``      (L, 7) one row per level slot: ``L_SIDE, L_PRICE, L_SIZE, L_COUNT, L_ANON,
                L_HEAD, L_TAIL``. ``L_SIZE`` = the level's order sizes + ``L_ANON``, anonymous
                (order-id-less) size seeded into the book; ``L_COUNT`` orders from ``L_HEAD``
                (first in time) to ``L_TAIL``. A free slot's ``L_TAIL`` links the free list.
``ladder``      (2, L) per side the level slots of its ``depth`` levels, worst first, **best
                last**, so that changes near the touch shift few entries;
``ladder_key``  (2, L) the same levels' sort keys (a bid's price, an ask's negated price).
``table``       (T,) order id -> order slot, open addressing with linear probing (-1 empty;
                T = 2 C keeps it at most half full; deletion by backward shift, no tombstones).
``meta``        (8,) ``M_DEPTH + side``, ``M_ORDERS`` (ids in ``table``), the order and level
                slots' high-water marks and free-list heads.

A level exists while its size is positive; an order with size 0 rests in no level. Priority
follows Databento's book (and CME's rules): an order that changes price or grows goes to the
back of its level's queue, one that shrinks keeps its place.

Kernels work on slots and assume their preconditions (the id is present or absent, the size is
in range, room for one more order and level: :func:`has_room`, else :func:`grow`);
:class:`~tapecast.data.book_orders.OrderBook` checks them and raises. No kernel returns the state:
in numba, every call that passes or returns the tuple of arrays pays a reference-count update per
array, so the hot kernels only read and write the arrays in place.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

BID: Final = 0
ASK: Final = 1

O_ID, O_SIDE, O_PRICE, O_SIZE, O_LEVEL, O_PREV, O_NEXT = range(7)
ORDER_FIELDS: Final = 7
DETACHED: Final = -1
FORGOTTEN: Final = -2

L_SIDE, L_PRICE, L_SIZE, L_COUNT, L_ANON, L_HEAD, L_TAIL = range(7)
LEVEL_FIELDS: Final = 7

M_DEPTH: Final = 0  # + side
M_ORDERS: Final = 2
M_ORDER_HWM: Final = 3
M_ORDER_FREE: Final = 4
M_LEVEL_HWM: Final = 5
M_LEVEL_FREE: Final = 6
META_FIELDS: Final = 8

_GOLDEN: Final = 0x9E3779B97F4A7C15  # 2^64 / golden ratio (Fibonacci hashing)
_MIX: Final = 0xBF58476D1CE4E5B9  # splitmix64's multiplier


class BookState(NamedTuple):
    """The arrays of one book (see the module docstring for the layout); all int64."""

    orders: NDArray[np.int64]
    levels: NDArray[np.int64]
    ladder: NDArray[np.int64]
    ladder_key: NDArray[np.int64]
    table: NDArray[np.int64]
    meta: NDArray[np.int64]


def new_state(order_capacity: int = 1024, level_capacity: int = 256) -> BookState:
    """An empty book with room for ``order_capacity`` orders and ``level_capacity`` levels
    (both grow when needed; the order capacity is rounded up to a power of two)."""
    c = 1 << max(4, (order_capacity - 1).bit_length())
    n_levels = max(16, level_capacity)
    meta = np.zeros(META_FIELDS, dtype=np.int64)
    meta[M_ORDER_FREE] = meta[M_LEVEL_FREE] = -1
    return BookState(
        orders=np.zeros((c, ORDER_FIELDS), dtype=np.int64),
        levels=np.zeros((n_levels, LEVEL_FIELDS), dtype=np.int64),
        ladder=np.zeros((2, n_levels), dtype=np.int64),
        ladder_key=np.zeros((2, n_levels), dtype=np.int64),
        table=np.full(2 * c, -1, dtype=np.int64),
        meta=meta,
    )


# ---------------------------------------------------------------- order-id table


@numba.njit(cache=True, inline="always")
def _home(order_id, mask):  # type: ignore[no-untyped-def]
    h = np.uint64(order_id) * np.uint64(_GOLDEN)
    return np.int64((h ^ (h >> np.uint64(32))) & np.uint64(mask))


@numba.njit(cache=True)
def find_order(st, order_id):  # type: ignore[no-untyped-def]
    """The slot of resting order ``order_id`` (forgotten and size-0 orders too), or -1."""
    table = st.table
    mask = table.shape[0] - 1
    j = _home(order_id, mask)
    while True:
        slot = table[j]
        if slot < 0 or st.orders[slot, O_ID] == order_id:
            return slot
        j = (j + 1) & mask


@numba.njit(cache=True)
def _table_insert(table, order_id, slot):  # type: ignore[no-untyped-def]
    mask = table.shape[0] - 1
    j = _home(order_id, mask)
    while table[j] >= 0:
        j = (j + 1) & mask
    table[j] = slot


@numba.njit(cache=True)
def _table_delete(st, order_id):  # type: ignore[no-untyped-def]
    """Remove ``order_id`` from the table, shifting back the entries probed past it."""
    table, orders = st.table, st.orders
    mask = table.shape[0] - 1
    hole = _home(order_id, mask)
    while orders[table[hole], O_ID] != order_id:
        hole = (hole + 1) & mask
    j = hole
    while True:
        j = (j + 1) & mask
        slot = table[j]
        if slot < 0:
            break
        home = _home(orders[slot, O_ID], mask)
        # the entry may move into the hole unless its home lies cyclically in (hole, j]
        if (hole < j and (home <= hole or home > j)) or (hole > j and home <= hole and home > j):
            table[hole] = slot
            hole = j
    table[hole] = -1


# ---------------------------------------------------------------- capacity


@numba.njit(cache=True)
def has_room(st):  # type: ignore[no-untyped-def]
    """Whether one more order and one more level fit without growing the arrays."""
    meta = st.meta
    return (meta[M_ORDER_FREE] >= 0 or meta[M_ORDER_HWM] < st.orders.shape[0]) and (
        meta[M_LEVEL_FREE] >= 0 or meta[M_LEVEL_HWM] < st.levels.shape[0])


@numba.njit(cache=True)
def grow(st):  # type: ignore[no-untyped-def]
    """A copy of ``st`` with twice the room for orders and/or levels, where it is full."""
    meta = st.meta
    if meta[M_ORDER_FREE] < 0 and meta[M_ORDER_HWM] == st.orders.shape[0]:
        c = st.orders.shape[0]
        orders = np.zeros((2 * c, ORDER_FIELDS), dtype=np.int64)
        orders[:c] = st.orders
        table = np.full(4 * c, -1, dtype=np.int64)
        for j in range(st.table.shape[0]):
            slot = st.table[j]
            if slot >= 0:
                _table_insert(table, orders[slot, O_ID], slot)
        st = BookState(orders, st.levels, st.ladder, st.ladder_key, table, meta)
    if meta[M_LEVEL_FREE] < 0 and meta[M_LEVEL_HWM] == st.levels.shape[0]:
        n = st.levels.shape[0]
        levels = np.zeros((2 * n, LEVEL_FIELDS), dtype=np.int64)
        levels[:n] = st.levels
        ladder = np.zeros((2, 2 * n), dtype=np.int64)
        ladder[:, :n] = st.ladder
        ladder_key = np.zeros((2, 2 * n), dtype=np.int64)
        ladder_key[:, :n] = st.ladder_key
        st = BookState(st.orders, levels, ladder, ladder_key, st.table, meta)
    return st


def reserve(st: BookState) -> BookState:
    """``st``, or a grown copy, so that one more order and one more level fit (from Python)."""
    return st if has_room(st) else grow(st)


# ---------------------------------------------------------------- levels


@numba.njit(cache=True, inline="always")
def _key(side, price):  # type: ignore[no-untyped-def]
    return price if side == BID else -price


@numba.njit(cache=True)
def _search(st, side, key):  # type: ignore[no-untyped-def]
    """The first ladder index of ``side`` whose key is >= ``key`` (depth if none)."""
    keys = st.ladder_key[side]
    lo, hi = 0, st.meta[M_DEPTH + side]
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def find_level(st, side, price):  # type: ignore[no-untyped-def]
    """The level slot at ``price`` on ``side``, or -1."""
    key = _key(side, price)
    j = _search(st, side, key)
    if j < st.meta[M_DEPTH + side] and st.ladder_key[side, j] == key:
        return st.ladder[side, j]
    return -1


@numba.njit(cache=True)
def _open_level(st, side, price):  # type: ignore[no-untyped-def]
    """The level slot at ``price`` on ``side``, opened (empty) if absent; needs :func:`has_room`."""
    key = _key(side, price)
    j = _search(st, side, key)
    depth = st.meta[M_DEPTH + side]
    ladder, keys = st.ladder[side], st.ladder_key[side]
    if j < depth and keys[j] == key:
        return ladder[j]
    meta, levels = st.meta, st.levels
    lvl = meta[M_LEVEL_FREE]
    if lvl >= 0:
        meta[M_LEVEL_FREE] = levels[lvl, L_TAIL]
    else:
        lvl = meta[M_LEVEL_HWM]
        meta[M_LEVEL_HWM] = lvl + 1
    levels[lvl, L_SIDE] = side
    levels[lvl, L_PRICE] = price
    levels[lvl, L_SIZE] = 0
    levels[lvl, L_COUNT] = 0
    levels[lvl, L_ANON] = 0
    levels[lvl, L_HEAD] = -1
    levels[lvl, L_TAIL] = -1
    for m in range(depth, j, -1):  # the better levels move up one
        ladder[m] = ladder[m - 1]
        keys[m] = keys[m - 1]
    ladder[j] = lvl
    keys[j] = key
    meta[M_DEPTH + side] = depth + 1
    return lvl


@numba.njit(cache=True)
def _free_level(st, lvl):  # type: ignore[no-untyped-def]
    st.levels[lvl, L_TAIL] = st.meta[M_LEVEL_FREE]
    st.meta[M_LEVEL_FREE] = lvl


@numba.njit(cache=True)
def _close_level(st, lvl):  # type: ignore[no-untyped-def]
    """Take level ``lvl`` (no orders left in it) off its side's ladder and free it."""
    side = st.levels[lvl, L_SIDE]
    j = _search(st, side, _key(side, st.levels[lvl, L_PRICE]))
    depth = st.meta[M_DEPTH + side]
    ladder, keys = st.ladder[side], st.ladder_key[side]
    for m in range(j, depth - 1):
        ladder[m] = ladder[m + 1]
        keys[m] = keys[m + 1]
    st.meta[M_DEPTH + side] = depth - 1
    _free_level(st, lvl)


@numba.njit(cache=True)
def _take_level_size(st, lvl, q):  # type: ignore[no-untyped-def]
    """Take ``q`` off level ``lvl``'s size; close it when nothing is left."""
    left = st.levels[lvl, L_SIZE] - q
    st.levels[lvl, L_SIZE] = left
    if left <= 0:
        _close_level(st, lvl)


@numba.njit(cache=True)
def seed_level(st, side, price, size):  # type: ignore[no-untyped-def]
    """Add anonymous (order-id-less) size at ``price``; needs :func:`has_room`."""
    lvl = _open_level(st, side, price)
    st.levels[lvl, L_SIZE] += size
    st.levels[lvl, L_ANON] += size


@numba.njit(cache=True)
def take_anonymous(st, side, price, size):  # type: ignore[no-untyped-def]
    """Take up to ``size`` off the anonymous size at ``price``; returns the size taken."""
    lvl = find_level(st, side, price)
    if lvl < 0:
        return 0
    q = min(size, st.levels[lvl, L_ANON])
    if q > 0:
        st.levels[lvl, L_ANON] -= q
        _take_level_size(st, lvl, q)
    return q


# ---------------------------------------------------------------- orders


@numba.njit(cache=True)
def _link(st, slot):  # type: ignore[no-untyped-def]
    """Queue order ``slot`` (size > 0) at the back of its price level; needs :func:`has_room`."""
    orders, levels = st.orders, st.levels
    lvl = _open_level(st, orders[slot, O_SIDE], orders[slot, O_PRICE])
    tail = levels[lvl, L_TAIL]
    orders[slot, O_LEVEL] = lvl
    orders[slot, O_PREV] = tail
    orders[slot, O_NEXT] = -1
    if tail >= 0:
        orders[tail, O_NEXT] = slot
    else:
        levels[lvl, L_HEAD] = slot
    levels[lvl, L_TAIL] = slot
    levels[lvl, L_SIZE] += orders[slot, O_SIZE]
    levels[lvl, L_COUNT] += 1


@numba.njit(cache=True)
def _dequeue(st, slot, lvl):  # type: ignore[no-untyped-def]
    """Take order ``slot`` out of level ``lvl``'s queue (sizes untouched)."""
    orders, levels = st.orders, st.levels
    prev, nxt = orders[slot, O_PREV], orders[slot, O_NEXT]
    if prev >= 0:
        orders[prev, O_NEXT] = nxt
    else:
        levels[lvl, L_HEAD] = nxt
    if nxt >= 0:
        orders[nxt, O_PREV] = prev
    else:
        levels[lvl, L_TAIL] = prev
    levels[lvl, L_COUNT] -= 1


@numba.njit(cache=True)
def _unlink(st, slot):  # type: ignore[no-untyped-def]
    """Take order ``slot`` out of its level (closing the level if it empties); detaches it."""
    lvl = st.orders[slot, O_LEVEL]
    if lvl < 0:
        return
    _dequeue(st, slot, lvl)
    st.orders[slot, O_LEVEL] = DETACHED
    _take_level_size(st, lvl, st.orders[slot, O_SIZE])


@numba.njit(cache=True)
def add_order(st, order_id, side, price, size):  # type: ignore[no-untyped-def]
    """Rest a new order (``order_id`` not present; size 0 rests in no level) at the back of its
    level; needs :func:`has_room`. Returns its slot."""
    meta, orders = st.meta, st.orders
    slot = meta[M_ORDER_FREE]
    if slot >= 0:
        meta[M_ORDER_FREE] = orders[slot, O_NEXT]
    else:
        slot = meta[M_ORDER_HWM]
        meta[M_ORDER_HWM] = slot + 1
    _table_insert(st.table, order_id, slot)
    meta[M_ORDERS] += 1
    orders[slot, O_ID] = order_id
    orders[slot, O_SIDE] = side
    orders[slot, O_PRICE] = price
    orders[slot, O_SIZE] = size
    orders[slot, O_LEVEL] = DETACHED
    if size > 0:
        _link(st, slot)
    return slot


@numba.njit(cache=True)
def remove_order(st, slot):  # type: ignore[no-untyped-def]
    """Delete order ``slot`` (from its level, if any, and from the id table)."""
    _unlink(st, slot)
    _table_delete(st, st.orders[slot, O_ID])
    st.meta[M_ORDERS] -= 1
    st.orders[slot, O_LEVEL] = DETACHED
    st.orders[slot, O_NEXT] = st.meta[M_ORDER_FREE]
    st.meta[M_ORDER_FREE] = slot


@numba.njit(cache=True)
def cancel_order(st, slot, size):  # type: ignore[no-untyped-def]
    """Take ``size`` (<= the resting size) off order ``slot``; it is deleted at 0. Keeps its
    place in the queue otherwise."""
    have = st.orders[slot, O_SIZE]
    if size >= have:
        remove_order(st, slot)
        return
    st.orders[slot, O_SIZE] = have - size
    lvl = st.orders[slot, O_LEVEL]
    if lvl >= 0:
        st.levels[lvl, L_SIZE] -= size


@numba.njit(cache=True)
def execute_order(st, slot, size):  # type: ignore[no-untyped-def]
    """Fill up to ``size`` of resting order ``slot``; returns the size filled (the order is
    deleted when nothing is left of it)."""
    q = min(size, st.orders[slot, O_SIZE])
    cancel_order(st, slot, q)
    return q


@numba.njit(cache=True)
def modify_order(st, slot, side, price, size):  # type: ignore[no-untyped-def]
    """Give order ``slot`` a new side, price and size. It keeps its place when only its size
    shrinks, and goes to the back of the (new) level otherwise; at size 0 it rests in no level.
    Needs :func:`has_room`."""
    orders = st.orders
    lvl = orders[slot, O_LEVEL]
    have = orders[slot, O_SIZE]
    if lvl >= 0 and size > 0 and side == orders[slot, O_SIDE] and price == orders[slot, O_PRICE]:
        orders[slot, O_SIZE] = size
        st.levels[lvl, L_SIZE] += size - have
        if size > have and st.levels[lvl, L_TAIL] != slot:  # grown: to the back
            _dequeue(st, slot, lvl)
            tail = st.levels[lvl, L_TAIL]
            orders[slot, O_PREV] = tail
            orders[slot, O_NEXT] = -1
            orders[tail, O_NEXT] = slot
            st.levels[lvl, L_TAIL] = slot
            st.levels[lvl, L_COUNT] += 1
        return
    _unlink(st, slot)
    orders[slot, O_LEVEL] = DETACHED  # a forgotten order too
    orders[slot, O_SIDE] = side
    orders[slot, O_PRICE] = price
    orders[slot, O_SIZE] = size
    if size > 0:
        _link(st, slot)


@numba.njit(cache=True)
def _forget_level(st, lvl):  # type: ignore[no-untyped-def]
    """Mark every order of level ``lvl`` forgotten and free the level (ladder untouched)."""
    orders = st.orders
    slot = st.levels[lvl, L_HEAD]
    while slot >= 0:
        nxt = orders[slot, O_NEXT]
        orders[slot, O_LEVEL] = FORGOTTEN
        orders[slot, O_PREV] = -1
        orders[slot, O_NEXT] = -1
        slot = nxt
    _free_level(st, lvl)


@numba.njit(cache=True)
def forget_beyond(st, depth):  # type: ignore[no-untyped-def]
    """Drop every level beyond the best ``depth`` on each side, marking their orders forgotten.

    Returns the bit mask of the sides that lost levels (1 bid, 2 ask).
    """
    mask = 0
    for side in range(2):
        d = st.meta[M_DEPTH + side]
        k = d - depth  # the k worst levels go
        if k <= 0:
            continue
        ladder, keys = st.ladder[side], st.ladder_key[side]
        for m in range(k):
            _forget_level(st, ladder[m])
        for m in range(depth):
            ladder[m] = ladder[m + k]
            keys[m] = keys[m + k]
        st.meta[M_DEPTH + side] = depth
        mask |= 1 << side
    return mask


@numba.njit(cache=True)
def forget_crossed(st, side):  # type: ignore[no-untyped-def]
    """Drop the opposite side's levels at or through ``side``'s best price (orders forgotten).

    Returns the bit mask of the side that lost levels (0 if none).
    """
    other = 1 - side
    d_side, d_other = st.meta[M_DEPTH + side], st.meta[M_DEPTH + other]
    if d_side == 0 or d_other == 0:
        return 0
    best_key = st.ladder_key[side, d_side - 1]  # the other side crosses at keys >= -best_key
    d = d_other
    while d > 0 and st.ladder_key[other, d - 1] >= -best_key:
        d -= 1
        _forget_level(st, st.ladder[other, d])
    if d == d_other:
        return 0
    st.meta[M_DEPTH + other] = d
    return 1 << other


@numba.njit(cache=True)
def clear(st):  # type: ignore[no-untyped-def]
    """Empty the book (orders, levels, forgotten orders and anonymous size)."""
    st.table[:] = -1
    meta = st.meta
    meta[:] = 0
    meta[M_ORDER_FREE] = -1
    meta[M_LEVEL_FREE] = -1


# ---------------------------------------------------------------- views


@numba.njit(cache=True)
def top_n(st, n, prices, sizes):  # type: ignore[no-untyped-def]
    """Write each side's best ``n`` levels, best first, into ``prices`` and ``sizes`` (both
    (2, n) int64; an empty level has size 0 and price 0)."""
    for side in range(2):
        d = st.meta[M_DEPTH + side]
        for r in range(n):
            if r < d:
                lvl = st.ladder[side, d - 1 - r]
                prices[side, r] = st.levels[lvl, L_PRICE]
                sizes[side, r] = st.levels[lvl, L_SIZE]
            else:
                prices[side, r] = 0
                sizes[side, r] = 0


@numba.njit(cache=True)
def best_level(st, side):  # type: ignore[no-untyped-def]
    """The level slot at ``side``'s best price, or -1 when the side is empty."""
    d = st.meta[M_DEPTH + side]
    return st.ladder[side, d - 1] if d > 0 else -1


@numba.njit(cache=True)
def level_queue(st, lvl):  # type: ignore[no-untyped-def]
    """The order ids and sizes resting in level ``lvl``, first in time first ((k,) int64 each)."""
    k = st.levels[lvl, L_COUNT]
    ids = np.empty(k, dtype=np.int64)
    sizes = np.empty(k, dtype=np.int64)
    slot = st.levels[lvl, L_HEAD]
    for m in range(k):
        ids[m] = st.orders[slot, O_ID]
        sizes[m] = st.orders[slot, O_SIZE]
        slot = st.orders[slot, O_NEXT]
    return ids, sizes


@numba.njit(cache=True, inline="always")
def _mix(h, value):  # type: ignore[no-untyped-def]
    h = (h ^ np.uint64(value)) * np.uint64(_MIX)
    return h ^ (h >> np.uint64(31))


@numba.njit(cache=True)
def content_hash(st):  # type: ignore[no-untyped-def]
    """A 64-bit hash of the visible book: per side, best first, each level's price, size, order
    count and queue (order id and size, in time priority). Independent of slots and history:
    equal books hash equal. Forgotten and size-0 orders are not part of the book."""
    h = np.uint64(_GOLDEN)
    for side in range(2):
        d = st.meta[M_DEPTH + side]
        h = _mix(h, d)
        for r in range(d):
            lvl = st.ladder[side, d - 1 - r]
            h = _mix(h, st.levels[lvl, L_PRICE])
            h = _mix(h, st.levels[lvl, L_SIZE])
            h = _mix(h, st.levels[lvl, L_COUNT])
            slot = st.levels[lvl, L_HEAD]
            while slot >= 0:
                h = _mix(h, st.orders[slot, O_ID])
                h = _mix(h, st.orders[slot, O_SIZE])
                slot = st.orders[slot, O_NEXT]
    return h

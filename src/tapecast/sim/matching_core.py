"""The compiled matching loop: price-time priority on a book state
(:class:`~tapecast.data.book_state.BookState`).

One operation (a limit add, a market order, a cancel of the newest order near a price, a cancel by
order id) is one call of :func:`apply_op`; :func:`match_orders` runs a whole stream of them in one
compiled loop. Both call the book-state kernels the replay runs (:mod:`tapecast.data.book_state`:
``add_order``, ``execute_order``, ``cancel_order``, ``take_anonymous``, ...), so matching and replay
share one book. The design follows hftbacktest's book and the replay loop
(:mod:`tapecast.data.book_core`): integer ticks, one flat loop, invariants checked in the tests.

Rules
-----
* An add at limit ``p`` on side ``s`` executes against the opposite side while its best price
  crosses (``<= p`` for a buy, ``>= p`` for a sell), best level first and, in a level, its
  anonymous seeded size first (``L_ANON``: the book before the first event, so it has time
  priority over every named order), then the named orders head of queue first. The remainder
  rests at ``p`` at the back of its level. A market order is an add with no limit: it executes
  until filled or the opposite side is empty; its remainder is dropped and counted.
* ``cancel_near(s, p, q)`` picks the level of side ``s`` nearest ``p`` (ties: the one nearer the
  touch), and in it the newest named order (the queue tail); ``q <= 0`` (no size) or ``q >=``
  its size cancels it, else ``q`` is taken off it (it keeps its place). A level with only
  anonymous size gives up ``min(q, anonymous)`` (all of it without a size). An empty side: nothing,
  counted in ``dropped_cancels``.
* Every fill writes one trade row ``(ts, price, size, aggressor side, resting id, aggressor id)``
  (resting id ``ANON_ID = 0`` for anonymous size) and three event rows as Databento MBO reports a
  trade: ``trade`` on the aggressor side (aggressor id), ``fill`` on the resting order, then the
  ``cancel`` of the filled size that updates the book; a rested remainder is an ``add``. The last
  row of each operation carries ``F_LAST``.

Buffers
-------
``trades`` (T, 6) int64 and ``log`` (K, 7) int64 (``ts, action, side, price, size, order_id,
flags``, action codes of :mod:`tapecast.data.book_core`) are written from the cursors in
``counts``; :func:`apply_op` needs room for :func:`fills_bound` more trades and
``3 * fills_bound + 1`` more log rows, and :func:`~tapecast.data.book_state.has_room`;
:func:`match_orders` grows all three itself and returns them.
"""

from __future__ import annotations

from typing import Final

import numba
import numpy as np

from tapecast.data import book_state as bs
from tapecast.data.book_core import ADD, CANCEL, F_LAST, FILL, TRADE
from tapecast.data.book_state import (
    ASK,
    BID,
    L_ANON,
    L_COUNT,
    L_PRICE,
    L_TAIL,
    M_DEPTH,
    M_ORDERS,
    O_ID,
    O_LEVEL,
    O_SIZE,
)

# operation codes of a stream
OP_LIMIT: Final = 0
OP_MARKET: Final = 1
OP_CANCEL_NEAR: Final = 2
OP_CANCEL: Final = 3

ANON_ID: Final = 0  # the resting id of a fill of anonymous (seeded) size

# trade row fields
T_TS, T_PRICE, T_SIZE, T_SIDE, T_RESTING, T_AGGRESSOR = range(6)
TRADE_FIELDS: Final = 6
# log row fields
E_TS, E_ACTION, E_SIDE, E_PRICE, E_SIZE, E_ID, E_FLAGS = range(7)
LOG_FIELDS: Final = 7

COUNTER_NAMES: Final = ("submitted", "traded", "cancelled", "dropped_cancels", "dropped_market",
                        "next_id", "n_trades", "n_log")
(C_SUBMITTED, C_TRADED, C_CANCELLED, C_DROPPED_CANCELS, C_DROPPED_MARKET, C_NEXT_ID,
 C_N_TRADES, C_N_LOG) = range(len(COUNTER_NAMES))


@numba.njit(cache=True, inline="always")
def fills_bound(st, side):  # type: ignore[no-untyped-def]
    """At most how many fills one aggressor on ``side`` can make: every order and every level's
    anonymous size of the opposite side, plus one."""
    return st.meta[M_ORDERS] + st.meta[M_DEPTH + 1 - side] + 1


@numba.njit(cache=True, inline="always")
def _log(log, counts, ts, action, side, price, size, order_id):  # type: ignore[no-untyped-def]
    k = counts[C_N_LOG]
    log[k, E_TS] = ts
    log[k, E_ACTION] = action
    log[k, E_SIDE] = side
    log[k, E_PRICE] = price
    log[k, E_SIZE] = size
    log[k, E_ID] = order_id
    log[k, E_FLAGS] = 0
    counts[C_N_LOG] = k + 1


@numba.njit(cache=True, inline="always")
def _fill(trades, log, counts, ts, side, price, size, resting_id, aggressor_id):  # type: ignore[no-untyped-def]
    """Record one fill: a trade row and its trade / fill / cancel event rows."""
    t = counts[C_N_TRADES]
    trades[t, T_TS] = ts
    trades[t, T_PRICE] = price
    trades[t, T_SIZE] = size
    trades[t, T_SIDE] = side
    trades[t, T_RESTING] = resting_id
    trades[t, T_AGGRESSOR] = aggressor_id
    counts[C_N_TRADES] = t + 1
    counts[C_TRADED] += size
    _log(log, counts, ts, TRADE, side, price, size, aggressor_id)
    _log(log, counts, ts, FILL, 1 - side, price, size, resting_id)
    _log(log, counts, ts, CANCEL, 1 - side, price, size, resting_id)


@numba.njit(cache=True, inline="always")
def match(st, side, price, size, limited, aggressor_id, ts, trades, log, counts):  # type: ignore[no-untyped-def]
    """Execute ``size`` on ``side`` against the opposite side (down to ``price`` when
    ``limited``); returns the size filled. Writes the fills; rests nothing."""
    other = 1 - side
    left = size
    while left > 0:
        d = st.meta[M_DEPTH + other]
        if d == 0:
            break
        lvl = st.ladder[other, d - 1]
        at = st.levels[lvl, L_PRICE]
        if limited and ((side == BID and at > price) or (side == ASK and at < price)):
            break
        anon = st.levels[lvl, L_ANON]
        if anon > 0:
            q = bs.take_anonymous(st, other, at, left)
            _fill(trades, log, counts, ts, side, at, q, ANON_ID, aggressor_id)
        else:
            slot = st.levels[lvl, bs.L_HEAD]
            resting_id = st.orders[slot, O_ID]
            q = bs.execute_order(st, slot, left)
            _fill(trades, log, counts, ts, side, at, q, resting_id, aggressor_id)
        left -= q
    return size - left


@numba.njit(cache=True, inline="always")
def _nearest_level(st, side, price):  # type: ignore[no-untyped-def]
    """The level slot of ``side`` nearest ``price`` (ties: nearer the touch), or -1."""
    d = st.meta[M_DEPTH + side]
    if d == 0:
        return -1
    key = price if side == BID else -price
    j = bs._search(st, side, key)  # first ladder index with key >= key: at or toward the touch
    keys = st.ladder_key[side]
    if j == d or (j > 0 and key - keys[j - 1] < keys[j] - key):
        j -= 1
    return st.ladder[side, j]


@numba.njit(cache=True, inline="always")
def cancel_near(st, side, price, size, ts, log, counts):  # type: ignore[no-untyped-def]
    """Cancel by the rule of the module docstring (``size <= 0``: all); returns the size
    cancelled (0: the side was empty, counted in ``dropped_cancels``)."""
    lvl = _nearest_level(st, side, price)
    if lvl < 0:
        counts[C_DROPPED_CANCELS] += 1
        return 0
    at = st.levels[lvl, L_PRICE]
    if st.levels[lvl, L_COUNT] == 0:
        anon = st.levels[lvl, L_ANON]
        q = anon if size <= 0 else min(size, anon)
        bs.take_anonymous(st, side, at, q)
        order_id = ANON_ID
    else:
        slot = st.levels[lvl, L_TAIL]
        have = st.orders[slot, O_SIZE]
        q = have if size <= 0 else min(size, have)
        order_id = st.orders[slot, O_ID]
        bs.cancel_order(st, slot, q)
    counts[C_CANCELLED] += q
    _log(log, counts, ts, CANCEL, side, at, q, order_id)
    return q


@numba.njit(cache=True, inline="always")
def cancel_id(st, order_id, size, ts, log, counts):  # type: ignore[no-untyped-def]
    """Cancel ``size`` (``<= 0`` or more than it has: all) of resting order ``order_id``;
    returns the size cancelled (0: no such order in the book, counted in ``dropped_cancels``;
    an order forgotten by a replay's depth window is removed and counts as none)."""
    slot = bs.find_order(st, order_id)
    if slot < 0 or st.orders[slot, O_LEVEL] < 0:
        if slot >= 0:
            bs.remove_order(st, slot)
        counts[C_DROPPED_CANCELS] += 1
        return 0
    have = st.orders[slot, O_SIZE]
    q = have if size <= 0 else min(size, have)
    side, at = st.orders[slot, bs.O_SIDE], st.orders[slot, bs.O_PRICE]
    bs.cancel_order(st, slot, q)
    counts[C_CANCELLED] += q
    _log(log, counts, ts, CANCEL, side, at, q, order_id)
    return q


@numba.njit(cache=True, inline="always")
def apply_op(st, op, side, price, size, order_id, ts, trades, log, counts):  # type: ignore[no-untyped-def]
    """Apply one operation (``OP_*``); needs room (module docstring). An add or market order
    takes ``order_id`` when it is > 0 (not resting: unchecked), else the next new id. Returns
    ``(order id, size)``: for an add or market order the id it was given and the size filled;
    for a cancel the id cancelled (``ANON_ID`` for anonymous size, -1 for none) and the size
    cancelled."""
    n_log = counts[C_N_LOG]
    if op == OP_LIMIT or op == OP_MARKET:
        oid = order_id if order_id > 0 else counts[C_NEXT_ID]
        counts[C_NEXT_ID] = max(counts[C_NEXT_ID], oid + 1)
        counts[C_SUBMITTED] += size
        filled = match(st, side, price, size, op == OP_LIMIT, oid, ts, trades, log, counts)
        left = size - filled
        if left > 0:
            if op == OP_LIMIT:
                bs.add_order(st, oid, side, price, left)
                _log(log, counts, ts, ADD, side, price, left, oid)
            else:
                counts[C_DROPPED_MARKET] += left
        out_id, out_size = oid, filled
    elif op == OP_CANCEL_NEAR:
        q = cancel_near(st, side, price, size, ts, log, counts)
        out_id = log[counts[C_N_LOG] - 1, E_ID] if q > 0 else -1
        out_size = q
    else:
        q = cancel_id(st, order_id, size, ts, log, counts)
        out_id, out_size = (order_id if q > 0 else -1), q
    if counts[C_N_LOG] > n_log:
        log[counts[C_N_LOG] - 1, E_FLAGS] = F_LAST
    return out_id, out_size


@numba.njit(cache=True)
def _grown_rows(a, need):  # type: ignore[no-untyped-def]
    """``a`` with at least ``need`` rows (doubling), the first rows copied."""
    n = a.shape[0]
    if need <= n:
        return a
    while n < need:
        n *= 2
    out = np.zeros((n, a.shape[1]), dtype=np.int64)
    out[:a.shape[0]] = a
    return out


@numba.njit(cache=True)
def match_orders(st, ops, sides, prices, sizes, order_ids, ts, trades, log, counts,  # type: ignore[no-untyped-def]
                 out_ids, out_sizes):
    """Apply a stream of operations in one compiled loop (growing the book and buffers).

    ``ops, sides, prices, sizes, order_ids, ts`` are (E,) int64 (``order_ids``: the id an
    ``OP_CANCEL`` cancels, an add's own id when > 0, else 0; ``sizes <= 0`` a full cancel); each
    op's :func:`apply_op` result goes to ``out_ids[i], out_sizes[i]``. Returns
    ``(st, trades, log)``, grown copies where needed.
    """
    for i in range(ops.shape[0]):
        if not bs.has_room(st):
            st = bs.grow(st)
        bound = fills_bound(st, sides[i])
        trades = _grown_rows(trades, counts[C_N_TRADES] + bound)
        log = _grown_rows(log, counts[C_N_LOG] + 3 * bound + 1)
        oid, q = apply_op(st, ops[i], sides[i], prices[i], sizes[i], order_ids[i], ts[i],
                          trades, log, counts)
        out_ids[i] = oid
        out_sizes[i] = q
    return st, trades, log

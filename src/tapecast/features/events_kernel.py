"""The per-event step of the event-feature extraction: one compiled function for batch and stream.

:func:`step` takes one canonical event (integer codes, float price, int64 nanosecond clocks), the
book's best bid/ask *before* the event and the per-(instrument, session) estimator state, applies
the token rules and writes 0, 1 or 2 token rows. :func:`run` loops it over a whole instrument;
:class:`tapecast.features.events.StreamingEventFeatures` calls it once per event, so batch and
streaming run the same machine code and agree bit for bit.

Legend (paper notation of TradeFM section 6): p_mid the mid estimate, p_open the session's first
trade, delta_p = (p_order - p_mid) / p_mid, v = log(1 + size), dt the inter-arrival time (s),
drift = (p_mid - p_open) / p_open.
"""

from __future__ import annotations

import math
from typing import Final

import numba
import numpy as np
from numba import types
from numba.typed import Dict
from numpy.typing import NDArray

# action codes (schemas.Action physical codes) and the snapshot flag: the replay loop's own
from tapecast.data.book_core import ADD, CANCEL, CLEAR, F_SNAPSHOT, FILL, MODIFY, TRADE

PRICE_SCALE: Final = 1_000_000_000  # book ticks (tapecast.data.book.PRICE_SCALE)

COUNTER_NAMES: Final = (
    "events", "snapshot_records", "clears", "outcome_cancels", "outcome_modifies",
    "modifies_split", "modifies_unknown_order", "trade_prints", "fill_prints",
    "fill_legs_of_trade", "tokens", "book_mid", "stale_vwap", "no_mid_dropped", "no_price",
    "before_first_trade", "negative_dt_clipped",
)
(C_EVENTS, C_SNAPSHOT, C_CLEARS, C_OUT_CANCEL, C_OUT_MODIFY, C_SPLIT, C_MOD_UNKNOWN, C_TRADES,
 C_FILLS, C_FILL_LEGS, C_TOKENS, C_BOOK_MID, C_STALE, C_NO_MID, C_NO_PRICE, C_BEFORE_OPEN,
 C_NEG_DT) = range(len(COUNTER_NAMES))

# float state of one (instrument, session)
F_NUM, F_DEN, F_VWAP, F_OPEN, F_FIRST_MID, F_PEND_SIZE, F_PEND_PRICE = range(7)
N_FLOAT: Final = 7
# integer state: flags and nanosecond clocks
I_HAVE_TRADE, I_HAVE_OPEN, I_HAVE_FIRST, I_HAVE_PREV, I_HAVE_PEND, I_T_TRADE, I_T_PREV, \
    I_PEND_T = range(8)
N_INT: Final = 8
# token row columns (float64)
O_ROW, O_ACTION, O_SIDE, O_PRICE, O_SIZE, O_DELTA_P, O_LOG_SIZE, O_DT, O_DRIFT, O_BOOK_MID, \
    O_MID = range(11)
N_OUT: Final = 11

ORDER_VALUE = types.Tuple((types.int64, types.float64, types.int64, types.int64))  # type: ignore[no-untyped-call]


def new_orders() -> Dict:
    """An empty order map: order id -> (last action, price, resting size, ts_event ns)."""
    return Dict.empty(key_type=types.int64, value_type=ORDER_VALUE)


def new_session_state() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Zeroed float and integer estimator state of one session, shapes (N_FLOAT,), (N_INT,)."""
    return np.zeros(N_FLOAT, dtype=np.float64), np.zeros(N_INT, dtype=np.int64)


@numba.njit(cache=True)
def record_print(price, size, t_clock, fs, fi, half_life_ns):  # type: ignore[no-untyped-def]
    """One execution print into the EW-VWAP: num, den decay by 2^(-elapsed / half-life)."""
    if size <= 0 or price != price:
        return
    if fi[I_HAVE_TRADE] == 1:
        w = 2.0 ** (-(t_clock - fi[I_T_TRADE]) / half_life_ns)
        fs[F_NUM] = fs[F_NUM] * w + price * size
        fs[F_DEN] = fs[F_DEN] * w + size
    else:
        fs[F_NUM] = price * size
        fs[F_DEN] = float(size)
    fs[F_VWAP] = fs[F_NUM] / fs[F_DEN]
    fi[I_HAVE_TRADE] = 1
    fi[I_T_TRADE] = t_clock
    if fi[I_HAVE_OPEN] == 0:
        fs[F_OPEN] = price
        fi[I_HAVE_OPEN] = 1


MID_VWAP, MID_BOOK, MID_STALE, MID_NONE = 0, 1, 2, -1  # where p_mid came from


@numba.njit(cache=True)
def mid_estimate(t_clock, bid_px, ask_px, bid_sz, ask_sz, fs, fi, stale_ns):  # type: ignore[no-untyped-def]
    """(p_mid, source) at ``t_clock`` from the estimator state and the best level before the
    event: the EW-VWAP while its last print is at most ``stale_ns`` old, else the book mid of a
    two-sided book, else the stale VWAP; ``MID_NONE`` (p_mid NaN) without either. The one rule
    of token extraction and of the closed-loop simulator (:mod:`tapecast.sim.tradefm_loop`)."""
    if fi[I_HAVE_TRADE] == 1 and t_clock - fi[I_T_TRADE] <= stale_ns:
        return fs[F_VWAP], MID_VWAP
    if bid_sz > 0 and ask_sz > 0:
        return (bid_px + ask_px) / (2.0 * PRICE_SCALE), MID_BOOK
    if fi[I_HAVE_TRADE] == 1:
        return fs[F_VWAP], MID_STALE
    return np.nan, MID_NONE


@numba.njit(cache=True)
def session_open(p_mid, fs, fi):  # type: ignore[no-untyped-def]
    """(p_open, before_first_trade): the session's first print, or before it its first p_mid
    (recorded here on the first call)."""
    if fi[I_HAVE_FIRST] == 0:
        fs[F_FIRST_MID] = p_mid
        fi[I_HAVE_FIRST] = 1
    if fi[I_HAVE_OPEN] == 1:
        return fs[F_OPEN], False
    return fs[F_FIRST_MID], True


@numba.njit(cache=True)
def _emit(out, k, row, act, side, price, size, t_clock, bid_px, ask_px, bid_sz, ask_sz,  # type: ignore[no-untyped-def]
          fs, fi, counts, stale_ns):
    """Write token row ``k`` (or count why not); returns 1 if written, else 0."""
    if price != price:
        counts[C_NO_PRICE] += 1
        return 0
    p_mid, source = mid_estimate(t_clock, bid_px, ask_px, bid_sz, ask_sz, fs, fi, stale_ns)
    if source == MID_NONE:
        counts[C_NO_MID] += 1
        return 0
    book_mid = 1.0 if source == MID_BOOK else 0.0
    if source == MID_BOOK:
        counts[C_BOOK_MID] += 1
    elif source == MID_STALE:
        counts[C_STALE] += 1
    p_open, before = session_open(p_mid, fs, fi)
    if before:
        counts[C_BEFORE_OPEN] += 1
    dt = 0.0
    if fi[I_HAVE_PREV] == 1:
        gap = t_clock - fi[I_T_PREV]
        if gap < 0:
            gap = 0
            counts[C_NEG_DT] += 1
        dt = gap * 1e-9
    fi[I_T_PREV] = t_clock
    fi[I_HAVE_PREV] = 1
    out[k, O_ROW] = row
    out[k, O_ACTION] = act
    out[k, O_SIDE] = side
    out[k, O_PRICE] = price
    out[k, O_SIZE] = size
    out[k, O_DELTA_P] = (price - p_mid) / p_mid
    out[k, O_LOG_SIZE] = math.log1p(size)
    out[k, O_DT] = dt
    out[k, O_DRIFT] = (p_mid - p_open) / p_open
    out[k, O_BOOK_MID] = book_mid
    out[k, O_MID] = p_mid
    counts[C_TOKENS] += 1
    return 1


@numba.njit(cache=True)
def _reduce(orders, oid, act, price, size, t_event):  # type: ignore[no-untyped-def]
    """Take ``size`` off a known order's resting size; forget it when nothing is left."""
    if oid in orders:
        prev = orders[oid]
        left = prev[2] - size
        if left <= 0 and act != FILL:
            del orders[oid]
        else:
            orders[oid] = (act, prev[1], left, t_event)
    elif act == FILL:
        orders[oid] = (FILL, price, 0, t_event)


@numba.njit(cache=True)
def step(row, a, side, price, size, oid, flags, t_event, t_clock,  # type: ignore[no-untyped-def]
         bid_px, ask_px, bid_sz, ask_sz, orders, fs, fi, counts, half_life_ns, stale_ns,
         window_ns, out):
    """Apply one event; returns how many token rows (0, 1, 2) it wrote into ``out[0:2]``.

    ``bid_*``/``ask_*``: the best level before the event (ticks of 1e-9; size 0 = empty side).
    ``window_ns`` < 0: a cancel/modify after a fill is an outcome at any distance.
    """
    counts[C_EVENTS] += 1
    if a == CLEAR:
        counts[C_CLEARS] += 1
        orders.clear()
        return 0
    if a == TRADE:
        counts[C_TRADES] += 1
        record_print(price, size, t_clock, fs, fi, half_life_ns)
        fs[F_PEND_SIZE] = size
        fs[F_PEND_PRICE] = price
        fi[I_PEND_T] = t_event
        fi[I_HAVE_PEND] = 1
        return 0
    if a == FILL:
        if oid != 0:
            _reduce(orders, oid, FILL, price, size, t_event)
        if (fi[I_HAVE_PEND] == 1 and fi[I_PEND_T] == t_event and fs[F_PEND_PRICE] == price
                and fs[F_PEND_SIZE] >= size):
            fs[F_PEND_SIZE] -= size  # a resting-side leg of the trade print just seen
            counts[C_FILL_LEGS] += 1
        else:
            counts[C_FILLS] += 1
            record_print(price, size, t_clock, fs, fi, half_life_ns)
        return 0
    if flags & F_SNAPSHOT:
        counts[C_SNAPSHOT] += 1
        if a == ADD:
            orders[oid] = (ADD, price, size, t_event)
        return 0
    prev_a, prev_px, prev_sz, prev_t = -1, 0.0, 0, 0
    if oid in orders:
        prev_a, prev_px, prev_sz, prev_t = orders[oid]
    if (a != ADD and prev_a == FILL
            and (window_ns < 0 or t_event - prev_t <= window_ns)):
        if a == CANCEL:
            counts[C_OUT_CANCEL] += 1
            _reduce(orders, oid, CANCEL, price, size, t_event)
        else:
            counts[C_OUT_MODIFY] += 1
            orders[oid] = (MODIFY, price, size, t_event)
        return 0
    args = (t_clock, bid_px, ask_px, bid_sz, ask_sz, fs, fi, counts, stale_ns)
    if a == ADD:
        orders[oid] = (ADD, price, size, t_event)
        return _emit(out, 0, row, ADD, side, price, size, *args)
    if a == CANCEL:
        _reduce(orders, oid, CANCEL, price, size, t_event)
        return _emit(out, 0, row, CANCEL, side, price, size, *args)
    n = 0  # MODIFY: a cancel of the old size at the old price, then an add
    if prev_a >= 0:
        counts[C_SPLIT] += 1
        n = _emit(out, 0, row, CANCEL, side, prev_px, prev_sz, *args)
    else:
        counts[C_MOD_UNKNOWN] += 1
    orders[oid] = (MODIFY, price, size, t_event)
    return n + _emit(out, n, row, ADD, side, price, size, *args)


@numba.njit(cache=True)
def run(action, side, price, size, order_id, flags, t_event, t_clock, session,  # type: ignore[no-untyped-def]
        bid_px, ask_px, bid_sz, ask_sz, orders, counts, half_life_ns, stale_ns, window_ns):
    """:func:`step` over one instrument's events; a new ``session`` id resets the estimators.

    Returns
    -------
    ndarray, float64, shape (T, N_OUT)
        The token rows, in event order.
    counts is (S, n_counters), one row per session id.
    """
    n_events = action.shape[0]
    out = np.empty((2 * n_events, N_OUT), dtype=np.float64)
    buf = np.empty((2, N_OUT), dtype=np.float64)
    fs = np.zeros(N_FLOAT, dtype=np.float64)
    fi = np.zeros(N_INT, dtype=np.int64)
    k = 0
    for i in range(n_events):
        if i > 0 and session[i] != session[i - 1]:
            fs[:] = 0.0
            fi[:] = 0
        m = step(i, action[i], side[i], price[i], size[i], order_id[i], flags[i], t_event[i],
                 t_clock[i], bid_px[i], ask_px[i], bid_sz[i], ask_sz[i], orders, fs, fi,
                 counts[session[i]], half_life_ns, stale_ns, window_ns, buf)
        for j in range(m):
            out[k] = buf[j]
            k += 1
    return out[:k]

"""Fused numba kernels of the order-flow pipeline: window assignment, per-window sums, channels.

Every kernel is one sequential pass in trade order and uses only IEEE-exact operations
(``+``, ``*``, ``/``, ``sqrt``) plus the C library's ``log``/``log1p`` (numba lowers ``math.log``
to the same libm call CPython's :mod:`math` makes). :mod:`tapecast.features.streaming` performs the
same operations in the same order in pure Python, which is why the two agree bit for bit.
No ``fastmath``: reassociating the sums would break that parity.

Powers of the size, for the Maitrier–Bouchaud a-family (arXiv 2506.07711)::

    v^0 = 1,  v^0.25 = sqrt(sqrt(v)),  v^0.5 = sqrt(v),  v^0.75 = sqrt(v) * sqrt(sqrt(v)),  v^1 = v
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

N_ALPHAS: Final = 5  # a in (0, 0.25, 0.5, 0.75, 1)


class WindowSums(NamedTuple):
    """Per-window sums of one pass over the trades (W windows).

    ``n_trades``, ``n_unsigned`` : int64 (W,); ``first_price``, ``last_price`` : float64 (W,);
    ``start_ns``, ``end_ns`` : int64 (W,) first and last trade time; ``signed_num`` /
    ``signed_den`` : float64 (W, 5), Σ ε v^a and Σ v^a over signed trades for the five ``a``;
    ``sum_sq_ret`` : float64 (W,) Σ r², r the log return between consecutive trades of the
    window; ``total_size`` : float64 (W,); ``group`` : int64 (W,) the window's group (instrument ×
    session) code.
    """

    n_trades: NDArray[np.int64]
    n_unsigned: NDArray[np.int64]
    first_price: NDArray[np.float64]
    last_price: NDArray[np.float64]
    start_ns: NDArray[np.int64]
    end_ns: NDArray[np.int64]
    signed_num: NDArray[np.float64]
    signed_den: NDArray[np.float64]
    sum_sq_ret: NDArray[np.float64]
    total_size: NDArray[np.float64]
    group: NDArray[np.int64]


@numba.njit(cache=True)
def _assign_windows(group, keep, size, window_trades, window_volume, n_groups):  # type: ignore[no-untyped-def]
    n = group.shape[0]
    window = np.empty(n, dtype=np.int64)
    partial_trades = np.zeros(n_groups, dtype=np.int64)
    filtered = keep.shape[0] > 0
    outside = 0
    next_id = 0
    current = -1
    count = 0
    volume = 0.0
    start = 0
    for i in range(n):
        g = group[i]
        if filtered and not keep[i]:
            window[i] = -1
            continue
        if g < 0:
            window[i] = -1
            outside += 1
            continue
        if g != current:
            if count > 0:  # the group ended inside a window: drop that partial window
                window[start:i] = -1
                partial_trades[current] = count
            current = g
            count = 0
            volume = 0.0
        if count == 0:
            start = i
        window[i] = next_id
        count += 1
        volume += size[i]
        if (window_trades > 0 and count == window_trades) or (
                window_trades <= 0 and volume >= window_volume):
            next_id += 1
            count = 0
            volume = 0.0
    if count > 0:
        window[start:n] = -1
        partial_trades[current] = count
    return window, next_id, partial_trades, outside


def assign_windows(
    group: NDArray[np.int64], size: NDArray[np.float64], window_trades: int | None,
    window_volume: float | None, n_groups: int, keep: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.int64], int, NDArray[np.int64], int]:
    """Cut each group's trades into windows; the last, incomplete window of a group is dropped.

    A trade-count window closes at its ``window_trades``-th trade; a volume window closes at the
    trade that brings its summed size to ``>= window_volume`` (the excess is not carried into the
    next window). Windows never span groups.

    Parameters
    ----------
    group : ndarray, int64, shape (N,)
        Group (instrument × session) code per trade in ``[0, n_groups)``, -1 for excluded trades;
        a group's trades are contiguous apart from excluded ones.
    size : ndarray, float64, shape (N,)
    window_trades, window_volume : int or None, float or None
        Exactly one is set.
    n_groups : int
    keep : ndarray, bool, shape (N,), optional
        False for trades the print filters dropped (None: all kept).

    Returns
    -------
    window : ndarray, int64, shape (N,)
        Window index 0..W-1 in trade order, -1 for excluded and partial-window trades.
    n_windows : int
        W.
    partial_trades : ndarray, int64, shape (n_groups,)
        Trades of each group's dropped partial window (0: none dropped).
    outside : int
        Kept trades with group -1 (outside every session, or in a dropped session).
    """
    trades = -1 if window_trades is None else int(window_trades)
    volume = math.inf if window_volume is None else float(window_volume)
    keep = np.zeros(0, dtype=np.bool_) if keep is None else keep
    window, n_windows, partial, outside = _assign_windows(group, keep, size, trades, volume,
                                                          n_groups)
    return window, int(n_windows), partial, int(outside)


@numba.njit(cache=True)
def _window_sums(ts, price, size, side, window, group, n_windows):  # type: ignore[no-untyped-def]
    # per-window outputs; the current window's sums live in locals (windows are runs of trades)
    n_trades = np.zeros(n_windows, dtype=np.int64)
    n_unsigned = np.zeros(n_windows, dtype=np.int64)
    first_price = np.zeros(n_windows)
    last_price = np.zeros(n_windows)
    start_ns = np.zeros(n_windows, dtype=np.int64)
    end_ns = np.zeros(n_windows, dtype=np.int64)
    num = np.zeros((n_windows, N_ALPHAS))
    den = np.zeros((n_windows, N_ALPHAS))
    sum_sq_ret = np.zeros(n_windows)
    total_size = np.zeros(n_windows)
    window_group = np.zeros(n_windows, dtype=np.int64)
    cur = -1
    n = nu = 0
    last = ssr = tot = 0.0
    n0 = n1 = n2 = n3 = n4 = d0 = d1 = d2 = d3 = d4 = 0.0
    for i in range(ts.shape[0]):
        w = window[i]
        if w < 0:
            continue
        if w != cur:
            if cur >= 0:  # store the finished run
                _store(cur, n, nu, last, ssr, tot, n0, n1, n2, n3, n4, d0, d1, d2, d3, d4,
                       n_trades, n_unsigned, last_price, sum_sq_ret, total_size, num, den)
            cur = w
            n = n_trades[w]  # 0 unless window w was interrupted (non-contiguous input)
            nu = n_unsigned[w]
            last = last_price[w]
            ssr = sum_sq_ret[w]
            tot = total_size[w]
            n0, n1, n2, n3, n4 = num[w, 0], num[w, 1], num[w, 2], num[w, 3], num[w, 4]
            d0, d1, d2, d3, d4 = den[w, 0], den[w, 1], den[w, 2], den[w, 3], den[w, 4]
            if n == 0:
                first_price[w] = price[i]
                start_ns[w] = ts[i]
                window_group[w] = group[i]
        p = price[i]
        v = size[i]
        if n > 0 and p != last:  # a zero return adds exactly 0.0: skip the log
            r = math.log(p / last)
            ssr += r * r
        n += 1
        last = p
        end_ns[w] = ts[i]
        tot += v
        e = side[i]
        if e == 0:
            nu += 1
            continue
        v50 = math.sqrt(v)
        v25 = math.sqrt(v50)
        v75 = v50 * v25
        n0 += e * 1.0
        n1 += e * v25
        n2 += e * v50
        n3 += e * v75
        n4 += e * v
        d0 += 1.0
        d1 += v25
        d2 += v50
        d3 += v75
        d4 += v
    if cur >= 0:
        _store(cur, n, nu, last, ssr, tot, n0, n1, n2, n3, n4, d0, d1, d2, d3, d4,
               n_trades, n_unsigned, last_price, sum_sq_ret, total_size, num, den)
    return (n_trades, n_unsigned, first_price, last_price, start_ns, end_ns, num, den,
            sum_sq_ret, total_size, window_group)


@numba.njit(cache=True, inline="always")
def _store(w, n, nu, last, ssr, tot, n0, n1, n2, n3, n4, d0, d1, d2, d3, d4,  # type: ignore[no-untyped-def]
           n_trades, n_unsigned, last_price, sum_sq_ret, total_size, num, den):
    n_trades[w] = n
    n_unsigned[w] = nu
    last_price[w] = last
    sum_sq_ret[w] = ssr
    total_size[w] = tot
    num[w, 0], num[w, 1], num[w, 2], num[w, 3], num[w, 4] = n0, n1, n2, n3, n4
    den[w, 0], den[w, 1], den[w, 2], den[w, 3], den[w, 4] = d0, d1, d2, d3, d4


def window_sums(
    ts_ns: NDArray[np.int64], price: NDArray[np.float64], size: NDArray[np.float64],
    side: NDArray[np.int8], window: NDArray[np.int64], group: NDArray[np.int64], n_windows: int,
) -> WindowSums:
    """One fused pass over the trades accumulating everything the channels need.

    Parameters
    ----------
    ts_ns : ndarray, int64, shape (N,)
    price, size : ndarray, float64, shape (N,)
    side : ndarray, int8, shape (N,)
        Aggressor sign ε: +1, -1, or 0 (unknown: left out of both imbalance sums).
    window : ndarray, int64, shape (N,)
        Window index per trade, -1 excluded (from :func:`assign_windows`).
    group : ndarray, int64, shape (N,)
        Group code per trade.
    n_windows : int

    Returns
    -------
    WindowSums
    """
    return WindowSums(*_window_sums(ts_ns, price, size, side, window, group, n_windows))


@numba.njit(cache=True)
def _channels(sums_num, sums_den, n_signed, first_price, last_price, sum_sq_ret,  # type: ignore[no-untyped-def]
              total_size, group, tick):
    n_windows = first_price.shape[0]
    out = np.full((n_windows, N_ALPHAS + 3), np.nan)
    for w in range(n_windows):
        if n_signed[w] > 0:
            for k in range(N_ALPHAS):
                if sums_den[w, k] > 0.0:
                    out[w, k] = sums_num[w, k] / sums_den[w, k]
        last = last_price[w]
        if w > 0 and group[w - 1] == group[w]:
            out[w, N_ALPHAS] = math.log(last / last_price[w - 1])
        else:  # first window of its session
            out[w, N_ALPHAS] = math.log(last / first_price[w])
        step = math.log1p(tick[w] / last)
        floor = step * step
        out[w, N_ALPHAS + 1] = math.log(max(sum_sq_ret[w], floor))
        if total_size[w] > 0.0:
            out[w, N_ALPHAS + 2] = math.log(total_size[w])
    return out


def window_channels(sums: WindowSums, tick: NDArray[np.float64]) -> NDArray[np.float64]:
    """The 8 channels of every window (NaN where undefined).

    Parameters
    ----------
    sums : WindowSums
        From :func:`window_sums`; windows of one group are consecutive and in time order.
    tick : ndarray, float64, shape (W,)
        Tick size of each window's instrument.

    Returns
    -------
    ndarray, float64, shape (W, 8)
        ``imb_a0 .. imb_a1`` (I_a = Σ ε v^a / Σ v^a, NaN without signed trades), ``log_ret``,
        ``log_realized_var`` = log(max(Σ r², log1p(tick / last)²)), ``log_tot_vol``.
    """
    n_signed = sums.n_trades - sums.n_unsigned
    result: NDArray[np.float64] = _channels(
        sums.signed_num, sums.signed_den, n_signed, sums.first_price, sums.last_price,
        sums.sum_sq_ret, sums.total_size, sums.group, tick)
    return result

"""Trade timestamps of the synthetic market: a U-shaped intraday profile over US equity hours.

Trades arrive in a "business time" whose clock ticks faster when the volatility factor is high
(durations Exp(1) / σ_t^κ, κ the activity coupling); business time is then mapped onto the
session's wall clock through the inverse of the cumulative intraday intensity

    λ(u) = 1 + a_open e^{-u/d} + a_close e^{-(1-u)/d},   u ∈ [0, 1] the fraction of the session,

so that the open and the close are busier than midday (the well-known U shape of intraday
activity, e.g. Admati & Pfleiderer 1988, Rev. Financial Studies 1(1), 3-40). A burst trade
(one child order hitting several resting orders) follows its predecessor after a few microseconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

NY: Final = ZoneInfo("America/New_York")
OPEN: Final = dt.time(9, 30)
CLOSE: Final = dt.time(16, 0)
EDGE_NS: Final = 1_000_000  # keep trades 1 ms inside [open, close)
MIN_GAP_NS: Final = 2  # strictly increasing trade times, with room for a quote 1 ns before each
_GRID: Final = 20_001


def session_dates(start: dt.date, n_sessions: int) -> list[dt.date]:
    """``n_sessions`` business days (Monday-Friday) from ``start`` (holidays are not skipped)."""
    out: list[dt.date] = []
    day = start
    while len(out) < n_sessions:
        if day.weekday() < 5:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def session_bounds_ns(day: dt.date) -> tuple[int, int]:
    """UTC nanoseconds of 09:30 and 16:00 America/New_York on ``day`` (DST-aware)."""
    start = dt.datetime.combine(day, OPEN, tzinfo=NY)
    end = dt.datetime.combine(day, CLOSE, tzinfo=NY)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return ((start - epoch) // dt.timedelta(microseconds=1) * 1_000,
            (end - epoch) // dt.timedelta(microseconds=1) * 1_000)


def intensity_profile(u: NDArray[np.float64], open_boost: float, close_boost: float,
                      decay: float) -> NDArray[np.float64]:
    """λ(u), the relative trade intensity at session fraction u.

    Returns
    -------
    ndarray of float64, same shape as ``u``
    """
    return 1.0 + open_boost * np.exp(-u / decay) + close_boost * np.exp(-(1.0 - u) / decay)


def session_times(rng: np.random.Generator, day: dt.date, activity: NDArray[np.float64],
                  is_burst: NDArray[np.bool_], *, open_boost: float, close_boost: float,
                  decay: float) -> NDArray[np.int64]:
    """Strictly increasing UTC-ns timestamps of one session's trades.

    Parameters
    ----------
    rng : numpy.random.Generator
    day : datetime.date
        The session date.
    activity : ndarray of float64, shape (n,)
        σ_t^κ, the business-time speed at each trade.
    is_burst : ndarray of bool, shape (n,)
        Trades that follow their predecessor within microseconds.
    open_boost, close_boost, decay : float
        a_open, a_close, d of :func:`intensity_profile`.

    Returns
    -------
    ndarray of int64, shape (n,)
        Inside [09:30 + 1 ms, 16:00 - 1 ms) New York time, at least 2 ns apart.
    """
    n = activity.shape[0]
    durations = rng.exponential(1.0, n + 1) / np.append(activity, activity[-1])  # (n+1,)
    durations[:n][is_burst] = 0.0  # bursts take no business time
    business = np.cumsum(durations)[:n] / durations.sum()  # (n,) in (0, 1)
    grid = np.linspace(0.0, 1.0, _GRID)  # (G,) session fractions
    lam = intensity_profile(grid, open_boost, close_boost, decay)  # (G,)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (lam[1:] + lam[:-1]))])  # (G,) trapezoid
    u = np.interp(business, cum / cum[-1], grid)  # (n,) Λ^{-1}(business time)
    start, end = session_bounds_ns(day)
    lo, hi = start + EDGE_NS, end - EDGE_NS - MIN_GAP_NS * n
    ts = lo + np.floor(u * (hi - lo)).astype(np.int64)  # (n,)
    burst = is_burst.copy()
    burst[0] = False  # a session starts afresh
    gaps = np.cumsum(np.where(burst, rng.integers(1_000, 50_000, n), 0))  # (n,) 1-50 µs each
    offset = gaps - np.maximum.accumulate(np.where(burst, 0, gaps))  # (n,) reset at each non-burst
    ts = np.maximum.accumulate(np.where(burst, 0, ts)) + offset  # a burst follows its predecessor
    ts = np.minimum(ts, hi)
    steps = np.arange(n, dtype=np.int64) * MIN_GAP_NS  # (n,) enforce a strict 2 ns order
    return np.maximum.accumulate(ts) + steps

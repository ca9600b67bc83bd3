"""Trading metrics of a position series: Sharpe, Sortino, drawdown, win rate, profit factor.

Alignment (no look-ahead): ``positions[t]`` is the position *held over* period t, i.e. decided
with information up to the start of period t, and ``returns[t]`` is the simple return earned over
that same period. A signal computed from data that includes period t must be shifted by one before
it is passed here. The book starts flat (position 0 before t = 0), so entering the first position
pays costs.

Legend:

    w_t     positions[t] (units of notional; +1 long, -1 short, 0 flat, or any real size)
    r_t     returns[t]
    c       cost per unit of traded notional (0.0005 = 5 bp per side)
    pnl_t   w_t r_t - c |w_t - w_{t-1}|,  w_{-1} = 0
    C_t     Σ_{s<=t} pnl_s  (additive cumulative P&L, in units of notional)

Metrics (``P`` = periods per year; undefined values are NaN):

    sharpe         mean(pnl) / std(pnl, ddof=1) · sqrt(P)                        (Sharpe 1994)
    sortino        mean(pnl) / DD · sqrt(P),  DD = sqrt(mean(min(pnl_t, 0)²)) over all periods:
                   the downside deviation below the target 0 (Sortino & Price 1994)
    max_drawdown   max_t (max(0, max_{s<=t} C_s) - C_t) >= 0, additive on C (the book starts at 0)
    max_drawdown_relative
                   with ``initial_equity`` E_0: max_t (peak_t - E_t) / peak_t on E_t = E_0 + C_t
    win_rate       share of periods with pnl != 0 whose pnl > 0
    profit_factor  Σ pnl⁺ / Σ pnl⁻ (NaN when there is no losing period)
    turnover       mean_t |w_t - w_{t-1}|
    total_return   C_{n-1} (additive; not compounded)

References
----------
Sharpe, W. F. (1994). The Sharpe ratio. Journal of Portfolio Management 21(1), 49–58.
Sortino, F. A. & Price, L. N. (1994). Performance measurement in a downside risk framework.
    Journal of Investing 3(3), 59–64.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError


def _series(values: ArrayLike, what: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise TapecastError(f"{what} must be 1-D (one value per period), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise TapecastError(f"{what} must be finite; drop or fill missing periods first")
    return arr


def period_pnl(
    positions: ArrayLike, returns: ArrayLike, *, cost: float = 0.0
) -> NDArray[np.float64]:
    """Per-period P&L net of costs: pnl_t = w_t r_t - c |w_t - w_{t-1}|, with w_{-1} = 0.

    Parameters
    ----------
    positions : array_like, shape (n,)
        Position held over period t.
    returns : array_like, shape (n,)
        Simple return of period t.
    cost : float, default 0.0
        Cost per unit of traded notional (>= 0).

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    w, r = _series(positions, "positions"), _series(returns, "returns")
    if w.shape != r.shape:
        raise TapecastError(f"positions {w.shape} and returns {r.shape} must have equal length")
    if not (math.isfinite(cost) and cost >= 0.0):
        raise TapecastError(f"cost must be a finite number >= 0, got {cost}")
    traded = np.abs(np.diff(w, prepend=0.0))  # (n,) |w_t - w_{t-1}|, w_{-1} = 0
    return w * r - cost * traded


def _sharpe(pnl: NDArray[np.float64], periods_per_year: float) -> float:
    if pnl.size < 2:
        return math.nan
    sd = float(np.std(pnl, ddof=1))
    return float(pnl.mean() / sd * math.sqrt(periods_per_year)) if sd > 0 else math.nan


def _sortino(pnl: NDArray[np.float64], periods_per_year: float) -> float:
    if pnl.size == 0:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(pnl, 0.0) ** 2)))  # target 0, all periods
    return float(pnl.mean() / downside * math.sqrt(periods_per_year)) if downside > 0 else math.nan


def _max_drawdown(cumulative: NDArray[np.float64]) -> float:
    if cumulative.size == 0:
        return math.nan
    peak = np.maximum.accumulate(np.maximum(cumulative, 0.0))  # (n,) running peak incl. start 0
    return float(np.max(peak - cumulative))


def _max_drawdown_relative(cumulative: NDArray[np.float64], initial_equity: float) -> float:
    if cumulative.size == 0:
        return math.nan
    equity = initial_equity + cumulative  # (n,)
    peak = np.maximum.accumulate(np.maximum(equity, initial_equity))
    return float(np.max((peak - equity) / peak))


def _win_rate(pnl: NDArray[np.float64]) -> float:
    active = pnl[pnl != 0.0]
    return float(np.mean(active > 0.0)) if active.size else math.nan


def _profit_factor(pnl: NDArray[np.float64]) -> float:
    gross_loss = float(-pnl[pnl < 0.0].sum())
    return float(pnl[pnl > 0.0].sum()) / gross_loss if gross_loss > 0 else math.nan


def trading_metrics(
    positions: ArrayLike,
    returns: ArrayLike,
    *,
    cost: float = 0.0,
    periods_per_year: float = 252,
    initial_equity: float | None = None,
) -> dict[str, float]:
    """Performance of a position series over a return series (formulas in the module docstring).

    Parameters
    ----------
    positions : array_like, shape (n,)
        Position held over period t (decided before period t starts).
    returns : array_like, shape (n,)
        Simple return of period t.
    cost : float, default 0.0
        Cost per unit of traded notional, charged on |w_t - w_{t-1}| (w_{-1} = 0).
    periods_per_year : float, default 252
        Annualization factor for Sharpe and Sortino.
    initial_equity : float, optional
        Starting equity in the units of the P&L (1.0 = notional); enables
        ``max_drawdown_relative`` (NaN otherwise).

    Returns
    -------
    dict of str to float
        sharpe, sortino, max_drawdown, max_drawdown_relative, win_rate, profit_factor,
        turnover, total_return, n_periods. Undefined values are NaN.
    """
    if not periods_per_year > 0:
        raise TapecastError(f"periods_per_year must be > 0, got {periods_per_year}")
    if initial_equity is not None and not initial_equity > 0:
        raise TapecastError(f"initial_equity must be > 0, got {initial_equity}")
    pnl = period_pnl(positions, returns, cost=cost)  # (n,)
    w = np.asarray(positions, dtype=np.float64)
    cumulative = np.cumsum(pnl)  # (n,) additive P&L curve
    relative = (
        math.nan if initial_equity is None else _max_drawdown_relative(cumulative, initial_equity)
    )
    return {
        "sharpe": _sharpe(pnl, periods_per_year),
        "sortino": _sortino(pnl, periods_per_year),
        "max_drawdown": _max_drawdown(cumulative),
        "max_drawdown_relative": relative,
        "win_rate": _win_rate(pnl),
        "profit_factor": _profit_factor(pnl),
        "turnover": float(np.mean(np.abs(np.diff(w, prepend=0.0)))) if w.size else math.nan,
        "total_return": float(cumulative[-1]) if pnl.size else math.nan,
        "n_periods": int(pnl.size),
    }

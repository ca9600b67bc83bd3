"""The price lattice: where a 30-second return can actually land.

A trade price moves in ticks and a quote mid in half-ticks, so P(t+H) lies on the lattice
``P_t + k·δ`` (k an integer) with δ = ``tick_size`` for a trade-priced window and ``tick_size / 2``
for a mid-priced one. The return r = log(P(t+H) / P_t) therefore takes the discrete values
``log(1 + k·δ / P_t)``; k = 0, an unchanged price, is the most frequent of them (11-33 % of the
30-s mid returns of SPY and AIG, most of them on a larger-tick stock).

A continuous forecast (a Gaussian, a diffusion model's samples) puts no mass on those values.
:func:`snap_returns` maps each sampled return to the nearest lattice price,

    r ↦ log(1 + round((e^r - 1)·P_t / δ)·δ / P_t),

which is the price a continuous sample would be read as by the market: the forecast becomes a
distribution over the lattice with the mass of each lattice cell ``[k - ½, k + ½)·δ``. A
forecaster whose continuous part is right in distribution is then right on the lattice too.

Symbols: B origins, P_t the origin price, δ the lattice step, k the number of steps moved.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError

__all__ = ["lattice_step", "snap_returns"]


def lattice_step(price_source: ArrayLike, tick_size: float) -> NDArray[np.float64]:
    """δ per origin: ``tick_size / 2`` where the price is the quote mid, ``tick_size`` where it is
    the trade price.

    Parameters
    ----------
    price_source : array_like of str, shape (B,)
        ``"mid"`` or ``"trade"`` (a :class:`~tapecast.features.price_dataset.PriceDataset`
        batch's ``price_source`` extra).
    tick_size : float

    Returns
    -------
    ndarray, float64, shape (B,)
    """
    source = np.asarray(price_source).astype(str)
    bad = ~np.isin(source, ("mid", "trade"))
    if bad.any():
        raise TapecastError(f"price_source must be 'mid' or 'trade', got "
                            f"{sorted(set(source[bad].tolist()))[:3]}")
    if not tick_size > 0:
        raise TapecastError(f"tick_size must be > 0, got {tick_size}")
    return np.where(source == "mid", tick_size / 2, tick_size).astype(np.float64)


def snap_returns(returns: ArrayLike, origin_price: ArrayLike, step: ArrayLike
                 ) -> NDArray[np.float64]:
    """Log returns moved to the nearest lattice price (module docstring).

    Parameters
    ----------
    returns : array_like, float, shape (B, ...)
        Sampled log returns of B origins (any trailing shape: samples, channels, horizon).
    origin_price : array_like, float, shape (B,)
        P_t per origin (> 0).
    step : array_like, float, shape (B,)
        δ per origin (> 0), :func:`lattice_step`.

    Returns
    -------
    ndarray, float64, same shape as ``returns``
        ``log(1 + k·δ / P_t)`` with k the nearest whole number of steps; NaN stays NaN, and a
        sample below the lowest lattice price (k·δ <= -P_t) becomes the lowest positive one.
    """
    r = np.asarray(returns, dtype=np.float64)
    price = np.asarray(origin_price, dtype=np.float64)
    delta = np.asarray(step, dtype=np.float64)
    if price.shape != (r.shape[0],) or delta.shape != price.shape:
        raise TapecastError(f"origin_price and step must be ({r.shape[0]},) (one per origin), "
                            f"got {price.shape} and {delta.shape}")
    if not (np.all(price > 0) and np.all(delta > 0)):
        raise TapecastError("origin_price and step must be positive")
    shape = (-1,) + (1,) * (r.ndim - 1)
    p, d = price.reshape(shape), delta.reshape(shape)
    k = np.rint(np.expm1(r) * p / d)
    k = np.maximum(k, np.ceil(-p / d) + 1)  # a positive price
    out: NDArray[np.float64] = np.log1p(k * d / p)
    return out

"""Prices of the synthetic market: a propagator mid price with square-root impact, on a tick grid.

The mid follows the propagator model of Bouchaud, Gefen, Potters & Wyart (2004), "Fluctuations
and response in financial markets: the subtle nature of 'random' price changes", Quantitative
Finance 4(2), 176-190: each trade's impact decays as a power law, which compensates the long
memory of the signs so that the price stays close to diffusive when β ≈ (1 - γ)/2. They weight
each trade by ln(volume); here the weight is (v / v̄)^δ, a square-root impact in size. In ticks::

    m_t = m_0 + Σ_{s<t} G(t - s) ε_s (v_s / v̄)^δ σ_s + Σ_{s<t} η_s σ_s
    G(ℓ) = Γ0 ((ℓ0 + 1) / (ℓ0 + ℓ))^β

Legend: m_t the mid before trade t, ε_s the sign, v_s the size and v̄ the mean size, δ the size
exponent (1/2: square-root impact), σ_s a slowly varying volatility factor (volatility
clustering), η_s iid N(0, noise²) noise, Γ0 the impact of one average trade, ℓ0 and β the
propagator's shape. The sum over s is one FFT convolution (``scipy.signal.fftconvolve``).
Quotes sit around the mid with a spread of 1 tick (2 ticks with a small, volatility-dependent
probability); a buy trades at the ask, a sell at the bid.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import signal  # type: ignore[import-untyped]

VOL_HALF_LIVES = (1_000.0, 10_000.0, 100_000.0)  # trades; the three AR(1) components of log σ
VOL_SHARES = (0.2, 0.3, 0.5)  # their shares of Var log σ (the slow ones dominate, as in SPY)


def log_ar1(rng: np.random.Generator, n: int, sd: float, half_life: float
            ) -> NDArray[np.float64]:
    """A stationary Gaussian AR(1) in trade time: h_t = φ h_{t-1} + e_t, φ = 2^{-1/half_life}.

    Returns
    -------
    ndarray of float64, shape (n,)
        Mean 0, std ``sd`` (started in the stationary law).
    """
    phi = 0.5 ** (1.0 / half_life)
    shocks = rng.standard_normal(n) * sd * math.sqrt(1.0 - phi * phi)  # (n,)
    shocks[0] = rng.standard_normal() * sd
    out: NDArray[np.float64] = signal.lfilter([1.0], [1.0, -phi], shocks)
    return out


def volatility_factor(rng: np.random.Generator, n: int, vol_sd: float) -> NDArray[np.float64]:
    """σ_t = exp(h_t - Var h / 2), h_t a sum of three stationary AR(1)s in trade time.

    Component j has variance ``VOL_SHARES[j] * vol_sd²`` and half-life ``VOL_HALF_LIVES[j]``;
    the sum gives an autocorrelation of |returns| that decays slowly over three decades of lags
    (a cheap stand-in for long memory in volatility).

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Number of trades.
    vol_sd : float
        Std of h_t.

    Returns
    -------
    ndarray of float64, shape (n,)
        Positive, mean about 1.
    """
    if vol_sd == 0.0:
        return np.ones(n)
    h = np.zeros(n)
    for half_life, share in zip(VOL_HALF_LIVES, VOL_SHARES, strict=True):
        h += log_ar1(rng, n, vol_sd * math.sqrt(share), half_life)
    return np.exp(h - 0.5 * vol_sd * vol_sd)


def propagator_kernel(n: int, impact: float, l0: float, beta: float) -> NDArray[np.float64]:
    """G(ℓ) for ℓ = 1..n (index ℓ - 1): Γ0 ((ℓ0 + 1) / (ℓ0 + ℓ))^β.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    lags = np.arange(1, n + 1, dtype=np.float64)  # (n,)
    return impact * ((l0 + 1.0) / (l0 + lags)) ** beta


def mid_path(signs: NDArray[np.int8], sizes: NDArray[np.float64], sigma: NDArray[np.float64],
             noise: NDArray[np.float64], *, impact: float, l0: float, beta: float,
             size_exponent: float) -> NDArray[np.float64]:
    """The propagator mid m_t - m_0 in ticks, before each trade t.

    Parameters
    ----------
    signs : ndarray of int8, shape (n,)
        ε_t.
    sizes : ndarray of float64, shape (n,)
        v_t.
    sigma : ndarray of float64, shape (n,)
        σ_t, the volatility factor.
    noise : ndarray of float64, shape (n,)
        η_t, already scaled to ticks (overnight jumps may be added here).
    impact, l0, beta : float
        Γ0 (ticks), ℓ0, β of :func:`propagator_kernel`.
    size_exponent : float
        δ.

    Returns
    -------
    ndarray of float64, shape (n,)
        m_t - m_0 (0 at t = 0: nothing has traded yet).
    """
    n = signs.shape[0]
    drive = signs * (sizes / sizes.mean()) ** size_exponent * sigma  # (n,) ε_s f(v_s) σ_s
    impact_sum = signal.fftconvolve(drive, propagator_kernel(n, impact, l0, beta))[:n]  # (n,)
    mid = np.empty(n)
    mid[0] = 0.0
    mid[1:] = impact_sum[: n - 1] + np.cumsum(noise * sigma)[: n - 1]  # only s < t enters m_t
    return mid


def quotes_around(mid_ticks: NDArray[np.float64], spread_ticks: NDArray[np.int64]
                  ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Bid and ask in whole ticks around a mid: bid = floor(m - (s - 1)/2), ask = bid + s.

    Parameters
    ----------
    mid_ticks : ndarray of float64, shape (n,)
        Mid price in ticks.
    spread_ticks : ndarray of int64, shape (n,)
        Spread s >= 1 in ticks.

    Returns
    -------
    bid, ask : ndarray of int64, shape (n,)
        Quote prices in ticks; bid < mid-ish < ask, ask - bid = s.
    """
    bid = np.floor(mid_ticks - 0.5 * (spread_ticks - 1)).astype(np.int64)  # (n,)
    return bid, bid + spread_ticks

"""Order flow of the synthetic market: metaorder signs with long memory, heavy-tailed sizes.

Signs follow Lillo, Mike & Farmer (2005), "Theory for long memory in supply and demand",
Phys. Rev. E 71, 066122: N metaorders are active at any time; each has a random sign and a
length L (child trades) with a power-law tail P(L > l) ~ l^{-α}; each trade is the next child of
one active metaorder picked at random, and a finished metaorder is replaced by a fresh one. The
sign autocorrelation then decays as C(τ) ~ τ^{-(α-1)} (their main result). Two additions:
a share of trades carries an independent random sign (noise traders), and with probability
``burst_prob`` a trade is another print of the previous trade's order (one aggressive order
printing against several resting orders), with the same sign, microseconds later.

Legend: ε_t ∈ {+1, -1} the aggressor sign of trade t, α the metaorder tail exponent, N the number
of active metaorders, q the noise share, b the burst probability (one value, or one per trade:
:mod:`tapecast.sim.market` moves it with a fast liquidity factor).
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray


@numba.njit(cache=True)
def _metaorder_signs(u, fresh, n_active, alpha, max_len, noise, burst):  # type: ignore[no-untyped-def]
    # u: (n, 3) uniforms per trade (burst?, noise?, pick); fresh: (n + N, 2) per metaorder (sign, L)
    n = u.shape[0]
    signs = np.empty(n, dtype=np.int8)
    is_burst = np.zeros(n, dtype=np.bool_)
    slot_sign = np.empty(n_active, dtype=np.int8)
    slot_left = np.empty(n_active, dtype=np.int64)
    n_meta = 0
    for k in range(n_active):
        slot_sign[k] = 1 if fresh[n_meta, 0] < 0.5 else -1
        # P(L > l) = l^{-α}, L >= 1, from a uniform on (0, 1]
        slot_left[k] = min(max_len, int(fresh[n_meta, 1] ** (-1.0 / alpha)))
        n_meta += 1
    for t in range(n):
        if t > 0 and u[t, 0] < burst[t]:
            # another print of the previous trade's child order: same sign, no new child
            signs[t] = signs[t - 1]
            is_burst[t] = True
        elif u[t, 1] < noise:
            # an independent sign: reuse the pick uniform, which this branch does not need
            signs[t] = 1 if u[t, 2] < 0.5 else -1
        else:
            k = min(n_active - 1, int(u[t, 2] * n_active))
            signs[t] = slot_sign[k]
            slot_left[k] -= 1
            if slot_left[k] <= 0:
                slot_sign[k] = 1 if fresh[n_meta, 0] < 0.5 else -1
                slot_left[k] = min(max_len, int(fresh[n_meta, 1] ** (-1.0 / alpha)))
                n_meta += 1
    return signs, is_burst, n_meta


def metaorder_signs(rng: np.random.Generator, n: int, *, n_active: int, alpha: float,
                    max_length: int, noise: float, burst: float | NDArray[np.float64]
                    ) -> tuple[NDArray[np.int8], NDArray[np.bool_], int]:
    """Aggressor signs from concurrent power-law metaorders (Lillo, Mike & Farmer 2005).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws every uniform the sequential (numba) loop consumes.
    n : int
        Number of trades.
    n_active : int
        N, metaorders active at once.
    alpha : float
        α, tail exponent of the metaorder length (P(L > l) = l^{-α}, L >= 1).
    max_length : int
        Cap on a metaorder's length.
    noise : float
        q, share of trades with an independent sign.
    burst : float or ndarray of float64, shape (n,)
        b, probability that a trade is another print of the previous trade's order (one value,
        or one per trade).

    Returns
    -------
    signs : ndarray of int8, shape (n,)
        ε_t ∈ {+1, -1}.
    is_burst : ndarray of bool, shape (n,)
        True where trade t is another print of trade t-1's order (it prints microseconds later).
    n_metaorders : int
        Metaorders started (including the N initial ones).
    """
    u = rng.random((n, 3))  # (n, 3)
    fresh = 1.0 - rng.random((n + n_active, 2))  # (n + N, 2) in (0, 1]; at most one per trade
    b = np.ascontiguousarray(np.broadcast_to(np.asarray(burst, dtype=np.float64), (n,)))
    signs, is_burst, n_meta = _metaorder_signs(u, fresh, n_active, alpha, max_length, noise, b)
    return signs, is_burst, int(n_meta)


def trade_sizes(rng: np.random.Generator, n: int, *, lot: int, tail_index: float,
                scale: NDArray[np.float64]) -> NDArray[np.float64]:
    """Heavy-tailed trade sizes in whole lots: ``lot * max(1, floor(x_t U^{-1/a}))``.

    With U uniform on (0, 1] and a the tail index, the lot count has a Pareto tail,
    P(lots >= k) = (k / x_t)^{-a} for k >= x_t (a ≈ 1.6 matches SPY's Hill estimate); x_t is a
    per-trade scale (busy, volatile periods trade larger).

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Number of trades.
    lot : int
        Shares per lot.
    tail_index : float
        a, the Pareto tail index of the lot count.
    scale : ndarray of float64, shape (n,)
        x_t > 0, the Pareto scale in lots.

    Returns
    -------
    ndarray of float64, shape (n,)
        Sizes (positive multiples of ``lot``), capped at 10,000 lots.
    """
    u = 1.0 - rng.random(n)  # (n,) in (0, 1]
    lots = np.clip(np.floor(scale * u ** (-1.0 / tail_index)), 1.0, 10_000.0)  # (n,)
    return lots * float(lot)

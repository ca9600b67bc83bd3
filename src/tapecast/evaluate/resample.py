"""A paired block bootstrap of any statistic of time-ordered series: estimate, interval, p-value.

The resampling is ``arch``'s :class:`~arch.bootstrap.StationaryBootstrap` (Politis & Romano
1994): blocks of geometric length with mean ``block`` keep the serial dependence of P&L and
anomaly scores that an i.i.d. bootstrap would destroy. Every series passed is resampled with the
same indices, so a statistic comparing two of them (a difference of mean P&L, of AUROC) keeps
their pairing. The mean block length defaults to Politis & White's (2004; Patton et al. 2009)
estimate for the first series (``arch.bootstrap.optimal_block_length``), at least 1.

**p-value.** One-sided, for H0: θ ≤ 0 against θ > 0, from the bootstrap distribution re-centred
at 0: ``p = (1 + #{θ*_b − θ̂ ≥ θ̂}) / (B + 1)`` (Davison & Hinkley 1997, §4.4; the +1 keeps a
p of 0 from being reported).

Usage::

    res = paired_bootstrap(lambda a, b: a.mean() - b.mean(), pnl_real, pnl_naive, seed=0)
    res.estimate, res.low, res.high, res.p_value

Legend: θ̂ the statistic on the data, θ*_b on bootstrap draw b, B = ``n_boot``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError

__all__ = ["BootstrapResult", "paired_bootstrap"]


@dataclass(frozen=True)
class BootstrapResult:
    """θ̂, its percentile interval at ``level``, the one-sided p-value of θ ≤ 0, and how:
    ``n_boot`` draws asked, ``n_valid`` of them with a finite statistic (a draw where the
    statistic is undefined — an AUROC of a resample without a positive — is left out)."""

    estimate: float
    low: float
    high: float
    p_value: float
    block: float
    n_boot: int
    level: float
    n_valid: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


def paired_bootstrap(statistic: Callable[..., float], *series: ArrayLike,
                     block: float | None = None, n_boot: int = 2000, level: float = 0.95,
                     seed: int = 0) -> BootstrapResult:
    """Stationary block bootstrap of ``statistic(*series)``, all series resampled together.

    Parameters
    ----------
    statistic : callable
        Takes the series (each ndarray of shape (n,) or (n, k)) and returns a float.
    *series : array_like, shape (n,) or (n, k)
        Time-ordered, equal length n >= 2.
    block : float, optional
        Mean block length; default the Politis-White estimate for the first series.
    n_boot : int
    level : float
        Of the percentile interval.
    seed : int

    Returns
    -------
    BootstrapResult
    """
    from arch.bootstrap import StationaryBootstrap, optimal_block_length

    if not series:
        raise TapecastError("paired_bootstrap: needs at least one series")
    arrays = [np.asarray(s, dtype=np.float64) for s in series]
    n = len(arrays[0])
    if n < 2 or any(len(a) != n for a in arrays):
        raise TapecastError(f"paired_bootstrap: series must have one equal length >= 2, got "
                            f"{[len(a) for a in arrays]}")
    if n_boot < 1 or not 0 < level < 1:
        raise TapecastError(f"paired_bootstrap: n_boot >= 1 and 0 < level < 1, got {n_boot}, "
                            f"{level}")
    if block is None:
        first = arrays[0] if arrays[0].ndim == 1 else arrays[0][:, 0]
        block = (float(optimal_block_length(first)["stationary"].iloc[0])
                 if np.ptp(first) > 0 else 1.0)
        block = max(1.0, block) if math.isfinite(block) else 1.0
    estimate = float(statistic(*arrays))
    boot = StationaryBootstrap(block, *arrays,  # type: ignore[arg-type]  # mean length: float
                               seed=np.random.default_rng(seed))
    draws: NDArray[np.float64] = np.array(
        [float(statistic(*data)) for data, _ in boot.bootstrap(n_boot)], dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if not draws.size or not math.isfinite(estimate):
        return BootstrapResult(estimate, math.nan, math.nan, math.nan, block, n_boot, level,
                               int(draws.size))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    p = (1.0 + np.sum(draws - estimate >= estimate)) / (draws.size + 1.0)
    return BootstrapResult(estimate, float(low), float(high), float(p), block, n_boot, level,
                           int(draws.size))

"""Injected regimes at unchanged volatility: known segments to test state anomaly detectors on.

A volatility burst is caught by a threshold on one feature; the score model of market states
(issue 16) must find changes that no single feature shows. :func:`inject_regimes` rewrites
chosen segments of a bar series (the built-in market's, :func:`minute_bars`) so that its
*dependence* changes while each bar's return and volume keep their marginal law:

``autocorrelation`` (φ)
    Within the segment the returns become an AR(1) filter of the original ones,
    ``r'_t − μ = φ (r'_{t−1} − μ) + √(1 − φ²) (r_t − μ)``, started at ``r'_a = r_a``: the
    stationary variance of ``r'`` is that of ``r`` (for uncorrelated ``r``), so the bar
    volatility is unchanged while multi-bar returns trend (φ > 0) or revert (φ < 0).
``coupling`` (ρ)
    Within the segment the volumes are re-assigned to the bars (a permutation: the volume
    distribution is unchanged) so that their ranks follow the ranks of
    ``ρ · rank(r) + (1 − ρ) · noise``: with ρ > 0 up-bars carry the volume, with ρ < 0
    down-bars do. Returns are untouched.

Prices are rebuilt from the new returns: ``C'_t = C'_{t−1} (1 + r'_t)``, and open, high and
low keep their ratio to the close of their bar; bars after a segment keep their own returns
from the new level. Labels mark the segment's bars.

Usage::

    bars = minute_bars(n_sessions=40, seed=0)
    out = inject_regimes(bars, [Regime("autocorrelation", 0.8, start=9000, length=60)])
    out.bars, out.labels  # (n,) bool

Legend: a segment's first bar a, r_t = C_t / C_{t−1} − 1, μ the mean return of the segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError

__all__ = ["KINDS", "Injected", "Regime", "inject_regimes", "minute_bars", "random_regimes"]

KINDS: Final = ("autocorrelation", "coupling")


@dataclass(frozen=True)
class Regime:
    """One injected segment: ``kind`` (:data:`KINDS`), its strength φ or ρ in (-1, 1), the first
    bar ``start`` (row of the bar table) and ``length`` bars."""

    kind: str
    strength: float
    start: int
    length: int

    def check(self, n: int) -> None:
        """One-line errors for an unknown kind, a strength outside (-1, 1) or a segment off the
        series (a segment needs a bar before it)."""
        if self.kind not in KINDS:
            raise TapecastError(f"regime kind must be one of {', '.join(KINDS)}, got "
                                f"{self.kind!r}")
        if not -1.0 < self.strength < 1.0:
            raise TapecastError(f"regime strength must be in (-1, 1), got {self.strength}")
        if self.length < 2 or self.start < 1 or self.start + self.length > n:
            raise TapecastError(f"regime segment [{self.start}, {self.start + self.length}) "
                                f"must have >= 2 bars and lie in [1, {n})")


@dataclass(frozen=True)
class Injected:
    """Bars with injected regimes, the (n,) bool labels and the regimes."""

    bars: pl.DataFrame
    labels: NDArray[np.bool_]
    regimes: tuple[Regime, ...]


def minute_bars(n_sessions: int = 40, trades_per_session: int = 40_000, seed: int = 0
                ) -> pl.DataFrame:
    """1-minute OHLCV bars of the built-in market (:func:`tapecast.sim.generate_market`, its
    1-second bars by :func:`tapecast.sim.bars.market_bars` summed per minute).

    Returns
    -------
    pl.DataFrame
        instrument, ts (minute start), open, high, low, close, volume, bar_length; ~390 rows a
        session, time order.
    """
    from tapecast.sim import SyntheticMarketConfig, generate_market
    from tapecast.sim.bars import market_bars

    config = SyntheticMarketConfig(n_sessions=n_sessions, trades_per_session=trades_per_session)
    seconds = market_bars(generate_market(config, seed=seed)).bars
    assert seconds is not None
    return (seconds.sort("ts")
            .group_by_dynamic("ts", every="1m", group_by="instrument")
            .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(),
                 pl.col("close").last(), pl.col("volume").sum())
            .with_columns(pl.duration(minutes=1, time_unit="ns").alias("bar_length"))
            .sort("ts"))


def random_regimes(n: int, *, kind: str, strength: float, first: int, count: int,
                   length: int, seed: int = 0) -> list[Regime]:
    """``count`` non-overlapping segments of ``length`` bars at random places in
    ``[first, n)``, at least ``length`` bars apart (each is followed by normal bars).

    Raises
    ------
    TapecastError
        When ``count`` segments and their gaps do not fit.
    """
    room = n - first - 2 * length * count
    if room < 0:
        raise TapecastError(f"{count} segments of {length} bars (and equal gaps) do not fit in "
                            f"bars [{first}, {n})")
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, room + 1, size=count))  # (count,) free bars before each
    return [Regime(kind, strength, first + int(c) + 2 * length * i, length)
            for i, c in enumerate(cuts)]


def _autocorrelated(r: NDArray[np.float64], phi: float) -> NDArray[np.float64]:
    mu = float(r.mean())
    out = np.empty_like(r)
    out[0] = r[0]
    scale = np.sqrt(1.0 - phi * phi)
    for t in range(1, len(r)):
        out[t] = mu + phi * (out[t - 1] - mu) + scale * (r[t] - mu)
    return out


def _coupled(volume: NDArray[np.float64], r: NDArray[np.float64], rho: float,
             rng: np.random.Generator) -> NDArray[np.float64]:
    m = len(r)
    ranks = np.argsort(np.argsort(r)) / max(m - 1, 1)  # (m,) in [0, 1]
    key = rho * ranks + (1.0 - abs(rho)) * rng.random(m)  # (m,) ρ < 0 reverses the ranks
    out = np.empty_like(volume)
    out[np.argsort(key)] = np.sort(volume)
    return out


def inject_regimes(bars: pl.DataFrame, regimes: Sequence[Regime], seed: int = 0) -> Injected:
    """Rewrite ``bars`` (one instrument, time order; open, high, low, close, volume) in the
    segments of ``regimes`` (module docstring).

    Parameters
    ----------
    bars : pl.DataFrame
        n bars of one instrument.
    regimes : sequence of Regime
        Non-overlapping segments.
    seed : int
        Of the coupling's noise.

    Returns
    -------
    Injected
    """
    if bars["instrument"].n_unique() != 1:
        raise TapecastError("inject_regimes: bars of one instrument, got "
                            f"{bars['instrument'].n_unique()}")
    n = bars.height
    close = bars["close"].to_numpy().astype(np.float64)
    volume = bars["volume"].to_numpy().astype(np.float64).copy()
    r = np.empty(n)
    r[0] = 0.0
    r[1:] = close[1:] / close[:-1] - 1.0  # (n,)
    r_old = r.copy()
    labels = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(seed)
    for regime in sorted(regimes, key=lambda g: g.start):
        regime.check(n)
        seg = slice(regime.start, regime.start + regime.length)
        if labels[seg].any():
            raise TapecastError(f"regime segments overlap at bar {regime.start}")
        labels[seg] = True
        if regime.kind == "autocorrelation":
            r[seg] = _autocorrelated(r[seg], regime.strength)
        else:
            volume[seg] = _coupled(volume[seg], r[seg], regime.strength, rng)
    ratio = np.cumprod((1.0 + r) / (1.0 + r_old))  # (n,) exactly 1 before the first change
    new_close = close * ratio
    out = bars.with_columns(
        (pl.col(name) * pl.Series(ratio)).alias(name) for name in ("open", "high", "low")
    ).with_columns(pl.Series("close", new_close), pl.Series("volume", volume))
    return Injected(out, labels, tuple(regimes))

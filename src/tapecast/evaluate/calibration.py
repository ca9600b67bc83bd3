"""Calibration of sample forecasts: randomized PIT, rank-based coverage, PIT histograms.

Coverage is computed from the realized value's randomized rank among the S samples, not from the
empirical quantiles of the samples: if the realized value and the S samples are exchangeable draws
of one law (a perfectly calibrated forecast), its rank among the S + 1 values is uniform on
{0, ..., S}, so the randomized PIT is exactly Uniform(0, 1) and the central-interval coverage built
on it is exactly nominal for any S. The interval between the empirical (1 - level)/2 and
(1 + level)/2 quantiles covers less: about 0.845 at S = 32 for a 90 % interval with linear
interpolation (Hyndman & Fan type 7), because the interval between the order statistics of ranks
k_lo < k_hi covers with probability (k_hi - k_lo)/(S + 1) only. It is reported beside the rank
coverage, with its width. This is the rank histogram of ensemble verification (Hamill 2001)
turned into coverage. See ``docs/evaluation-scores.md``.

Array layout: ``samples`` (B, S, K, H), ``realized`` / ``pit`` / ``mask`` (B, K, H).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats  # type: ignore[import-untyped]

from tapecast.core.errors import TapecastError
from tapecast.evaluate.scores import as_score_inputs

DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
ReliabilityKind = Literal["quantile", "central"]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise TapecastError(f"interval level must lie in (0, 1), got {level}")


def randomized_pit(
    samples: ArrayLike, realized: ArrayLike, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Randomized probability integral transform of each realized value among its samples.

    With r = #{samples < y} and e = #{samples == y}, PIT = (r + U (e + 1)) / (S + 1),
    U ~ Uniform(0, 1]: the realized value's rank among the S + 1 values with ties broken at
    random, spread uniformly over its rank cell (the randomized PIT of discrete forecasts,
    Czado, Gneiting & Held 2009, sec. 2; the rank histogram of Hamill 2001 made continuous).
    When y and the samples are exchangeable the PIT is exactly Uniform(0, 1], for any S and
    also with ties. Ties are judged at the samples' precision: with float32 samples the realized
    value is rounded to float32 first (a lattice value computed two ways differs in its last
    float64 bits, and would otherwise never tie).

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
    rng : numpy.random.Generator
        Source of U; pass a seeded generator for reproducible results.

    Returns
    -------
    ndarray of float64, shape (B, K, H)
        Values in (0, 1]; NaN where the realized value is NaN.
    """
    precision = np.asarray(samples).dtype
    x, y, _ = as_score_inputs(samples, realized)
    if np.issubdtype(precision, np.floating) and np.finfo(precision).bits < 64:
        # ties are judged at the samples' precision: float32 samples of a lattice value equal
        # the realized value only once it is rounded the same way
        y = y.astype(precision).astype(np.float64)
    s = x.shape[1]
    below = (x < y[:, None]).sum(axis=1)  # (B, K, H) r
    ties = (x == y[:, None]).sum(axis=1)  # (B, K, H) e
    u = 1.0 - rng.random(y.shape)  # (B, K, H) in (0, 1]
    pit = (below + u * (ties + 1)) / (s + 1)
    return np.where(np.isnan(y), np.nan, pit)


def rank_coverage(pit: ArrayLike, level: float) -> NDArray[np.bool_]:
    """Whether the realized value lies in the central ``level`` interval, from its PIT.

    Covered iff (1 - level)/2 < PIT <= (1 + level)/2; for a Uniform(0, 1] PIT the probability
    is exactly ``level``.

    Parameters
    ----------
    pit : array_like, shape (B, K, H)
        From :func:`randomized_pit`.
    level : float
        Nominal coverage in (0, 1), e.g. 0.9.

    Returns
    -------
    ndarray of bool, shape (B, K, H)
        False where the PIT is NaN (mask those entries when aggregating).
    """
    _check_level(level)
    p = np.asarray(pit, dtype=np.float64)
    return ((1 - level) / 2 < p) & (p <= (1 + level) / 2)


def quantile_interval_coverage(
    samples: ArrayLike, realized: ArrayLike, level: float
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Coverage and width of the interval between the empirical central quantiles.

    The bounds are the linear-interpolation empirical quantiles (1 - level)/2 and (1 + level)/2 of
    the samples, as ``Samples.interval``; covered iff lo <= y <= hi. Below nominal for small S
    even for a perfect forecast (module docstring).

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
    level : float
        Nominal coverage in (0, 1).

    Returns
    -------
    covered : ndarray of bool, shape (B, K, H)
        False where the realized value is NaN.
    width : ndarray of float64, shape (B, K, H)
        hi - lo, in the units of the channel.
    """
    _check_level(level)
    x, y, _ = as_score_inputs(samples, realized)
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2], axis=1)  # 2 x (B, K, H)
    return (lo <= y) & (y <= hi), hi - lo


def _scored(pit: ArrayLike, mask: ArrayLike) -> NDArray[np.float64]:
    """The finite PIT values where the mask is True, flattened."""
    p = np.asarray(pit, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if m.shape != p.shape:
        raise TapecastError(f"mask must have the shape of pit {p.shape}, got {m.shape}")
    return p[m & np.isfinite(p)]


def pit_histogram(pit: ArrayLike, mask: ArrayLike, bins: int = 10) -> NDArray[np.int64]:
    """Counts of the scored PIT values in ``bins`` equal bins of [0, 1].

    Parameters
    ----------
    pit : array_like, shape (B, K, H)
    mask : array_like of bool, shape (B, K, H)
        True where the entry is scored; NaN PITs are skipped too.
    bins : int
        Number of equal-width bins.

    Returns
    -------
    ndarray of int64, shape (bins,)
        Counts; a flat histogram means calibration, a U shape over-confidence, a hump
        under-confidence, a slope bias.
    """
    if bins < 1:
        raise TapecastError(f"a PIT histogram needs at least 1 bin, got {bins}")
    counts, _ = np.histogram(_scored(pit, mask), bins=bins, range=(0.0, 1.0))
    return counts.astype(np.int64)


def pit_uniformity(pit: ArrayLike, mask: ArrayLike, bins: int = 10) -> dict[str, float]:
    """Tests of the scored PIT values against Uniform(0, 1).

    A chi-square test of the ``bins``-bin histogram against equal counts (``bins - 1`` degrees of
    freedom) and a Kolmogorov–Smirnov test (``scipy.stats``). Both assume independent PIT values;
    overlapping windows, neighbouring horizon steps and correlated channels are not independent,
    so the p-values overstate the evidence: read them as descriptive, with the statistics.

    Parameters
    ----------
    pit : array_like, shape (B, K, H)
    mask : array_like of bool, shape (B, K, H)
    bins : int

    Returns
    -------
    dict of str to float
        ``n`` (scored values), ``chi2``, ``chi2_pvalue``, ``ks``, ``ks_pvalue`` and
        ``max_bin_deviation`` (largest |bin frequency - 1/bins|); NaN where n == 0.
    """
    values = _scored(pit, mask)
    n = values.size
    nan = float("nan")
    if n == 0:
        keys = ("chi2", "chi2_pvalue", "ks", "ks_pvalue", "max_bin_deviation")
        return {"n": 0.0, **dict.fromkeys(keys, nan)}
    counts = pit_histogram(pit, mask, bins)
    chi2 = stats.chisquare(counts)
    ks = stats.kstest(values, "uniform")
    return {
        "n": float(n),
        "chi2": float(chi2.statistic),
        "chi2_pvalue": float(chi2.pvalue),
        "ks": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "max_bin_deviation": float(np.max(np.abs(counts / n - 1.0 / bins))),
    }


def reliability(
    pit: ArrayLike,
    mask: ArrayLike,
    levels: Sequence[float] | ArrayLike = DEFAULT_LEVELS,
    *,
    kind: ReliabilityKind = "quantile",
) -> NDArray[np.float64]:
    """Observed frequency per nominal level, for a reliability diagram.

    ``kind="quantile"``: the share of scored entries with PIT <= τ, i.e. how often the realized
    value falls at or below the forecast τ-quantile (ideal: τ). ``kind="central"``: the share
    covered by the central interval of that level (:func:`rank_coverage`; ideal: the level).

    Parameters
    ----------
    pit : array_like, shape (B, K, H)
    mask : array_like of bool, shape (B, K, H)
    levels : sequence of float, shape (L,)
        Nominal levels in (0, 1).
    kind : {"quantile", "central"}

    Returns
    -------
    ndarray of float64, shape (L,)
        Observed frequencies; NaN when nothing is scored.
    """
    values = _scored(pit, mask)
    tau = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    if tau.ndim != 1 or np.any((tau <= 0) | (tau >= 1)):
        raise TapecastError(f"reliability levels must be a 1-D list in (0, 1), got {tau}")
    if kind not in ("quantile", "central"):
        raise TapecastError(f"reliability kind must be 'quantile' or 'central', got {kind!r}")
    if values.size == 0:
        return np.full(tau.shape, np.nan)
    if kind == "quantile":
        return np.asarray([np.mean(values <= t) for t in tau], dtype=np.float64)
    return np.asarray([np.mean(rank_coverage(values, float(t))) for t in tau], dtype=np.float64)

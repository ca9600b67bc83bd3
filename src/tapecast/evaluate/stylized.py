"""Stylized facts of a return or event series, and distances between a generated and a real one.

The facts (Cont 2001): heavy tails (excess kurtosis, Hill tail index), no linear autocorrelation
of returns, slowly decaying autocorrelation of absolute returns (volatility clustering), and
aggregational Gaussianity (kurtosis falls towards 0 as returns are summed over longer scales).
Distances between two samples: two-sample Kolmogorov–Smirnov and Wasserstein-1, from SciPy.

Legend:

    x_t       the series, NaN values dropped (t = 1..n), x̄ its mean
    m_j       (1/n) Σ (x_t - x̄)^j   (biased central moments)
    kurtosis  m_4 / m_2² - 3
    ρ_k       Σ_{t=1..n-k} (x_t - x̄)(x_{t+k} - x̄) / Σ_t (x_t - x̄)²
    X_(i)     i-th largest of |x_t| (only |x_t| > 0 enter the Hill estimator)
    Hill      α̂ = [ (1/k) Σ_{i=1..k} log X_(i) - log X_(k+1) ]^{-1}

References
----------
Cont, R. (2001). Empirical properties of asset returns: stylized facts and statistical issues.
    Quantitative Finance 1(2), 223–236.
Hill, B. M. (1975). A simple general approach to inference about the tail of a distribution.
    Annals of Statistics 3(5), 1163–1174.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats  # type: ignore[import-untyped]

from tapecast.core.errors import TapecastError

DEFAULT_LAGS = 50
DEFAULT_SCALES = (1, 5, 10, 50)
HILL_FRACTION = 0.05  # default k: the largest 5 % of the non-zero |x|
MIN_KURTOSIS_N = 4  # fewer (aggregated) points than this give NaN kurtosis


def _clean(x: ArrayLike, what: str = "x") -> NDArray[np.float64]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise TapecastError(f"{what} must be a 1-D series, got shape {arr.shape}")
    return arr[np.isfinite(arr)]


def excess_kurtosis(x: ArrayLike) -> float:
    """Excess kurtosis m_4 / m_2² - 3 (biased moments; 0 for a Gaussian).

    Parameters
    ----------
    x : array_like, shape (n,)
        The series; NaN dropped.

    Returns
    -------
    float
        NaN when fewer than 4 finite values or zero variance.
    """
    arr = _clean(x)
    if arr.size < MIN_KURTOSIS_N:
        return math.nan
    dev = arr - arr.mean()
    m2 = float(np.mean(dev**2))
    return float(np.mean(dev**4)) / m2**2 - 3.0 if m2 > 0 else math.nan


def _hill_k(n_positive: int, k: int | float | None) -> int:
    if k is None:
        return max(1, int(HILL_FRACTION * n_positive))
    if isinstance(k, float):
        if not 0.0 < k < 1.0:
            raise TapecastError(f"Hill k as a fraction must lie in (0, 1), got {k}")
        return max(1, int(k * n_positive))
    if int(k) < 1:
        raise TapecastError(f"Hill k must be >= 1, got {k}")
    return int(k)


def hill_tail_index(x: ArrayLike, k: int | float | None = None) -> float:
    """Hill (1975) estimate of the tail index α of |x| from its k largest values.

    Parameters
    ----------
    x : array_like, shape (n,)
        The series; NaN and zero values are dropped, the estimate uses |x|.
    k : int or float, optional
        Number of upper order statistics (int), or a fraction of the non-zero |x| (float in
        (0, 1)). Default: 5 % of the non-zero |x| (at least 1) — a common rule of thumb, not an
        optimal choice; the estimate trades bias (large k) against variance (sd ≈ α / sqrt(k)).

    Returns
    -------
    float
        α̂ (about 3 to 5 for stock returns; larger means thinner tails). NaN when fewer than
        k + 1 non-zero values or when the top k + 1 values are equal.
    """
    arr = np.abs(_clean(x))
    arr = arr[arr > 0]
    use_k = _hill_k(arr.size, k)
    if arr.size < use_k + 1:
        return math.nan
    top = -np.sort(-arr)[: use_k + 1]  # (k+1,) descending X_(1) >= ... >= X_(k+1)
    xi = float(np.mean(np.log(top[:use_k])) - np.log(top[use_k]))
    return 1.0 / xi if xi > 0 else math.nan


FFT_LAGS = 32
"""Above this many lags :func:`acf` uses one FFT (Wiener–Khinchin) instead of a dot per lag."""


def acf(x: ArrayLike, lags: int = DEFAULT_LAGS) -> NDArray[np.float64]:
    """Sample autocorrelation ρ_1..ρ_lags (the biased estimator, denominator Σ (x_t - x̄)²).

    Parameters
    ----------
    x : array_like, shape (n,)
        The series; NaN values dropped (the remaining values are treated as consecutive).
    lags : int, default 50
        Largest lag.

    Returns
    -------
    ndarray of float64, shape (lags,)
        ρ_k at k = 1..lags; NaN for k >= n or when the variance is zero.
    """
    if lags < 1:
        raise TapecastError(f"lags must be >= 1, got {lags}")
    arr = _clean(x)
    out = np.full(lags, np.nan)
    dev = arr - arr.mean() if arr.size else arr
    denom = float(np.dot(dev, dev))
    if denom <= 0:
        return out
    n = arr.size
    top = min(lags, n - 1)
    if top > FFT_LAGS:  # all lags at once: O(n log n) instead of O(n · lags)
        size = 1 << (2 * n - 1).bit_length()
        spectrum = np.fft.rfft(dev, size)
        cov = np.fft.irfft(spectrum * np.conj(spectrum), size)[1:top + 1]  # (top,)
        out[:top] = cov / denom
        return out
    for k in range(1, top + 1):
        out[k - 1] = np.dot(dev[k:], dev[: n - k]) / denom
    return out


def abs_acf(x: ArrayLike, lags: int = DEFAULT_LAGS) -> NDArray[np.float64]:
    """Autocorrelation of |x| at lags 1..lags (volatility clustering); see :func:`acf`.

    Returns
    -------
    ndarray of float64, shape (lags,)
    """
    return acf(np.abs(np.asarray(x, dtype=np.float64)), lags)


def aggregational_gaussianity(
    x: ArrayLike, scales: Sequence[int] = DEFAULT_SCALES
) -> NDArray[np.float64]:
    """Excess kurtosis of the series summed over non-overlapping blocks of each scale.

    Parameters
    ----------
    x : array_like, shape (n,)
        Returns (log returns add up over time); NaN dropped; the last incomplete block is dropped.
    scales : sequence of int, default (1, 5, 10, 50)
        Block lengths.

    Returns
    -------
    ndarray of float64, shape (len(scales),)
        Excess kurtosis per scale; NaN where fewer than 4 blocks.
    """
    arr = _clean(x)
    out = np.full(len(scales), np.nan)
    for i, scale in enumerate(scales):
        if scale < 1:
            raise TapecastError(f"aggregation scales must be >= 1, got {scale}")
        n_blocks = arr.size // scale
        blocks = arr[: n_blocks * scale].reshape(n_blocks, scale).sum(axis=1)  # (n_blocks,)
        out[i] = excess_kurtosis(blocks)
    return out


def ks_distance(a: ArrayLike, b: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic and p-value (``scipy.stats.ks_2samp``).

    Parameters
    ----------
    a, b : array_like, shape (n_a,), (n_b,)
        The two samples; NaN dropped.

    Returns
    -------
    tuple of float
        (sup |F_a - F_b|, two-sided p-value); NaN when either sample is empty.
    """
    xa, xb = _clean(a, "a"), _clean(b, "b")
    if xa.size == 0 or xb.size == 0:
        return math.nan, math.nan
    result = stats.ks_2samp(xa, xb)
    return float(result.statistic), float(result.pvalue)


def wasserstein1(a: ArrayLike, b: ArrayLike) -> float:
    """Wasserstein-1 distance ∫ |F_a - F_b| between two samples (``scipy.stats``).

    Parameters
    ----------
    a, b : array_like, shape (n_a,), (n_b,)
        The two samples; NaN dropped.

    Returns
    -------
    float
        In the units of the data; NaN when either sample is empty.
    """
    xa, xb = _clean(a, "a"), _clean(b, "b")
    if xa.size == 0 or xb.size == 0:
        return math.nan
    return float(stats.wasserstein_distance(xa, xb))


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _json_list(values: NDArray[np.float64]) -> list[float | None]:
    return [_json_float(float(v)) for v in values]


def stylized_facts(
    x: ArrayLike, *, lags: int = DEFAULT_LAGS, scales: Sequence[int] = DEFAULT_SCALES
) -> dict[str, Any]:
    """JSON-friendly summary of the stylized facts of one series (NaN becomes ``None``).

    Parameters
    ----------
    x : array_like, shape (n,)
        Returns (or any event series); NaN dropped.
    lags : int, default 50
        ACF lags 1..lags of x and of |x|.
    scales : sequence of int, default (1, 5, 10, 50)
        Aggregation scales for the kurtosis.

    Returns
    -------
    dict
        n, mean, std (ddof=1), excess_kurtosis, hill_tail_index, hill_k, acf (list, lags
        1..lags), abs_acf (list), aggregational_kurtosis ({str(scale): value}).
    """
    arr = _clean(x)
    n_positive = int(np.count_nonzero(arr))
    return {
        "n": int(arr.size),
        "mean": _json_float(float(arr.mean())) if arr.size else None,
        "std": _json_float(float(arr.std(ddof=1))) if arr.size > 1 else None,
        "excess_kurtosis": _json_float(excess_kurtosis(arr)),
        "hill_tail_index": _json_float(hill_tail_index(arr)),
        "hill_k": _hill_k(n_positive, None),
        "acf": _json_list(acf(arr, lags)),
        "abs_acf": _json_list(abs_acf(arr, lags)),
        "aggregational_kurtosis": {
            str(s): _json_float(float(v))
            for s, v in zip(scales, aggregational_gaussianity(arr, scales), strict=True)
        },
    }


def compare_series(
    generated: ArrayLike, real: ArrayLike, *, lags: int = DEFAULT_LAGS
) -> dict[str, Any]:
    """Stylized facts of a generated and a real series, side by side, with their distances.

    Parameters
    ----------
    generated, real : array_like, shape (n_g,), (n_r,)
        The two series; NaN dropped.
    lags : int, default 50
        ACF lags.

    Returns
    -------
    dict
        generated, real (each :func:`stylized_facts`), ks ({statistic, p_value}),
        wasserstein1, acf_mae and abs_acf_mae (mean absolute difference of the two ACFs over
        lags defined for both). NaN becomes ``None``.
    """
    gen, ref = _clean(generated, "generated"), _clean(real, "real")
    ks_stat, ks_p = ks_distance(gen, ref)
    return {
        "generated": stylized_facts(gen, lags=lags),
        "real": stylized_facts(ref, lags=lags),
        "ks": {"statistic": _json_float(ks_stat), "p_value": _json_float(ks_p)},
        "wasserstein1": _json_float(wasserstein1(gen, ref)),
        "acf_mae": _json_float(_mae(acf(gen, lags), acf(ref, lags))),
        "abs_acf_mae": _json_float(_mae(abs_acf(gen, lags), abs_acf(ref, lags))),
    }


def _mae(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.mean(np.abs(a[both] - b[both]))) if both.any() else math.nan

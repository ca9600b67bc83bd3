"""Joint structure of sample forecasts: pooled covariance and correlation errors, diversity.

Both sides are pooled over every scored (window, horizon step) pair, and the forecast also over
its samples, so the forecast side is the covariance of the forecast mixture (between-window
movement of the forecast mean plus within-forecast spread), which is what the pooled realized
covariance measures. These pooled checks are coarse (imb_a0 and imb_a025 correlate at about 0.998,
so their covariance alone says little): the energy and variogram scores in
:mod:`tapecast.evaluate.scores` are the main judges of joint structure.

Array layout: ``samples`` (B, S, K, H), ``realized`` / ``mask`` (B, K, H). Undefined results are
NaN (the aggregation layer writes them as ``null``). Moments use the plain mean (ddof = 0) on both
sides.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError
from tapecast.evaluate.scores import as_score_inputs


def _pooled_covariances(
    x: NDArray[np.float64], y: NDArray[np.float64], scored: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pooled K×K covariances of forecast and realized over the scored (window, step) pairs.

    x (B, S, K, H), y (B, K, H), scored (B, H) -> (cov_fc (K, K), cov_real (K, K)); NaN matrices
    when fewer than two pairs are scored.
    """
    k = y.shape[1]
    n = int(scored.sum())
    if n < 2:
        return np.full((k, k), np.nan), np.full((k, k), np.nan)
    y_pool = np.moveaxis(y, 1, 2)[scored]  # (N, K)
    mean_real = y_pool.mean(axis=0)  # (K,)
    dev_real = y_pool - mean_real  # (N, K)
    cov_real = dev_real.T @ dev_real / n  # (K, K)
    x_pool = np.moveaxis(x, 3, 1)[scored]  # (N, S, K)
    x_pool = x_pool.reshape(-1, k)  # (N*S, K)
    dev_fc = x_pool - x_pool.mean(axis=0)  # (N*S, K) deviations from the pooled forecast mean
    cov_fc = dev_fc.T @ dev_fc / x_pool.shape[0]  # (K, K)
    return cov_fc, cov_real


def _fully_observed(y: NDArray[np.float64], m: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """(window, step) pairs where every channel is scored and finite; (B, K, H) -> (B, H)."""
    scored: NDArray[np.bool_] = np.all(m & np.isfinite(y), axis=1)
    return scored


def cov_rel_error(
    samples: ArrayLike, realized: ArrayLike, mask: ArrayLike, i: int, j: int
) -> float:
    """Relative error of the pooled forecast covariance of channels i and j.

    |cov_fc(i, j) - cov_real(i, j)| / |cov_real(i, j)|, where cov_real pools the realized values
    of every (window, step) with both channels scored, and cov_fc pools every sample value of the
    same (window, step) pairs around the pooled forecast mean. i == j gives the variance error.

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
    mask : array_like of bool, shape (B, K, H)
    i, j : int
        Channel indices.

    Returns
    -------
    float
        NaN when the realized covariance is 0 or fewer than two pairs are scored.
    """
    x, y, m = as_score_inputs(samples, realized, mask)
    k = y.shape[1]
    if not (0 <= i < k and 0 <= j < k):
        raise TapecastError(f"channel indices must lie in [0, {k}), got i={i}, j={j}")
    pair = [i, j]
    scored = _fully_observed(y[:, pair], m[:, pair])  # (B, H)
    cov_fc, cov_real = _pooled_covariances(x[:, :, pair], y[:, pair], scored)
    real = cov_real[0, 1]
    if not np.isfinite(real) or real == 0:
        return float("nan")
    return float(abs(cov_fc[0, 1] - real) / abs(real))


def _correlation(cov: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Correlation matrix of a covariance matrix, or None when a variance is 0 or NaN."""
    std = np.sqrt(np.diag(cov))  # (K,)
    if not np.all(np.isfinite(std)) or np.any(std == 0):
        return None
    corr: NDArray[np.float64] = cov / np.outer(std, std)
    return corr


def corr_frobenius_rel_error(samples: ArrayLike, realized: ArrayLike, mask: ArrayLike) -> float:
    """Frobenius relative error of the pooled K×K forecast correlation matrix.

    ‖C_fc - C_real‖_F / ‖C_real‖_F with both correlation matrices pooled as in
    :func:`cov_rel_error`, over the (window, step) pairs where all K channels are scored.

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
    mask : array_like of bool, shape (B, K, H)

    Returns
    -------
    float
        NaN when a channel has zero variance on either side or fewer than two pairs are scored.
    """
    x, y, m = as_score_inputs(samples, realized, mask)
    cov_fc, cov_real = _pooled_covariances(x, y, _fully_observed(y, m))
    corr_fc, corr_real = _correlation(cov_fc), _correlation(cov_real)
    if corr_fc is None or corr_real is None:
        return float("nan")
    return float(np.linalg.norm(corr_fc - corr_real) / np.linalg.norm(corr_real))


def diversity_ratio(samples: ArrayLike, mask: ArrayLike | None = None) -> NDArray[np.float64]:
    """Sample diversity per channel: within-forecast spread over across-window mean movement.

    For channel k and step h, with x̄_bkh the sample mean and s_bkh the sample std (ddof = 1) of
    window b's forecast::

        ratio_kh = mean_b s_bkh / std_b x̄_bkh            (std over windows, ddof = 1)
        ratio_k  = mean_h ratio_kh

    Above 1: the samples spread more than the forecast mean moves between windows (no mean
    collapse: the samples are not all the mean); below 1: collapsed samples around a moving mean.
    The across-window std includes the Monte Carlo noise of the mean, about s / sqrt(S), so a
    forecaster that ignores its context scores about sqrt(S).

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    mask : array_like of bool, shape (B, K, H), optional
        Windows to use per (channel, step); all when omitted.

    Returns
    -------
    ndarray of float64, shape (K,)
        NaN for a channel where some step has fewer than two windows, fewer than two samples or a
        constant sample mean across windows.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 4:
        raise TapecastError(f"samples must have shape (B, S, K, H), got shape {x.shape}")
    b, s, k, h = x.shape
    w = np.ones((b, k, h)) if mask is None else np.asarray(mask, dtype=bool).astype(np.float64)
    if w.shape != (b, k, h):
        raise TapecastError(f"mask must have shape {(b, k, h)}, got {w.shape}")
    if s < 2:
        return np.full(k, np.nan)
    used = w > 0  # (B, K, H); unused entries are zeroed so NaN samples there do no harm
    spread = np.where(used, x.std(axis=1, ddof=1), 0.0)  # (B, K, H) within-forecast std
    centre = np.where(used, x.mean(axis=1), 0.0)  # (B, K, H) sample-mean trajectory
    n = w.sum(axis=0)  # (K, H) windows used
    safe_n = np.maximum(n, 2.0)
    within = (w * spread).sum(axis=0) / safe_n  # (K, H)
    grand = (w * centre).sum(axis=0) / safe_n  # (K, H)
    across = np.sqrt((w * (centre - grand) ** 2).sum(axis=0) / (safe_n - 1))  # (K, H)
    defined = (n >= 2) & (across > 0)
    ratio = np.where(defined, within / np.where(defined, across, 1.0), np.nan)  # (K, H)
    return np.asarray(ratio.mean(axis=1), dtype=np.float64)  # NaN if any step is undefined

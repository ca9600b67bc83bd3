"""Is forecaster A really better than B? Diebold–Mariano with a Newey–West (HAC) variance.

The test compares two loss series on the same windows (e.g. per-window CRPS of a model and of a
baseline). Losses of neighbouring windows are correlated — their targets overlap when forecast
origins advance by fewer steps than the horizon — so the variance of the mean loss difference is
estimated with the Bartlett-kernel HAC estimator of Newey & West (1987), and every result carries
the number of *effectively independent* windows that this variance implies.

Legend (paper notation):

    d_t     loss_a[t] - loss_b[t], t = 1..n (NaN pairs dropped)
    γ_k     (1/n) Σ_{t>k} (d_t - d̄)(d_{t-k} - d̄), the biased sample autocovariance
    L       truncation lag; Bartlett weights w_k = 1 - k / (L + 1)
    σ²_LR   γ_0 + 2 Σ_{k=1..L} w_k γ_k  (long-run variance, 2π f_d(0))
    DM      d̄ / sqrt(σ²_LR / n)
    n_eff   n γ_0 / σ²_LR, clipped to [1, n]  (n / n_eff is the variance inflation of d̄)

``floor_at_iid=True`` floors σ²_LR at γ_0, so that negative sample autocovariances of a short
series cannot shrink the variance below the independent-windows value (conservative: at
n = 250 iid it rejects 2.7 % at a nominal 5 %; off by default). The main guard is the lag: pass
the targets' real overlap as ``horizon`` (1 for non-overlapping windows), since a lag far above
what the overlap needs, e.g. 18 at n = 45, over-rejects (11 % at a nominal 5 %).

``kernel="uniform"`` gives Diebold & Mariano's (1995) original truncated-uniform weights at lag
h - 1 for h-step forecasts.

References
----------
Diebold, F. X. & Mariano, R. S. (1995). Comparing predictive accuracy. JBES 13(3), 253–263.
Newey, W. K. & West, K. D. (1987). A simple, positive semi-definite, heteroskedasticity and
    autocorrelation consistent covariance matrix. Econometrica 55(3), 703–708.
Newey, W. K. & West, K. D. (1994). Automatic lag selection in covariance matrix estimation.
    Review of Economic Studies 61(4), 631–653 (the rule of thumb L = floor(4 (n/100)^(2/9))).
Harvey, D., Leybourne, S. & Newbold, P. (1997). Testing the equality of prediction mean squared
    errors. International Journal of Forecasting 13(2), 281–291.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats  # type: ignore[import-untyped]

from tapecast.core.errors import TapecastError

MIN_N = 3  # below this the test is not computed (p_value NaN)
Kernel = Literal["bartlett", "uniform"]


@dataclass(frozen=True)
class DMResult:
    """Outcome of one Diebold–Mariano test.

    Attributes
    ----------
    statistic : float
        DM statistic (HLN-corrected when requested); NaN when undefined.
    p_value : float
        Two-sided p-value: Student t with n - 1 df under the Harvey–Leybourne–Newbold
        correction, else standard normal. NaN when n < 3 or the variance is zero.
    mean_diff : float
        Mean of loss_a - loss_b; negative means A has the lower loss (A better).
    n : int
        Number of pairs used (NaN pairs dropped).
    n_eff : float
        Effectively independent windows, n · γ_0 / σ²_LR clipped to [1, n]; NaN when undefined.
    lag : int
        Bartlett truncation lag L used for σ²_LR.
    """

    statistic: float
    p_value: float
    mean_diff: float
    n: int
    n_eff: float
    lag: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: NaN becomes ``None``."""
        return {k: _none_if_nan(v) for k, v in asdict(self).items()}


def _none_if_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def default_lag(n: int, horizon: int = 1) -> int:
    """Default Bartlett truncation lag: max(floor(4 (n/100)^(2/9)), 2 (horizon - 1)).

    The first term is the Newey & West (1994) rule of thumb for the Bartlett kernel. The second
    covers h-step forecasts, whose loss differentials are MA(h - 1) when forecast origins advance
    one step at a time (Diebold & Mariano 1995 truncate at h - 1 with uniform weights). Bartlett
    weights at lag h - 1 are only 1/h, so we truncate at twice that; in our simulations this cut
    the over-rejection of a 5 % test on MA(4) differentials (n = 250) from 11.5 % to 9.6 %
    (``docs/evaluation-tests.md``). ``kernel="uniform"`` in :func:`diebold_mariano` is closer
    to nominal size for pure MA(h - 1) differentials.

    Parameters
    ----------
    n : int
        Number of observations.
    horizon : int, default 1
        Forecast horizon h of the losses being compared.

    Returns
    -------
    int
        The lag L >= 0, never above n - 1.
    """
    rule = math.floor(4.0 * float((max(n, 0) / 100.0) ** (2.0 / 9.0)))
    return max(0, min(max(rule, 2 * (horizon - 1)), n - 1))


def _autocovariances(x: NDArray[np.float64], lag: int) -> NDArray[np.float64]:
    """γ_0..γ_L with divisor n (biased; keeps the Bartlett estimate non-negative)."""
    n = x.size
    dev = x - x.mean()
    return np.array([np.dot(dev[k:], dev[: n - k]) / n for k in range(lag + 1)])


def _long_run_variance(
    x: NDArray[np.float64], lag: int, kernel: Kernel = "bartlett"
) -> tuple[float, float]:
    """(σ²_LR, γ_0) of a clean 1-D series with Bartlett (or uniform) weights up to ``lag``."""
    gamma = _autocovariances(x, lag)  # (L+1,)
    k = np.arange(1, lag + 1)
    if kernel == "uniform":
        weights = np.ones(lag)  # DM (1995): truncated uniform kernel
    else:
        weights = 1.0 - k / (lag + 1.0)  # Bartlett, Newey & West (1987)
    return float(gamma[0] + 2.0 * np.dot(weights, gamma[1:])), float(gamma[0])


def _as_series(x: ArrayLike, what: str) -> NDArray[np.float64]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise TapecastError(f"{what} must be 1-D (one value per window), got shape {arr.shape}")
    return arr


def newey_west_variance(x: ArrayLike, lag: int | None = None) -> float:
    """Newey–West (Bartlett) long-run variance σ²_LR of a series; Var(mean) ≈ σ²_LR / n.

    Parameters
    ----------
    x : array_like, shape (n,)
        The series (NaN values are dropped).
    lag : int, optional
        Truncation lag L. Default: :func:`default_lag` with horizon 1, i.e. the Newey & West
        (1994) rule floor(4 (n/100)^(2/9)).

    Returns
    -------
    float
        γ_0 + 2 Σ_{k=1..L} (1 - k/(L+1)) γ_k with autocovariances divided by n; NaN when fewer
        than 2 finite values remain.
    """
    arr = _as_series(x, "x")
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        return math.nan
    use_lag = default_lag(arr.size) if lag is None else _check_lag(lag, arr.size)
    return _long_run_variance(arr, use_lag)[0]


def _check_lag(lag: int, n: int) -> int:
    if lag < 0:
        raise TapecastError(f"lag must be >= 0, got {lag}")
    return min(int(lag), n - 1)


def _dm_lag(n: int, horizon: int, kernel: Kernel) -> int:
    if kernel == "uniform":
        return max(0, min(horizon - 1, n - 1))
    return default_lag(n, horizon)


def _hln_factor(n: int, horizon: int) -> float:
    """Harvey, Leybourne & Newbold (1997) eq. (9): sqrt((n + 1 - 2h + h(h-1)/n) / n)."""
    inner = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
    return math.sqrt(inner) if inner > 0 else math.nan


def diebold_mariano(
    loss_a: ArrayLike,
    loss_b: ArrayLike,
    *,
    lag: int | None = None,
    harvey_correction: bool = True,
    horizon: int = 1,
    kernel: Kernel = "bartlett",
    floor_at_iid: bool = False,
) -> DMResult:
    """Diebold–Mariano test of equal expected loss, with a HAC variance.

    Parameters
    ----------
    loss_a, loss_b : array_like, shape (n,)
        Per-window losses of forecasters A and B on the same windows, in time order. Pairs where
        either value is NaN are dropped.
    lag : int, optional
        Bartlett truncation lag; default :func:`default_lag` ``(n, horizon)``.
    harvey_correction : bool, default True
        Multiply the statistic by the HLN (1997) factor for ``horizon`` and take the p-value from
        Student t with n - 1 df; otherwise from the standard normal (DM 1995).
    horizon : int, default 1
        Forecast horizon h of the losses (1 for one-step losses; H for losses averaged over H
        steps of overlapping windows). Sets the lag floor (:func:`default_lag`) and the HLN
        factor.
    kernel : {"bartlett", "uniform"}, default "bartlett"
        Newey–West weights (always non-negative variance), or DM's (1995) uniform weights,
        meant for ``lag = horizon - 1`` (the default lag for this kernel); when the uniform
        estimate is not positive the Bartlett estimate at the same lag is used.
    floor_at_iid : bool, default False
        Never let σ²_LR fall below γ_0 (see the module docstring), so n_eff <= n.

    Returns
    -------
    DMResult
        Statistic, two-sided p-value, mean difference (a - b), n, n_eff and the lag used.
    """
    a, b = _as_series(loss_a, "loss_a"), _as_series(loss_b, "loss_b")
    if a.shape != b.shape:
        raise TapecastError(f"loss_a and loss_b must have the same shape, got {a.shape}, {b.shape}")
    if horizon < 1:
        raise TapecastError(f"horizon must be >= 1, got {horizon}")
    if kernel not in ("bartlett", "uniform"):
        raise TapecastError(f"kernel must be 'bartlett' or 'uniform', got {kernel!r}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]  # (n,) NaN pairs dropped
    n = int(d.size)
    mean_diff = float(d.mean()) if n else math.nan
    use_lag = _dm_lag(n, horizon, kernel) if lag is None else _check_lag(lag, max(n, 1))
    if n < MIN_N:
        return DMResult(math.nan, math.nan, mean_diff, n, math.nan, use_lag)
    lrv, gamma0 = _long_run_variance(d, use_lag, kernel)
    if kernel == "uniform" and not lrv > 0.0:
        lrv, gamma0 = _long_run_variance(d, use_lag, "bartlett")
    if floor_at_iid:
        lrv = max(lrv, gamma0)
    if not lrv > 0.0:
        return DMResult(math.nan, math.nan, mean_diff, n, math.nan, use_lag)
    n_eff = float(np.clip(n * gamma0 / lrv, 1.0, n))
    statistic = mean_diff / math.sqrt(lrv / n)
    if harvey_correction:
        statistic *= _hln_factor(n, horizon)
        p_value = float(2.0 * stats.t.sf(abs(statistic), df=n - 1))
    else:
        p_value = float(2.0 * stats.norm.sf(abs(statistic)))
    return DMResult(float(statistic), p_value, mean_diff, n, n_eff, use_lag)


def dm_by_step(
    loss_a: ArrayLike,
    loss_b: ArrayLike,
    *,
    lag: int | None = None,
    harvey_correction: bool = True,
    kernel: Kernel = "bartlett",
) -> list[DMResult]:
    """Diebold–Mariano test per horizon step.

    Parameters
    ----------
    loss_a, loss_b : array_like, shape (n, H)
        Per-window, per-step losses (windows in time order). NaN pairs are dropped per step.
    lag : int, optional
        Bartlett lag for every step; default :func:`default_lag` ``(n, h)`` for step h = 1..H.
    harvey_correction : bool, default True
        As in :func:`diebold_mariano`, with horizon h for step h.
    kernel : {"bartlett", "uniform"}, default "bartlett"
        As in :func:`diebold_mariano`.

    Returns
    -------
    list of DMResult
        One result per step, length H.
    """
    a, b = np.asarray(loss_a, dtype=np.float64), np.asarray(loss_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise TapecastError(
            f"loss_a and loss_b must both have shape (n, H), got {a.shape} and {b.shape}"
        )
    return [
        diebold_mariano(
            a[:, j],
            b[:, j],
            lag=lag,
            harvey_correction=harvey_correction,
            horizon=j + 1,
            kernel=kernel,
        )
        for j in range(a.shape[1])
    ]

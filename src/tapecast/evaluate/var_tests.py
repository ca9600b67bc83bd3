"""Value-at-Risk backtests from forecast quantiles: Kupiec POF and Christoffersen tests.

A VaR forecast at level α is the α-quantile of the forecast distribution (lower tail: losses of
a long position) or its (1 - α)-quantile (upper tail). A *violation* (hit) is a realized value
beyond it. Under a correct forecast the hits are i.i.d. Bernoulli(α).

Legend (paper notation):

    I_t     hit indicator, t = 1..n;   x = Σ I_t;   π̂ = x / n
    n_ij    number of transitions I_{t-1} = i → I_t = j  (t = 2..n)
    π_01    n_01 / (n_00 + n_01),  π_11 = n_11 / (n_10 + n_11),  π_2 = (n_01 + n_11) / (n - 1)

Likelihood ratios (all use the convention 0 · log 0 = 0, so zero hits, all hits and a state that
is never left give finite statistics; a state never visited contributes nothing):

    LR_pof = -2 [ (n-x) log(1-α) + x log α ] + 2 [ (n-x) log(1-π̂) + x log π̂ ]   ~ χ²(1)
    LR_ind = -2 log L(π_2) + 2 log L(π_01, π_11)                               ~ χ²(1)
    LR_cc  = LR_pof + LR_ind                                                   ~ χ²(2)

References
----------
Kupiec, P. H. (1995). Techniques for verifying the accuracy of risk measurement models. Journal
    of Derivatives 3(2), 73–84.
Christoffersen, P. F. (1998). Evaluating interval forecasts. International Economic Review 39(4),
    841–862 (LR_ind and LR_cc, section 3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats  # type: ignore[import-untyped]
from scipy.special import xlogy  # type: ignore[import-untyped]

from tapecast.core.errors import TapecastError


@dataclass(frozen=True)
class TestResult:
    """Outcome of one VaR backtest.

    Attributes
    ----------
    name : str
        ``"kupiec_pof"``, ``"christoffersen_independence"`` or ``"christoffersen_conditional"``.
    statistic : float
        The likelihood-ratio statistic; NaN when undefined (too few observations).
    p_value : float
        Upper tail of χ²(df) at the statistic; NaN when undefined.
    df : int
        Degrees of freedom of the χ² reference.
    n : int
        Number of observations (hits and non-hits).
    x : int
        Number of violations.
    expected_rate : float
        α for the coverage tests; NaN for the independence test (it does not use α).
    observed_rate : float
        x / n (NaN when n = 0).
    transitions : tuple of int
        (n_00, n_01, n_10, n_11) for the Christoffersen tests; empty for Kupiec.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    statistic: float
    p_value: float
    df: int
    n: int
    x: int
    expected_rate: float
    observed_rate: float
    transitions: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: NaN becomes ``None``, transitions a list."""
        out = asdict(self)
        out["transitions"] = list(self.transitions)
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()
        }


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise TapecastError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return float(alpha)


def var_violations(
    realized: ArrayLike,
    var_quantile: ArrayLike,
    *,
    alpha: float,
    tail: Literal["lower", "upper"] = "lower",
) -> NDArray[np.bool_]:
    """Hit indicators of a VaR forecast.

    Parameters
    ----------
    realized : array_like, shape (...)
        Realized values (returns, P&L), in time order along the last axis for the
        Christoffersen test.
    var_quantile : array_like, shape (...) or (..., n_samples)
        The VaR level itself (the α-quantile for ``tail="lower"``, the (1 - α)-quantile for
        ``tail="upper"``), or forecast samples with one extra trailing axis, from which that
        empirical quantile is taken.
    alpha : float
        Tail probability α in (0, 1), e.g. 0.01 for a 99 % VaR.
    tail : {"lower", "upper"}, default "lower"
        Lower: hit when realized < quantile. Upper: hit when realized > quantile.

    Returns
    -------
    ndarray of bool, shape (...)
        True where the realized value is beyond the VaR level.

    Raises
    ------
    TapecastError
        On a shape mismatch or non-finite values (drop masked entries first).
    """
    level = _check_alpha(alpha)
    y = np.asarray(realized, dtype=np.float64)
    q = np.asarray(var_quantile, dtype=np.float64)
    if q.ndim == y.ndim + 1 and q.shape[:-1] == y.shape:
        q = np.quantile(q, level if tail == "lower" else 1.0 - level, axis=-1)  # (...)
    if q.shape != y.shape:
        raise TapecastError(
            f"var_quantile shape {q.shape} matches neither realized {y.shape} nor (..., n_samples)"
        )
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(q))):
        raise TapecastError("realized and var_quantile must be finite; drop masked entries first")
    if tail == "lower":
        return y < q
    if tail == "upper":
        return y > q
    raise TapecastError(f"tail must be 'lower' or 'upper', got {tail!r}")


def _hits(violations: ArrayLike) -> NDArray[np.bool_]:
    arr = np.asarray(violations)
    if arr.dtype != np.bool_:
        if not np.all(np.isin(arr, (0, 1))):
            raise TapecastError("violations must be booleans or 0/1 values")
        arr = arr.astype(np.bool_)
    return arr


def _bernoulli_loglik(n0: int, n1: int, p: float) -> float:
    """n0 log(1 - p) + n1 log p with 0 · log 0 = 0."""
    return float(xlogy(n0, 1.0 - p) + xlogy(n1, p))


def _fitted_loglik(n0: int, n1: int) -> float:
    """Bernoulli log-likelihood at the MLE n1 / (n0 + n1); 0 for an empty state."""
    total = n0 + n1
    return 0.0 if total == 0 else _bernoulli_loglik(n0, n1, n1 / total)


def _chi2_p(statistic: float, df: int) -> float:
    return float(stats.chi2.sf(statistic, df)) if math.isfinite(statistic) else math.nan


def kupiec_pof(violations: ArrayLike, alpha: float) -> TestResult:
    """Kupiec (1995) proportion-of-failures test: is the hit rate equal to α?

    Parameters
    ----------
    violations : array_like of bool, shape (...)
        Hit indicators (any shape; flattened).
    alpha : float
        Nominal tail probability α in (0, 1).

    Returns
    -------
    TestResult
        LR_pof with its χ²(1) p-value, n, x, α and x / n. NaN statistic when n = 0.
    """
    level = _check_alpha(alpha)
    hits = _hits(violations).ravel()
    n, x = int(hits.size), int(hits.sum())
    if n == 0:
        return TestResult("kupiec_pof", math.nan, math.nan, 1, 0, 0, level, math.nan)
    # LR_pof = -2 log L(α) + 2 log L(x/n)   (Kupiec 1995)
    lr = max(0.0, -2.0 * _bernoulli_loglik(n - x, x, level) + 2.0 * _fitted_loglik(n - x, x))
    return TestResult("kupiec_pof", lr, _chi2_p(lr, 1), 1, n, x, level, x / n)


def _transition_counts(hits: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    prev, curr = hits[:-1], hits[1:]
    n00 = int(np.sum(~prev & ~curr))
    n01 = int(np.sum(~prev & curr))
    n10 = int(np.sum(prev & ~curr))
    n11 = int(np.sum(prev & curr))
    return n00, n01, n10, n11


def christoffersen_independence(violations: ArrayLike) -> TestResult:
    """Christoffersen (1998) Markov test: does a hit today make a hit tomorrow more likely?

    Parameters
    ----------
    violations : array_like of bool, shape (n,)
        Hit indicators in time order.

    Returns
    -------
    TestResult
        LR_ind with its χ²(1) p-value and the transition counts (n_00, n_01, n_10, n_11).
        NaN statistic when n < 2 (no transitions).
    """
    hits = _hits(violations)
    if hits.ndim != 1:
        raise TapecastError(f"violations must be 1-D in time order, got shape {hits.shape}")
    n, x = int(hits.size), int(hits.sum())
    observed = x / n if n else math.nan
    if n < 2:
        return TestResult(
            "christoffersen_independence", math.nan, math.nan, 1, n, x, math.nan, observed
        )
    n00, n01, n10, n11 = counts = _transition_counts(hits)
    # restricted: one hit probability π_2 for both states; unrestricted: π_01 and π_11
    restricted = _fitted_loglik(n00 + n10, n01 + n11)
    unrestricted = _fitted_loglik(n00, n01) + _fitted_loglik(n10, n11)
    lr = max(0.0, -2.0 * (restricted - unrestricted))
    return TestResult(
        "christoffersen_independence", lr, _chi2_p(lr, 1), 1, n, x, math.nan, observed, counts
    )


def christoffersen_conditional(violations: ArrayLike, alpha: float) -> TestResult:
    """Christoffersen (1998) conditional coverage: LR_cc = LR_pof + LR_ind ~ χ²(2).

    Parameters
    ----------
    violations : array_like of bool, shape (n,)
        Hit indicators in time order.
    alpha : float
        Nominal tail probability α in (0, 1).

    Returns
    -------
    TestResult
        LR_cc with its χ²(2) p-value, n, x, α, x / n and the transition counts. LR_pof uses all
        n observations and LR_ind the n - 1 transitions (the usual sum, which conditions on the
        first observation). NaN when n < 2.
    """
    pof = kupiec_pof(violations, alpha)
    ind = christoffersen_independence(violations)
    lr = pof.statistic + ind.statistic
    return TestResult(
        "christoffersen_conditional",
        lr,
        _chi2_p(lr, 2),
        2,
        pof.n,
        pof.x,
        pof.expected_rate,
        pof.observed_rate,
        ind.transitions,
    )

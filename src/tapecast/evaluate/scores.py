"""Proper scores of sample forecasts: CRPS, energy, variogram and pinball (quantile) loss.

Every function is pure and returns per-element (or per-origin) scores; averaging over windows,
channels, regimes or horizon steps is the aggregation layer's job. Array layout::

    samples  : (B, S, K, H)  B forecast origins, S samples, K channels, H horizon steps
    realized : (B, K, H)
    mask     : (B, K, H) bool, True where the entry is scored

Lower is better for every score here. Formulas and estimator choices are in
``docs/evaluation-scores.md``.

``scoringrules`` compiles its numba kernels when it is imported (about 5 s here), so it is imported
inside the functions that use it: importing this module stays cheap for CLI commands that never
score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError

if TYPE_CHECKING:
    from collections.abc import Sequence

CrpsEstimator = Literal["fair", "nrg"]
EnergyEstimator = Literal["fair", "nrg"]
CRPS_ESTIMATORS: tuple[str, ...] = ("fair", "nrg")


def as_score_inputs(
    samples: ArrayLike, realized: ArrayLike, mask: ArrayLike | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Validate and convert score inputs to float64 / bool arrays.

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
    mask : array_like of bool, shape (B, K, H), optional
        True where the entry is scored; all True when omitted.

    Returns
    -------
    samples : ndarray of float64, shape (B, S, K, H)
    realized : ndarray of float64, shape (B, K, H)
    mask : ndarray of bool, shape (B, K, H)

    Raises
    ------
    TapecastError
        When the shapes do not fit together.
    """
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(realized, dtype=np.float64)
    if x.ndim != 4:
        raise TapecastError(f"samples must have shape (B, S, K, H), got shape {x.shape}")
    if y.shape != (x.shape[0], x.shape[2], x.shape[3]):
        raise TapecastError(
            f"realized must have shape (B, K, H) = {(x.shape[0], x.shape[2], x.shape[3])} "
            f"to match samples {x.shape}, got {y.shape}"
        )
    m = np.ones(y.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != y.shape:
        raise TapecastError(f"mask must have the shape of realized {y.shape}, got {m.shape}")
    return x, y, m


def crps_ensemble(
    samples: ArrayLike, realized: ArrayLike, *, estimator: CrpsEstimator = "fair"
) -> NDArray[np.float64]:
    """Continuous ranked probability score of a sample forecast, per element.

    CRPS(F, y) = E|X - y| - 1/2 E|X - X'| (Gneiting & Raftery 2007, eq. 21), estimated from the S
    samples by ``scoringrules.crps_ensemble``:

    - ``"fair"``: E|X - X'| ≈ sum_{i != j} |x_i - x_j| / (S (S - 1)), unbiased for the CRPS of
      the distribution the samples come from (Ferro 2014), so forecasters with different S compare
      fairly. Needs S >= 2.
    - ``"nrg"``: E|X - X'| ≈ sum_{i, j} |x_i - x_j| / S², the CRPS of the empirical distribution
      of the samples; what ``properscoring.crps_ensemble`` computes.

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
        NaN entries (e.g. masked ones) give NaN scores.
    estimator : {"fair", "nrg"}

    Returns
    -------
    ndarray of float64, shape (B, K, H)
    """
    import scoringrules as sr  # type: ignore[import-untyped]

    x, y, _ = as_score_inputs(samples, realized)
    if estimator not in CRPS_ESTIMATORS:
        raise TapecastError(f"CRPS estimator must be one of {CRPS_ESTIMATORS}, got {estimator!r}")
    if estimator == "fair" and x.shape[1] < 2:
        raise TapecastError("the fair CRPS estimator needs at least 2 samples per forecast")
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, 3))  # (B, K, H, S)
    # backend="numba": the default NumPy backend builds a (..., S, S) array for "fair"
    crps = sr.crps_ensemble(y, x_last, m_axis=-1, estimator=estimator, backend="numba")
    return np.asarray(crps, dtype=np.float64)


def _masked_zero(
    x: NDArray[np.float64], y: NDArray[np.float64], m: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Set samples and realized to 0 where the mask is False (such entries add 0 to any norm)."""
    return np.where(m[:, None], x, 0.0), np.where(m, y, 0.0)


_FASTMATH = {"reassoc", "nsz", "contract", "arcp"}  # reorder sums; keep NaN and inf semantics


@numba.njit(fastmath=_FASTMATH, cache=False)
def _energy_kernel(
    x: NDArray[np.float64], y: NDArray[np.float64], pairs: float
) -> NDArray[np.float64]:  # pragma: no cover - compiled
    """ES of each origin; x (n, S, D), y (n, D) -> (n,). ``pairs``: S(S-1) (fair) or S² (nrg)."""
    n, s, d = x.shape
    out = np.empty(n)
    for b in range(n):
        to_obs = 0.0  # sum_i ‖x_i - y‖
        spread = 0.0  # sum_{i < j} ‖x_i - x_j‖
        for i in range(s):
            sq = 0.0
            for k in range(d):
                u = x[b, i, k] - y[b, k]
                sq += u * u
            to_obs += np.sqrt(sq)
            for j in range(i + 1, s):
                sq = 0.0
                for k in range(d):
                    u = x[b, i, k] - x[b, j, k]
                    sq += u * u
                spread += np.sqrt(sq)
        out[b] = to_obs / s - spread / pairs  # 1/2 * (2 * spread) / pairs
    return out


def _energy(
    x: NDArray[np.float64], y: NDArray[np.float64], estimator: EnergyEstimator
) -> NDArray[np.float64]:
    """Energy score of each origin; x (n, S, D), y (n, D) -> (n,)."""
    if estimator not in CRPS_ESTIMATORS:
        raise TapecastError(f"energy estimator must be one of {CRPS_ESTIMATORS}, got {estimator!r}")
    s = x.shape[1]
    if estimator == "fair" and s < 2:
        raise TapecastError("the fair energy-score estimator needs at least 2 samples")
    pairs = float(s * (s - 1) if estimator == "fair" else s * s)
    x_c = np.ascontiguousarray(x)
    y_c = np.ascontiguousarray(y)
    return np.asarray(_energy_kernel(x_c, y_c, pairs), dtype=np.float64)


def energy_score(
    samples: ArrayLike,
    realized: ArrayLike,
    mask: ArrayLike,
    *,
    estimator: EnergyEstimator = "fair",
) -> NDArray[np.float64]:
    """Energy score of the joint forecast of all K × H entries of each origin.

    ES(F, y) = E‖X - y‖ - 1/2 E‖X - X'‖ with the Euclidean norm over the D = K·H entries
    (Gneiting & Raftery 2007, eq. 22). ``"fair"`` estimates E‖X - X'‖ by
    sum_{i != j} ‖x_i - x_j‖ / (S (S - 1)) (reduces to the fair CRPS when D = 1); ``"nrg"``
    divides by S², as ``scoringrules.energy_score`` does by default. Computed by a numba kernel
    over the S(S-1)/2 sample pairs (about 1 s for B = 4000, S = 100, D = 80; scoringrules' own
    kernel takes ~10 s and its NumPy backend needs a (B, S, S, D) array); tests check the result
    against ``scoringrules.energy_score``.

    Masked entries are removed by setting both the samples and the realized value to 0 there, so
    they add nothing to any norm: the result equals the energy score over the scored entries only.
    Units are those of the inputs: standardize channels first when their scales differ.

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
    mask : array_like of bool, shape (B, K, H)
    estimator : {"fair", "nrg"}

    Returns
    -------
    ndarray of float64, shape (B,)
        NaN for an origin with no scored entry.
    """
    x, y, m = as_score_inputs(samples, realized, mask)
    x, y = _masked_zero(x, y, m)
    b, s = x.shape[:2]
    es = _energy(x.reshape(b, s, -1), y.reshape(b, -1), estimator)  # (B, S, K*H) -> (B,)
    return np.where(m.any(axis=(1, 2)), es, np.nan)


def energy_score_per_step(
    samples: ArrayLike,
    realized: ArrayLike,
    mask: ArrayLike,
    *,
    estimator: EnergyEstimator = "fair",
) -> NDArray[np.float64]:
    """Energy score of the joint forecast of the K channels at each horizon step.

    Same formula, estimators and masking as :func:`energy_score`, with the norm taken over the
    K channels of one step.

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
    mask : array_like of bool, shape (B, K, H)
    estimator : {"fair", "nrg"}

    Returns
    -------
    ndarray of float64, shape (B, H)
        NaN where no channel of that step is scored.
    """
    x, y, m = as_score_inputs(samples, realized, mask)
    x, y = _masked_zero(x, y, m)
    b, s, k, h = x.shape
    x_steps = np.moveaxis(x, 3, 1).reshape(b * h, s, k)  # (B*H, S, K)
    y_steps = np.moveaxis(y, 2, 1).reshape(b * h, k)  # (B*H, K)
    es = _energy(x_steps, y_steps, estimator).reshape(b, h)  # (B, H)
    return np.where(m.any(axis=1), es, np.nan)


@numba.njit(fastmath=_FASTMATH, cache=False)
def _variogram_kernel(
    x: NDArray[np.float64], y: NDArray[np.float64], w: NDArray[np.bool_], p: float
) -> NDArray[np.float64]:  # pragma: no cover - compiled
    """VS_p of each origin; x (B, D, S), y (B, D), w (B, D) -> (B,). Legend: r, c entries."""
    n, d, s = x.shape
    out = np.zeros(n)
    for b in range(n):
        acc = 0.0
        for r in range(d):
            if not w[b, r]:
                continue
            for c in range(r + 1, d):
                if not w[b, c]:
                    continue
                gamma_fc = 0.0  # forecast variogram E|X_r - X_c|^p
                if p == 0.5:
                    for i in range(s):
                        gamma_fc += np.sqrt(abs(x[b, r, i] - x[b, c, i]))
                else:
                    for i in range(s):
                        gamma_fc += abs(x[b, r, i] - x[b, c, i]) ** p
                gamma_obs = abs(y[b, r] - y[b, c]) ** p
                acc += (gamma_obs - gamma_fc / s) ** 2
        out[b] = 2.0 * acc  # ordered pairs (r, c) and (c, r); the diagonal adds 0
    return out


def variogram_score(
    samples: ArrayLike, realized: ArrayLike, mask: ArrayLike, p: float = 0.5
) -> NDArray[np.float64]:
    """Variogram score of order p of the joint forecast of all K × H entries of each origin.

    VS_p(F, y) = sum_{r, c} w_rc (|y_r - y_c|^p - E|X_r - X_c|^p)² over all ordered pairs of the
    D = K·H entries (Scheuerer & Hamill 2015, eq. 4), with E|X_r - X_c|^p the sample average
    (the ``"nrg"`` form of ``scoringrules.variogram_score``). Weights: w_rc = 1 when both entries
    are scored, else 0, so masked entries do not contribute. A numba kernel (square root for
    p = 0.5, about 1 s for B = 4000, S = 100, D = 80; the generic ``scoringrules`` kernel is
    ~40x slower); tests check it against ``scoringrules``. Sensitive to the scales of
    the channels: standardize first when they differ.

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
    mask : array_like of bool, shape (B, K, H)
    p : float
        Order, > 0 (0.5 recommended by Scheuerer & Hamill).

    Returns
    -------
    ndarray of float64, shape (B,)
        NaN for an origin with fewer than two scored entries.
    """
    if not p > 0:
        raise TapecastError(f"variogram order p must be > 0, got {p}")
    x, y, m = as_score_inputs(samples, realized, mask)
    b, s = x.shape[:2]
    x_entries = np.ascontiguousarray(np.moveaxis(x, 1, 3).reshape(b, -1, s))  # (B, K*H, S)
    w = np.ascontiguousarray(m.reshape(b, -1))  # (B, K*H)
    y_flat = np.ascontiguousarray(np.where(w, y.reshape(b, -1), 0.0))  # (B, K*H)
    vs = np.asarray(_variogram_kernel(x_entries, y_flat, w, float(p)), dtype=np.float64)
    return np.where(w.sum(axis=1) >= 2, vs, np.nan)


def pinball_loss(
    samples: ArrayLike, realized: ArrayLike, quantiles: Sequence[float] | ArrayLike
) -> NDArray[np.float64]:
    """Pinball (quantile) loss of the empirical sample quantiles.

    ρ_τ(y - q_τ) = τ (y - q_τ) if y >= q_τ else (1 - τ)(q_τ - y) (Koenker & Bassett 1978), where
    q_τ is the linear-interpolation empirical quantile of the samples (as ``Samples.quantile``).
    2·∫ρ_τ dτ over τ in (0, 1) equals the CRPS (Gneiting & Raftery 2007, eq. 23 ff.).

    Parameters
    ----------
    samples : array_like, shape (B, S, K, H)
    realized : array_like, shape (B, K, H)
    quantiles : sequence of float, shape (Q,)
        Levels τ in (0, 1).

    Returns
    -------
    ndarray of float64, shape (Q, B, K, H)
    """
    x, y, _ = as_score_inputs(samples, realized)
    tau = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
    if tau.ndim != 1 or np.any((tau <= 0) | (tau >= 1)):
        raise TapecastError(f"quantile levels must be a 1-D list in (0, 1), got {tau}")
    q = np.quantile(x, tau, axis=1)  # (Q, B, K, H)
    tau_b = tau[:, None, None, None]  # (Q, 1, 1, 1)
    err = y[None] - q  # (Q, B, K, H)
    return np.where(err >= 0, tau_b * err, (tau_b - 1.0) * err)

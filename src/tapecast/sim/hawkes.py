"""A 4-type multivariate Hawkes process with exponential kernels: fit, simulation, generator.

Event types (:data:`EVENT_TYPES`): add-bid, add-ask, cancel-bid, cancel-ask, index
``2 * (action == cancel) + side``. Intensity of type i (Hawkes 1971; one decay per *target* type,
as in the exponential-kernel order-flow models that Jain et al. 2024, arXiv 2312.08927, use as a
baseline)::

    lambda_i(t) = mu_i + sum_j alpha_ij * sum_{t_k^j < t} exp(-beta_i (t - t_k^j))

Legend: ``mu`` (d,) baseline rates per second; ``alpha`` (d, d) jump of lambda_i after an event
of type j; ``beta`` (d,) decay rate of lambda_i per second. The branching matrix
``G_ij = alpha_ij / beta_i`` is the mean number of type-i events a type-j event triggers directly;
the process is stationary when its spectral radius is below 1, and its mean rates are then
``(I - G)^-1 mu``.

* Fit: maximum likelihood, the log-likelihood of each sequence on [0, T] (T its last event)::

      log L = sum_n log lambda_{c_n}(t_n) - sum_i [ mu_i T + sum_k (alpha_{i c_k} / beta_i)
                                                    (1 - exp(-beta_i (T - t_k))) ]

  computed by Ozaki's (1979) recursion ``R_ij(t_n) = exp(-beta_i (t_n - t_{n-1}))
  (R_ij(t_{n-1}) + [c_{n-1} = j])`` in O(N d^2), with its analytic gradient (the beta derivative
  through ``S_ij = sum (t - t_k) exp(-beta_i (t - t_k))``, recursed alike); scipy's L-BFGS-B on
  log-parameters. Standard errors from the observed information (finite differences of the
  analytic gradient), by the delta method.
* Simulation: Ogata's (1981) thinning, exact: between events every lambda_i decays, so the
  intensity just after the last event bounds it until the next.
* Marks (delta_p, size): resampled from the training marks of the event's type.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numba
import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.optimize import minimize  # type: ignore[import-untyped]

from tapecast.core.io import atomic_write_text
from tapecast.sim.order_flow import BookView, OrderFlowError, OrderIntent

__all__ = ["EVENT_TYPES", "HawkesFit", "HawkesGenerator", "HawkesParams", "fit_hawkes",
           "hawkes_loglik", "simulate_hawkes", "token_sequences"]

EVENT_TYPES: Final = ("add_bid", "add_ask", "cancel_bid", "cancel_ask")
D: Final = len(EVENT_TYPES)
BOUNDS: Final = {"mu": (1e-8, 1e8), "alpha": (1e-8, 1e9), "beta": (1e-6, 1e9)}
"""Box bounds of the fit (per second), applied to the log-parameters."""
FORMAT: Final = "tapecast.hawkes/1"
_CHUNK: Final = 1024


@dataclass(frozen=True)
class HawkesParams:
    """Parameters of the exponential Hawkes process (module docstring for the formula).

    Attributes
    ----------
    mu : ndarray, shape (d,), float64
        Baseline rates, per second.
    alpha : ndarray, shape (d, d), float64
        ``alpha[i, j]``: jump of lambda_i after a type-j event, per second.
    beta : ndarray, shape (d,), float64
        Decay rate of lambda_i, per second.
    """

    mu: NDArray[np.float64]
    alpha: NDArray[np.float64]
    beta: NDArray[np.float64]

    def __post_init__(self) -> None:
        d = self.mu.shape[0]
        if self.mu.shape != (d,) or self.alpha.shape != (d, d) or self.beta.shape != (d,):
            raise OrderFlowError(f"Hawkes parameters: expected mu (d,), alpha (d, d), beta (d,), "
                                 f"got {self.mu.shape}, {self.alpha.shape}, {self.beta.shape}")
        ok = (np.all(self.mu > 0) and np.all(self.alpha >= 0) and np.all(self.beta > 0)
              and np.all(np.isfinite(self.alpha)))
        if not ok:
            raise OrderFlowError("Hawkes parameters: expected mu > 0, alpha >= 0, beta > 0, "
                                 "all finite")

    @property
    def branching(self) -> NDArray[np.float64]:
        """G = alpha / beta_i, shape (d, d): direct offspring of type i per type-j event."""
        return self.alpha / self.beta[:, None]

    @property
    def spectral_radius(self) -> float:
        """Spectral radius of :attr:`branching`; < 1 means stationary."""
        return float(np.max(np.abs(np.linalg.eigvals(self.branching))))

    @property
    def stationary_rates(self) -> NDArray[np.float64]:
        """Mean rates (I - G)^-1 mu, shape (d,), per second (meaningful when stationary)."""
        d = self.mu.shape[0]
        return np.asarray(np.linalg.solve(np.eye(d) - self.branching, self.mu), dtype=np.float64)

    def to_vector(self) -> NDArray[np.float64]:
        """[mu, alpha (row-major), beta], shape (d + d^2 + d,)."""
        return np.concatenate([self.mu, self.alpha.ravel(), self.beta])

    @classmethod
    def from_vector(cls, theta: NDArray[np.float64], d: int = D) -> HawkesParams:
        """Inverse of :meth:`to_vector`."""
        return cls(theta[:d].copy(), theta[d:d + d * d].reshape(d, d).copy(),
                   theta[d + d * d:].copy())

    def to_dict(self) -> dict[str, Any]:
        return {"mu": self.mu.tolist(), "alpha": self.alpha.tolist(), "beta": self.beta.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HawkesParams:
        return cls(np.asarray(data["mu"], dtype=np.float64),
                   np.asarray(data["alpha"], dtype=np.float64),
                   np.asarray(data["beta"], dtype=np.float64))


@dataclass(frozen=True)
class HawkesFit:
    """A maximum-likelihood fit.

    Attributes
    ----------
    params : HawkesParams
    stderr : HawkesParams or None
        Standard errors (same layout); None where the observed information is not invertible.
    loglik : float
        Log-likelihood at ``params``, summed over sequences.
    n_events, n_ties : int
        Events, and events at the same time as their predecessor (kept as they are).
    duration : float
        Sum of the sequences' lengths T, seconds.
    converged : bool
    message : str
        The optimizer's message.
    """

    params: HawkesParams
    stderr: HawkesParams | None
    loglik: float
    n_events: int
    n_ties: int
    duration: float
    converged: bool
    message: str

    @property
    def spectral_radius(self) -> float:
        return self.params.spectral_radius

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params.to_dict(),
                "stderr": None if self.stderr is None else self.stderr.to_dict(),
                "loglik": self.loglik, "n_events": self.n_events, "n_ties": self.n_ties,
                "duration": self.duration, "converged": self.converged, "message": self.message,
                "spectral_radius": self.spectral_radius}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HawkesFit:
        se = data.get("stderr")
        return cls(HawkesParams.from_dict(data["params"]),
                   None if se is None else HawkesParams.from_dict(se), float(data["loglik"]),
                   int(data["n_events"]), int(data["n_ties"]), float(data["duration"]),
                   bool(data["converged"]), str(data["message"]))


# --------------------------------------------------------------------------- compiled kernels

@numba.njit(cache=True)
def _loglik_grad(t, c, mu, alpha, beta):  # type: ignore[no-untyped-def]
    """Log-likelihood of one sequence on [0, t[-1]] and its gradient (mu, alpha, beta).

    R[i, j] = sum_{t_k^j < t} exp(-beta_i (t - t_k)); S[i, j] = sum (t - t_k) exp(...).
    """
    d = mu.shape[0]
    n_ev = t.shape[0]
    big_t = t[n_ev - 1]
    r = np.zeros((d, d))
    s = np.zeros((d, d))
    g_mu = np.zeros(d)
    g_alpha = np.zeros((d, d))
    g_beta = np.zeros(d)
    ll = 0.0
    t_prev = 0.0
    for n in range(n_ev):
        dt = t[n] - t_prev
        if dt > 0.0:
            for i in range(d):
                e = math.exp(-beta[i] * dt)
                for j in range(d):
                    s[i, j] = e * (s[i, j] + dt * r[i, j])
                    r[i, j] *= e
        i = c[n]
        lam = mu[i]
        for j in range(d):
            lam += alpha[i, j] * r[i, j]
        ll += math.log(lam)
        inv = 1.0 / lam
        g_mu[i] += inv
        for j in range(d):
            g_alpha[i, j] += r[i, j] * inv
            g_beta[i] -= alpha[i, j] * s[i, j] * inv
        for k in range(d):
            r[k, i] += 1.0
        t_prev = t[n]
    for i in range(d):  # compensator
        ll -= mu[i] * big_t
        g_mu[i] -= big_t
    for n in range(n_ev):
        j = c[n]
        u = big_t - t[n]
        for i in range(d):
            e = math.exp(-beta[i] * u)
            a_b = alpha[i, j] / beta[i]
            ll -= a_b * (1.0 - e)
            g_alpha[i, j] -= (1.0 - e) / beta[i]
            g_beta[i] += a_b / beta[i] * (1.0 - e) - a_b * u * e
    return ll, g_mu, g_alpha, g_beta


@numba.njit(cache=True)
def _thin(mu, alpha, beta, r, t0, u, n_max, out_t, out_c):  # type: ignore[no-untyped-def]
    """Ogata thinning from time t0 with state r (d, d), updated in place.

    Each candidate uses one row of u (M, 2): u[m, 0] for the exponential wait under the bound,
    u[m, 1] for acceptance and the type at once. Returns (events written, rows used, time).
    """
    d = mu.shape[0]
    lam = np.empty(d)
    t = t0
    n = 0
    m = 0
    while n < n_max and m < u.shape[0]:
        bound = 0.0
        for i in range(d):
            bound += mu[i]
            for j in range(d):
                bound += alpha[i, j] * r[i, j]
        w = -math.log(1.0 - u[m, 0]) / bound
        t += w
        total = 0.0
        for i in range(d):
            e = math.exp(-beta[i] * w)
            lam[i] = mu[i]
            for j in range(d):
                r[i, j] *= e
                lam[i] += alpha[i, j] * r[i, j]
            total += lam[i]
        x = u[m, 1] * bound
        m += 1
        if x < total:
            i = 0
            acc = lam[0]
            while acc <= x and i < d - 1:
                i += 1
                acc += lam[i]
            out_t[n] = t
            out_c[n] = i
            for k in range(d):
                r[k, i] += 1.0
            n += 1
    return n, m, t


# --------------------------------------------------------------------------- likelihood and fit

def _check_sequence(t: NDArray[np.float64], c: NDArray[np.int64], d: int, name: str) -> None:
    if t.shape[0] == 0:
        raise OrderFlowError(f"{name}: expected at least one event, got none")
    if t.shape != c.shape:
        raise OrderFlowError(f"{name}: expected times and types of one length, got "
                             f"{t.shape[0]} and {c.shape[0]}")
    if not np.all(np.isfinite(t)) or t[0] < 0:
        raise OrderFlowError(f"{name}: field 'time': expected finite times >= 0")
    bad = np.flatnonzero(np.diff(t) < 0)
    if bad.size:
        k = int(bad[0]) + 1
        raise OrderFlowError(f"{name}, event {k}, field 'time': expected times not decreasing, "
                             f"got {t[k]!r} after {t[k - 1]!r}")
    wrong = np.flatnonzero((c < 0) | (c >= d))
    if wrong.size:
        k = int(wrong[0])
        raise OrderFlowError(f"{name}, event {k}, field 'type': expected 0..{d - 1}, got {c[k]}")
    if t[-1] <= 0:
        raise OrderFlowError(f"{name}: expected a sequence longer than 0 seconds")


def _as_sequences(times: list[NDArray[np.float64]], types: list[NDArray[np.int64]], d: int
                  ) -> list[tuple[NDArray[np.float64], NDArray[np.int64]]]:
    if len(times) == 0 or len(times) != len(types):
        raise OrderFlowError(f"Hawkes data: expected one or more sequences of times and types, "
                             f"got {len(times)} and {len(types)}")
    out = []
    for k, (t, c) in enumerate(zip(times, types, strict=True)):
        t64 = np.ascontiguousarray(t, dtype=np.float64)
        c64 = np.ascontiguousarray(c, dtype=np.int64)
        _check_sequence(t64, c64, d, f"sequence {k}")
        out.append((t64, c64))
    return out


def hawkes_loglik(params: HawkesParams, times: list[NDArray[np.float64]],
                  types: list[NDArray[np.int64]]) -> float:
    """Log-likelihood of sequences, each on [0, its last event].

    Parameters
    ----------
    params : HawkesParams
    times : list of ndarray, each shape (N_k,), float64
        Event times in seconds from the sequence's start, not decreasing.
    types : list of ndarray, each shape (N_k,), int
        Event types 0..d-1.

    Returns
    -------
    float
    """
    d = params.mu.shape[0]
    return sum(float(_loglik_grad(t, c, params.mu, params.alpha, params.beta)[0])
               for t, c in _as_sequences(times, types, d))


def _objective(x: NDArray[np.float64], seqs: list[tuple[NDArray[np.float64], NDArray[np.int64]]],
               d: int, scale: float) -> tuple[float, NDArray[np.float64]]:
    """-log L / scale and its gradient in log-parameters x."""
    theta = np.exp(x)
    p = HawkesParams.from_vector(theta, d)
    ll = 0.0
    grad = np.zeros_like(theta)
    for t, c in seqs:
        value, g_mu, g_alpha, g_beta = _loglik_grad(t, c, p.mu, p.alpha, p.beta)
        ll += value
        grad += np.concatenate([g_mu, g_alpha.ravel(), g_beta])
    return -ll / scale, -grad * theta / scale


def _start(seqs: list[tuple[NDArray[np.float64], NDArray[np.int64]]], d: int
           ) -> tuple[HawkesParams, float]:
    """Starting values: beta_i = N / T, G_ij = 0.4 / d, mu_i = 0.6 N_i / T."""
    duration = sum(float(t[-1]) for t, _ in seqs)
    counts = np.bincount(np.concatenate([c for _, c in seqs]), minlength=d).astype(np.float64)
    rate = counts.sum() / duration
    beta = np.full(d, rate)
    alpha = np.full((d, d), 0.4 / d) * beta[:, None]
    mu = np.maximum(0.6 * counts / duration, 1e-3 * rate)
    return HawkesParams(mu, alpha, beta), duration


def _bounds(d: int) -> list[tuple[float, float]]:
    sizes = {"mu": d, "alpha": d * d, "beta": d}
    return [(math.log(BOUNDS[k][0]), math.log(BOUNDS[k][1])) for k in ("mu", "alpha", "beta")
            for _ in range(sizes[k])]


def _stderr(x: NDArray[np.float64], seqs: list[tuple[NDArray[np.float64], NDArray[np.int64]]],
            d: int) -> HawkesParams | None:
    """Delta-method standard errors from the finite-difference Hessian of -log L in x."""
    h = 1e-5
    k = x.shape[0]
    hess = np.empty((k, k))
    for m in range(k):
        step = np.zeros(k)
        step[m] = h
        hess[:, m] = (_objective(x + step, seqs, d, 1.0)[1]
                      - _objective(x - step, seqs, d, 1.0)[1]) / (2 * h)
    hess = 0.5 * (hess + hess.T)
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return None
    var = np.diag(cov)
    if np.any(var <= 0) or not np.all(np.isfinite(var)):
        return None
    se = np.exp(x) * np.sqrt(var)  # (k,), delta method: d theta / dx = theta
    return HawkesParams(se[:d], se[d:d + d * d].reshape(d, d), se[d + d * d:])


def fit_hawkes(times: list[NDArray[np.float64]], types: list[NDArray[np.int64]], d: int = D, *,
               start: HawkesParams | None = None, max_iter: int = 2000,
               stderr: bool = True) -> HawkesFit:
    """Maximum-likelihood fit of the exponential Hawkes process to one or more sequences.

    Parameters
    ----------
    times : list of ndarray, each shape (N_k,), float64
        Event times in seconds from each sequence's start, not decreasing (ties are kept).
    types : list of ndarray, each shape (N_k,), int
        Event types 0..d-1.
    d : int
        Number of event types.
    start : HawkesParams or None
        Starting values; default beta_i = N/T, G_ij = 0.4/d, mu_i = 0.6 N_i/T.
    max_iter : int
        L-BFGS-B iteration cap.
    stderr : bool
        Compute standard errors (2 (d + d^2 + d) more gradient evaluations).

    Returns
    -------
    HawkesFit

    Raises
    ------
    OrderFlowError
        No sequence, an empty one, decreasing times, a type outside 0..d-1.
    """
    seqs = _as_sequences(times, types, d)
    guess, duration = _start(seqs, d)
    x0 = np.log((start or guess).to_vector())
    n_events = sum(t.shape[0] for t, _ in seqs)
    lo, hi = zip(*_bounds(d), strict=True)
    x0 = np.clip(x0, lo, hi)
    result = minimize(_objective, x0, args=(seqs, d, float(n_events)), jac=True,
                      method="L-BFGS-B", bounds=_bounds(d),
                      options={"maxiter": max_iter, "ftol": 1e-12, "gtol": 1e-7})
    params = HawkesParams.from_vector(np.exp(result.x), d)
    n_ties = sum(int(np.sum(np.diff(t) == 0)) for t, _ in seqs)
    return HawkesFit(params, _stderr(result.x, seqs, d) if stderr else None,
                     -float(result.fun) * n_events, n_events, n_ties, duration,
                     bool(result.success), str(result.message))


# --------------------------------------------------------------------------- simulation

class _Thinning:
    """Incremental Ogata thinning with its own random stream (chunked, reproducible)."""

    def __init__(self, params: HawkesParams, rng: np.random.Generator) -> None:
        if params.spectral_radius >= 1:
            raise OrderFlowError(f"Hawkes parameters: expected a branching matrix with spectral "
                                 f"radius < 1 (stationary), got {params.spectral_radius:.4f}")
        self.params = params
        self.rng = rng
        d = params.mu.shape[0]
        self.r = np.zeros((d, d))
        self.t = 0.0

    def draw(self, n: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The next n events: times (n,) float64 from the start, types (n,) int64."""
        p = self.params
        out_t = np.empty(n)
        out_c = np.empty(n, dtype=np.int64)
        done = 0
        while done < n:
            u = self.rng.random((2 * (n - done) + 16, 2))  # (M, 2)
            k, _, self.t = _thin(p.mu, p.alpha, p.beta, self.r, self.t, u, n - done,
                                 out_t[done:], out_c[done:])
            done += int(k)
        return out_t, out_c


def simulate_hawkes(params: HawkesParams, n: int, seed: int
                    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """n events of the process from an empty history, by Ogata's thinning.

    Returns
    -------
    times : ndarray, shape (n,), float64
        Seconds from the start, increasing.
    types : ndarray, shape (n,), int64
        Event types 0..d-1.

    Raises
    ------
    OrderFlowError
        n < 1 or a non-stationary ``params`` (spectral radius of G >= 1).
    """
    if n < 1:
        raise OrderFlowError(f"simulate_hawkes: expected n >= 1 events, got {n}")
    return _Thinning(params, np.random.default_rng(seed)).draw(n)


# --------------------------------------------------------------------------- tokens and generator

def token_sequences(tokens: pl.DataFrame, source: str = "tokens"
                    ) -> tuple[list[NDArray[np.float64]], list[NDArray[np.int64]],
                               list[NDArray[np.float64]], list[NDArray[np.int64]]]:
    """Per (instrument, session) event times (cumulative ``dt``) and types, and the marks.

    Returns
    -------
    times, types : lists of ndarray, shapes (N_k,), float64 and int64
    delta_p, size : lists over the d types of ndarray (M_i,), float64 and int64
        All training marks of each type.
    """
    need = {"action", "side", "dt", "delta_p", "size"}
    missing = sorted(need - set(tokens.columns))
    if missing:
        raise OrderFlowError(f"{source}: expected token columns {sorted(need)}, "
                             f"missing {missing}")
    if tokens.height == 0:
        raise OrderFlowError(f"{source}: expected token events, got none")
    action = tokens["action"].cast(pl.String).to_numpy()
    side = tokens["side"].cast(pl.String).to_numpy()
    is_cancel = action == "cancel"
    ok = ((action == "add") | is_cancel) & ((side == "bid") | (side == "ask"))
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        raise OrderFlowError(f"{source}, row {k}, field 'action'/'side': expected add or cancel "
                             f"on bid or ask, got {action[k]!r} on {side[k]!r}")
    c = 2 * is_cancel.astype(np.int64) + (side == "ask").astype(np.int64)
    dt = tokens["dt"].cast(pl.Float64).to_numpy()
    if np.any(~np.isfinite(dt)) or np.any(dt < 0):
        k = int(np.flatnonzero(~(dt >= 0))[0])
        raise OrderFlowError(f"{source}, row {k}, field 'dt': expected seconds >= 0, got {dt[k]}")
    keys = [k for k in ("instrument", "session_date") if k in tokens.columns]
    starts = [0]
    if keys:
        changed = tokens.select(pl.any_horizontal(
            [(pl.col(k) != pl.col(k).shift(1)).fill_null(False) for k in keys]))
        starts += list(np.flatnonzero(changed.to_series().to_numpy()))
    bounds = [*starts, tokens.height]
    times = [np.cumsum(dt[a:b]) for a, b in itertools.pairwise(bounds)]
    types = [c[a:b] for a, b in itertools.pairwise(bounds)]
    delta_p = tokens["delta_p"].cast(pl.Float64).to_numpy()
    size = tokens["size"].cast(pl.Int64).to_numpy()
    return (times, types, [delta_p[c == i] for i in range(D)], [size[c == i] for i in range(D)])


@dataclass
class HawkesGenerator:
    """Hawkes order flow as :class:`~tapecast.sim.order_flow.OrderIntent` (adds and cancels).

    A type's mark (delta_p, size) is a uniform draw from that type's stored training marks; the
    book view is not used (delta_p is already relative to the mid). Marketable adds appear as
    adds whose delta_p lies beyond the opposite best. Reproducible: ``reset(seed)`` then the same
    calls give the same intents.

    Attributes
    ----------
    fit_result : HawkesFit
    mark_delta_p : list of ndarray, (M_i,) float64, one per type
    mark_size : list of ndarray, (M_i,) int64, one per type
    name : str
    """

    fit_result: HawkesFit
    mark_delta_p: list[NDArray[np.float64]]
    mark_size: list[NDArray[np.int64]]
    name: str = "hawkes"
    _thinning: _Thinning | None = field(default=None, init=False, repr=False)
    _marks_rng: np.random.Generator | None = field(default=None, init=False, repr=False)
    _buffer: tuple[NDArray[np.float64], NDArray[np.int64]] | None = field(
        default=None, init=False, repr=False)
    _pos: int = field(default=0, init=False, repr=False)
    _t_last: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        for i, (dp, sz) in enumerate(zip(self.mark_delta_p, self.mark_size, strict=True)):
            if dp.shape[0] == 0 or dp.shape != sz.shape:
                raise OrderFlowError(f"Hawkes marks of type {EVENT_TYPES[i]}: expected one or "
                                     f"more (delta_p, size) pairs, got {dp.shape[0]}")

    @property
    def params(self) -> HawkesParams:
        return self.fit_result.params

    @classmethod
    def fit(cls, tokens: pl.DataFrame, *, max_marks: int = 20_000, seed: int = 0,
            name: str = "hawkes", source: str = "tokens") -> HawkesGenerator:
        """Fit to a token table (``event_features(...).tokens``), one sequence per session.

        Parameters
        ----------
        tokens : pl.DataFrame
            Columns action, side, dt, delta_p, size (and instrument, session_date to split
            sessions).
        max_marks : int
            Marks kept per type (a seeded uniform subsample when there are more).
        seed : int
            Seed of that subsample.

        Raises
        ------
        OrderFlowError
            Missing columns, no tokens, an unknown action/side, bad dt, a type with no token.
        """
        times, types, delta_p, size = token_sequences(tokens, source)
        fitted = fit_hawkes(times, types)
        rng = np.random.default_rng(seed)
        keep_dp, keep_size = [], []
        for dp, sz in zip(delta_p, size, strict=True):
            idx = (np.sort(rng.choice(dp.shape[0], max_marks, replace=False))
                   if dp.shape[0] > max_marks else np.arange(dp.shape[0]))
            keep_dp.append(dp[idx])
            keep_size.append(sz[idx])
        return cls(fitted, keep_dp, keep_size, name)

    def reset(self, seed: int) -> None:
        events, marks = np.random.SeedSequence(seed).spawn(2)
        self._thinning = _Thinning(self.params, np.random.default_rng(events))
        self._marks_rng = np.random.default_rng(marks)
        self._buffer = None
        self._pos = 0
        self._t_last = 0.0

    def next(self, view: BookView) -> OrderIntent:
        if self._thinning is None or self._marks_rng is None:
            self.reset(0)
        assert self._thinning is not None and self._marks_rng is not None
        if self._buffer is None or self._pos == self._buffer[0].shape[0]:
            self._buffer = self._thinning.draw(_CHUNK)
            self._pos = 0
        t, c = float(self._buffer[0][self._pos]), int(self._buffer[1][self._pos])
        self._pos += 1
        dt, self._t_last = t - self._t_last, t
        k = int(self._marks_rng.integers(self.mark_delta_p[c].shape[0]))
        return OrderIntent(dt=max(dt, 0.0), action="cancel" if c >= 2 else "add", side=c % 2,
                           delta_p=float(self.mark_delta_p[c][k]), size=int(self.mark_size[c][k]))

    def save(self, path: str | Path) -> None:
        """Parameters, fit summary and marks as JSON (atomic write)."""
        data = {"format": FORMAT, "name": self.name, "event_types": list(EVENT_TYPES),
                "fit": self.fit_result.to_dict(),
                "marks": [{"delta_p": dp.tolist(), "size": sz.tolist()}
                          for dp, sz in zip(self.mark_delta_p, self.mark_size, strict=True)]}
        atomic_write_text(path, json.dumps(data))

    @classmethod
    def load(cls, path: str | Path) -> HawkesGenerator:
        """Read :meth:`save`'s JSON.

        Raises
        ------
        OrderFlowError
            Not such a file.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise KeyError("format")
            return cls(HawkesFit.from_dict(data["fit"]),
                       [np.asarray(m["delta_p"], dtype=np.float64) for m in data["marks"]],
                       [np.asarray(m["size"], dtype=np.int64) for m in data["marks"]],
                       str(data["name"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OrderFlowError(f"{path}: expected a {FORMAT} JSON file ({exc})") from None

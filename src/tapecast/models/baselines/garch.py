"""GARCH(1,1) with Student-t innovations, fitted per origin and channel on the context (``arch``).

Model (Bollerslev 1986, J. Econometrics 31, 307-327; Student-t innovations as in Bollerslev
1987, Rev. Econ. Stat. 69, 542-547), on the standardized context ``z_t = (y_t - m) / s``::

    z_t = mu + eps_t,   eps_t = sigma_t eta_t,   eta_t ~ t_nu scaled to unit variance
    sigma_t^2 = omega + alpha eps_{t-1}^2 + beta sigma_{t-1}^2

fitted by maximum likelihood with ``arch`` (constant mean, ``GARCH(p=1, q=1)``,
``StudentsT``). Standardizing first keeps the optimizer in the scale ``arch`` is tuned for
(per-window log returns are ~1e-4) and is undone on the samples. The H-step paths are simulated
by the recursion above from the fitted parameters, the last residual and the last conditional
variance, vectorized over samples and series (the same paths ``arch``'s
``forecast(method="simulation")`` draws, without its per-series overhead).

Undefined context values are dropped (the series is fitted on its defined values in order).
A channel falls back to the hist-vol Gaussian ``N(m, s^2)`` of its context when it has fewer
than ``min_points`` defined values, is constant, or its fit fails: an exception, a
``ConvergenceWarning``, a non-zero convergence flag or non-finite parameters. Fits and
fallbacks are counted per channel in ``fit_counts`` / ``fallback_counts``, cumulative over
``sample`` calls and counting each distinct context series once: fits are cached by a hash of
the series' bytes (``cache_fits``), so sampling the same origins again with another seed, as a
walk-forward over several seeds does, reuses them. Bounded channels (imbalances in [-1, 1]) are
not clipped.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.models.base import (
    Baseline,
    BaselineConfig,
    ChannelStats,
    TrainingWindows,
    context_moments,
    register,
)


@dataclass(frozen=True)
class GarchConfig(BaselineConfig):
    """Options of :class:`Garch`.

    Parameters
    ----------
    min_points : int
        Fewest defined context values to attempt a fit (>= 10).
    tol : float or None
        Optimizer tolerance passed to ``arch``'s ``fit`` (None: its default).
    cache_fits : bool
        Keep each context series' fit for later ``sample`` calls (cleared by ``fit``).
    """

    min_points: int = 30
    tol: float | None = None
    cache_fits: bool = True

    def validate(self) -> None:
        self.check_range("min_points", low=10)
        self.check_range("tol", low=0.0, low_inclusive=False)  # None passes


@dataclass(frozen=True)
class GarchState:
    """A fitted series, in standardized units: parameters, last residual and variance."""

    mu: float
    omega: float
    alpha: float
    beta: float
    nu: float
    last_resid: float
    last_var: float


def fit_garch_t(z: NDArray[np.float64], tol: float | None = None) -> GarchState | None:
    """Fit GARCH(1,1)-t with a constant mean to a standardized series ``z`` (T,).

    Returns None when the fit fails (exception, convergence warning or flag, non-finite params).
    """
    from arch.univariate import GARCH, ConstantMean, StudentsT
    from arch.utility.exceptions import ConvergenceWarning

    model = ConstantMean(z, volatility=GARCH(p=1, q=1), distribution=StudentsT())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = model.fit(disp="off", tol=tol)
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            return None
    if res.convergence_flag != 0 or any(issubclass(w.category, ConvergenceWarning)
                                        for w in caught):
        return None
    mu, omega, alpha, beta, nu = (float(v) for v in np.asarray(res.params))
    state = GarchState(mu, omega, alpha, beta, nu, float(np.asarray(res.resid)[-1]),
                       float(np.asarray(res.conditional_volatility)[-1] ** 2))
    return state if np.isfinite(list(vars(state).values())).all() else None


def simulate_garch_t(states: list[GarchState], n_samples: int, horizon: int,
                     rng: np.random.Generator) -> NDArray[np.float64]:
    """Simulated standardized paths of N fitted series, shape (N, n_samples, horizon)."""
    def col(name: str) -> NDArray[np.float64]:
        return np.array([getattr(s, name) for s in states])[:, None]  # (N, 1)

    mu, omega, alpha, beta, nu = (col(n) for n in ("mu", "omega", "alpha", "beta", "nu"))
    var = np.broadcast_to(omega + alpha * col("last_resid") ** 2 + beta * col("last_var"),
                          (len(states), n_samples))  # sigma^2_{T+1}, (N, S)
    out = np.empty((len(states), n_samples, horizon))
    for step in range(horizon):
        eta = rng.standard_t(nu, size=var.shape) * np.sqrt((nu - 2.0) / nu)  # unit variance
        eps = np.sqrt(var) * eta
        out[:, :, step] = mu + eps
        var = omega + alpha * eps**2 + beta * var
    return out


@register
class Garch(Baseline[GarchConfig]):
    """Per-origin GARCH(1,1)-t; see the module docstring."""

    name = "garch"
    config_class = GarchConfig

    def _fit(self, windows: TrainingWindows, seed: int) -> None:
        self.fit_counts = dict.fromkeys(windows.channels, 0)
        self.fallback_counts = dict.fromkeys(windows.channels, 0)
        self._cache: dict[bytes, GarchState | None] = {}

    def _draw(self, batch: ForecastBatch, n_samples: int, rng: np.random.Generator,
              stats: ChannelStats) -> NDArray[np.float64]:
        b, k, h = batch.target.shape
        mean, std = context_moments(batch.context, stats)  # (B, K), hist-vol fallback moments
        out = mean[:, None, :, None] + std[:, None, :, None] * rng.standard_normal(
            (b, n_samples, k, h))  # (B, S, K, H), overwritten where a GARCH fit succeeds
        fitted: list[tuple[int, int]] = []
        states: list[GarchState] = []
        for i in range(b):
            for j, channel in enumerate(batch.channels):
                state = self._cached_fit(channel, batch.context[i, j], mean[i, j], std[i, j])
                if state is not None:
                    fitted.append((i, j))
                    states.append(state)
        if states:
            paths = simulate_garch_t(states, n_samples, h, rng)  # (N, S, H)
            rows, cols = np.array(fitted).T
            out[rows, :, cols] = mean[rows, cols, None, None] + std[rows, cols, None, None] * paths
        return out

    def _cached_fit(self, channel: str, series: NDArray[np.float64], m: float, s: float
                    ) -> GarchState | None:
        """The fit of one context series (cached), counted once per distinct series."""
        data = channel.encode() + np.ascontiguousarray(series, dtype=np.float64).tobytes()
        key = hashlib.blake2b(data, digest_size=16).digest()
        if key in self._cache:
            return self._cache[key]
        state = self._fit_one(series, m, s)
        self.fit_counts[channel] += 1
        self.fallback_counts[channel] += state is None
        if self.config.cache_fits:
            self._cache[key] = state
        return state

    def _fit_one(self, series: NDArray[np.float64], m: float, s: float) -> GarchState | None:
        y = series[np.isfinite(series)]
        if y.size < self.config.min_points or not s > 0:
            return None
        return fit_garch_t((y - m) / s, self.config.tol)

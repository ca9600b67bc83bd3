"""GARCH(1,1) with Student-t innovations on the 1-s returns, fitted once per instrument.

Model (Bollerslev 1986, J. Econometrics 31, 307-327, eq. 5 with p = q = 1; standardized
Student-t innovations as in Bollerslev 1987, Rev. Econ. Stat. 69, 542-547, eq. 1-3), on the
scaled 1-s log returns ``ε_t = scale · r_t``::

    ε_t = σ_t η_t,    η_t ~ t_ν scaled to unit variance
    σ_t² = ω + α ε_{t-1}² + β σ_{t-1}²

(zero mean: the mean of a 1-s return is far below its noise). Legend: ε the scaled return, σ²
its conditional variance, ω, α, β the recursion's parameters, ν the t degrees of freedom.

Fit
    By maximum likelihood with ``arch`` (``ZeroMean``, ``GARCH(1, 1)``, ``StudentsT``), once per
    instrument, on its distinct training 1-s returns (:class:`PriceTraining`: each grid row once,
    runs of consecutive rows in row order, never an overnight return). The runs are laid end to
    end, so the recursion carries σ² over the few joins between runs (session ends, gaps) instead
    of restarting it. ``scale`` (1e4: basis points) keeps the returns in the range ``arch``'s
    optimizer is tuned for. An instrument with fewer than ``min_returns`` returns, or whose fit
    fails (exception, non-zero convergence flag, non-finite or non-stationary parameters), takes
    the fit on all instruments' returns (``fallbacks`` counts them); an unseen instrument too.
    When that pooled fit fails as well (returns without volatility clustering), the model is
    the degenerate GARCH with α = β = 0 (:func:`fit_constant_t`; ``constant_variance`` is
    True).

Forecast
    Each window's context returns are filtered through the fitted recursion, vectorized over
    windows: σ_1² starts from ``arch``'s backcast (the 0.94-exponentially weighted mean of the
    first min(75, C) squared returns), an undefined return adds its expected square σ_t². The
    variance of the first second ahead is σ_{C+1}² = ω + α ε_C² + β σ_C²; T = max(steps)
    seconds are then simulated by the recursion with t_ν innovations, vectorized over windows and
    samples, and their cumulative sum, divided by ``scale``, is read at the horizon steps. No fit
    and no ``arch`` call happen per window.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models.price_baselines.base import (
    PriceBaseline,
    PriceBaselineConfig,
    PriceTraining,
    context_returns,
    per_instrument,
    register,
)

BACKCAST_SPAN = 75
BACKCAST_DECAY = 0.94
"""``arch``'s backcast: the EWMA (λ = 0.94) of the first 75 squared residuals."""


@dataclass(frozen=True)
class PriceGarchTConfig(PriceBaselineConfig):
    """Options of :class:`PriceGarchT`.

    Parameters
    ----------
    scale : float
        Multiplier of the 1-s log returns before fitting (> 0; 1e4: basis points).
    min_returns : int
        Fewest distinct training returns for an instrument's own fit (>= 100).
    """

    scale: float = 1e4
    min_returns: int = 1000

    def validate(self) -> None:
        self.check_range("scale", low=0.0, low_inclusive=False)
        self.check_range("min_returns", low=100)


@dataclass(frozen=True)
class GarchTParams:
    """Fitted GARCH(1,1)-t parameters in scaled units: ω, α, β, ν."""

    omega: float
    alpha: float
    beta: float
    nu: float


def fit_garch_t(eps: NDArray[np.float64]) -> GarchTParams | None:
    """Maximum-likelihood GARCH(1,1)-t with zero mean on scaled returns ``eps`` (T,) by
    ``arch``; None when the fit fails or is not covariance-stationary."""
    from arch.univariate import GARCH, StudentsT, ZeroMean

    model = ZeroMean(eps, volatility=GARCH(p=1, q=1), distribution=StudentsT(), rescale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = model.fit(disp="off")
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            return None
    values = np.asarray(res.params, dtype=np.float64)
    if res.convergence_flag != 0 or not np.isfinite(values).all():
        return None
    params = GarchTParams(*(float(v) for v in values))
    return params if params.alpha + params.beta < 1.0 and params.nu > 2.0 else None


def fit_constant_t(eps: NDArray[np.float64]) -> GarchTParams | None:
    """The degenerate GARCH(1,1)-t with α = β = 0 (a constant variance ω and Student-t
    innovations), fitted by ``arch``'s ``ConstantVariance``: the fallback when the full fit
    fails, e.g. on returns without volatility clustering (the optimizer then hits α + β = 1 or
    α = 0 and reports incompatible constraints). None when this fails too."""
    from arch.univariate import ConstantVariance, StudentsT, ZeroMean

    model = ZeroMean(eps, volatility=ConstantVariance(), distribution=StudentsT(), rescale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = model.fit(disp="off")
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            return None
    sigma2, nu = (float(v) for v in np.asarray(res.params, dtype=np.float64))
    if not (np.isfinite(sigma2) and sigma2 > 0 and np.isfinite(nu) and nu > 2.0):
        return None
    return GarchTParams(sigma2, 0.0, 0.0, nu)


def garch_filter(eps: NDArray[np.float64], omega: NDArray[np.float64],
                 alpha: NDArray[np.float64], beta: NDArray[np.float64]) -> NDArray[np.float64]:
    """Conditional variances σ_1² .. σ_{C+1}² of B series (Bollerslev 1986, eq. 5).

    Parameters
    ----------
    eps : ndarray, float64, shape (B, C)
        Scaled returns, NaN where undefined (its square is replaced by σ_t²).
    omega, alpha, beta : ndarray, float64, shape (B,)

    Returns
    -------
    ndarray, float64, shape (B, C + 1)
        Column t is σ_{t+1}², the variance of ``eps[:, t]``; the last column the variance of
        the first step ahead. σ_1² = ω + (α + β)·backcast, as ``arch`` starts its recursion.
    """
    b, c = eps.shape
    ok = np.isfinite(eps)
    span = min(BACKCAST_SPAN, c)
    w = np.where(ok[:, :span], BACKCAST_DECAY ** np.arange(span), 0.0)  # (B, span)
    sq = np.where(ok, eps, 0.0) ** 2  # (B, C)
    backcast = (w * sq[:, :span]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-300)
    sigma2 = np.empty((b, c + 1))
    sigma2[:, 0] = omega + (alpha + beta) * backcast
    for t in range(c):
        shock = np.where(ok[:, t], sq[:, t], sigma2[:, t])  # ε_t², or its expectation
        sigma2[:, t + 1] = omega + alpha * shock + beta * sigma2[:, t]
    return sigma2


def simulate_garch_t(sigma2: NDArray[np.float64], params: tuple[NDArray[np.float64], ...],
                     steps: NDArray[np.int64], n_samples: int, rng: np.random.Generator
                     ) -> NDArray[np.float64]:
    """Cumulative scaled returns simulated ahead by the recursion, read at ``steps`` seconds.

    Parameters
    ----------
    sigma2 : ndarray, float64, shape (B,)
        σ² of the first second ahead.
    params : tuple of ndarray, float64, shape (B,) each
        ω, α, β, ν per series.
    steps : ndarray, int64, shape (H,)
        Increasing seconds ahead (:func:`~tapecast.models.price_baselines.base.horizon_steps`).

    Returns
    -------
    ndarray, float64, shape (B, S, H)
    """
    omega, alpha, beta, nu = (p[:, None] for p in params)  # (B, 1) each
    var = np.broadcast_to(sigma2[:, None], (sigma2.size, n_samples))  # (B, S)
    unit = np.sqrt((nu - 2.0) / nu)  # t_ν to unit variance
    total = np.zeros(var.shape)  # (B, S) cumulative return so far
    out = np.empty((sigma2.size, n_samples, steps.size))
    col = 0
    for second in range(1, int(steps[-1]) + 1):
        eps = np.sqrt(var) * rng.standard_t(nu, size=var.shape) * unit  # ε_t = σ_t η_t
        total += eps
        var = omega + alpha * eps**2 + beta * var
        if steps[col] == second:
            out[:, :, col] = total
            col += 1
    return out


@register
class PriceGarchT(PriceBaseline[PriceGarchTConfig]):
    """GARCH(1,1)-t fitted per instrument, filtered per window; see the module docstring."""

    name = "price-garch-t"
    config_class = PriceGarchTConfig

    def _fit(self, data: PriceTraining, seed: int) -> None:
        scale = self.config.scale
        enough = data.returns.size >= 100
        pooled = fit_garch_t(data.returns * scale) if enough else None
        self.constant_variance = pooled is None and enough
        if pooled is None and enough:
            pooled = fit_constant_t(data.returns * scale)
        if pooled is None:
            raise TapecastError(f"price-garch-t: the fit on all {data.returns.size} training "
                                "1-s returns failed (too few, or the optimizer did not converge)")
        self.pooled: GarchTParams = pooled
        self.params: dict[str, GarchTParams] = {}
        self.fallbacks: list[str] = []
        names = np.unique(data.return_instruments).tolist()
        for name in names:
            returns, _ = data.returns_of(str(name))
            own = None
            if len(names) == 1:
                own = pooled
            elif returns.size >= self.config.min_returns:
                own = fit_garch_t(returns * scale)
            if own is None:
                self.fallbacks.append(str(name))
            self.params[str(name)] = own if own is not None else pooled

    def _draw(self, batch: ForecastBatch, steps: NDArray[np.int64], n_samples: int,
              rng: np.random.Generator) -> NDArray[np.float64]:
        table = np.empty((batch.size, 4))  # (B, 4): ω, α, β, ν of each window's instrument
        for name, rows in per_instrument(batch.instruments, self.params):
            p = self.pooled if name is None else self.params[name]
            table[rows] = (p.omega, p.alpha, p.beta, p.nu)
        omega, alpha, beta, nu = table.T
        eps = context_returns(batch) * self.config.scale  # (B, C)
        sigma2 = garch_filter(eps, omega, alpha, beta)[:, -1]  # (B,)
        paths = simulate_garch_t(sigma2, (omega, alpha, beta, nu), steps, n_samples,
                                 rng)  # (B, S, H)
        return paths / self.config.scale

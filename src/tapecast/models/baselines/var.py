"""Gaussian VAR(1) on all K channels, fitted by least squares on within-session transitions.

The model (Lütkepohl 2005, *New Introduction to Multiple Time Series Analysis*, eq. 2.1.1 with
p = 1, and the multivariate LS estimator of section 3.2)::

    x_{t+1} = c + A x_t + u_{t+1},    u ~ N(0, Sigma)

``c`` (K,) and ``A`` (K, K) come from one least-squares regression of ``x_{t+1}`` on
``[1, x_t]`` over the training transitions whose both windows are complete, and ``Sigma`` is the
residual covariance with ``M - K - 1`` degrees of freedom. Only transitions between adjacent
horizon windows of an origin are used, which the dataset keeps in one session
(:class:`~tapecast.models.base.TrainingWindows`), so no step crosses a session boundary (a
horizon of 1 gives none: pass prepared ``TrainingWindows`` then). Forecast paths start at the
last context value (forward filled; a channel with no defined value starts at the training mean)
and iterate the model with fresh Gaussian shocks, so they carry the fitted cross-channel and
serial dependence.

With ``per_instrument`` (default) each instrument gets its own VAR; an instrument with too few
transitions, or absent from training, uses the pooled fit. The largest modulus of the
eigenvalues of ``A`` is kept in ``spectral_radius`` (>= 1 means an explosive fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models.base import (
    Baseline,
    BaselineConfig,
    ChannelStats,
    TrainingWindows,
    forward_fill,
    register,
)


@dataclass(frozen=True)
class VARConfig(BaselineConfig):
    """Options of :class:`VAR1`.

    Parameters
    ----------
    per_instrument : bool
        One VAR per instrument (pooled fit as the fallback).
    """

    per_instrument: bool = True


@dataclass(frozen=True)
class VARParams:
    """Fitted VAR(1): intercept ``c`` (K,), coefficients ``A`` (K, K), shock covariance ``Sigma``
    (K, K), its symmetric square root ``sigma_root`` (K, K), and the transition count."""

    c: NDArray[np.float64]
    A: NDArray[np.float64]
    Sigma: NDArray[np.float64]
    sigma_root: NDArray[np.float64]
    n_transitions: int


def fit_var1(pairs: NDArray[np.float64]) -> VARParams:
    """Least-squares VAR(1) on complete transitions.

    Parameters
    ----------
    pairs : ndarray, float64, shape (M, 2, K)
        ``(x_t, x_{t+1})`` with every entry finite; needs ``M >= K + 2``.
    """
    m, _, k = pairs.shape
    if m < k + 2:
        raise TapecastError(f"var: {m} complete training transitions, need at least {k + 2}")
    design = np.hstack([np.ones((m, 1)), pairs[:, 0]])  # (M, K+1)
    coef = np.linalg.lstsq(design, pairs[:, 1], rcond=None)[0].astype(np.float64)  # (K+1, K)
    resid = pairs[:, 1] - design @ coef  # (M, K)
    sigma = resid.T @ resid / (m - k - 1)
    eigval, eigvec = np.linalg.eigh(sigma)
    root = (eigvec * np.sqrt(np.clip(eigval, 0.0, None))) @ eigvec.T  # Sigma^{1/2}
    return VARParams(coef[0], coef[1:].T, sigma, root, m)


@register
class VAR1(Baseline[VARConfig]):
    """Gaussian VAR(1); see the module docstring."""

    name = "var"
    config_class = VARConfig

    def _fit(self, windows: TrainingWindows, seed: int) -> None:
        self.pooled = fit_var1(windows.complete_pairs())
        self.by_instrument: dict[str, VARParams] = {}
        if self.config.per_instrument:
            k = len(windows.channels)
            for inst in np.unique(windows.pair_instruments):
                pairs = windows.for_instrument(str(inst)).complete_pairs()
                if pairs.shape[0] >= k + 2:
                    self.by_instrument[str(inst)] = fit_var1(pairs)

    def params_for(self, instrument: str) -> VARParams:
        """The VAR an origin of ``instrument`` is simulated with."""
        return self.by_instrument.get(instrument, self.pooled)

    @property
    def spectral_radius(self) -> float:
        """Largest eigenvalue modulus of ``A`` over the pooled and per-instrument fits."""
        fits = [self.pooled, *self.by_instrument.values()]
        return max(float(np.abs(np.linalg.eigvals(p.A)).max()) for p in fits)

    def _draw(self, batch: ForecastBatch, n_samples: int, rng: np.random.Generator,
              stats: ChannelStats) -> NDArray[np.float64]:
        b, k, h = batch.target.shape
        start = forward_fill(batch.context, stats.mean)[:, :, -1]  # (B, K)
        out = np.empty((b, n_samples, k, h))
        for inst in np.unique(batch.instruments):
            at = np.flatnonzero(batch.instruments == inst)
            p = self.params_for(str(inst))
            x = np.repeat(start[at, None, :], n_samples, axis=1)  # (b_i, S, K)
            for step in range(h):
                shock = rng.standard_normal(x.shape) @ p.sigma_root  # (b_i, S, K)
                x = p.c + x @ p.A.T + shock
                out[at, :, :, step] = x
        return out

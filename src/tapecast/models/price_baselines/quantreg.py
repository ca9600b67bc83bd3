"""Linear quantile regression of the 30-s return on realized volatility and time of day.

For each level τ_j = j / (m + 1), j = 1..m (m = ``n_quantiles``), a linear conditional quantile
(Koenker & Bassett 1978, Econometrica 46, 33-50, eq. 3.2)

    Q_τ(r | x) = x'β_τ,    x = (1, v(rv_a), v(rv_b), ..., tod, tod²)

is fitted by statsmodels' ``QuantReg`` on the training origins (at most ``max_fit_rows`` of them,
a seeded subsample), one fit per level, all instruments pooled. x holds the last context column:
the realized variances of ``rv_channels`` through v = log (``volatility="log"``, floored at the
training 1st percentile of the positive values, since an unchanged price has rv = 0) or
v = √rv, the realized volatility (``volatility="level"``), and the time of day ``tod`` ∈ (0, 1]
and its square (the intraday U-shape), when ``time_of_day``. An undefined feature takes its
training median, and every regressor is clipped to its training range at forecast time (a linear
quantile extrapolated far outside the data, say to a time of day never trained on, is
meaningless).

Samples (inverse-CDF interpolation): the m predicted quantiles of an origin are sorted (which
removes quantile crossing), then u ~ U(0, 1) is mapped by linear interpolation between the points
(τ_j, q_j); below τ_1 and above τ_m the outer segment's line is extended to u = 0 and 1 (linear
tails, bounded).

The target must be the 30-s return (H = 1): a path target is refused (one regression per
horizon step and level would be 30·m fits, and the steps would be sampled independently).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models.price_baselines.base import (
    PriceBaseline,
    PriceBaselineConfig,
    PriceTraining,
    register,
)

TIME_CHANNEL = "time_of_day"


@dataclass(frozen=True)
class PriceQuantRegConfig(PriceBaselineConfig):
    """Options of :class:`PriceQuantReg`.

    Parameters
    ----------
    n_quantiles : int
        m, the levels j / (m + 1) (>= 3; 39: 0.025, 0.05, ..., 0.975).
    rv_channels : tuple of str
        Realized-variance context channels used as regressors (a string: comma-separated).
    volatility : {"log", "level"}
        The regressor made of each: log rv, or √rv.
    time_of_day : bool
        Add the time of day and its square.
    max_fit_rows : int
        Most training origins per fit (a seeded subsample above it; >= 100).
    """

    n_quantiles: int = 39
    rv_channels: tuple[str, ...] = ("rv_30s", "rv_120s")
    volatility: Literal["log", "level"] = "log"
    time_of_day: bool = True
    max_fit_rows: int = 20_000

    def validate(self) -> None:
        self.check_range("n_quantiles", low=3)
        self.check_range("max_fit_rows", low=100)

    @property
    def levels(self) -> NDArray[np.float64]:
        """τ_1 .. τ_m, shape (m,)."""
        return np.arange(1, self.n_quantiles + 1) / (self.n_quantiles + 1)


@register
class PriceQuantReg(PriceBaseline[PriceQuantRegConfig]):
    """Quantile regression turned into samples; see the module docstring."""

    name = "price-quantreg"
    config_class = PriceQuantRegConfig
    learns_target = True

    def _fit(self, data: PriceTraining, seed: int) -> None:
        if data.steps.size != 1:
            raise TapecastError("price-quantreg forecasts the 30-s return only (horizon 1); "
                                "build the PriceDataset with target='return'")
        self._columns = self._feature_columns(data.channels)
        raw = data.last_context[:, self._columns]  # (N, F_raw)
        positive = np.where(raw > 0, raw, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns checked below
            self.floor = np.nanpercentile(positive, 1.0, axis=0)  # (F_raw,)
        x = self._design(raw, impute=False)  # (N, P)
        y = data.targets[:, 0]
        keep = np.flatnonzero(np.isfinite(x).all(axis=1))
        if keep.size < 10 * x.shape[1]:
            raise TapecastError(f"price-quantreg: only {keep.size} training origins have every "
                                f"feature defined; need at least {10 * x.shape[1]}")
        if keep.size > self.config.max_fit_rows:
            rng = np.random.default_rng(seed)
            keep = np.sort(rng.choice(keep, self.config.max_fit_rows, replace=False))
        self.median = np.median(x[keep], axis=0)  # (P,) imputation of undefined features
        self.low, self.high = x[keep].min(axis=0), x[keep].max(axis=0)  # (P,) training range
        self.coef = _fit_quantiles(x[keep], y[keep], self.config.levels)  # (m, P)

    def _feature_columns(self, channels: tuple[str, ...]) -> list[int]:
        names = [*self.config.rv_channels, *([TIME_CHANNEL] if self.config.time_of_day else [])]
        missing = [n for n in names if n not in channels]
        if missing:
            raise TapecastError(f"price-quantreg needs context channel(s) {missing}; the batch "
                                f"has {list(channels)}")
        return [channels.index(n) for n in names]

    def _design(self, raw: NDArray[np.float64], *, impute: bool) -> NDArray[np.float64]:
        """The regressors x (N, P) of the last context columns' raw features (N, F_raw)."""
        n_rv = len(self.config.rv_channels)
        rv = raw[:, :n_rv]
        with np.errstate(invalid="ignore", divide="ignore"):
            vol = (np.log(np.maximum(rv, self.floor[:n_rv])) if self.config.volatility == "log"
                   else np.sqrt(np.maximum(rv, 0.0)))
        parts = [np.ones((raw.shape[0], 1)), vol]
        if self.config.time_of_day:
            tod = raw[:, n_rv:n_rv + 1]
            parts += [tod, tod**2]
        x = np.concatenate(parts, axis=1)
        x[~np.isfinite(x)] = np.nan
        if impute:
            x = np.clip(np.where(np.isnan(x), self.median, x), self.low, self.high)
        return x

    def predict_quantiles(self, batch: ForecastBatch) -> NDArray[np.float64]:
        """The sorted predicted quantiles of each origin, shape (B, m), at ``config.levels``."""
        x = self._design(np.asarray(batch.context[:, self._columns, -1], dtype=np.float64),
                         impute=True)  # (B, P)
        return np.sort(x @ self.coef.T, axis=1)  # (B, m)

    def _draw(self, batch: ForecastBatch, steps: NDArray[np.int64], n_samples: int,
              rng: np.random.Generator) -> NDArray[np.float64]:
        q = self.predict_quantiles(batch)  # (B, m)
        u = rng.random((batch.size, n_samples))  # (B, S)
        return inverse_cdf(q, u)[:, :, None]  # (B, S, 1)


def _fit_quantiles(x: NDArray[np.float64], y: NDArray[np.float64],
                   levels: NDArray[np.float64]) -> NDArray[np.float64]:
    """β_τ of each level, shape (m, P), by statsmodels' ``QuantReg`` (IRLS)."""
    from statsmodels.regression.quantile_regression import QuantReg  # type: ignore[import-untyped]

    model = QuantReg(y, x)
    coef = np.empty((levels.size, x.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IterationLimitWarning, ConvergenceWarning
        for j, tau in enumerate(levels):
            coef[j] = np.asarray(model.fit(q=float(tau)).params)
    if not np.isfinite(coef).all():
        raise TapecastError("price-quantreg: the quantile regression gave non-finite "
                            "coefficients")
    return coef


def inverse_cdf(q: NDArray[np.float64], u: NDArray[np.float64]) -> NDArray[np.float64]:
    """Values at probabilities u (B, S) of the piecewise-linear CDF through (τ_j, q_j).

    ``q`` (B, m) are sorted quantiles at τ_j = j / (m + 1); outside [τ_1, τ_m] the outer
    segments are extended linearly (module docstring). Returns (B, S).
    """
    m = q.shape[1]
    pos = u * (m + 1) - 1.0  # (B, S) position on the level index 0 .. m-1
    j = np.clip(np.floor(pos), 0, m - 2).astype(np.intp)  # segment [j, j + 1]
    lo = np.take_along_axis(q, j, axis=1)
    hi = np.take_along_axis(q, j + 1, axis=1)
    out: NDArray[np.float64] = lo + (pos - j) * (hi - lo)
    return out

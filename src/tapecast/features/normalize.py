"""Fitted normalization of the 8 order-flow channels, with an exact inverse, saved as JSON.

In the spirit of the JL-CSDI model card's "V5-hybrid-D" (``../shared/seeds/
jl-csdi-esc1-model-card.txt``): each channel has one *scheme*, fitted on the training windows only.

========================  ====================================  ==================================
scheme                    forward (raw ``x`` → normalized ``z``)  fitted scalars
========================  ====================================  ==================================
``t_scaled``              ``z = x · √T``                          none
``sqrt_t_delta_std``      ``z = x / (σ̂ · √(n / n̄))``              ``sigma`` σ̂, ``mean_count`` n̄
``mad_zscore``            ``u = (x − m) / (1.4826 · MAD)``,        ``median`` m, ``mad``,
                          ``z = (u − ū) / s_u``                   ``mean_u`` ū, ``std_u`` s_u
========================  ====================================  ==================================

Legend: ``T`` is the window's number of signed trades (``n_signed``), ``n`` its number of trades
(``n_trades``); σ̂, n̄, m, MAD, ū and s_u are training statistics (population moments, ddof = 0).
Undefined values (NaN, or null in the windows table) stay NaN in both directions.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text
from tapecast.features.channels import CHANNELS

FORMAT_VERSION = 1
KIND = "orderflow-normalizer"
MAD_SCALE = 1.4826
"""Consistency constant: 1.4826 · MAD estimates σ for Gaussian data (1 / Φ⁻¹(3/4))."""

Scheme = Literal["t_scaled", "sqrt_t_delta_std", "mad_zscore"]
SCHEMES: tuple[str, ...] = get_args(Scheme)

F64 = NDArray[np.float64]


def default_scheme(channel: str) -> Scheme:
    """Scheme of ``channel`` under V5-hybrid-D: imbalances ``t_scaled``, ``log_ret``
    ``sqrt_t_delta_std``, everything else (``log_realized_var``, ``log_tot_vol``) ``mad_zscore``."""
    if channel.startswith("imb_"):
        return "t_scaled"
    if channel == "log_ret":
        return "sqrt_t_delta_std"
    return "mad_zscore"


def _finite(x: F64, channel: str) -> F64:
    values = x[np.isfinite(x)]
    if values.size == 0:
        raise TapecastError(f"cannot fit the normalization of '{channel}': no defined value "
                            "in the training windows")
    return values


def _positive(value: float, what: str, channel: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise TapecastError(f"normalization of '{channel}': {what} is {value}, it must be "
                            "positive (is the channel constant over the training windows?)")
    return float(value)


@dataclass(frozen=True)
class TScaled:
    """Imbalance T-scaling: ``z = I · √T``, inverse ``I = z / √T``.

    ``T`` is the window's number of signed trades. Under independent signs of equal size,
    ``I_0 = (1/T) Σ ε_i`` has standard deviation ``1/√T``, so ``I · √T`` is of unit order whatever
    the window size (model card, "T-scaling on imbalance channels"). ``T = 0`` gives NaN.
    """

    scheme: ClassVar[Scheme] = "t_scaled"

    @classmethod
    def fit(cls, x: F64, n_signed: F64, n_trades: F64, channel: str) -> TScaled:
        """Nothing to fit (checks only that the channel has a defined value)."""
        _finite(x, channel)
        return cls()

    def forward(self, x: F64, n_signed: F64, n_trades: F64) -> F64:
        root_t = np.sqrt(np.where(n_signed > 0, n_signed, np.nan))
        return np.asarray(x * root_t)

    def backward(self, z: F64, n_signed: F64, n_trades: F64) -> F64:
        root_t = np.sqrt(np.where(n_signed > 0, n_signed, np.nan))
        return np.asarray(z / root_t)

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "count": "n_signed"}


@dataclass(frozen=True)
class SqrtTDeltaStd:
    """Log-return scaling: ``z = r / (σ̂ · √(n / n̄))``, inverse ``r = z · σ̂ · √(n / n̄)``.

    σ̂ is the training std of ``log_ret`` and n̄ the training mean trade count. For a random walk
    in trade time the variance of a window's return grows like its number of trades, so dividing
    by √(n / n̄) puts windows of different sizes (volume clock) on one scale. The issue writes
    ``T`` (signed trades) here; we use ``n = n_trades``, which equals ``T`` when every trade is
    signed and stays defined for windows with unsigned trades (the price moves with every trade,
    signed or not). ``n = 0`` gives NaN.
    """

    sigma: float
    mean_count: float
    scheme: ClassVar[Scheme] = "sqrt_t_delta_std"

    @classmethod
    def fit(cls, x: F64, n_signed: F64, n_trades: F64, channel: str) -> SqrtTDeltaStd:
        defined = np.isfinite(x) & np.isfinite(n_trades)
        values = _finite(x[defined], channel)
        sigma = _positive(float(np.std(values)), "training std", channel)
        mean_count = _positive(float(np.mean(n_trades[defined])), "training mean trade count",
                               channel)
        return cls(sigma, mean_count)

    def _scale(self, n_trades: F64) -> F64:
        n = np.where(n_trades > 0, n_trades, np.nan)
        return np.asarray(self.sigma * np.sqrt(n / self.mean_count))

    def forward(self, x: F64, n_signed: F64, n_trades: F64) -> F64:
        return np.asarray(x / self._scale(n_trades))

    def backward(self, z: F64, n_signed: F64, n_trades: F64) -> F64:
        return np.asarray(z * self._scale(n_trades))

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "count": "n_trades", "sigma": self.sigma,
                "mean_count": self.mean_count}


@dataclass(frozen=True)
class MadZScore:
    """Robust scale then z-score: ``u = (x − m) / (1.4826 · MAD)``, ``z = (u − ū) / s_u``.

    m is the training median and MAD the training median absolute deviation from m
    (Hampel 1974; 1.4826 = 1 / Φ⁻¹(3/4) makes 1.4826 · MAD estimate σ for Gaussian data); ū and
    s_u are the training mean and std of u. Inverse: ``x = (z · s_u + ū) · 1.4826 · MAD + m``.
    """

    median: float
    mad: float
    mean_u: float
    std_u: float
    scheme: ClassVar[Scheme] = "mad_zscore"

    @classmethod
    def fit(cls, x: F64, n_signed: F64, n_trades: F64, channel: str) -> MadZScore:
        values = _finite(x, channel)
        median = float(np.median(values))
        mad = _positive(float(np.median(np.abs(values - median))), "training MAD", channel)
        u = (values - median) / (MAD_SCALE * mad)
        std_u = _positive(float(np.std(u)), "std of the robust-scaled values", channel)
        return cls(median, mad, float(np.mean(u)), std_u)

    def forward(self, x: F64, n_signed: F64, n_trades: F64) -> F64:
        u = (x - self.median) / (MAD_SCALE * self.mad)
        return np.asarray((u - self.mean_u) / self.std_u)

    def backward(self, z: F64, n_signed: F64, n_trades: F64) -> F64:
        u = z * self.std_u + self.mean_u
        return np.asarray(u * (MAD_SCALE * self.mad) + self.median)

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "median": self.median, "mad": self.mad,
                "mad_scale": MAD_SCALE, "mean_u": self.mean_u, "std_u": self.std_u}


ChannelScaler = TScaled | SqrtTDeltaStd | MadZScore
_SCALERS: dict[str, type[TScaled] | type[SqrtTDeltaStd] | type[MadZScore]] = {
    "t_scaled": TScaled, "sqrt_t_delta_std": SqrtTDeltaStd, "mad_zscore": MadZScore}


def _scaler_from_dict(channel: str, d: Mapping[str, Any]) -> ChannelScaler:
    scheme = d.get("scheme")
    try:
        if scheme == "t_scaled":
            return TScaled()
        if scheme == "sqrt_t_delta_std":
            return SqrtTDeltaStd(_positive(float(d["sigma"]), "sigma", channel),
                                 _positive(float(d["mean_count"]), "mean_count", channel))
        if scheme == "mad_zscore":
            if float(d.get("mad_scale", MAD_SCALE)) != MAD_SCALE:
                raise TapecastError(f"channel '{channel}': mad_scale must be {MAD_SCALE}")
            return MadZScore(float(d["median"]), _positive(float(d["mad"]), "mad", channel),
                             float(d["mean_u"]), _positive(float(d["std_u"]), "std_u", channel))
    except (KeyError, TypeError, ValueError) as exc:
        raise TapecastError(f"normalization params of '{channel}' ({scheme}): missing or "
                            f"invalid scalar {exc}") from None
    raise TapecastError(f"channel '{channel}': unknown normalization scheme {scheme!r}; "
                        f"expected one of {list(SCHEMES)}")


@dataclass(frozen=True, eq=False)
class OrderFlowNormalizer:
    """Per-channel normalization of order-flow windows ("V5-hybrid-D"-style), exact inverse.

    Parameters
    ----------
    channels : tuple of str, length K
        Channel names in axis order.
    scalers : tuple of TScaled | SqrtTDeltaStd | MadZScore, length K
        The fitted scheme of each channel (see the module docstring for the formulas).
    n_fit_windows : int
        Number of training windows the parameters were fitted on (provenance).
    """

    channels: tuple[str, ...]
    scalers: tuple[ChannelScaler, ...]
    n_fit_windows: int = 0

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.scalers) or not self.channels:
            raise TapecastError(f"{len(self.channels)} channels but {len(self.scalers)} "
                                "normalization schemes")
        if len(set(self.channels)) != len(self.channels):
            raise TapecastError(f"duplicate channel names in {list(self.channels)}")

    @property
    def schemes(self) -> dict[str, str]:
        """Scheme name of each channel."""
        return {c: s.scheme for c, s in zip(self.channels, self.scalers, strict=True)}

    # fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, train_windows: pl.DataFrame, channels: Sequence[str] = CHANNELS,
            schemes: Mapping[str, Scheme] | None = None) -> OrderFlowNormalizer:
        """Fit on the TRAINING windows (a windows table holding only training rows).

        Parameters
        ----------
        train_windows : polars.DataFrame
            Windows table rows of the training split: the ``channels`` columns plus
            ``n_signed`` and ``n_trades``. Nulls count as undefined and are skipped.
        channels : sequence of str
            Channels to normalize, in axis order (default: the 8 order-flow channels).
        schemes : mapping channel -> scheme, optional
            Overrides of :func:`default_scheme`.

        Raises
        ------
        TapecastError
            When there is no training window, a column is missing, or a std/MAD is 0.
        """
        missing = [c for c in (*channels, "n_signed", "n_trades") if c not in train_windows]
        if missing:
            raise TapecastError(f"windows table lacks column(s) {missing} needed for the "
                                "normalization")
        x = train_windows.select(pl.col(c).cast(pl.Float64) for c in channels).to_numpy()
        return cls.fit_arrays(x, train_windows["n_signed"].to_numpy(),
                              train_windows["n_trades"].to_numpy(), channels, schemes)

    @classmethod
    def fit_arrays(cls, x: ArrayLike, n_signed: ArrayLike, n_trades: ArrayLike,
                   channels: Sequence[str] = CHANNELS,
                   schemes: Mapping[str, Scheme] | None = None) -> OrderFlowNormalizer:
        """Fit on raw training arrays.

        Parameters
        ----------
        x : array_like, float, shape (N, K)
            Raw channel values of N training windows (NaN where undefined).
        n_signed, n_trades : array_like, shape (N,)
            Signed trades ``T`` and trades ``n`` of each window.
        """
        xs = np.asarray(x, dtype=np.float64)
        ts = np.asarray(n_signed, dtype=np.float64).reshape(-1)
        ns = np.asarray(n_trades, dtype=np.float64).reshape(-1)
        if xs.ndim != 2 or xs.shape[0] == 0:
            raise TapecastError(f"cannot fit the normalization: no training window (x has "
                                f"shape {xs.shape}); the training split is empty")
        if xs.shape[1] != len(channels) or not ts.shape[0] == xs.shape[0] == ns.shape[0]:
            raise TapecastError(f"fit arrays disagree: x {xs.shape}, n_signed {ts.shape}, "
                                f"n_trades {ns.shape}, {len(channels)} channels")
        chosen = dict(schemes or {})
        unknown = {s for s in chosen.values() if s not in SCHEMES}
        if unknown:
            raise TapecastError(f"unknown normalization scheme(s) {sorted(unknown)}; expected "
                                f"one of {list(SCHEMES)}")
        scalers = tuple(_SCALERS[chosen.get(c, default_scheme(c))].fit(xs[:, k], ts, ns, c)
                        for k, c in enumerate(channels))
        return cls(tuple(channels), scalers, int(xs.shape[0]))

    # applying --------------------------------------------------------------------------------
    def transform(self, x: ArrayLike, n_signed: ArrayLike, n_trades: ArrayLike,
                  axis: int = -1) -> F64:
        """Raw → normalized.

        Parameters
        ----------
        x : array_like, float, channel axis ``axis`` of length K
            E.g. windows (B, L, K) with ``axis=-1``, or samples (B, S, K, H) with ``axis=2``.
        n_signed, n_trades : array_like
            Signed trades ``T`` and trades ``n`` per window, broadcastable to ``x``'s shape with
            the channel axis removed (e.g. (B, L), or (B, 1, H) for samples).
        axis : int
            Position of the channel axis in ``x``.

        Returns
        -------
        ndarray, float64, same shape as ``x``
            NaN wherever ``x`` is NaN or a count needed by the scheme is 0.
        """
        return self._apply(x, n_signed, n_trades, axis, inverse=False)

    def inverse(self, z: ArrayLike, n_signed: ArrayLike, n_trades: ArrayLike,
                axis: int = -1) -> F64:
        """Normalized → raw; the exact inverse of :meth:`transform` (same arguments and shapes).

        For forecast horizons the counts of the future windows are not known at the origin;
        pass the window size (trade-time windows) or another plug-in value.
        """
        return self._apply(z, n_signed, n_trades, axis, inverse=True)

    def _apply(self, x: ArrayLike, n_signed: ArrayLike, n_trades: ArrayLike, axis: int,
               inverse: bool) -> F64:
        arr = np.asarray(x, dtype=np.float64)
        try:
            moved = np.moveaxis(arr, axis, -1)  # (..., K)
        except np.exceptions.AxisError:
            raise TapecastError(f"channel axis {axis} out of range for shape {arr.shape}") \
                from None
        if moved.shape[-1] != len(self.channels):
            raise TapecastError(f"channel axis {axis} of shape {arr.shape} has "
                                f"{moved.shape[-1]} entries, expected {len(self.channels)}")
        try:
            ts = np.broadcast_to(np.asarray(n_signed, dtype=np.float64), moved.shape[:-1])
            ns = np.broadcast_to(np.asarray(n_trades, dtype=np.float64), moved.shape[:-1])
        except ValueError:
            raise TapecastError(f"counts of shape {np.shape(n_signed)} / {np.shape(n_trades)} "
                                f"do not broadcast to {moved.shape[:-1]} (values {arr.shape} "
                                f"without channel axis {axis})") from None
        out = np.empty_like(moved)
        with np.errstate(divide="ignore", invalid="ignore"):
            for k, scaler in enumerate(self.scalers):
                step = scaler.backward if inverse else scaler.forward
                out[..., k] = step(moved[..., k], ts, ns)
        return np.moveaxis(out, -1, axis)

    # persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters: format version, channel order, scheme and scalars per channel."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": KIND,
            "family": "V5-hybrid-D",
            "channels": list(self.channels),
            "params": {c: s.to_dict() for c, s in zip(self.channels, self.scalers, strict=True)},
            "fit": {"n_windows": self.n_fit_windows, "split": "train", "ddof": 0},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OrderFlowNormalizer:
        """Inverse of :meth:`to_dict` (clear error on another version, kind or a missing field)."""
        if d.get("kind") != KIND or d.get("format_version") != FORMAT_VERSION:
            raise TapecastError(f"not an order-flow normalization of format {FORMAT_VERSION} "
                                f"(kind {d.get('kind')!r}, format {d.get('format_version')!r})")
        channels = d.get("channels")
        params = d.get("params")
        if not isinstance(channels, list) or not isinstance(params, dict):
            raise TapecastError("normalization params need a 'channels' list and a 'params' map")
        missing = [c for c in channels if not isinstance(params.get(c), dict)]
        if missing:
            raise TapecastError(f"normalization params lack channel(s) {missing}")
        scalers = tuple(_scaler_from_dict(c, params[c]) for c in channels)
        n_fit = int(d.get("fit", {}).get("n_windows", 0))
        return cls(tuple(str(c) for c in channels), scalers, n_fit)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the parameters as JSON, atomically (e.g. ``normalization.json``)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OrderFlowNormalizer:
        """Read parameters written by :meth:`save`."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TapecastError(f"{p}: normalization file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TapecastError(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise TapecastError(f"{p}: expected a JSON object of normalization params")
        try:
            return cls.from_dict(data)
        except TapecastError as exc:
            raise TapecastError(f"{p}: {exc}") from None

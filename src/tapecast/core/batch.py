"""The batch every forecaster receives: raw-unit context and target of a set of forecast origins.

Forecasters (models and baselines alike) get a :class:`ForecastBatch` and return
:class:`tapecast.core.forecast.Samples` in the same raw units; models that work in normalized
space normalize inside (the normalizer travels with the model). Axis conventions::

    context : (B, K, C)    the C windows (or bars) before each origin
    target  : (B, K_t, H)  the H steps being forecast (realized values; NaN when unknown)

with ``B`` origins, ``K`` context channels, ``C`` context length and ``H`` horizon. The target's
channels are the context's (``K_t = K``: order flow forecasts its own windows) unless the batch
names its own ``target_channels`` (the price family reads K features and forecasts one return).
Per-position metadata (window ids, time stamps) runs over context then horizon, ``(B, C + H)``.

A feature family adds what only it needs as *extras*, arrays keyed by name with the origins on
their first axis. An extra whose second axis has length ``C + H`` is *positional*: its columns
follow the positions, context then horizon (the order-flow windows carry ``n_trades`` and
``n_signed`` this way, the counts that undo the T-scaling of the imbalance channels). Any other
extra is per origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError

Index = int | slice | NDArray[np.intp] | NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class ForecastBatch:
    """Context and target of ``B`` forecast origins, in raw (original) units.

    Parameters
    ----------
    channels : tuple of str, length K
        Channel names in axis order.
    context : ndarray, float64, shape (B, K, C)
        Raw channel values of the C context positions (NaN where undefined).
    target : ndarray, float64, shape (B, K_t, H)
        Realized raw values of the H horizon positions (NaN where undefined or unknown).
    window_ids : ndarray, int64, shape (B, C + H)
        Ids of the positions over context then horizon (the ``window`` column of the
        order-flow features table; any increasing id for other families).
    timestamps : ndarray, datetime64[ns], shape (B, C + H)
        End time of each position.
    instruments : ndarray of str, shape (B,)
    regimes : ndarray of str, shape (B,)
        Volatility regime of each origin (``low``/``mid``/``high``, or ``""`` when unknown).
    extras : mapping of str to ndarray, optional
        Family-specific arrays with B rows; positional when their second axis is ``C + H``
        (see the module docstring). Read with :meth:`extra`.
    target_channels : tuple of str, length K_t, optional
        The target's channel names when they are not the context's (None: ``channels``).
    """

    channels: tuple[str, ...]
    context: NDArray[np.float64]
    target: NDArray[np.float64]
    window_ids: NDArray[np.int64]
    timestamps: NDArray[np.datetime64]
    instruments: NDArray[np.str_]
    regimes: NDArray[np.str_]
    extras: Mapping[str, NDArray[Any]] = field(default_factory=dict)
    target_channels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.context.ndim != 3 or self.target.ndim != 3:
            raise TapecastError(f"batch context and target must be (B, K, C) and (B, K, H), "
                                f"got {self.context.shape} and {self.target.shape}")
        b, k, c = self.context.shape
        h = self.target.shape[2]
        k_target = k if self.target_channels is None else len(self.target_channels)
        if self.target.shape[:2] != (b, k_target) or len(self.channels) != k:
            raise TapecastError(f"inconsistent batch: context {self.context.shape}, target "
                                f"{self.target.shape}, {len(self.channels)} channel names, "
                                f"{k_target} target channel names")
        for name in ("window_ids", "timestamps"):
            if getattr(self, name).shape != (b, c + h):
                raise TapecastError(f"{name} must have shape ({b}, {c + h}), "
                                    f"got {getattr(self, name).shape}")
        for name in ("instruments", "regimes"):
            if getattr(self, name).shape != (b,):
                raise TapecastError(f"{name} must have shape ({b},), "
                                    f"got {getattr(self, name).shape}")
        for name, value in self.extras.items():
            if np.ndim(value) == 0 or np.shape(value)[0] != b:
                raise TapecastError(f"batch extra '{name}' must have {b} rows (one per origin), "
                                    f"got shape {np.shape(value)}")
        object.__setattr__(self, "extras", dict(self.extras))  # a copy: the caller's dict is
        # not shared (a plain dict, so batches pickle for worker pools)

    # ------------------------------------------------------------------------------------------
    # sizes

    @property
    def target_names(self) -> tuple[str, ...]:
        """The target's channel names, K_t (the context's unless ``target_channels`` is set)."""
        return self.channels if self.target_channels is None else self.target_channels

    @property
    def forecasts_its_context(self) -> bool:
        """Whether the target's channels are the context's (what the order-flow forecasters
        and the baselines of :mod:`tapecast.models.baselines` model)."""
        return self.target_names == self.channels

    @property
    def size(self) -> int:
        """B, the number of origins."""
        return int(self.context.shape[0])

    @property
    def context_length(self) -> int:
        """C."""
        return int(self.context.shape[2])

    @property
    def horizon(self) -> int:
        """H."""
        return int(self.target.shape[2])

    def __len__(self) -> int:
        return self.size

    # ------------------------------------------------------------------------------------------
    # extras

    def extra(self, name: str) -> NDArray[Any]:
        """The extra ``name``; a TapecastError naming the extras present when it is missing."""
        if name not in self.extras:
            raise TapecastError(f"the batch has no '{name}' (extras: "
                                f"{sorted(self.extras) or 'none'}); it was built for another "
                                "feature family")
        return self.extras[name]

    def is_positional(self, name: str) -> bool:
        """Whether extra ``name`` runs over the positions (second axis ``C + H``)."""
        shape = np.shape(self.extra(name))
        return len(shape) >= 2 and shape[1] == self.context_length + self.horizon

    # ------------------------------------------------------------------------------------------
    # selection

    def select(self, index: Index) -> ForecastBatch:
        """The origins at ``index`` (a slice, an int array or a boolean mask)."""
        return ForecastBatch(self.channels, self.context[index], self.target[index],
                             self.window_ids[index], self.timestamps[index],
                             self.instruments[index], self.regimes[index],
                             {k: v[index] for k, v in self.extras.items()},
                             self.target_channels)

    def batch(self, index: Index) -> ForecastBatch:
        """Same as :meth:`select`: a batch is its own :class:`OriginSource`."""
        return self.select(index)

    @classmethod
    def concat(cls, batches: list[ForecastBatch]) -> ForecastBatch:
        """The origins of ``batches`` one after the other (same channels, lengths, extras)."""
        if not batches:
            raise TapecastError("cannot concatenate an empty list of batches")
        first = batches[0]
        for other in batches[1:]:
            if (other.channels, other.target_names, other.context_length, other.horizon,
                    set(other.extras)) != (first.channels, first.target_names,
                                           first.context_length, first.horizon,
                                           set(first.extras)):
                raise TapecastError("batches to concatenate differ in channels, lengths or "
                                    "extras")

        def cat(name: str) -> NDArray[Any]:
            return np.concatenate([getattr(b, name) for b in batches])

        return cls(first.channels, cat("context"), cat("target"), cat("window_ids"),
                   cat("timestamps"), cat("instruments"), cat("regimes"),
                   {k: np.concatenate([b.extras[k] for b in batches]) for k in first.extras},
                   first.target_channels)

    # ------------------------------------------------------------------------------------------
    # building a batch from what a user holds

    @classmethod
    def from_context(cls, channels: tuple[str, ...] | list[str], context: ArrayLike,
                     horizon: int, *, timestamps: ArrayLike | None = None,
                     instruments: ArrayLike | str | None = None,
                     extras: Mapping[str, ArrayLike] | None = None,
                     target_channels: tuple[str, ...] | list[str] | None = None
                     ) -> ForecastBatch:
        """A batch to forecast from raw context alone (the last C windows or bars a user holds).

        Parameters
        ----------
        channels : sequence of str, length K
        context : array_like, float, shape (B, K, C) or (K, C)
            Raw values in original units, oldest first (NaN where undefined).
        horizon : int
            H, the steps to forecast.
        timestamps : array_like of datetime64, shape (B, C) or (C,), optional
            End times of the context positions; the horizon's are unknown (NaT).
        instruments : str or array_like of str, shape (B,), optional
        extras : mapping of str to array_like, optional
            Family extras. A positional extra may be given over the context only, shape
            ``(B, C, ...)`` (or ``(C, ...)`` for one origin): its horizon is unknown and is filled
            with NaN (floats) or 0 (integers).
        target_channels : sequence of str, optional
            The target's channels when they are not the context's.

        Returns
        -------
        ForecastBatch
            target all NaN, window ids ``0 .. C + H - 1``, regimes ``""``.
        """
        names = tuple(str(c) for c in channels)
        try:
            x = np.asarray(context, dtype=np.float64)
        except (TypeError, ValueError):
            raise TapecastError("context must hold numbers (NaN where undefined)") from None
        single = x.ndim == 2
        if single:
            x = x[None]
        if x.ndim != 3 or x.shape[1] != len(names) or x.shape[2] < 1:
            raise TapecastError(f"context must have shape (B, {len(names)}, C) or "
                                f"({len(names)}, C) for channels {list(names)}, got "
                                f"{np.shape(context)}")
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
            raise TapecastError(f"horizon must be a positive integer, got {horizon!r}")
        b, k, c = x.shape
        ids = np.broadcast_to(np.arange(c + horizon, dtype=np.int64), (b, c + horizon)).copy()
        ts = np.full((b, c + horizon), np.datetime64("NaT", "ns"))
        if timestamps is not None:
            try:
                given = np.asarray(timestamps, dtype="datetime64[ns]")
            except (TypeError, ValueError) as exc:
                raise TapecastError(f"timestamps must be datetimes ({exc})") from None
            ts[:, :c] = _per_origin(given, single, (b, c), "timestamps")
        inst = np.full(b, "", dtype=object)
        if instruments is not None:
            named = np.asarray(instruments)
            if named.ndim > 1 or (named.ndim == 1 and named.shape[0] != b):
                raise TapecastError(f"instruments must be one name or {b} names (one per "
                                    f"origin), got shape {named.shape}")
            inst = np.broadcast_to(named, (b,))
        out_extras = {name: _pad_horizon(_per_origin(np.asarray(v), single, None, name), c,
                                         horizon)
                      for name, v in (extras or {}).items()}
        targets = None if target_channels is None else tuple(str(c) for c in target_channels)
        k_target = k if targets is None else len(targets)
        return cls(names, x, np.full((b, k_target, horizon), np.nan), ids, ts,
                   np.asarray(inst).astype(str), np.full(b, "", dtype=str), out_extras, targets)


@runtime_checkable
class OriginSource(Protocol):
    """Anything that hands out batches of forecast origins by index: a :class:`ForecastBatch`,
    a feature family's dataset (``tapecast.features.dataset.ForecastDataset``)."""

    def __len__(self) -> int: ...

    def batch(self, index: Any) -> ForecastBatch:
        """The origins at ``index`` (a slice, an int array or a boolean mask)."""
        ...


def as_batch(data: OriginSource) -> ForecastBatch:
    """All origins of ``data`` as one batch (``data`` itself when it is a batch)."""
    if isinstance(data, ForecastBatch):
        return data
    return data.batch(slice(None))


def _per_origin(value: NDArray[Any], single: bool, shape: tuple[int, int] | None,
                name: str) -> NDArray[Any]:
    """``value`` with the origin axis added for a single-origin batch; shape checked."""
    out = value[None] if single else value
    if shape is not None and out.shape != shape:
        raise TapecastError(f"{name} must have shape {shape}, got {value.shape}")
    return out


def _pad_horizon(value: NDArray[Any], c: int, h: int) -> NDArray[Any]:
    """A positional extra given over the context ``(B, C, ...)`` padded over the horizon."""
    if value.ndim < 2 or value.shape[1] != c:
        return value  # per-origin, or already over C + H
    fill: Any = np.nan if np.issubdtype(value.dtype, np.floating) else 0
    pad = np.full((value.shape[0], h, *value.shape[2:]), fill, dtype=value.dtype)
    return np.concatenate([value, pad], axis=1)

"""What the price baselines share: the batch checks, the training data, the lattice, ``register``.

A price baseline forecasts the price family's target ``log_return`` from a
:class:`~tapecast.features.price_dataset.PriceDataset` batch: context (B, K, C) of the price
features, target (B, 1, H), either the 30-s return (H = 1) or the cumulative return path
(H = 30). Every baseline implements the forecaster contract of :mod:`tapecast.core.forecaster`::

    model = get_price_baseline("price-histvol").fit(train, seed=0)
    samples = model.sample(test_batch, n_samples=256, seed=1)   # values (B, S, 1, H)

Horizon steps
-------------
A batch's positions are grid rows (1-s apart within a session), so the seconds ahead of each
horizon column are ``window_ids[:, C:] - window_ids[:, C - 1]``: ``(30,)`` for the return,
``(1, ..., 30)`` for the path. A baseline simulates ``max(steps)`` seconds of 1-s returns (or
draws a whole target) and reads the cumulative return at those steps. ``make_batch`` writes the
fitted steps into the window ids of the batch it builds, so a user's raw context is forecast
like the dataset's batch.

Training 1-s returns
--------------------
Stride-1 origins overlap: a grid row's 1-s return appears in up to C contexts. The training
returns are the context's ``log_ret`` taken once per ``(instrument, grid row)`` (the batch's
window ids), in row order, and cut into *runs* of consecutive rows: a run never crosses a
session (valid contexts end at least H rows before their session does) nor a gap of invalid
origins.

The lattice
-----------
With ``lattice=True`` (the default) the samples pass through
:func:`~tapecast.features.price_lattice.snap_returns` with the batch's ``origin_price`` and
``lattice_step`` extras: every sample becomes a return to a price on the lattice, so a continuous
baseline also puts mass on an unchanged price.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.batch import ForecastBatch, OriginSource, as_batch
from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Samples
from tapecast.core.forecaster import check_n_samples
from tapecast.features.price_dataset import TARGET_CHANNEL
from tapecast.features.price_lattice import snap_returns

RETURN_CHANNEL = "log_ret"
"""The context channel of 1-s log returns every price baseline reads."""
LATTICE_EXTRAS = ("origin_price", "lattice_step")
"""The per-origin extras ``lattice=True`` needs: P_t and δ."""


@dataclass(frozen=True)
class PriceBaselineConfig(ConfigBase):
    """Base of every price baseline's frozen config.

    Parameters
    ----------
    lattice : bool
        Snap the samples to the price lattice (module docstring).
    """

    lattice: bool = True


ConfigT = TypeVar("ConfigT", bound=PriceBaselineConfig)


def require_price_batch(batch: ForecastBatch, who: str) -> None:
    """A one-line TapecastError unless ``batch`` forecasts ``log_return`` from a context with
    the 1-s returns ``log_ret`` (a PriceDataset batch)."""
    if batch.target_names != (TARGET_CHANNEL,) or RETURN_CHANNEL not in batch.channels:
        raise TapecastError(f"{who} forecasts the price family's '{TARGET_CHANNEL}' from a "
                            f"context with '{RETURN_CHANNEL}' (a PriceDataset batch); this batch "
                            f"forecasts {list(batch.target_names)} from {list(batch.channels)}")


def horizon_steps(batch: ForecastBatch) -> NDArray[np.int64]:
    """Seconds ahead of each horizon column, shape (H,), from the window ids (grid rows).

    Raises
    ------
    TapecastError
        When the steps are not positive and increasing or differ between origins.
    """
    c = batch.context_length
    steps = batch.window_ids[:, c:] - batch.window_ids[:, c - 1:c]  # (B, H)
    first = steps[0] if steps.shape[0] else np.arange(1, batch.horizon + 1)
    if (steps != first).any() or first[0] < 1 or (np.diff(first) < 1).any():
        raise TapecastError("the batch's horizon positions must lie 1 s or more after the "
                            "origin, increasing and the same for every origin (window ids are "
                            "grid rows)")
    return np.asarray(first, dtype=np.int64)


def context_returns(batch: ForecastBatch) -> NDArray[np.float64]:
    """The context's 1-s log returns, shape (B, C), float64, every non-finite value NaN."""
    r = np.array(batch.context[:, batch.channels.index(RETURN_CHANNEL)], dtype=np.float64)
    r[~np.isfinite(r)] = np.nan
    return r


def cumulative_at(increments: NDArray[np.float64], steps: NDArray[np.int64]
                  ) -> NDArray[np.float64]:
    """Cumulative sums of 1-s increments (B, S, T) read at ``steps`` seconds: (B, S, H)."""
    return np.cumsum(increments, axis=2)[:, :, steps - 1]


# ----------------------------------------------------------------------------------------------
# training data


@dataclass(frozen=True)
class PriceTraining:
    """What the price baselines fit on, taken from a training batch.

    Parameters
    ----------
    channels : tuple of str
        The context channels.
    steps : ndarray, int64, shape (H,)
        Seconds ahead of each horizon column (:func:`horizon_steps`).
    targets : ndarray, float64, shape (N, H)
        The finite training targets (origins with a non-finite target left out).
    last_context : ndarray, float64, shape (N, K)
        The last context column of those origins (the features known at the origin).
    target_instruments : ndarray of str, shape (N,)
    returns : ndarray, float64, shape (M,)
        The distinct finite 1-s returns of the training contexts, ordered by instrument then
        grid row.
    return_instruments : ndarray of str, shape (M,)
    run_starts : ndarray, int64, shape (R,)
        Index in ``returns`` where each run of consecutive grid rows begins (module docstring).
    """

    channels: tuple[str, ...]
    steps: NDArray[np.int64]
    targets: NDArray[np.float64]
    last_context: NDArray[np.float64]
    target_instruments: NDArray[np.str_]
    returns: NDArray[np.float64]
    return_instruments: NDArray[np.str_]
    run_starts: NDArray[np.int64]

    @classmethod
    def from_batch(cls, batch: ForecastBatch) -> PriceTraining:
        """Targets, features and distinct 1-s returns of a training batch."""
        steps = horizon_steps(batch)
        target = np.asarray(batch.target[:, 0, :], dtype=np.float64)  # (B, H)
        keep = np.isfinite(target).all(axis=1)
        instruments = np.asarray(batch.instruments).astype(str)
        returns, inst, runs = _distinct_returns(batch, instruments)
        return cls(tuple(batch.channels), steps, target[keep],
                   np.asarray(batch.context[keep, :, -1], dtype=np.float64), instruments[keep],
                   returns, inst, runs)

    def returns_of(self, instrument: str | None) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The 1-s returns of one instrument (None: all) and their run starts."""
        if instrument is None:
            return self.returns, self.run_starts
        where = np.flatnonzero(self.return_instruments == instrument)
        if where.size == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        lo, hi = int(where[0]), int(where[-1]) + 1  # instruments are contiguous
        runs = self.run_starts[(self.run_starts >= lo) & (self.run_starts < hi)] - lo
        return self.returns[lo:hi], runs.astype(np.int64)


def _distinct_returns(batch: ForecastBatch, instruments: NDArray[np.str_]
                      ) -> tuple[NDArray[np.float64], NDArray[np.str_], NDArray[np.int64]]:
    """Finite context returns once per (instrument, grid row), ordered, and their run starts."""
    c = batch.context_length
    r = context_returns(batch).reshape(-1)  # (B*C,)
    rows = np.asarray(batch.window_ids[:, :c], dtype=np.int64).reshape(-1)  # (B*C,)
    names, code = np.unique(instruments, return_inverse=True)
    code = np.repeat(code.reshape(-1), c)  # (B*C,) instrument code of each position
    ok = np.isfinite(r)
    r, rows, code = r[ok], rows[ok], code[ok]
    order = np.lexsort((rows, code))
    r, rows, code = r[order], rows[order], code[order]
    first = np.ones(r.size, dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (code[1:] != code[:-1])
    r, rows, code = r[first], rows[first], code[first]
    new_run = np.ones(r.size, dtype=bool)
    new_run[1:] = (rows[1:] != rows[:-1] + 1) | (code[1:] != code[:-1])
    return r, names[code].astype(str), np.flatnonzero(new_run).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# the base class


class PriceBaseline(ABC, Generic[ConfigT]):
    """Shared plumbing: batch checks, horizon steps, seeding, the lattice, the ``Samples``.

    Subclasses set ``name`` and ``config_class`` and implement ``_fit`` and ``_draw``;
    ``learns_target`` marks those whose fit depends on the training horizon (they refuse a
    batch with other horizon steps).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[PriceBaselineConfig]]
    learns_target: ClassVar[bool] = False

    def __init__(self, config: ConfigT | None = None) -> None:
        self.config: ConfigT = config if config is not None else self.config_class()  # type: ignore[assignment]
        self._channels: tuple[str, ...] | None = None
        self._steps: NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """Name and config, for a forecast's provenance."""
        return {"name": self.name, "config": self.config.to_dict()}

    def fit(self, train: OriginSource, val: OriginSource | None = None, *, seed: int = 0,
            run_dir: str | Path | None = None) -> Self:
        """Fit on training origins (a PriceDataset or one of its batches).

        ``val`` and ``run_dir`` are part of the forecaster contract; a baseline neither
        validates nor keeps checkpoints, so it ignores them.
        """
        self._channels = None  # a failed fit leaves the forecaster unfitted
        batch = as_batch(train)
        require_price_batch(batch, f"price baseline '{self.name}'")
        data = PriceTraining.from_batch(batch)
        if data.targets.shape[0] == 0:
            raise TapecastError(f"price baseline '{self.name}': the training batch has no "
                                "origin with a finite target")
        self._fit(data, seed)
        self._channels, self._steps = data.channels, data.steps
        return self

    def sample(self, batch: ForecastBatch, n_samples: int, *, seed: int = 0) -> Samples:
        """Draw ``n_samples`` forecasts per origin.

        Returns
        -------
        Samples
            values float32 (B, n_samples, 1, H), log returns (on the lattice when
            ``config.lattice``); window ids, time stamps, instruments and regimes of the horizon.
        """
        if self._channels is None:
            raise TapecastError(f"price baseline '{self.name}' must be fitted before sampling")
        require_price_batch(batch, f"price baseline '{self.name}'")
        if tuple(batch.channels) != self._channels:
            raise TapecastError(f"price baseline '{self.name}' was fitted on channels "
                                f"{list(self._channels)}, the batch has {list(batch.channels)}")
        steps = horizon_steps(batch)
        if self.learns_target and not np.array_equal(steps, self._steps):
            raise TapecastError(f"price baseline '{self.name}' was fitted on horizon steps "
                                f"{_show(self._steps)} s, the batch asks for {_show(steps)} s")
        n_samples = check_n_samples(n_samples)
        rng = np.random.default_rng(seed)
        values = self._draw(batch, steps, n_samples, rng)  # (B, S, H)
        if self.config.lattice:
            missing = [k for k in LATTICE_EXTRAS if k not in batch.extras]
            if missing:
                raise TapecastError(f"price baseline '{self.name}' snaps its samples to the "
                                    f"price lattice: the batch needs extras {missing} (pass them "
                                    "to make_batch, or set lattice=False)")
            values = snap_returns(values, batch.extra("origin_price"),
                                  batch.extra("lattice_step"))
        c = batch.context_length
        return Samples(values[:, :, None, :].astype(np.float32), batch.target_names,
                       batch.window_ids[:, c:], batch.timestamps[:, c:], batch.instruments,
                       batch.regimes)

    def make_batch(self, context: ArrayLike, *, horizon: int | None = None,
                   timestamps: ArrayLike | None = None, instruments: ArrayLike | str | None = None,
                   extras: Mapping[str, ArrayLike] | None = None) -> ForecastBatch:
        """A batch from raw context (B, K, C) or (K, C) in the fitted channels' order.

        ``horizon`` defaults to (and must equal) the training batch's H; the horizon's window
        ids are the fitted steps after the origin. ``extras`` holds ``origin_price`` and
        ``lattice_step`` (B,) (and optionally ``price_source``) when ``config.lattice``.
        """
        if self._channels is None:
            raise TapecastError(f"price baseline '{self.name}' must be fitted before make_batch")
        h = self._steps.size
        if horizon is not None and horizon != h:
            raise TapecastError(f"price baseline '{self.name}' was fitted on horizon {h}, "
                                f"got horizon={horizon}")
        batch = ForecastBatch.from_context(self._channels, context, h, timestamps=timestamps,
                                           instruments=instruments, extras=extras,
                                           target_channels=(TARGET_CHANNEL,))
        c = batch.context_length
        ids = np.concatenate([np.arange(c), c - 1 + self._steps]).astype(np.int64)  # (C + H,)
        return dataclasses.replace(batch, window_ids=np.tile(ids, (batch.size, 1)))

    @abstractmethod
    def _fit(self, data: PriceTraining, seed: int) -> None:
        """Fit the baseline's own state."""

    @abstractmethod
    def _draw(self, batch: ForecastBatch, steps: NDArray[np.int64], n_samples: int,
              rng: np.random.Generator) -> NDArray[np.float64]:
        """Draws of shape (B, n_samples, H), finite log returns, before the lattice."""


def _show(steps: NDArray[np.int64]) -> str:
    s = steps.tolist()
    return str(s) if len(s) <= 3 else f"[{s[0]}, ..., {s[-1]}]"


def per_instrument(instruments: NDArray[np.str_], known: Mapping[str, Any]
                   ) -> list[tuple[str | None, NDArray[np.intp]]]:
    """The batch rows of each instrument, keyed by the instrument when ``known`` has it, else
    None (the pooled fallback); in sorted order, so draws are deterministic."""
    names, code = np.unique(np.asarray(instruments).astype(str), return_inverse=True)
    groups: dict[str | None, list[NDArray[np.intp]]] = {}
    for i, name in enumerate(names.tolist()):
        key = name if name in known else None
        groups.setdefault(key, []).append(np.flatnonzero(code.reshape(-1) == i))
    return [(key, np.concatenate(rows)) for key, rows in groups.items()]


# ----------------------------------------------------------------------------------------------
# registry keyed by name (looked up by tapecast.models.price_baselines.get_price_baseline)

PRICE_BASELINES: dict[str, type[PriceBaseline[Any]]] = {}
PriceBaselineT = TypeVar("PriceBaselineT", bound=type[PriceBaseline[Any]])


def register(cls: PriceBaselineT) -> PriceBaselineT:
    """Class decorator: make a price baseline available under ``cls.name``."""
    if not cls.name.startswith("price-"):
        raise TapecastError(f"a price baseline's name starts with 'price-', got '{cls.name}'")
    if cls.name in PRICE_BASELINES and PRICE_BASELINES[cls.name] is not cls:
        raise TapecastError(f"a price baseline named '{cls.name}' is already registered")
    PRICE_BASELINES[cls.name] = cls
    return cls

"""What the baselines share: training windows, NaN handling, the ``Baseline`` base, ``register``.

Every baseline implements the forecaster contract of :mod:`tapecast.core.forecaster`: it is
fitted on training origins (a :class:`~tapecast.core.batch.ForecastBatch` or a dataset) and
samples joint forecasts for a batch of test origins::

    forecaster = get_baseline("climatology").fit(train_batch, seed=0)
    samples = forecaster.sample(test_batch, n_samples=32, seed=1)   # values (B, S, K, H)

Samples are in the batch's raw units, with window ids, time stamps, instruments and regimes
taken from the horizon part of the batch. Baselines register themselves with :func:`register`;
:func:`tapecast.models.baselines.get_baseline` builds one by name.

Training windows
----------------
Training batches hold stride-1 origins, so the ``C + H`` windows of neighbouring origins
overlap and every window appears up to ``C + H`` times. :class:`TrainingWindows` takes each
window once, keyed by ``(instrument, window_id)`` (the first occurrence wins), whatever the
stride or the order of the origins.

It also keeps the one-step transitions ``(x_t, x_{t+1})`` that are known to lie within one
session. A batch carries no session labels, window ids run on across sessions, and a context
may reach back over the overnight gap (``tapecast.features.dataset``); only the *horizon* of an
origin is guaranteed to lie in one session. So transitions are taken between adjacent horizon
windows of an origin (positions ``C .. C+H-1``). With stride-1 origins this covers every
within-session transition of the split except those among the first ``C`` windows of each run
of valid origins (and none at all when ``H = 1``). A caller holding the windows table can build
:class:`TrainingWindows` itself, with all within-session transitions, and pass it to ``fit``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar, get_origin

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.batch import ForecastBatch, OriginSource, as_batch
from tapecast.core.config import ConfigBase, ConfigError
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Samples
from tapecast.core.forecaster import check_n_samples

# ----------------------------------------------------------------------------------------------
# training windows


@dataclass(frozen=True, eq=False)
class TrainingWindows:
    """Each training window once, plus the within-session one-step transitions.

    Windows and transitions are sorted by instrument, then window id (of the first window of a
    transition), so they do not depend on the order of the origins.

    Parameters
    ----------
    channels : tuple of str, length K
    values : ndarray, float64, shape (N, K)
        One row per distinct window (NaN where a channel is undefined).
    instruments : ndarray of str, shape (N,)
    window_ids : ndarray of int64, shape (N,)
    pairs : ndarray, float64, shape (M, 2, K)
        Transitions ``(x_t, x_{t+1})`` between adjacent windows of one session (from a batch:
        adjacent horizon windows, see the module docstring).
    pair_instruments : ndarray of str, shape (M,)
    """

    channels: tuple[str, ...]
    values: NDArray[np.float64]
    instruments: NDArray[np.str_]
    window_ids: NDArray[np.int64]
    pairs: NDArray[np.float64]
    pair_instruments: NDArray[np.str_]

    def __post_init__(self) -> None:
        n, k = self.values.shape
        if len(self.channels) != k or self.pairs.shape[1:] != (2, k):
            raise TapecastError(f"training windows: {len(self.channels)} channel names, values "
                                f"{self.values.shape}, pairs {self.pairs.shape}")
        if self.instruments.shape != (n,) or self.window_ids.shape != (n,):
            raise TapecastError(f"training windows: instruments/window_ids must have shape ({n},)")
        if self.pair_instruments.shape != (self.pairs.shape[0],):
            raise TapecastError("training windows: pair_instruments must have one entry per pair")

    @classmethod
    def from_batch(cls, batch: ForecastBatch) -> TrainingWindows:
        """Distinct windows and within-horizon transitions of a (possibly overlapping) batch.

        Only ids are expanded per origin and position; values are gathered for the kept
        windows alone, so memory stays near the size of the batch itself. The batch must
        forecast its context's own channels (a window is one row of every channel).
        """
        _require_own_channels(batch, "TrainingWindows")
        b, length, c = batch.size, batch.context_length + batch.horizon, batch.context_length
        names, code = np.unique(np.asarray(batch.instruments).astype(str), return_inverse=True)
        inst = np.repeat(code.reshape(-1), length)  # (B*(C+H),) instrument code per position
        ids = np.asarray(batch.window_ids, dtype=np.int64).reshape(-1)
        first = _first_occurrence(inst, ids)
        first = first[np.lexsort((ids[first], inst[first]))]
        # a transition is (position j, j+1) of one origin's horizon (j >= C), which the dataset
        # keeps in one session; keyed by the id of its first window
        start = np.arange(b * length).reshape(b, length)[:, c:-1].reshape(-1)
        pair_at = start[_first_occurrence(inst[start], ids[start])]
        pair_at = pair_at[np.lexsort((ids[pair_at], inst[pair_at]))]
        pairs = np.stack([_gather(batch, pair_at), _gather(batch, pair_at + 1)], axis=1)
        return cls(tuple(batch.channels), _gather(batch, first), names[inst[first]], ids[first],
                   pairs, names[inst[pair_at]])

    def for_instrument(self, instrument: str) -> TrainingWindows:
        """The windows and transitions of one instrument (possibly none)."""
        w, p = self.instruments == instrument, self.pair_instruments == instrument
        return TrainingWindows(self.channels, self.values[w], self.instruments[w],
                               self.window_ids[w], self.pairs[p], self.pair_instruments[p])

    def complete_rows(self) -> NDArray[np.float64]:
        """Windows whose every channel is finite, shape (N', K)."""
        return self.values[np.isfinite(self.values).all(axis=1)]

    def complete_pairs(self) -> NDArray[np.float64]:
        """Transitions whose both windows are finite in every channel, shape (M', 2, K)."""
        return self.pairs[np.isfinite(self.pairs).all(axis=(1, 2))]


def _require_own_channels(batch: ForecastBatch, who: str) -> None:
    """A TapecastError unless the batch forecasts its context's own channels."""
    if not batch.forecasts_its_context:
        raise TapecastError(f"{who} forecasts the context's own channels; this batch forecasts "
                            f"{list(batch.target_names)} from {list(batch.channels)}")


def _gather(batch: ForecastBatch, flat: NDArray[np.intp]) -> NDArray[np.float64]:
    """Windows at flat positions ``origin * (C + H) + position`` of a batch, shape (n, K),
    float64 with every non-finite value as NaN."""
    c, length = batch.context_length, batch.context_length + batch.horizon
    origin, pos = np.divmod(flat, length)
    in_context = pos < c
    out = np.empty((flat.size, len(batch.channels)))
    out[in_context] = batch.context[origin[in_context], :, pos[in_context]]
    out[~in_context] = batch.target[origin[~in_context], :, pos[~in_context] - c]
    return _finite_or_nan(out)


def _first_occurrence(inst_code: NDArray[np.intp], ids: NDArray[np.int64]) -> NDArray[np.intp]:
    """Positions of the first occurrence of each distinct ``(instrument code, id)`` key."""
    if ids.size == 0:
        return np.zeros(0, dtype=np.intp)
    span = int(ids.max() - ids.min()) + 1
    key = inst_code.astype(np.int64) * span + (ids - ids.min())
    _, first = np.unique(key, return_index=True)
    return np.sort(first).astype(np.intp)


def _finite_or_nan(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """``a`` as float64 with every non-finite entry (inf too) replaced by NaN."""
    out = np.array(a, dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


# ----------------------------------------------------------------------------------------------
# NaN handling shared by the context-based baselines


def nan_moments(x: NDArray[np.float64], axis: int, ddof: int = 1
                ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Mean, std and count of the finite values of ``x`` along ``axis``, without warnings.

    Returns
    -------
    mean, std, n : ndarrays with ``axis`` removed; mean is NaN where ``n == 0`` and std where
    ``n <= ddof``.
    """
    v = _finite_or_nan(x)
    ok = np.isfinite(v)
    n = ok.sum(axis=axis)
    v0 = np.where(ok, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = v0.sum(axis=axis) / n
        dev = np.where(ok, v - np.expand_dims(mean, axis), 0.0)
        std = np.sqrt((dev**2).sum(axis=axis) / (n - ddof))
    std = np.where(n > ddof, std, np.nan)
    return mean, std, n.astype(np.int64)


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel mean and std of the training windows: the fallback for empty contexts.

    Parameters
    ----------
    mean, std : ndarray, float64, shape (K,)
    """

    mean: NDArray[np.float64]
    std: NDArray[np.float64]

    @classmethod
    def from_windows(cls, windows: TrainingWindows) -> ChannelStats:
        mean, std, n = nan_moments(windows.values, axis=0)
        missing = [c for c, count in zip(windows.channels, n, strict=True) if count == 0]
        if missing:
            raise TapecastError(f"the training windows have no finite value of channel(s) "
                                f"{missing}; cannot fit a forecaster")
        return cls(mean, np.where(np.isfinite(std), std, 0.0))


def forward_fill(context: NDArray[np.float64], fallback: NDArray[np.float64]
                 ) -> NDArray[np.float64]:
    """Fill NaN in each context series with its last finite value.

    Leading NaNs take the series' first finite value; a series with no finite value takes
    ``fallback`` of its channel.

    Parameters
    ----------
    context : ndarray, float64, shape (B, K, C)
    fallback : ndarray, float64, shape (K,)

    Returns
    -------
    ndarray, float64, shape (B, K, C), finite wherever ``fallback`` is.
    """
    x = _finite_or_nan(context)
    ok = np.isfinite(x)
    c = x.shape[2]
    last = np.where(ok, np.arange(c), -1)
    np.maximum.accumulate(last, axis=2, out=last)  # index of the last finite value so far
    first = np.where(ok.any(axis=2), ok.argmax(axis=2), 0)[..., None]  # (B, K, 1)
    idx = np.where(last < 0, first, last)
    filled = np.take_along_axis(x, idx, axis=2)
    return np.where(np.isfinite(filled), filled, fallback[None, :, None])


def context_moments(context: NDArray[np.float64], fallback: ChannelStats
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """NaN-aware mean and std (ddof=1) of each context series.

    Series with fewer than 2 finite values take the training ``fallback`` mean and std.

    Returns
    -------
    mean, std : ndarray, float64, shape (B, K)
    """
    mean, std, n = nan_moments(context, axis=2)
    few = n < 2
    return (np.where(few, fallback.mean[None, :], mean), np.where(few, fallback.std[None, :], std))


# ----------------------------------------------------------------------------------------------
# configs and the baseline base class


@dataclass(frozen=True)
class BaselineConfig(ConfigBase):
    """Base of every baseline's frozen config (:class:`~tapecast.core.config.ConfigBase`: types
    checked, ``validate``, ``to_dict`` for provenance, ``from_dict`` for ``get_baseline``)."""


ConfigT = TypeVar("ConfigT", bound=BaselineConfig)


class Baseline(ABC, Generic[ConfigT]):
    """Shared plumbing: fitted-state checks, channel checks, seeding, the returned ``Samples``.

    Subclasses set ``name`` and ``config_class`` and implement ``_fit`` and ``_draw``.
    ``fit`` stores the channel names and the training :class:`ChannelStats` (the fallback
    for a context channel with no finite value).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[BaselineConfig]]

    def __init__(self, config: ConfigT | None = None) -> None:
        self.config: ConfigT = config if config is not None else self.config_class()  # type: ignore[assignment]
        self._channels: tuple[str, ...] | None = None
        self._stats: ChannelStats | None = None
        self._horizon: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Name and config, for a forecast's provenance."""
        return {"name": self.name, "config": self.config.to_dict()}

    def fit(self, train: OriginSource | TrainingWindows, val: OriginSource | None = None, *,
            seed: int = 0, run_dir: str | Path | None = None) -> Self:
        """Fit on training origins (or on prepared :class:`TrainingWindows`).

        ``val`` and ``run_dir`` are part of the forecaster contract; a baseline neither
        validates nor keeps checkpoints, so it ignores them.
        """
        self._channels = None  # a failed fit leaves the forecaster unfitted
        if isinstance(train, TrainingWindows):
            windows, self._horizon = train, None
        else:
            batch = as_batch(train)
            windows, self._horizon = TrainingWindows.from_batch(batch), batch.horizon
        self._stats = ChannelStats.from_windows(windows)
        self._fit(windows, seed)
        self._channels = windows.channels
        return self

    def sample(self, batch: ForecastBatch, n_samples: int, *, seed: int = 0) -> Samples:
        """Draw ``n_samples`` forecasts per origin.

        Returns
        -------
        Samples
            values float32 (B, n_samples, K, H) in the batch's raw units; window ids,
            time stamps, instruments and regimes of the horizon windows.
        """
        if self._channels is None or self._stats is None:
            raise TapecastError(f"baseline '{self.name}' must be fitted before sampling")
        _require_own_channels(batch, f"baseline '{self.name}'")
        if tuple(batch.channels) != self._channels:
            raise TapecastError(f"baseline '{self.name}' was fitted on channels "
                                f"{list(self._channels)}, the batch has {list(batch.channels)}")
        n_samples = check_n_samples(n_samples)
        rng = np.random.default_rng(seed)
        values = self._draw(batch, n_samples, rng, self._stats)  # (B, S, K, H)
        c = batch.context_length
        return Samples(values.astype(np.float32), self._channels, batch.window_ids[:, c:],
                       batch.timestamps[:, c:], batch.instruments, batch.regimes)

    def make_batch(self, context: ArrayLike, *, horizon: int | None = None,
                   timestamps: ArrayLike | None = None, instruments: ArrayLike | str | None = None,
                   extras: Mapping[str, ArrayLike] | None = None) -> ForecastBatch:
        """A batch from raw context (B, K, C) or (K, C) in the fitted channels' order.

        ``horizon`` defaults to the training batch's; the rest goes to
        :meth:`ForecastBatch.from_context`. Baselines read the context values only.
        """
        if self._channels is None:
            raise TapecastError(f"baseline '{self.name}' must be fitted before make_batch")
        steps = horizon if horizon is not None else self._horizon
        if steps is None:
            raise TapecastError(f"baseline '{self.name}' was fitted on training windows, not "
                                "origins: pass horizon= to make_batch")
        return ForecastBatch.from_context(self._channels, context, steps, timestamps=timestamps,
                                          instruments=instruments, extras=extras)

    @abstractmethod
    def _fit(self, windows: TrainingWindows, seed: int) -> None:
        """Fit the baseline's own state."""

    @abstractmethod
    def _draw(self, batch: ForecastBatch, n_samples: int, rng: np.random.Generator,
              stats: ChannelStats) -> NDArray[np.float64]:
        """Draws of shape (B, n_samples, K, H), finite, raw units."""


# ----------------------------------------------------------------------------------------------
# registry keyed by the CLI names (looked up by tapecast.models.baselines.get_baseline)

BASELINES: dict[str, type[Baseline[Any]]] = {}
BaselineT = TypeVar("BaselineT", bound=type[Baseline[Any]])


def register(cls: BaselineT) -> BaselineT:
    """Class decorator: make a baseline available to ``get_baseline`` under ``cls.name``."""
    if cls.name in BASELINES and BASELINES[cls.name] is not cls:
        raise TapecastError(f"a baseline named '{cls.name}' is already registered")
    BASELINES[cls.name] = cls
    return cls


def build_registered(registry: Mapping[str, Any], name: str, options: Mapping[str, Any],
                     what: str, names: Sequence[str]) -> Any:
    """An unfitted forecaster ``registry[name]`` built from its config class with ``options``
    (``"a,b"`` strings from the command line split for tuple fields).

    Raises
    ------
    TapecastError
        For an unknown name (listing ``names``) or option, or a value its config rejects; each
        message starts with ``what`` (``baseline``, ``price baseline``).
    """
    if name not in registry:
        raise TapecastError(f"unknown {what} '{name}'; choose one of {list(names)}")
    cls = registry[name]
    types = cls.config_class.field_types()
    unknown = sorted(set(options) - set(types))
    if unknown:
        raise TapecastError(f"{what} '{name}' has no option(s) {unknown}; "
                            f"its options are {sorted(types)}")
    values = dict(options)
    for key, value in values.items():
        if isinstance(value, str) and get_origin(types[key]) is tuple:
            values[key] = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return cls(cls.config_class.from_dict(values))
    except ConfigError as exc:
        raise TapecastError(f"{what} '{name}': {exc}") from None

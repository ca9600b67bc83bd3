"""The one forecast type every model returns and every score reads: Monte Carlo samples.

Axis order is fixed across tapecast (``../shared/DESIGN.md``)::

    values : float32 (batch, n_samples, channels, horizon)

``batch`` indexes forecast origins (one per scored window sequence), ``n_samples`` the Monte Carlo
draws of the joint forecast, ``channels`` the named series (e.g. the 8 order-flow channels) and
``horizon`` the forecast steps. Quantiles, central intervals and means are derived from the
samples here, in one place, and nowhere else.

A :class:`Forecast` adds what scoring needs beside the samples: the realized values and their mask
(same ``(batch, channels, horizon)`` layout), the forecaster's name and provenance. It is saved as
one ``.npz`` file with ``allow_pickle=False`` semantics (strings as fixed-width unicode arrays,
provenance as a JSON string), so ``tapecast evaluate`` can score forecasts made by anything that
writes this format; see ``docs/forecast-format.md``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_bytes

FORMAT_VERSION = 1
REGIMES = ("low", "mid", "high")


def _as_str_array(values: ArrayLike | None, n: int, what: str) -> NDArray[np.str_] | None:
    if values is None:
        return None
    arr = np.asarray(values).astype(str)
    if arr.shape != (n,):
        raise TapecastError(f"{what} must have shape ({n},), got {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Samples:
    """Monte Carlo samples of a joint forecast in original units.

    Parameters
    ----------
    values : ndarray, float32, shape (batch, n_samples, channels, horizon)
        The draws.
    channels : sequence of str, length channels
        Channel names, in axis order.
    window_ids : ndarray of int64, shape (batch, horizon), optional
        Id of the window (or bar) each forecast step targets.
    timestamps : ndarray of datetime64[ns], shape (batch, horizon), optional
        Time stamp of each forecast step (for windows: the window's end time).
    instruments : ndarray of str, shape (batch,), optional
        Instrument of each forecast origin.
    regimes : ndarray of str, shape (batch,), optional
        Volatility regime tag of each origin (``"low"``, ``"mid"``, ``"high"``).
    """

    values: NDArray[np.float32]
    channels: tuple[str, ...]
    window_ids: NDArray[np.int64] | None = None
    timestamps: NDArray[np.datetime64] | None = None
    instruments: NDArray[np.str_] | None = None
    regimes: NDArray[np.str_] | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim != 4:
            raise TapecastError(
                "samples must have shape (batch, n_samples, channels, horizon), "
                f"got {values.ndim} axes {values.shape}")
        b, _, k, h = values.shape
        channels = tuple(str(c) for c in self.channels)
        if len(channels) != k:
            raise TapecastError(f"{k} channels in the samples but {len(channels)} channel names")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "channels", channels)
        if self.window_ids is not None:
            ids = np.asarray(self.window_ids, dtype=np.int64)
            if ids.shape != (b, h):
                raise TapecastError(f"window_ids must have shape ({b}, {h}), got {ids.shape}")
            object.__setattr__(self, "window_ids", ids)
        if self.timestamps is not None:
            ts = np.asarray(self.timestamps).astype("datetime64[ns]")
            if ts.shape != (b, h):
                raise TapecastError(f"timestamps must have shape ({b}, {h}), got {ts.shape}")
            object.__setattr__(self, "timestamps", ts)
        object.__setattr__(self, "instruments", _as_str_array(self.instruments, b, "instruments"))
        object.__setattr__(self, "regimes", _as_str_array(self.regimes, b, "regimes"))

    # shapes ---------------------------------------------------------------------------------
    @property
    def batch(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.values.shape[1])

    @property
    def horizon(self) -> int:
        return int(self.values.shape[3])

    def channel_index(self, names: str | Sequence[str]) -> list[int]:
        """Axis positions of channel ``names`` (clear error on an unknown name)."""
        wanted = [names] if isinstance(names, str) else list(names)
        missing = [n for n in wanted if n not in self.channels]
        if missing:
            raise TapecastError(f"unknown channel(s) {missing}; channels are {list(self.channels)}")
        return [self.channels.index(n) for n in wanted]

    # derived quantities ---------------------------------------------------------------------
    def mean(self) -> NDArray[np.float64]:
        """Sample mean, shape (batch, channels, horizon)."""
        return np.asarray(self.values.mean(axis=1, dtype=np.float64))

    def std(self) -> NDArray[np.float64]:
        """Sample std (ddof=1 where n_samples > 1), shape (batch, channels, horizon)."""
        ddof = 1 if self.n_samples > 1 else 0
        return np.asarray(self.values.std(axis=1, ddof=ddof, dtype=np.float64))

    def quantile(self, q: float | ArrayLike) -> NDArray[np.float64]:
        """Empirical quantiles (linear interpolation).

        Returns shape (batch, channels, horizon) for a scalar ``q`` and
        (len(q), batch, channels, horizon) for a sequence.
        """
        qs = np.asarray(q, dtype=np.float64)
        if np.any((qs < 0) | (qs > 1)):
            raise TapecastError(f"quantile levels must lie in [0, 1], got {qs}")
        return np.quantile(self.values.astype(np.float64), qs, axis=1)

    def interval(self, level: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Central ``level`` interval from the empirical quantiles (1-level)/2 and (1+level)/2.

        Each bound has shape (batch, channels, horizon).
        """
        if not 0 < level < 1:
            raise TapecastError(f"interval level must lie in (0, 1), got {level}")
        lo, hi = self.quantile([(1 - level) / 2, (1 + level) / 2])
        return lo, hi

    @classmethod
    def concat(cls, parts: Sequence[Samples]) -> Samples:
        """Forecasts of several batches stacked along the batch axis (same channels)."""
        if not parts:
            raise TapecastError("no samples to concatenate")

        def cat(name: str) -> Any:
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return cls(cat("values"), parts[0].channels, cat("window_ids"), cat("timestamps"),
                   cat("instruments"), cat("regimes"))

    def select(self, index: ArrayLike) -> Samples:
        """The forecasts at batch positions ``index`` (a slice, int array or bool mask)."""
        idx = np.asarray(index)

        def pick(a: Any) -> Any:
            return None if a is None else a[idx]

        return Samples(self.values[idx], self.channels, pick(self.window_ids),
                       pick(self.timestamps), pick(self.instruments), pick(self.regimes))


@dataclass(frozen=True, eq=False)
class Forecast:
    """Samples together with what they are scored against.

    Parameters
    ----------
    name : str
        Forecaster name as shown in reports (``"climatology"``, ``"jl-csdi/sde-mgd"``...).
    samples : Samples
        The forecast, shape (batch, n_samples, channels, horizon).
    realized : ndarray, float64, shape (batch, channels, horizon), optional
        Realized values in the same units; None when not known yet.
    mask : ndarray of bool, shape (batch, channels, horizon), optional
        True where ``realized`` is observed and must be scored; default: wherever it is finite.
    context : ndarray, float64, shape (batch, channels, context), optional
        The realized context before each origin (for fan charts), same units.
    provenance : dict
        JSON-serializable facts: features file hash, split spec, seeds, config, package version.
    """

    name: str
    samples: Samples
    realized: NDArray[np.float64] | None = None
    mask: NDArray[np.bool_] | None = None
    context: NDArray[np.float64] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.samples
        want = (s.batch, len(s.channels), s.horizon)
        if self.realized is not None:
            realized = np.asarray(self.realized, dtype=np.float64)
            if realized.shape != want:
                raise TapecastError(f"realized must have shape {want}, got {realized.shape}")
            object.__setattr__(self, "realized", realized)
            mask = (np.isfinite(realized) if self.mask is None
                    else np.asarray(self.mask, dtype=bool) & np.isfinite(realized))
            if mask.shape != want:
                raise TapecastError(f"mask must have shape {want}, got {mask.shape}")
            object.__setattr__(self, "mask", mask)
        elif self.mask is not None:
            raise TapecastError("a mask was given without realized values")
        if self.context is not None:
            ctx = np.asarray(self.context, dtype=np.float64)
            if ctx.ndim != 3 or ctx.shape[:2] != want[:2]:
                raise TapecastError(
                    f"context must have shape ({want[0]}, {want[1]}, context), got {ctx.shape}")
            object.__setattr__(self, "context", ctx)
        json.dumps(self.provenance)  # fail early on a provenance that cannot be saved

    def select(self, index: ArrayLike) -> Forecast:
        """The forecasts at batch positions ``index``."""
        idx = np.asarray(index)

        def pick(a: Any) -> Any:
            return None if a is None else a[idx]

        return replace(self, samples=self.samples.select(idx), realized=pick(self.realized),
                       mask=pick(self.mask), context=pick(self.context))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the forecast atomically as ``.npz`` (see ``docs/forecast-format.md``)."""
        return save_forecast(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Forecast:
        return load_forecast(path)


_OPTIONAL = ("window_ids", "timestamps", "instruments", "regimes")


def save_forecast(forecast: Forecast, path: str | os.PathLike[str]) -> Path:
    """Write ``forecast`` to ``path`` (.npz, no pickled objects), atomically.

    Arrays: ``samples`` (float32 B,S,K,H), ``channels`` (str K), and where present
    ``realized`` (float64 B,K,H), ``mask`` (bool B,K,H), ``context`` (float64 B,K,C),
    ``window_ids`` (int64 B,H), ``timestamps`` (datetime64[ns] B,H, stored as int64 ns UTC),
    ``instruments`` / ``regimes`` (str B); ``meta`` is a JSON string with ``format_version``,
    ``name`` and ``provenance``.
    """
    out = Path(path)
    if out.is_dir():
        raise TapecastError(f"{out}: is a folder; give a file name for the forecast (.npz)")
    s = forecast.samples
    arrays: dict[str, NDArray[Any]] = {"samples": s.values,
                                       "channels": np.asarray(s.channels, dtype=str)}
    for key in _OPTIONAL:
        value = getattr(s, key)
        if value is not None:
            arrays[key] = value.astype(np.int64) if key == "timestamps" else value
    for key in ("realized", "mask", "context"):
        value = getattr(forecast, key)
        if value is not None:
            arrays[key] = value
    meta = {"format_version": FORMAT_VERSION, "kind": "tapecast.forecast", "name": forecast.name,
            "provenance": forecast.provenance}
    arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def load_forecast(path: str | os.PathLike[str]) -> Forecast:
    """Read a forecast written by :func:`save_forecast` (never unpickles anything)."""
    src = Path(path)
    if src.is_dir():
        raise TapecastError(f"{src}: is a folder, not a forecast file (.npz)")
    try:
        with np.load(src, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single array, not an .npz archive")
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise TapecastError(f"{src}: no such forecast file") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise TapecastError(f"{src}: not a tapecast forecast file (expected an .npz archive "
                            "written by Forecast.save; see docs/forecast-format.md)") from None
    if "meta" not in arrays or "samples" not in arrays:
        raise TapecastError(f"{src}: not a tapecast forecast file (no 'meta' or 'samples' array)")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as exc:
        raise TapecastError(f"{src}: the 'meta' array is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or "name" not in meta:
        raise TapecastError(f"{src}: the 'meta' array must be a JSON object with a 'name'")
    if meta.get("format_version") != FORMAT_VERSION:
        raise TapecastError(f"{src}: forecast format_version {meta.get('format_version')!r}, "
                            f"this tapecast reads version {FORMAT_VERSION}")
    timestamps = arrays.get("timestamps")
    samples = Samples(arrays["samples"], tuple(arrays["channels"].tolist()),
                      arrays.get("window_ids"),
                      None if timestamps is None else timestamps.astype("datetime64[ns]"),
                      arrays.get("instruments"), arrays.get("regimes"))
    return Forecast(meta["name"], samples, arrays.get("realized"), arrays.get("mask"),
                    arrays.get("context"), meta.get("provenance", {}))

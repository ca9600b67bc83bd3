"""Session splits of price windows, with an embargo in seconds between splits.

The price family splits by session exactly as the order-flow family does
(:mod:`tapecast.features.splits`: ``last``, ``dates``, ``walk-forward``; sessions are the distinct
session dates over all instruments, so one date has one label everywhere). What differs is the
unit: price origins are one second apart, so the :class:`~tapecast.features.splits.SplitSpec`'s
``context``, ``horizon`` and ``embargo`` are **seconds** here (``context_s``, ``horizon_s`` of the
:class:`~tapecast.features.price.PriceGridConfig`), and the embargo is applied on the origins'
time stamps rather than on row counts (invalid origins leave holes in the rows).

Embargo. A window reaches from the first 1-s return its features use (``warmup_s`` before the
origin) to the end of its target (``horizon_s`` after). Within each instrument, an origin that
lies less than ``embargo_s`` seconds before an origin of a *different* split is relabelled
``embargo`` (the earlier segment's tail is dropped, as in the order-flow splits). The embargo must
be at least ``context_s + horizon_s`` (no context overlaps another split's target); it defaults to
``warmup_s + horizon_s``, the whole reach of a window's features. Whole-session splits already
leave the overnight gap between sessions of regular-hours rules, so the embargo bites only where
sessions abut (``calendar``, ``cme-globex``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.features.price import NS, PriceGridConfig
from tapecast.features.splits import SplitKind, SplitSpec, session_labels

__all__ = ["assign_price_splits", "check_price_split", "default_embargo_s", "min_embargo_s",
           "price_split_spec", "split_gaps"]

_CODES = {"train": 0, "val": 1, "test": 2, "unused": -1}
_NAMES = ("train", "val", "test", "unused", "embargo")


def min_embargo_s(config: PriceGridConfig) -> int:
    """The shortest embargo allowed: ``context_s + horizon_s`` seconds."""
    return config.context_s + config.horizon_s


def default_embargo_s(config: PriceGridConfig) -> int:
    """The default embargo: ``warmup_s + horizon_s``, the reach of one window's features."""
    return config.warmup_s + config.horizon_s


def price_split_spec(config: PriceGridConfig, kind: SplitKind = "last", *,
                     val_sessions: int = 1, test_sessions: int = 1,
                     train_dates: tuple[dt.date, dt.date] | None = None,
                     val_dates: tuple[dt.date, dt.date] | None = None,
                     test_dates: tuple[dt.date, dt.date] | None = None,
                     min_train_sessions: int = 3, embargo_s: int | None = None) -> SplitSpec:
    """A :class:`SplitSpec` in seconds for price windows built with ``config``.

    ``context`` and ``horizon`` are the config's ``context_s`` and ``horizon_s``; ``embargo_s``
    defaults to :func:`default_embargo_s`.

    Raises
    ------
    TapecastError
        An embargo shorter than ``context_s + horizon_s``, or a spec :class:`SplitSpec` refuses.
    """
    spec = SplitSpec(kind=kind, val_sessions=val_sessions, test_sessions=test_sessions,
                     train_dates=train_dates, val_dates=val_dates, test_dates=test_dates,
                     min_train_sessions=min_train_sessions, context=config.context_s,
                     horizon=config.horizon_s,
                     embargo=default_embargo_s(config) if embargo_s is None else embargo_s)
    check_price_split(spec, config)
    return spec


def check_price_split(spec: SplitSpec, config: PriceGridConfig) -> None:
    """Refuse a spec whose context or horizon differ from the config's, or whose embargo is
    shorter than ``context_s + horizon_s`` seconds (one-line :class:`TapecastError`)."""
    if (spec.context, spec.horizon) != (config.context_s, config.horizon_s):
        raise TapecastError(
            f"price split: the spec's context/horizon ({spec.context}/{spec.horizon} s) differ "
            f"from the grid config's ({config.context_s}/{config.horizon_s} s); build it with "
            "price_split_spec(config, ...)")
    least = min_embargo_s(config)
    if spec.embargo_windows < least:
        raise TapecastError(
            f"price split: an embargo of {spec.embargo_windows} s is shorter than context + "
            f"horizon ({config.context_s} + {config.horizon_s} = {least} s); it must be at "
            "least that")


def _purge(instrument_start: NDArray[np.bool_], ts_ns: NDArray[np.int64],
           codes: NDArray[np.int8], embargo_ns: int) -> NDArray[np.bool_]:
    """True where an origin (sorted by instrument, time) lies less than ``embargo_ns`` before
    an origin of another split of the same instrument (``codes``: 0/1/2, -1 unused)."""
    n = codes.size
    out = np.zeros(n, dtype=bool)
    change = np.ones(n, dtype=bool)
    change[1:] = (codes[1:] != codes[:-1]) | instrument_start[1:]
    starts = np.flatnonzero(change)  # one entry per run of equal labels
    ends = np.append(starts[1:], n)
    block = np.cumsum(instrument_start)[starts]  # instrument of each run
    for r in range(starts.size):  # runs: a handful per instrument and session
        if codes[starts[r]] < 0:
            continue
        for q in range(r + 1, starts.size):
            if block[q] != block[r] or ts_ns[starts[q]] - ts_ns[ends[r] - 1] >= embargo_ns:
                break
            if codes[starts[q]] >= 0 and codes[starts[q]] != codes[starts[r]]:
                run = slice(starts[r], ends[r])
                out[run] = ts_ns[run] > ts_ns[starts[q]] - embargo_ns
                break
    return out


def _sorted_keys(windows: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in ("instrument", "session_date", "origin_ts") if c not in windows.columns]
    if missing:
        raise TapecastError(f"price split: the windows lack column(s) {missing}; build them "
                            "with price_windows")
    return (windows.select("instrument", "session_date", "origin_ts").with_row_index("_row")
            .sort("instrument", "origin_ts"))


def _instrument_start(instrument: pl.Series) -> NDArray[np.bool_]:
    inst = instrument.to_numpy()
    start = np.ones(inst.shape[0], dtype=bool)
    start[1:] = inst[1:] != inst[:-1]
    return start


def assign_price_splits(windows: pl.DataFrame, spec: SplitSpec,
                        fold: int | None = None) -> pl.Series:
    """Split label of every price window (in the caller's row order).

    Parameters
    ----------
    windows : polars.DataFrame
        :func:`~tapecast.features.price_windows.price_windows` origins (``instrument``,
        ``session_date``, ``origin_ts``).
    spec : SplitSpec
        In seconds (:func:`price_split_spec`).
    fold : int, optional
        Walk-forward fold (default: train before the first fold, every later session test).

    Returns
    -------
    polars.Series, String, length ``windows.height``, named ``split``
        ``train`` / ``val`` / ``test`` / ``embargo`` / ``unused``.
    """
    labels = session_labels(windows, spec, fold)
    keyed = _sorted_keys(windows).with_columns(
        pl.col("session_date").replace_strict(list(labels), [_CODES[v] for v in labels.values()],
                                              return_dtype=pl.Int8).alias("_code"))
    codes = keyed["_code"].to_numpy()
    ts_ns = keyed["origin_ts"].dt.cast_time_unit("ns").to_physical().to_numpy()
    purged = _purge(_instrument_start(keyed["instrument"]), ts_ns, codes,
                    spec.embargo_windows * NS)
    index = np.where(codes < 0, 3, codes).astype(np.int64)  # position in _NAMES
    index[purged] = 4
    out = np.empty(index.shape[0], dtype=np.int64)
    out[keyed["_row"].to_numpy()] = index  # back to the caller's row order
    return pl.Series("split", out).replace_strict(list(range(len(_NAMES))), list(_NAMES),
                                                   return_dtype=pl.String)


def split_gaps(windows: pl.DataFrame, labels: pl.Series) -> dict[str, Any]:
    """What the split leaves between its parts, for the folder's metadata.

    Returns
    -------
    dict
        ``windows_per_split`` (every label), ``sessions_per_split`` (ISO dates of the sessions
        holding each of train/val/test), ``closest_gap_s``: the shortest time between origins of
        different splits of one instrument (None when no instrument has two splits).
    """
    frame = windows.select("instrument", "session_date", "origin_ts").with_columns(labels)
    counts = dict(frame["split"].value_counts().iter_rows())
    sessions = {s: sorted(d.isoformat() for d in frame.filter(pl.col("split") == s)
                          ["session_date"].unique().to_list()) for s in _NAMES[:3]}
    kept = frame.filter(pl.col("split").is_in(list(_NAMES[:3]))).sort("instrument", "origin_ts")
    ts = kept["origin_ts"].dt.cast_time_unit("ns").to_physical().to_numpy()
    split = kept["split"].to_numpy()
    boundary = ~_instrument_start(kept["instrument"])
    boundary[1:] &= split[1:] != split[:-1]
    gaps = (ts[1:] - ts[:-1])[boundary[1:]] if ts.size > 1 else np.zeros(0, dtype=np.int64)
    return {"windows_per_split": {s: int(counts.get(s, 0)) for s in _NAMES},
            "sessions_per_split": sessions,
            "closest_gap_s": int(gaps.min() // NS) if gaps.size else None}

"""The demo's first two steps: the tape (user data or the built-in market) and its features.

Data: ``--data`` is anything ``tapecast features`` reads (a store folder, files, folders),
loaded with :func:`tapecast.workflows.tape.load_trades`; without it the built-in
synthetic market (:func:`tapecast.sim.generate_market`) is generated and written to
``DIR/market/`` as a store so that it can be inspected with ``tapecast inspect``.

Features: 500-trade windows, context 100, horizon 10, the ``last`` split (one validation and one
test session at the end). Equity-like tapes (at least :data:`RTH_SHARE` of the trades inside
09:30-16:00 New York on weekdays, as the synthetic market is) use the ``us-equity-rth`` session
rule with regular hours only; others use calendar (UTC) days. When the tape is too small for
enough samples the window size is shrunk with :meth:`ForecastDataset.size_factor` and the
choice is reported; below :data:`MIN_WINDOW_TRADES` trades per window it is a
:class:`TapecastError` with the counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError
from tapecast.demo.manifest import input_key
from tapecast.features.dataset import ForecastDataset
from tapecast.features.featureset import FeatureSet, build_feature_set, write_feature_set
from tapecast.features.orderflow import OrderFlowConfig, OrderFlowResult, orderflow_windows
from tapecast.features.sessions import assign_sessions
from tapecast.features.splits import SplitSpec, assign_splits

if TYPE_CHECKING:
    from tapecast.sim import SyntheticMarketConfig

RTH_SHARE = 0.8
MIN_WINDOW_TRADES = 20
SHRINK_MARGIN = 1.15  # shrink windows a little more than size_factor says (it is approximate)
MAX_SIZES = 4  # window sizes tried (the first and three shrinks) before giving up


@dataclass(frozen=True)
class FeatureOptions(ConfigBase):
    """How the demo turns trades into samples (defaults: the issue's).

    Parameters
    ----------
    window_trades : int
        Trades per window (shrunk automatically when the tape is too small).
    context, horizon : int
        Windows per sample.
    session : {"auto", "us-equity-rth", "cme-globex", "calendar"}
        Session rule; ``auto`` picks as the module docstring says.
    min_train, min_test : int
        Fewest training origins (stride 1) and test origins (stride = horizon) accepted before
        the windows are shrunk.
    """

    window_trades: int = 500
    context: int = 100
    horizon: int = 10
    session: Literal["auto", "us-equity-rth", "cme-globex", "calendar"] = "auto"
    min_train: int = 64
    min_test: int = 12

    def validate(self) -> None:
        for name in ("window_trades", "context", "horizon", "min_train", "min_test"):
            self.check_range(name, low=1)


def source_key(path: Path) -> str:
    """A key that changes when the data under ``path`` changes (names, sizes, mtimes)."""
    from tapecast.data.store import MANIFEST
    from tapecast.workflows.tape import expand_sources

    if (path / MANIFEST).is_file():
        return input_key("store", str(path.resolve()), (path / MANIFEST).read_text("utf-8"))
    files, _ = expand_sources([path])
    stats = [(str(f), os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    return input_key("files", str(path.resolve()), stats)


def write_market(out: Path, config: SyntheticMarketConfig, seed: int) -> dict[str, Any]:
    """Generate the built-in market and write it to the store ``out`` (replacing it)."""
    import shutil

    from tapecast.data.store import write_store
    from tapecast.sim import generate_market

    tables = generate_market(config, seed=seed)
    if out.exists():
        shutil.rmtree(out)
    write_store(tables, out)
    n = 0 if tables.trades is None else tables.trades.height
    return {"trades": n, "quotes": 0 if tables.quotes is None else tables.quotes.height}


def pick_session(trades: pl.DataFrame, choice: str) -> tuple[str, bool]:
    """The session rule and whether to keep regular hours only (``auto``: by the RTH share)."""
    if choice != "auto":
        return choice, choice == "us-equity-rth"
    ts = trades["ts"].dt.cast_time_unit("ns").cast(pl.Int64).to_numpy()
    index, _ = assign_sessions(ts, "us-equity-rth")
    share = float(np.mean(index >= 0)) if ts.size else 0.0
    return ("us-equity-rth", True) if share >= RTH_SHARE else ("calendar", False)


def split_spec(windows: pl.DataFrame, opts: FeatureOptions, n_trades: int) -> SplitSpec:
    """``last`` split: 1 val + 1 test session from 3 sessions on, 1 test session with 2
    (a one-line error with the counts of ``n_trades`` trades and the windows below 2)."""
    sessions = windows.select(pl.col("session_date").n_unique()).item()
    if sessions < 2:
        raise TapecastError(f"the tape has windows in {sessions} session(s) "
                            f"({_counts(windows, n_trades)}); the demo needs at least 2 "
                            "(train and test) and works best with 5 or more")
    return SplitSpec(kind="last", val_sessions=1 if sessions >= 3 else 0, test_sessions=1,
                     context=opts.context, horizon=opts.horizon)


def _shrink_factor(windows: pl.DataFrame, spec: SplitSpec, opts: FeatureOptions) -> float:
    """How many times smaller windows must be for the minimum samples (1.0: enough)."""
    labels = assign_splits(windows, spec)
    need = {"train": opts.min_train, "val": 1, "test": opts.min_test}
    factor = 1.0
    for split in spec.splits:
        data = ForecastDataset(windows, split, spec.context, spec.horizon,
                               split_labels=labels, min_samples=0)
        if len(data) < need[split]:
            factor = max(factor, data.size_factor(need[split]))
    return factor


def _counts(windows: pl.DataFrame, trades: int) -> str:
    per = windows.group_by("session_date", maintain_order=True).len()
    shown = ", ".join(f"{d}: {n}" for d, n in per.head(8).iter_rows())
    return f"{trades:,} trades, windows per session {shown or 'none'}"


def _fit_windows(signed: pl.DataFrame, opts: FeatureOptions, session: str, rth: bool,
                 source: str) -> tuple[OrderFlowResult, SplitSpec, OrderFlowConfig, list[str]]:
    """Windows of ``opts.window_trades`` trades, shrunk (at most :data:`MAX_SIZES` sizes
    tried) until every split has its minimum of samples.

    Returns
    -------
    (OrderFlowResult, SplitSpec, OrderFlowConfig, list of str)
        The windows, their split, the config that made them, and a note per shrink.
    """
    size = opts.window_trades
    notes: list[str] = []
    for _ in range(MAX_SIZES):
        config = OrderFlowConfig(window_trades=size, session=session,  # type: ignore[arg-type]
                                 regular_hours_only=rth)
        result = orderflow_windows(signed, config)
        factor = float("inf")
        if result.windows.height:
            spec = split_spec(result.windows, opts, signed.height)
            factor = _shrink_factor(result.windows, spec, opts)
        if factor <= 1.0:
            return result, spec, config, notes
        counts = _counts(result.windows, signed.height)
        smaller = int(size / (factor * SHRINK_MARGIN)) if np.isfinite(factor) else 0
        if smaller < MIN_WINDOW_TRADES:
            raise TapecastError(
                f"{source}: too small for the demo ({counts}): {opts.min_train} training and "
                f"{opts.min_test} test samples of {opts.context}+{opts.horizon} windows would "
                f"need windows of {smaller} trades (< {MIN_WINDOW_TRADES}); give more "
                "sessions or more trades")
        notes.append(f"the tape is too small for {size}-trade windows ({counts}): using "
                     f"{smaller}-trade windows instead")
        size = smaller
    raise TapecastError(
        f"{source}: too small for the demo ({counts}): {MAX_SIZES} window sizes down to "
        f"{config.window_trades} trades still give fewer than {opts.min_train} training or "
        f"{opts.min_test} test samples of {opts.context}+{opts.horizon} windows; give more "
        "sessions or more trades")


def build_features(trades: pl.DataFrame, quotes: pl.DataFrame | None, out: Path,
                   opts: FeatureOptions, source: str) -> dict[str, Any]:
    """Sign the trades, compute the windows (shrinking them when needed), write ``out``.

    Returns
    -------
    dict
        What was chosen and counted (window size, session rule, samples per split, notes).
    """
    from tapecast.workflows.tape import sign

    session, rth = pick_session(trades, opts.session)
    signed, signs = sign(trades, quotes)
    result, spec, config, notes = _fit_windows(signed, opts, session, rth, source)
    windows, meta = build_feature_set(result.windows, spec, config=config.to_dict(),
                                      summary={"orderflow": result.summary, "signs": signs},
                                      source=source)
    write_feature_set(out, windows, meta)
    return {"window_trades": config.window_trades, "session": session,
            "regular_hours_only": rth,
            "samples_per_split": meta.summary["splits"]["samples_per_split"],
            "sessions": meta.summary["splits"]["sessions"], "trades": trades.height,
            "windows": windows.height, "notes": notes}


def open_features(path: Path) -> FeatureSet:
    """The demo's features folder."""
    return FeatureSet.open(path)

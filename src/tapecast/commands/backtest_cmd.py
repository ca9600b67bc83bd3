"""``tapecast backtest``: the score model's position signal against its controls (issue 16).

Two modes over a state features folder (``tapecast features --kind state``):

- ``tapecast backtest RUN -F FOLDER [--split test]``: a trained score-model run (its normalizer
  must be the folder's) trades one split; the signal's confidence scale is fitted on the
  folder's train states, the density filter is the run's ``threshold.json``;
- ``tapecast backtest -F FOLDER --walk-forward --folds 4 [--preset tiny]``: an expanding-window
  walk-forward by time, a new model per fold
  (:func:`tapecast.workflows.score_backtest.walk_forward`).

Both print the arms (REAL, SHUFFLE, NAIVE, RANDOM) with the bootstrap p-value of REAL beating
each, beside the seed's claimed Sharpe 0.8-1.5, and with ``--out`` write the per-bar positions,
returns and P&L of every arm as Parquet and a JSON summary next to it (same name, ``.json``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from tapecast.commands.common import console, err_console, refuse_inside, user_errors
from tapecast.commands.folders import require_features_kind, run_kind
from tapecast.commands.progress import RichReporter
from tapecast.commands.score_cmd import (
    ScoreTrainOptions,
    _require_same_normalizer,
    _threshold,
    score_config,
)
from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from tapecast.features.state_featureset import StateFeatureSet
    from tapecast.workflows.score_backtest import BacktestResult

SPLITS = ("train", "val", "test")


def _check_options(run: Path | None, walk: bool, split: str | None, cost: float,
                   periods_per_year: float, folds: int | None, preset: str | None,
                   max_steps: int | None, n_boot: int, out: Path | None) -> None:
    if walk and run is not None:
        raise TapecastError("--walk-forward trains its own models: give no RUN, or drop "
                            "--walk-forward to backtest RUN")
    if not walk and run is None:
        raise TapecastError("give a trained score-model RUN, or --walk-forward to train one "
                            "per fold")
    if walk and split is not None:
        raise TapecastError("--split chooses the split RUN trades; the walk-forward tests "
                            "every fold after the first training block")
    unused = [name for name, value in (("--folds", folds), ("--preset", preset),
                                       ("--max-steps", max_steps)) if value is not None]
    if not walk and unused:
        raise TapecastError(f"{', '.join(unused)} set the walk-forward's models; RUN is "
                            "already trained (add --walk-forward without RUN to use them)")
    if split is not None and split not in SPLITS:
        raise TapecastError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not (math.isfinite(cost) and cost >= 0):
        raise TapecastError(f"--cost must be a finite number >= 0, got {cost}")
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise TapecastError(f"--periods-per-year must be > 0, got {periods_per_year}")
    if folds is not None and folds < 2:
        raise TapecastError(f"--folds must be at least 2, got {folds}")
    if max_steps is not None and max_steps < 1:
        raise TapecastError(f"--max-steps must be at least 1, got {max_steps}")
    if n_boot < 1:
        raise TapecastError(f"--n-boot must be at least 1, got {n_boot}")
    if out is not None and (out.is_dir() or out.suffix == ".json"):
        raise TapecastError(f"--out {out}: give a Parquet file name (the JSON summary goes "
                            "beside it)")


def _run_backtest(run: Path, fs: StateFeatureSet, split: str, cost: float,
                  periods_per_year: float, seed: int, n_boot: int
                  ) -> tuple[BacktestResult, dict[str, Any]]:
    """Backtest ``split`` of ``fs`` with the trained run."""
    import numpy as np
    import polars as pl

    from tapecast.models.score_matching import ScoreMatching
    from tapecast.models.score_signal import calibrate_signal, score_signal
    from tapecast.workflows.score_backtest import backtest_states, next_bar_returns

    model = ScoreMatching.load(run)
    cal = calibrate_signal(model, fs.matrix("train"), threshold=_threshold(run))
    mask = (fs.table["split"] == split).to_numpy()
    x = fs.matrix(split)
    if len(x) < 3:
        raise TapecastError(f"{fs.path}: {len(x)} state(s) in the {split} split; a backtest "
                            "needs at least 3")
    err_console.print(f"tapecast backtest: {escape(repr(model))}, {len(x):,} {split} states",
                      highlight=False)
    sig = score_signal(model, x, cal, seed=seed)
    rows = fs.table.filter(pl.Series(mask))
    result = backtest_states(rows, sig.position, np.zeros(len(x), dtype=np.int64),
                             next_returns=next_bar_returns(fs.table)[mask], cost=cost,
                             periods_per_year=periods_per_year, seed=seed, n_boot=n_boot)
    info = {"mode": "run", "run": str(run), "split": split, "calibration": cal.to_dict(),
            "in_distribution": float(sig.in_distribution.mean()),
            "traded": float(np.mean(sig.position != 0))}
    return result, info


def _walk_forward(fs: StateFeatureSet, folds: int, preset: str, max_steps: int | None,
                  cost: float, periods_per_year: float, seed: int, n_boot: int
                  ) -> tuple[BacktestResult, dict[str, Any]]:
    from tapecast.workflows.score_backtest import walk_forward

    cfg = score_config(ScoreTrainOptions(config=preset, max_steps=max_steps))
    err_console.print(f"tapecast backtest: walk-forward over {fs.table.height:,} states, "
                      f"{folds} folds, score model {escape(cfg.name)!r}, "
                      f"{cfg.train.max_steps or '-'} steps per fold", highlight=False)
    with RichReporter(transient=True) as reporter:
        res = walk_forward(fs.table, fs.config.names, folds=folds, config=cfg, cost=cost,
                           periods_per_year=periods_per_year, embargo=fs.config.warmup,
                           clip=fs.normalizer.clip, seed=seed, n_boot=n_boot,
                           reporter=reporter)
    return res.backtest, {"mode": "walk-forward", "preset": preset, "config": cfg.to_dict(),
                          "fold_details": res.folds}


def _print(result: BacktestResult, title: str, wall_s: float) -> None:
    from tapecast.workflows.score_backtest import SEED_CLAIMED_SHARPE

    table = Table(title=title, title_justify="left", box=box.SIMPLE, padding=(0, 1))
    for name in ("arm", "Sharpe", "Sortino", "max DD", "win rate", "turnover", "total",
                 "p (REAL > arm)"):
        table.add_column(name, justify="left" if name == "arm" else "right")
    for name, arm in result.arms.items():
        m = arm.metrics
        p = "" if arm.versus_real is None else f"{arm.versus_real.p_value:.3f}"
        table.add_row(name, f"{m['sharpe']:.2f}", f"{m['sortino']:.2f}",
                      f"{m['max_drawdown']:.3f}", f"{m['win_rate']:.1%}", f"{m['turnover']:.3f}",
                      f"{m['total_return']:+.3f}", p)
    console.print(table)
    low, high = SEED_CLAIMED_SHARPE
    console.print(f"Sharpe of REAL {result.arms['REAL'].metrics['sharpe']:.2f} (the seed claims "
                  f"{low}-{high} 'with proper tuning'); {result.returns.size:,} bars, cost "
                  f"{result.cost:g} per unit traded, {result.periods_per_year:g} bars a year, "
                  f"{wall_s:.1f} s", highlight=False)


def _write(out: Path, result: BacktestResult, summary: dict[str, Any]) -> Path:
    side = out.with_suffix(".json")
    with atomic_path(out) as tmp:
        result.to_frame().write_parquet(tmp)
    atomic_write_text(side, json.dumps(summary, indent=1, default=str) + "\n")
    return side


def backtest(
    features: Annotated[Path, typer.Option(
        "--features", "-F", help="A state features folder (of the run's normalization).",
        show_default=False)],
    run: Annotated[Path | None, typer.Argument(
        help="A trained score-model run folder (omit with --walk-forward).",
        show_default=False)] = None,
    walk: Annotated[bool, typer.Option(
        "--walk-forward", help="Train a score model per fold of an expanding walk-forward "
        "by time instead of using RUN.")] = False,
    split: Annotated[str | None, typer.Option(
        help="Split RUN trades: train, val or test (default test).", show_default=False)] = None,
    cost: Annotated[float, typer.Option(help="Cost per unit of traded notional.")] = 0.0005,
    periods_per_year: Annotated[float, typer.Option(
        help="Bars per year (Sharpe, Sortino).")] = 252.0,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Parquet of per-bar positions, returns and P&L of every arm (a "
        "JSON summary is written beside it).", show_default=False)] = None,
    folds: Annotated[int | None, typer.Option(
        help="Walk-forward test folds (>= 2; default 4).", show_default=False)] = None,
    preset: Annotated[str | None, typer.Option(
        help="Walk-forward score model: a preset (tiny, small) or a config.json (default "
        "tiny).", show_default=False)] = None,
    max_steps: Annotated[int | None, typer.Option(
        help="Walk-forward training steps per fold (default: the preset's).",
        show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of training, SHUFFLE, RANDOM, bootstrap.")] = 0,
    n_boot: Annotated[int, typer.Option(help="Bootstrap draws per comparison.")] = 2000,
) -> None:
    """Backtest the score model's position signal (sign of the return_1 score at σ_min, scaled
    by a train-calibrated confidence, only in high-density states) held over the next bar,
    against SHUFFLE (REAL permuted within each fold), NAIVE (always long) and RANDOM (±1)
    (docs/score-backtest.md)."""
    start = time.perf_counter()
    with user_errors():
        _check_options(run, walk, split, cost, periods_per_year, folds, preset, max_steps,
                       n_boot, out)
        if out is not None:
            refuse_inside(out, "--out", features, run)
        if run is not None:
            kind = run_kind(run)
            if kind != "score-matching":
                raise TapecastError(f"{run}: a {kind} model, not a score model of states (train "
                                    "one with `tapecast train -F STATE_FOLDER`)")
        require_features_kind(features, "state", "the score model's backtest")
        if run is not None:
            _require_same_normalizer(run, features)
        from tapecast.features.state_featureset import StateFeatureSet
        from tapecast.workflows.score_backtest import one_instrument

        fs = StateFeatureSet.open(features)
        one_instrument(fs.table)
        if run is not None:
            split = split or "test"
            result, info = _run_backtest(run, fs, split, cost, periods_per_year, seed, n_boot)
            title = f"backtest of {escape(str(run))} on the {split} split"
        else:
            folds = 4 if folds is None else folds
            result, info = _walk_forward(fs, folds, preset or "tiny", max_steps, cost,
                                         periods_per_year, seed, n_boot)
            title = f"walk-forward backtest, {folds} folds, of {escape(str(features))}"
        wall_s = time.perf_counter() - start
        summary = {**result.summary(), **info, "features": str(features), "seed": seed,
                   "wall_s": round(wall_s, 3)}
        side = None if out is None else _write(out, result, summary)
    _print(result, title, wall_s)
    if out is not None:
        console.print(f"wrote {escape(str(out))} and {escape(str(side))}")

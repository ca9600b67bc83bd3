"""Backtest of the score model's signal: arms, alignment, walk-forward by time (issue 16).

The seed's ``ScoreMatchingBacktest`` (``../shared/seeds/score-matching-trading.txt``) trades one
in-sample run and quotes "Expected Sharpe Ratio 0.8-1.5 with proper tuning". Here the signal of
:mod:`tapecast.models.score_signal` is tested out of sample, against controls::

    result = walk_forward(fs.table, fs.config.names, folds=4, config="tiny", cost=0.0005)
    result.backtest.arms["REAL"].metrics["sharpe"], result.backtest.arms["NAIVE"].versus_real

**Alignment (no look-ahead).** A state row t is known at its bar's close; its position is held
over the *next* bar of the same instrument and paid that bar's ``return_1`` (the return of row
t + 1). Each instrument's last row has no next bar and is dropped (so is a row whose next
``row`` is not t + 1). Rows are in table order (instrument, then time).

**Arms.** REAL the signal; SHUFFLE the REAL positions permuted in time within each test fold
(same positions, no timing: what the sizes and long/short mix alone earn); NAIVE always +1 (buy
and hold); RANDOM ±1 at random (seeded). For REAL against each other arm, the paired stationary
bootstrap (:func:`tapecast.evaluate.resample.paired_bootstrap`) of the mean per-bar P&L
difference, with its one-sided p-value for "REAL earns more".

**Walk-forward.** The distinct ``known_at`` stamps are cut into ``folds + 1`` equal blocks;
fold k tests on block k + 1 after training on everything before it (an expanding window): the
last ``embargo`` rows per instrument before the test block are purged, the last ``val_fraction``
of the rest (by time) is the early-stopping validation set, and a new normalizer, score model,
density threshold (train 99th percentile of −log p) and signal scale are fitted on the rest.

Legend: N state rows, n traded bars (rows with a next bar), K folds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError
from tapecast.evaluate.resample import BootstrapResult, paired_bootstrap
from tapecast.evaluate.trading import period_pnl, trading_metrics
from tapecast.workflows.progress import Quiet, Reporter

if TYPE_CHECKING:
    from tapecast.models.score_matching_config import ScoreMatchingConfig

__all__ = ["ARMS", "SEED_CLAIMED_SHARPE", "ArmResult", "BacktestResult", "WalkForwardResult",
           "backtest_arms", "backtest_states", "next_bar_returns", "walk_forward"]

ARMS = ("REAL", "SHUFFLE", "NAIVE", "RANDOM")
SEED_CLAIMED_SHARPE = (0.8, 1.5)  # the seed's "Expected Sharpe Ratio 0.8-1.5 with proper tuning"
RETURN_FEATURE = "return_1"


@dataclass(frozen=True)
class ArmResult:
    """One arm: positions (n,), per-bar P&L net of costs (n,), its additive equity curve (n,),
    :func:`~tapecast.evaluate.trading.trading_metrics`, and the bootstrap of REAL − this arm
    (None for REAL)."""

    name: str
    positions: NDArray[np.float64]
    pnl: NDArray[np.float64]
    equity: NDArray[np.float64]
    metrics: dict[str, float]
    versus_real: BootstrapResult | None


@dataclass(frozen=True)
class BacktestResult:
    """The arms over the same n bars, the returns paid (n,) and the fold of each bar (n,)."""

    arms: dict[str, ArmResult]
    returns: NDArray[np.float64]
    folds: NDArray[np.int64]
    cost: float
    periods_per_year: float
    index: pl.DataFrame | None = None  # instrument, ts, known_at of each bar, when known

    def to_frame(self) -> pl.DataFrame:
        """One row per bar: the index columns, fold, next_return, and position_<arm> and
        pnl_<arm> per arm (lower case)."""
        cols: dict[str, Any] = {"fold": self.folds, "next_return": self.returns}
        for name, arm in self.arms.items():
            cols[f"position_{name.lower()}"] = arm.positions
        for name, arm in self.arms.items():
            cols[f"pnl_{name.lower()}"] = arm.pnl
        frame = pl.DataFrame(cols)
        return frame if self.index is None else pl.concat([self.index, frame], how="horizontal")

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per arm the metrics and the bootstrap against REAL; the seed's claim."""
        arms = {name: {"metrics": _finite(arm.metrics),
                       "versus_real": None if arm.versus_real is None
                       else arm.versus_real.to_dict()} for name, arm in self.arms.items()}
        return {"bars": int(self.returns.size), "folds": int(np.unique(self.folds).size),
                "cost": self.cost, "periods_per_year": self.periods_per_year, "arms": arms,
                "seed_claimed_sharpe": list(SEED_CLAIMED_SHARPE),
                "real_sharpe": _finite(self.arms["REAL"].metrics)["sharpe"]}


@dataclass(frozen=True)
class WalkForwardResult:
    """The signal of every test row (``signals``: instrument, ts, known_at, fold, score,
    confidence, in_distribution, position), the backtest of its arms and one dict per fold."""

    signals: pl.DataFrame
    backtest: BacktestResult
    folds: list[dict[str, Any]] = field(default_factory=list)


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in values.items()}


def next_bar_returns(table: pl.DataFrame, feature: str = RETURN_FEATURE) -> NDArray[np.float64]:
    """The return each row's position is paid: ``feature`` of the next row of the same
    instrument, NaN on each instrument's last row or where the next ``row`` is not t + 1.

    Parameters
    ----------
    table : polars.DataFrame
        State rows sorted by instrument then time, with ``instrument``, ``row`` and ``feature``.

    Returns
    -------
    ndarray of float64, shape (N,)
    """
    missing = [c for c in ("instrument", "row", feature) if c not in table.columns]
    if missing:
        raise TapecastError(f"state table: missing column(s) {', '.join(missing)}")
    nxt = table.select(
        pl.when(pl.col("row").shift(-1).over("instrument") == pl.col("row") + 1)
        .then(pl.col(feature).shift(-1).over("instrument")).otherwise(None)
        .cast(pl.Float64).fill_null(float("nan")).alias("next"))["next"]
    return nxt.to_numpy().astype(np.float64)


def _arm_positions(real: NDArray[np.float64], folds: NDArray[np.int64], seed: int
                   ) -> dict[str, NDArray[np.float64]]:
    shuffle_rng, random_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(2))
    shuffled = real.copy()
    for k in np.unique(folds):
        where = np.flatnonzero(folds == k)  # (n_k,) bars of fold k
        shuffled[where] = real[shuffle_rng.permutation(where)]
    random = random_rng.choice(np.array([-1.0, 1.0]), size=real.size)
    return {"REAL": real, "SHUFFLE": shuffled, "NAIVE": np.ones_like(real), "RANDOM": random}


def backtest_arms(positions: ArrayLike, returns: ArrayLike, folds: ArrayLike,
                  cost: float = 0.0005, periods_per_year: float = 252, seed: int = 0, *,
                  n_boot: int = 2000, index: pl.DataFrame | None = None) -> BacktestResult:
    """REAL, SHUFFLE, NAIVE and RANDOM over already aligned series.

    Parameters
    ----------
    positions : array_like, shape (n,)
        REAL positions; ``positions[t]`` is held over bar t.
    returns : array_like, shape (n,)
        The simple return of bar t (the *next* bar of the state that set ``positions[t]``:
        :func:`next_bar_returns`).
    folds : array_like of int, shape (n,)
        Test fold of each bar (SHUFFLE permutes within each).
    cost : float
        Per unit of traded notional (5 bp: 0.0005), charged on |w_t − w_{t−1}|.
    periods_per_year : float
        Bars per year, for Sharpe and Sortino.
    seed : int
        Of SHUFFLE, RANDOM and the bootstrap.
    n_boot : int
        Bootstrap draws per comparison.
    index : polars.DataFrame, optional
        n rows identifying the bars (kept for :meth:`BacktestResult.to_frame`).

    Returns
    -------
    BacktestResult
    """
    w = np.asarray(positions, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    f = np.asarray(folds)
    if not (w.ndim == r.ndim == f.ndim == 1 and w.size == r.size == f.size):
        raise TapecastError(f"positions {w.shape}, returns {r.shape} and folds {f.shape} must "
                            "be 1-D of one length")
    if w.size < 2:
        raise TapecastError(f"a backtest needs at least 2 bars, got {w.size}")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(r))):
        raise TapecastError("positions and returns must be finite (drop the bars without a "
                            "next return first)")
    if index is not None and index.height != w.size:
        raise TapecastError(f"index has {index.height} rows for {w.size} bars")
    fold_ids = f.astype(np.int64)
    arms: dict[str, ArmResult] = {}
    real_pnl = period_pnl(w, r, cost=cost)
    for name, pos in _arm_positions(w, fold_ids, seed).items():
        pnl = period_pnl(pos, r, cost=cost)  # (n,)
        metrics = trading_metrics(pos, r, cost=cost, periods_per_year=periods_per_year)
        versus = None if name == "REAL" else paired_bootstrap(
            _mean, real_pnl - pnl, n_boot=n_boot, seed=seed)
        arms[name] = ArmResult(name, pos, pnl, np.cumsum(pnl), metrics, versus)
    return BacktestResult(arms, r, fold_ids, cost, periods_per_year, index)


def _mean(d: NDArray[np.float64]) -> float:
    return float(d.mean())


def backtest_states(table: pl.DataFrame, positions: ArrayLike, folds: ArrayLike, *,
                    next_returns: ArrayLike | None = None, cost: float = 0.0005,
                    periods_per_year: float = 252, seed: int = 0, n_boot: int = 2000
                    ) -> BacktestResult:
    """:func:`backtest_arms` of positions set at the state rows of ``table`` (N rows): each is
    paid its row's next-bar return; rows without one are dropped.

    Parameters
    ----------
    table : polars.DataFrame
        The N state rows (instrument, ts, known_at, row, return_1), sorted.
    positions, folds : array_like, shape (N,)
    next_returns : array_like, shape (N,), optional
        Default :func:`next_bar_returns` of ``table``; pass the full table's when ``table`` is a
        slice, so its last row is paid the bar after the slice.
    """
    one_instrument(table)
    r = next_bar_returns(table) if next_returns is None else np.asarray(next_returns, float)
    w, f = np.asarray(positions, dtype=np.float64), np.asarray(folds)
    if not w.shape == f.shape == r.shape == (table.height,):
        raise TapecastError(f"positions {w.shape}, folds {f.shape} and next returns {r.shape} "
                            f"must have one value per state row ({table.height})")
    keep = np.isfinite(r)  # (N,) rows with a next bar
    index = table.filter(pl.Series(keep)).select("instrument", "ts", "known_at")
    return backtest_arms(w[keep], r[keep], f[keep], cost, periods_per_year, seed,
                         n_boot=n_boot, index=index)


def one_instrument(table: pl.DataFrame) -> None:
    """Refuse a state table of several instruments: the arms are one position series paid one
    return series (costs, drawdown, SHUFFLE and the bootstrap run along it), and interleaving
    instruments would charge a trade at every switch between them."""
    names = table["instrument"].unique().sort().to_list()
    if len(names) > 1:
        raise TapecastError(f"the backtest trades one instrument at a time; the states hold "
                            f"{len(names)} ({', '.join(map(str, names[:5]))}"
                            f"{', ...' if len(names) > 5 else ''}): build a state folder of one")


# ------------------------------------------------------------------------------------------
# walk-forward


def fold_starts(table: pl.DataFrame, folds: int) -> list[Any]:
    """The K + 1 time cuts of a walk-forward: test block k is ``[cuts[k], cuts[k + 1])`` of
    ``known_at`` (the last is open-ended, None); everything before ``cuts[0]`` only trains."""
    if not isinstance(folds, int) or folds < 2:
        raise TapecastError(f"walk-forward needs at least 2 folds, got {folds}")
    stamps = table["known_at"].unique().sort()
    n = stamps.len()
    if n < 2 * (folds + 1):
        raise TapecastError(f"walk-forward: {n} distinct times for {folds} folds; give more bars")
    return [stamps[n * (k + 1) // (folds + 1)] for k in range(folds)] + [None]


def _fold_train(table: pl.DataFrame, start: Any, embargo: int, val_fraction: float
                ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows before ``start`` less the last ``embargo`` per instrument, cut by time into a fit
    part and the last ``val_fraction`` (validation)."""
    before = table.filter(pl.col("known_at") < start).filter(
        pl.int_range(pl.len()).over("instrument") < pl.len().over("instrument") - embargo)
    stamps = before["known_at"].unique().sort()
    if stamps.len() < 4:
        raise TapecastError(f"walk-forward: {before.height} train rows before {start}; give "
                            "more bars or fewer folds")
    cut = stamps[min(int(stamps.len() * (1 - val_fraction)), stamps.len() - 1)]
    return before.filter(pl.col("known_at") < cut), before.filter(pl.col("known_at") >= cut)


def _fit_fold(fit: pl.DataFrame, val: pl.DataFrame, test: pl.DataFrame,
              names: tuple[str, ...], config: ScoreMatchingConfig, clip: float
              ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Normalizer, score model, threshold and calibration of one fold; its test signal."""
    from tapecast.features.state_normalize import StateNormalizer
    from tapecast.models.score_anomaly import threshold_states
    from tapecast.models.score_matching import ScoreMatching
    from tapecast.models.score_signal import (
        calibrate_signal,
        score_signal,
        state_neg_log_p,
    )

    norm = StateNormalizer.fit(fit, names, clip)
    x_fit, x_val, x_test = (norm.transform(t.select(names).to_numpy().astype(np.float64))
                            for t in (fit, val, test))
    model = ScoreMatching(config).fit(x_fit, x_val if len(x_val) else None,
                                      feature_names=names, progress=False)
    threshold = float(np.quantile(state_neg_log_p(model, threshold_states(x_fit)), 0.99))
    cal = calibrate_signal(model, x_fit, threshold=threshold)
    sig = score_signal(model, x_test, cal)
    signals = test.select("instrument", "ts", "known_at").with_columns(
        score=sig.score, confidence=sig.confidence,
        in_distribution=pl.Series(sig.in_distribution), position=sig.position)
    info = {"fit_rows": fit.height, "val_rows": val.height, "test_rows": test.height,
            "steps": model.training.get("steps"), "best_val_loss": model.training.get(
                "best_val_loss"), "calibration": cal.to_dict(),
            "traded": float(np.mean(sig.position != 0))}
    return signals, info


def walk_forward(table: pl.DataFrame, feature_names: Sequence[str], *, folds: int = 4,
                 config: ScoreMatchingConfig | str = "tiny", cost: float = 0.0005,
                 periods_per_year: float = 252, embargo: int = 20, val_fraction: float = 0.15,
                 clip: float = 5.0, max_steps: int | None = None, seed: int = 0,
                 n_boot: int = 2000, reporter: Reporter | None = None) -> WalkForwardResult:
    """Expanding-window walk-forward of the score signal over a state table (raw features).

    Parameters
    ----------
    table : polars.DataFrame
        A state table (:attr:`StateFeatureSet.table`: instrument, ts, known_at, row and the raw
        features), sorted by instrument then time; its ``split`` column is ignored.
    feature_names : sequence of str
        The state vector's features (must include ``return_1``).
    folds : int
        K >= 2 test blocks.
    config : ScoreMatchingConfig or str
        The score model (a preset name or a config); fold k trains with seed ``seed + k``.
    cost, periods_per_year
        Of the trading metrics.
    embargo : int
        Train rows purged per instrument before each test block (the state warm-up).
    val_fraction : float
        Last share of each fold's train rows (by time) used for early stopping.
    clip : float
        Of each fold's normalizer.
    max_steps : int, optional
        Training steps per fold (default the config's).
    seed : int
        Of the training, SHUFFLE, RANDOM and the bootstrap.
    n_boot : int
    reporter : Reporter, optional
        Told one stage of K units.

    Returns
    -------
    WalkForwardResult
    """
    from tapecast.models.score_matching_config import score_matching_config

    one_instrument(table)
    names = tuple(feature_names)
    if RETURN_FEATURE not in names:
        raise TapecastError(f"walk-forward: the states have no {RETURN_FEATURE!r} feature")
    if embargo < 0 or not 0.0 < val_fraction < 1.0:
        raise TapecastError(f"walk-forward: need embargo >= 0 and 0 < val_fraction < 1, got "
                            f"{embargo}, {val_fraction}")
    if max_steps is not None and max_steps < 1:
        raise TapecastError(f"max_steps must be at least 1, got {max_steps}")
    cfg = score_matching_config(config) if isinstance(config, str) else config
    if max_steps is not None:
        cfg = cfg.with_train(max_steps=max_steps)
    report = reporter or Quiet()
    table = table.sort("instrument", "ts")
    cuts = fold_starts(table, folds)
    next_all = next_bar_returns(table)
    parts, infos, fold_ids, nexts = [], [], [], []
    report.stage("walk-forward", total=folds)
    for k in range(folds):
        start, end = cuts[k], cuts[k + 1]
        began = time.perf_counter()
        in_test = pl.col("known_at") >= start
        if end is not None:
            in_test &= pl.col("known_at") < end
        mask = table.select(in_test.alias("m"))["m"].to_numpy()
        fit, val = _fold_train(table, start, embargo, val_fraction)
        signals, info = _fit_fold(fit, val, table.filter(pl.Series(mask)), names,
                                  cfg.with_train(seed=seed + k), clip)
        info.update(fold=k, test_start=str(start), test_end=None if end is None else str(end),
                    wall_s=round(time.perf_counter() - began, 3))
        parts.append(signals.with_columns(fold=pl.lit(k, pl.Int64)))
        infos.append(info)
        fold_ids.append(np.full(signals.height, k, dtype=np.int64))
        nexts.append(next_all[mask])
        report.update(k + 1, f"fold {k + 1}/{folds}: {signals.height} test bars, "
                             f"{info['traded']:.0%} traded")
    report.done()
    signals = pl.concat(parts)
    r, f = np.concatenate(nexts), np.concatenate(fold_ids)
    keep = np.isfinite(r)  # (N,) rows with a next bar
    index = signals.filter(pl.Series(keep)).select("instrument", "ts", "known_at")
    result = backtest_arms(signals["position"].to_numpy()[keep], r[keep], f[keep], cost,
                           periods_per_year, seed, n_boot=n_boot, index=index)
    return WalkForwardResult(signals, result, infos)

"""Honest walk-forward: REAL beside SHUFFLE, RANDOM and NAIVE controls, over folds and seeds.

A result is believed only when the real forecaster beats every control (the protocol of the
futures-foundation seed, ``../shared/seeds/futures-foundation-model.txt``):

- ``REAL``: the forecaster, fitted on the fold's training batch, scored on its test batch.
- ``SHUFFLE``: the same forecaster class fitted on the training batch with its context-target
  pairs permuted across windows (:func:`shuffle_pairs`), scored on the untouched test batch. A
  forecaster that learned from the context loses its skill here; one that did not (or that
  leaks the test targets through some other door) does not.
- ``RANDOM``: the climatological forecast (draws of whole training windows), context ignored.
- ``NAIVE``: persistence (the last context value carried forward).

Every arm is a :class:`tapecast.core.forecaster.Forecaster` made by a factory passed in (REAL
and SHUFFLE share one): ``evaluate`` never imports ``tapecast.models``.
Every arm runs once per seed; per-window losses are averaged over seeds before the
Diebold-Mariano tests. :func:`verdict` applies the pass thresholds below; they are module
constants so that moving a goalpost is a visible diff.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Samples
from tapecast.core.forecaster import Forecaster
from tapecast.evaluate import scores, significance
from tapecast.evaluate.metrics import (
    channel_scales,
    masked_mean,
    origin_stride,
    overlap,
    to_jsonable,
)

# Pass thresholds of the verdict (pre-registered; change them only in a commit of their own).
MIN_RELATIVE_GAIN = 0.01
"""REAL's mean CRPS in a fold must lie at least 1 % below the control's to count as a win."""
MIN_FOLD_WIN_SHARE = 0.75
"""...in at least this share of the folds, against every control."""
MAX_DM_P_VALUE = 0.05
"""Pooled Diebold-Mariano test over all test windows, REAL vs each control: p below this and REAL
the better of the two."""
MIN_SEED_WIN_SHARE = 1.0
"""Share of seeds in which REAL's pooled mean CRPS is below each control's."""

ARMS = ("REAL", "SHUFFLE", "RANDOM", "NAIVE")


Factory = Callable[[], Forecaster]
Score = Callable[[Samples, ForecastBatch], NDArray[np.float64]]
Fold = tuple[str, ForecastBatch, ForecastBatch]


def crps_loss(samples: Samples, batch: ForecastBatch) -> NDArray[np.float64]:
    """Per-window, per-step CRPS averaged over channels, shape (B, H) (NaN targets skipped).

    CRPS is the fair ensemble estimator (Ferro 2014), each channel divided by its scale (the std
    of the batch's realized targets, :func:`tapecast.evaluate.metrics.channel_scales`) so every
    channel counts alike, as in ``metrics.json``.
    """
    target = np.asarray(batch.target, dtype=np.float64)  # (B, K, H)
    mask = np.isfinite(target)
    realized = np.where(mask, target, 0.0)
    crps = scores.crps_ensemble(samples.values, realized, estimator="fair")
    crps = np.asarray(crps, dtype=np.float64) / channel_scales(realized, mask)[None, :, None]
    return masked_mean(crps, mask, axis=1)  # (B, H)


def shuffle_pairs(batch: ForecastBatch, rng: np.random.Generator) -> ForecastBatch:
    """The batch with its target rows permuted across windows: contexts keep their place.

    The horizon columns of every positional extra (for order flow the trade counts
    ``n_trades``, ``n_signed``) move with their target values, so each target row stays
    internally consistent; per-origin extras stay with their context. Window ids and time stamps
    stay with the positions: they name the windows that follow each context, and moving them
    would tell a forecaster that rebuilds the series from window ids (``TrainingWindows``) which
    target truly followed which context, undoing the shuffle.
    """
    perm = rng.permutation(batch.size)  # (B,)
    c = batch.context_length

    def move_horizon(a: NDArray[Any]) -> NDArray[Any]:
        out = a.copy()
        out[:, c:] = a[perm, c:]  # (B, C + H, ...): horizon columns follow the target
        return out

    extras = {k: move_horizon(v) if batch.is_positional(k) else v
              for k, v in batch.extras.items()}
    return dataclasses.replace(batch, target=batch.target[perm], extras=extras)


# running ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmRun:
    """One arm, fold and seed: mean CRPS over the test windows and at the first step."""

    fold: str
    arm: str
    seed: int
    n_windows: int
    mean_crps: float
    first_step_crps: float


@dataclass(frozen=True)
class WalkForwardResult:
    """Everything a walk-forward measured.

    Attributes
    ----------
    runs : tuple of ArmRun
        One per fold x arm x seed.
    losses : dict
        ``losses[fold][arm]``: per-window, per-step loss averaged over seeds, shape (B_fold, H).
    folds, arms, seeds : tuples
        What was run, in order.
    forecaster : str
        Name of the REAL forecaster.
    """

    forecaster: str
    folds: tuple[str, ...]
    arms: tuple[str, ...]
    seeds: tuple[int, ...]
    runs: tuple[ArmRun, ...]
    losses: dict[str, dict[str, NDArray[np.float64]]] = field(repr=False)
    stride: int = 1

    def fold_table(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{fold: {arm: {"mean_crps", "first_step_crps"}}}``, averaged over seeds."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for fold in self.folds:
            out[fold] = {}
            for arm in self.arms:
                runs = [r for r in self.runs if r.fold == fold and r.arm == arm]
                out[fold][arm] = {"mean_crps": float(np.mean([r.mean_crps for r in runs])),
                                  "first_step_crps": float(
                                      np.mean([r.first_step_crps for r in runs]))}
        return out

    def pooled(self, arm: str) -> NDArray[np.float64]:
        """Seed-averaged per-window loss (mean over steps) of ``arm``, all folds in order (N,)."""
        return np.concatenate([np.nanmean(self.losses[f][arm], axis=1) for f in self.folds])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: fold table, runs, and the verdict."""
        v = verdict(self)
        return dict(to_jsonable({
            "forecaster": self.forecaster, "folds": self.folds, "arms": self.arms,
            "seeds": self.seeds, "fold_table": self.fold_table(),
            "runs": [vars(r) for r in self.runs],
            "verdict": {"credible": v.credible, "reasons": v.reasons, "checks": v.checks},
            "thresholds": thresholds()}))


def thresholds() -> dict[str, float]:
    """The verdict's pass thresholds, as recorded in every result."""
    return {"min_relative_gain": MIN_RELATIVE_GAIN, "min_fold_win_share": MIN_FOLD_WIN_SHARE,
            "max_dm_p_value": MAX_DM_P_VALUE, "min_seed_win_share": MIN_SEED_WIN_SHARE}


def _arm_forecaster(arm: str, factories: dict[str, Factory | None]) -> Factory:
    factory = factories[arm]
    if factory is None:
        raise TapecastError(f"control {arm} needs a forecaster factory "
                            f"(make_{arm.lower()}=...) and none was given")
    return factory


def _run_arm(arm: str, factory: Factory, train: ForecastBatch, test: ForecastBatch, seed: int,
             n_samples: int, score: Score) -> NDArray[np.float64]:
    """Fit one arm on ``train`` (pairs shuffled for SHUFFLE) and score it on ``test`` (B, H)."""
    forecaster = factory()
    if arm == "SHUFFLE":
        train = shuffle_pairs(train, np.random.default_rng([seed, 7919]))
    fitted = forecaster.fit(train, seed=seed)
    samples = fitted.sample(test, n_samples, seed=seed)
    loss = np.asarray(score(samples, test), dtype=np.float64)
    if loss.shape != (test.size, test.horizon):
        raise TapecastError(f"score returned shape {loss.shape}, expected "
                            f"({test.size}, {test.horizon}) per window and step")
    return loss


def walk_forward(folds: Iterable[Fold], make_forecaster: Factory, *,
                 make_random: Factory | None = None, make_naive: Factory | None = None,
                 controls: Sequence[str] = ("SHUFFLE", "RANDOM", "NAIVE"),
                 seeds: Sequence[int] = (0, 1, 2), n_samples: int = 32,
                 score: Score = crps_loss) -> WalkForwardResult:
    """Run REAL and the controls on every fold and seed.

    Parameters
    ----------
    folds : iterable of (name, train, test)
        Training and test batches per fold, e.g. built from the session folds of
        ``tapecast.features.splits`` (kind ``walk-forward``, with its purge and embargo).
    make_forecaster : callable () -> Forecaster
        A fresh, unfitted real forecaster; also used for SHUFFLE.
    make_random, make_naive : callable () -> Forecaster, optional
        Fresh climatology and persistence forecasters (needed when those controls run).
    controls : sequence of str
        Any of ``SHUFFLE``, ``RANDOM``, ``NAIVE``.
    seeds : sequence of int
        Seeds of fitting, sampling and the SHUFFLE permutation.
    n_samples : int
        Samples per forecast.
    score : callable (Samples, ForecastBatch) -> (B, H) array
        Per-window, per-step loss; default :func:`crps_loss`.
    """
    unknown = [c for c in controls if c not in ARMS[1:]]
    if unknown:
        raise TapecastError(f"unknown control(s) {unknown}; controls are {list(ARMS[1:])}")
    arms = ("REAL", *[a for a in ARMS[1:] if a in controls])
    factories: dict[str, Factory | None] = {"REAL": make_forecaster, "SHUFFLE": make_forecaster,
                                            "RANDOM": make_random, "NAIVE": make_naive}
    runs: list[ArmRun] = []
    losses: dict[str, dict[str, NDArray[np.float64]]] = {}
    names: list[str] = []
    stride = 0
    for name, train, test in folds:
        stride = stride or origin_stride(test.window_ids[:, test.context_length:],
                                         test.instruments)
        names.append(name)
        losses[name] = {}
        for arm in arms:
            per_seed = [_run_arm(arm, _arm_forecaster(arm, factories), train, test, s,
                                 n_samples, score) for s in seeds]
            for s, loss in zip(seeds, per_seed, strict=True):
                runs.append(ArmRun(name, arm, int(s), test.size, float(np.nanmean(loss)),
                                   float(np.nanmean(loss[:, 0]))))
            losses[name][arm] = np.mean(per_seed, axis=0)  # (B, H) seed average
    if not names:
        raise TapecastError("walk_forward got no folds")
    return WalkForwardResult(make_forecaster().name, tuple(names), arms,
                             tuple(int(s) for s in seeds), tuple(runs), losses, max(stride, 1))


# verdict ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """Credible or not, with one PASS/FAIL line per check and the numbers behind them."""

    credible: bool
    reasons: list[str]
    checks: dict[str, dict[str, Any]]


def _fold_wins(result: WalkForwardResult, control: str) -> tuple[int, list[float]]:
    table = result.fold_table()
    gains = []
    for fold in result.folds:
        real, other = table[fold]["REAL"]["mean_crps"], table[fold][control]["mean_crps"]
        gains.append((other - real) / other if other > 0 else float("-inf"))
    return sum(g >= MIN_RELATIVE_GAIN for g in gains), gains


def _seed_wins(result: WalkForwardResult, control: str) -> int:
    wins = 0
    for seed in result.seeds:
        def pooled(arm: str, s: int = seed) -> float:
            runs = [r for r in result.runs if r.arm == arm and r.seed == s]
            return float(np.average([r.mean_crps for r in runs],
                                    weights=[r.n_windows for r in runs]))
        wins += pooled("REAL") < pooled(control)
    return wins


def _check_control(result: WalkForwardResult, control: str) -> tuple[bool, str, dict[str, Any]]:
    n_folds, n_seeds = len(result.folds), len(result.seeds)
    fold_wins, gains = _fold_wins(result, control)
    seed_wins = _seed_wins(result, control)
    horizon = next(iter(result.losses.values()))["REAL"].shape[1]
    dm = significance.diebold_mariano(result.pooled("REAL"), result.pooled(control),
                                      horizon=overlap(horizon, result.stride))
    folds_ok = fold_wins >= MIN_FOLD_WIN_SHARE * n_folds
    dm_ok = dm.mean_diff < 0 and dm.p_value < MAX_DM_P_VALUE
    seeds_ok = seed_wins >= MIN_SEED_WIN_SHARE * n_seeds
    ok = bool(folds_ok and dm_ok and seeds_ok)
    line = (f"{'PASS' if ok else 'FAIL'} vs {control}: REAL at least "
            f"{MIN_RELATIVE_GAIN:.0%} better in {fold_wins}/{n_folds} folds "
            f"(need {MIN_FOLD_WIN_SHARE:.0%}); pooled DM p={dm.p_value:.3g}, mean diff "
            f"{dm.mean_diff:+.4g}, n_eff {dm.n_eff:.0f} of {dm.n} (need p<{MAX_DM_P_VALUE} "
            f"and REAL better); better in {seed_wins}/{n_seeds} seeds")
    if control == "SHUFFLE" and np.array_equal(result.pooled("REAL"), result.pooled(control)):
        line += ("; SHUFFLE scored exactly as REAL: the forecaster does not learn from training "
                 "pairs, so this control cannot be passed (run without it and say so)")
    detail = {"fold_gains": gains, "fold_wins": fold_wins, "seed_wins": seed_wins,
              "dm": dm.to_dict(), "pass": ok}
    return ok, line, detail


def verdict(result: WalkForwardResult) -> Verdict:
    """Credible only when REAL beats every control on every check (thresholds above)."""
    controls = [a for a in result.arms if a != "REAL"]
    if not controls:
        return Verdict(False, ["FAIL: no controls were run"], {})
    reasons: list[str] = []
    checks: dict[str, dict[str, Any]] = {}
    credible = True
    for control in controls:
        ok, line, detail = _check_control(result, control)
        credible &= ok
        reasons.append(line)
        checks[control] = detail
    return Verdict(credible, reasons, checks)

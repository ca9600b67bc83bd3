"""The demo's time budget: measured throughput in, training steps / test windows / steps out.

The demo (:mod:`tapecast.demo.run`) measures two rates on this machine before it trains
anything — seconds per optimiser step of the ``small`` JL-CSDI config and seconds per reverse
step of one window at the chosen number of samples — and :func:`plan_budget` turns them into a
plan that fits the budget:

* the time left after the data and features is split in two: ``train_share`` for training,
  the rest for forecasting and evaluation (by default half and half: about 5 + 5 minutes of the
  default 10);
* training: the Gaussian-VP and the Jump-Laplace model get equal steps (capped at the config's
  own ``max_steps``); the SHUFFLE control (a third model trained on re-paired pairs, same
  steps) is trained only when the three models still get at least ``shuffle_min_steps``;
* forecasting: every sampler at its default steps over every test origin if that fits;
  otherwise the steps shrink evenly (down to half the default, ``ddim`` stays at its 10),
  then the test origins are subsampled evenly (no fewer than ``min_windows``); when even that
  does not fit, samplers are dropped (:data:`DROP_ORDER`) until it does, and a model none of
  whose samplers is left is not trained. No plan schedules an overrun.

Everything here is a pure function of numbers, so it is unit-tested without a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError

SAMPLERS: dict[str, str] = {"ddpm": "gaussian", "ddim": "gaussian", "sde": "jump-laplace",
                            "sde-mgd": "jump-laplace"}
"""The four samplers the demo draws with, and the noise of the model each one samples."""

DEFAULT_SAMPLER_STEPS: dict[str, int] = {"ddpm": 50, "ddim": 10, "sde": 50, "sde-mgd": 50}
SHUFFLE_SAMPLER = "sde"
FORECASTER_NAMES: dict[str, str] = {"ddpm": "vp/ddpm", "ddim": "vp/ddim", "sde": "jl/sde",
                                    "sde-mgd": "jl/sde-mgd", "SHUFFLE": "SHUFFLE jl/sde"}
"""Report names: ``vp`` = the Gaussian variance-preserving model, ``jl`` = Jump-Laplace."""
MGD_COST = 1.15  # an sde-mgd step costs ~5-15 % more than an sde step (docs/jl-csdi.md)
DROP_ORDER = ("SHUFFLE", "ddpm", "sde", "ddim", "sde-mgd")
"""What goes first when even ``min_windows`` test windows do not fit (most wanted last)."""


@dataclass(frozen=True)
class Throughput:
    """Rates measured on this machine (seconds, wall clock).

    Parameters
    ----------
    train_s_per_step : float
        One optimiser step of the training config.
    sample_s_per_window_step : float
        One reverse step of one window at the demo's number of samples.
    """

    train_s_per_step: float
    sample_s_per_window_step: float

    def __post_init__(self) -> None:
        for name in ("train_s_per_step", "sample_s_per_window_step"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise TapecastError(f"Throughput.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class BudgetPlan:
    """What the demo will do within its budget (stored in the demo manifest as JSON).

    Attributes
    ----------
    budget_s, train_s, forecast_s : float
        The time left at planning, and its training and forecasting+evaluation parts.
    train_steps : int
        Optimiser steps of every trained model.
    models : tuple of str
        Models to train: ``gaussian``, ``jump-laplace`` and, when it fits, ``shuffle``.
    sampler_steps : dict of str -> int
        Reverse steps of every sampler that runs (``SHUFFLE`` is the control's ``sde``).
    n_test : int
        Test origins available.
    windows : tuple of int
        Positions (0-based, increasing) of the test origins forecast.
    skipped : dict of str -> str
        Forecasters left out and why (``"n/a budget: ..."``).
    notes : tuple of str
        What the planner chose, in words.
    """

    budget_s: float
    train_s: float
    forecast_s: float
    train_steps: int
    models: tuple[str, ...]
    sampler_steps: dict[str, int]
    n_test: int
    windows: tuple[int, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def n_windows(self) -> int:
        return len(self.windows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["models"], out["windows"], out["notes"] = (list(self.models), list(self.windows),
                                                       list(self.notes))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BudgetPlan:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(float(data["budget_s"]), float(data["train_s"]),
                       float(data["forecast_s"]), int(data["train_steps"]),
                       tuple(str(m) for m in data["models"]),
                       {str(k): int(v) for k, v in data["sampler_steps"].items()},
                       int(data["n_test"]), tuple(int(w) for w in data["windows"]),
                       {str(k): str(v) for k, v in data.get("skipped", {}).items()},
                       tuple(str(n) for n in data.get("notes", ())))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TapecastError(f"demo plan: missing or invalid field {exc}") from None


@dataclass(frozen=True)
class BudgetRules(ConfigBase):
    """The planner's knobs (defaults are the demo's).

    Parameters
    ----------
    train_share : float
        Share of the time left that goes to training.
    max_train_steps : int
        The config's own steps (more is never planned).
    min_train_steps : int
        Fewest steps planned even when the budget is smaller (the plan then says so).
    shuffle_min_steps : int
        The SHUFFLE control is trained only when three models get at least this many steps.
    min_windows : int
        Fewest test origins forecast when origins must be subsampled.
    reserve_share : float
        Share of the forecasting part not planned for sampling: the baselines and the
        evaluation (at run time the baselines go first and the samplers must end this share
        before the deadline, so it is left to the evaluation).
    sampler_steps : dict of str -> int
        Default reverse steps per sampler.
    """

    train_share: float = 0.5
    max_train_steps: int = 250
    min_train_steps: int = 2
    shuffle_min_steps: int = 80
    min_windows: int = 12
    reserve_share: float = 0.3
    sampler_steps: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_SAMPLER_STEPS))

    def validate(self) -> None:
        self.check_range("train_share", low=0.0, high=1.0, low_inclusive=False,
                         high_inclusive=False)
        self.check_range("reserve_share", low=0.0, high=1.0, high_inclusive=False)
        for name in ("max_train_steps", "min_train_steps", "min_windows", "shuffle_min_steps"):
            self.check_range(name, low=1)
        for sampler, steps in self.sampler_steps.items():
            self.check_range(f"sampler_steps[{sampler!r}]", low=1, value=steps)


MODEL_TITLES = {"gaussian": "Gaussian", "jump-laplace": "Jump-Laplace",
                "shuffle": "SHUFFLE control"}


def plan_training(train_s: float, s_per_step: float, rules: BudgetRules,
                  allow_shuffle: bool = True,
                  base: tuple[str, ...] = ("gaussian", "jump-laplace")
                  ) -> tuple[int, tuple[str, ...], dict[str, str], list[str]]:
    """Steps per model and which models to train: ``base`` (the models some planned sampler
    draws from) and the SHUFFLE control only if ``allow_shuffle`` and it gets enough steps.

    Returns
    -------
    (int, tuple of str, dict, list of str)
        Steps, models, skipped controls with the reason, notes.
    """
    def fits(n_models: int) -> int:
        return min(rules.max_train_steps, int(train_s / (n_models * s_per_step)))

    if not base:
        return 0, (), {}, ["training: no model (no sampler fits the forecasting budget)"]
    with_shuffle = fits(len(base) + 1)
    if allow_shuffle and with_shuffle >= min(rules.shuffle_min_steps, rules.max_train_steps):
        models, skipped = (*base, "shuffle"), {}
        steps, extra = with_shuffle, ""
    else:
        models, steps, extra = base, max(fits(len(base)), rules.min_train_steps), ""
        skipped = {FORECASTER_NAMES["SHUFFLE"]: (
            f"n/a budget: with the SHUFFLE control each model would get {with_shuffle} steps "
            f"(< {rules.shuffle_min_steps}); raise --budget-minutes")} if allow_shuffle else {}
        extra = "; SHUFFLE control skipped"
    notes = [f"training: {len(models)} model(s) ("
             + ", ".join(MODEL_TITLES[m] for m in models) + f") x {steps} steps at "
             f"{s_per_step:.2f} s/step (~{len(models) * steps * s_per_step:.0f} s of "
             f"{train_s:.0f} s){extra}"]
    if steps < rules.max_train_steps:
        notes.append(f"training is shorter than the config's {rules.max_train_steps} steps: "
                     "the models are under-trained, expect weaker forecasts")
    return steps, models, skipped, notes


def _cost_per_window(steps: Mapping[str, int]) -> float:
    """Reverse steps per window, sde-mgd weighted by :data:`MGD_COST`."""
    return sum(n * (MGD_COST if name == "sde-mgd" else 1.0) for name, n in steps.items())


def even_windows(n_test: int, n: int) -> tuple[int, ...]:
    """``n`` positions spread evenly over ``range(n_test)`` (all of them when ``n >= n_test``)."""
    if n >= n_test:
        return tuple(range(n_test))
    picks: NDArray[np.int64] = np.unique(np.round(np.linspace(0, n_test - 1, n)).astype(np.int64))
    return tuple(int(i) for i in picks)


def _reduce_steps(defaults: Mapping[str, int], per_window: float, n_test: int
                  ) -> tuple[dict[str, int], list[str]]:
    """Steps scaled evenly (down to half the default; ``ddim`` kept) so that ``n_test``
    windows cost ``per_window`` reverse steps at most, where the floor allows."""
    if _cost_per_window(defaults) * n_test <= per_window:
        return dict(defaults), []
    floor = {k: (v if k == "ddim" else max(1, -(-v // 2))) for k, v in defaults.items()}
    fixed = _cost_per_window({k: v for k, v in defaults.items() if k == "ddim"})
    scalable = _cost_per_window({k: v for k, v in defaults.items() if k != "ddim"})
    scale = max(0.0, (per_window / n_test - fixed) / max(scalable, 1e-9))
    steps = {k: max(floor[k], int(v * scale)) for k, v in defaults.items()}
    return steps, ["sampler steps reduced to fit: " + ", ".join(
        f"{k} {steps[k]}/{defaults[k]}" for k in steps if steps[k] != defaults[k])]


def _affordable(steps: Mapping[str, int], per_window: float, n_test: int) -> int:
    """Test windows that fit ``per_window`` reverse steps (all of them with no sampler)."""
    cost = _cost_per_window(steps)
    return n_test if cost <= 0 else min(n_test, int(per_window / cost))


def plan_forecast(forecast_s: float, s_per_window_step: float, n_test: int,
                  shuffle: bool, rules: BudgetRules
                  ) -> tuple[dict[str, int], tuple[int, ...], dict[str, str], list[str]]:
    """Sampler steps and test origins that fit ``forecast_s`` (minus the reserve).

    Steps shrink first, then the origins are subsampled; when even ``min_windows`` origins
    do not fit, samplers are dropped in :data:`DROP_ORDER` until they do (with every sampler
    dropped only the baselines forecast, over ``min_windows`` origins). Never plans an overrun.

    Returns
    -------
    (dict, tuple of int, dict, list of str)
        Steps per sampler (``SHUFFLE`` included when sampled), window positions, skipped
        forecasters with the reason, notes.
    """
    avail = forecast_s * (1.0 - rules.reserve_share)
    defaults = {k: int(v) for k, v in rules.sampler_steps.items()}
    if shuffle:
        defaults["SHUFFLE"] = defaults[SHUFFLE_SAMPLER]
    per_window = avail / s_per_window_step  # affordable reverse steps over all windows
    steps, notes = _reduce_steps(defaults, per_window, n_test)
    floor, skipped = min(rules.min_windows, n_test), {}
    n = _affordable(steps, per_window, n_test)
    for drop in DROP_ORDER:
        if n >= floor:
            break
        if steps.pop(drop, None) is not None:
            skipped[FORECASTER_NAMES[drop]] = (
                f"n/a budget: dropped so that at least {floor} test windows fit in the "
                f"forecasting budget ({avail:.0f} s of sampling)")
        n = _affordable(steps, per_window, n_test)
    n = max(n, floor)
    windows = even_windows(n_test, n)
    if len(windows) < n_test:
        notes.append(f"test origins subsampled evenly: {len(windows)} of {n_test}")
    cost = len(windows) * _cost_per_window(steps) * s_per_window_step
    notes.append(f"forecasting: {len(windows)} test windows, ~{cost:.0f} s of sampling at "
                 f"{s_per_window_step:.3f} s per window-step (of {forecast_s:.0f} s, "
                 f"{rules.reserve_share:.0%} left for the baselines and the evaluation)")
    return steps, windows, skipped, notes


def plan_budget(budget_s: float, throughput: Throughput, n_test: int,
                rules: BudgetRules | None = None) -> BudgetPlan:
    """The whole plan: training steps and models, then sampler steps and test windows.

    Parameters
    ----------
    budget_s : float
        Seconds left for training, forecasting and evaluation.
    throughput : Throughput
        Measured rates.
    n_test : int
        Test origins available (at least 1).
    rules : BudgetRules, optional

    Returns
    -------
    BudgetPlan
    """
    rules = rules or BudgetRules()
    if not (math.isfinite(budget_s) and budget_s > 0):
        raise TapecastError(f"the time budget must be positive, got {budget_s:.1f} s")
    if n_test < 1:
        raise TapecastError("the test split has no forecasting origin")
    train_s = budget_s * rules.train_share
    forecast_s = budget_s - train_s
    steps, models, skipped, notes = plan_training(train_s, throughput.train_s_per_step, rules)
    sampler_steps, windows, more_skipped, more_notes = plan_forecast(
        forecast_s, throughput.sample_s_per_window_step, n_test, "shuffle" in models, rules)
    base = tuple(m for m in ("gaussian", "jump-laplace")
                 if any(SAMPLERS.get(s) == m for s in sampler_steps))
    if "SHUFFLE" not in sampler_steps or len(base) < 2:  # train only what is sampled
        steps, models, _, notes = plan_training(train_s, throughput.train_s_per_step, rules,
                                                allow_shuffle=False, base=base)
    return BudgetPlan(budget_s, train_s, forecast_s, steps, models, sampler_steps, n_test,
                      windows, {**skipped, **more_skipped}, (*notes, *more_notes))

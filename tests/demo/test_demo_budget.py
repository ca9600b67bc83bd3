"""The demo end to end with a budget that binds, on a fake clock (deterministic, no timing).

Every ``time.monotonic()`` call of the pipeline moves the fake clock on by one second, so a
training step (one call in the budget callback) costs 1 s while the patched throughput probe
plans 0.5 s: the models overrun and are stopped by the budget, and no model sampler fits in what
is left. A second run of the same command resumes the stopped models and draws the forecasts
that fit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tapecast.core.forecast import Forecast
from tapecast.demo import Quiet, Throughput, evaluation, run_demo, runs
from tapecast.demo import run as demo_module
from tapecast.demo import state as demo_state
from tapecast.demo.manifest import Manifest
from tests.demo.test_demo import tiny_options

MODELS = ("gaussian", "jump-laplace", "shuffle")
MODEL_FORECASTERS = {"jl/sde-mgd", "jl/sde", "vp/ddim", "vp/ddpm", "SHUFFLE jl/sde"}
BASELINES = {"climatology", "naive", "bootstrap", "hist-vol"}


class _TickingClock:
    """``monotonic`` moves on ``tick`` seconds per call; ``perf_counter`` reads it."""

    def __init__(self, tick: float = 1.0) -> None:
        self.now, self.tick = 0.0, tick

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now

    def perf_counter(self) -> float:
        return self.now


def _run(out: Path, monkeypatch: pytest.MonkeyPatch, train_s_per_step: float = 0.5,
         **changes: Any) -> tuple[Any, Quiet]:
    clock = _TickingClock()
    monkeypatch.setattr(demo_module, "time", clock)
    monkeypatch.setattr(demo_state, "time", clock)
    monkeypatch.setattr(runs, "time", clock)
    monkeypatch.setattr(runs, "probe_throughput",
                        lambda *args, **kwargs: Throughput(train_s_per_step, 0.01))
    reporter = Quiet()
    return run_demo(tiny_options(out, budget_minutes=1.0, **changes), reporter), reporter


def _stopped_at(notes: list[str]) -> dict[str, int]:
    found = (re.match(r"(\S+): stopped by the budget at step (\d+)", n) for n in notes)
    return {m.group(1): int(m.group(2)) for m in found if m}


@pytest.mark.slow
def test_run_demo_when_the_budget_binds_stops_training_skips_samplers_then_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    first, reporter = _run(out, monkeypatch)
    planned = first.plan.train_steps
    assert first.plan.models == MODELS and planned > 5
    stopped = _stopped_at(reporter.notes)
    assert set(stopped) == set(MODELS) and all(0 < s < planned for s in stopped.values())
    steps = Manifest.open(out).steps
    assert not any(k.startswith("train/") for k in steps)  # a stopped model is not finished
    assert all((out / "runs" / m / "config.json").is_file() for m in MODELS)  # best kept
    assert set(first.skipped) == MODEL_FORECASTERS | {"garch"}
    assert all(r.startswith("n/a budget") for r in first.skipped.values())
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["forecasters"]) == BASELINES
    assert set(metrics["unavailable"]) == MODEL_FORECASTERS | {"garch"}
    assert "n/a budget" in (out / "report.html").read_text()

    scored: list[list[str]] = []

    def fake_evaluate(run: object, forecasts: list[Forecast], *rest: object) -> dict[str, Any]:
        scored.append([f.name for f in forecasts])  # the report itself is checked above
        return {}

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    again, reporter = _run(out, monkeypatch)
    # restarted (not resumed), each model would stop at the same step as before on this clock
    assert again.plan == first.plan and _stopped_at(reporter.notes) == {}
    steps = Manifest.open(out).steps
    assert all(steps[f"train/{m}"]["info"]["steps"] == planned for m in MODELS)  # resumed
    assert {"features", "throughput/train", "forecast/climatology"} <= set(again.reused)
    assert not any(r.startswith("train/") for r in again.reused)
    assert "jl/sde-mgd" in scored[0] and "jl/sde-mgd" not in again.skipped

    # another --n-samples re-measures sampling only: a probe that would now report slower
    # training (fewer planned steps) must not change the plan's training or the models
    third, _ = _run(out, monkeypatch, train_s_per_step=5.0, n_samples=6)
    assert third.plan.train_steps == planned and third.plan.models == MODELS
    assert {f"train/{m}" for m in MODELS} | {"throughput/train"} <= set(third.reused)
    assert "throughput/sample" not in third.reused

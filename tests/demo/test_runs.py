from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tapecast.core.batch import ForecastBatch
from tapecast.core.forecast import Samples
from tapecast.demo import runs
from tapecast.demo.runs import (
    CHUNK,
    KEY_FILE,
    BudgetStop,
    _train_callback,
    forecast_until,
    sampling_threads,
    train_model,
)
from tapecast.train import TrainEvent
from tapecast.workflows.progress import Quiet
from tests.models.batches import batch_from_series, synthetic_windows


class _FakeClock:
    """``time.monotonic``/``perf_counter`` that move only when told (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


class _CountingModel:
    """Stands in for JLCSDI in ``forecast_until``: zeros, records each call's seed, and moves
    the fake clock on by ``s_per_window`` per window sampled."""

    def __init__(self, clock: _FakeClock | None = None, s_per_window: float = 0.0) -> None:
        self.seeds: list[int] = []
        self.clock, self.s_per_window = clock, s_per_window

    name = "counting"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name}

    def sample(self, batch: ForecastBatch, n: int, *, sampler: str, steps: int,
               seed: int) -> Samples:
        self.seeds.append(seed)
        if self.clock is not None:
            self.clock.now += self.s_per_window * batch.size
        values = np.zeros((batch.size, n, len(batch.channels), batch.horizon), np.float32)
        return Samples(values, batch.channels)


@pytest.fixture
def batch() -> ForecastBatch:
    series = synthetic_windows(np.random.default_rng(0), 60)
    return batch_from_series(series, context=8, horizon=2, stride=4)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _FakeClock:
    fake = _FakeClock()
    monkeypatch.setattr(runs, "time", fake)
    return fake


def test_forecast_until_when_time_allows_samples_every_chunk_with_seed_plus_index(
        batch: ForecastBatch, clock: _FakeClock) -> None:
    model: Any = _CountingModel(clock, s_per_window=1.0)
    made = forecast_until(model, batch, 3, name="jl/sde", sampler="sde", steps=2, seed=10,
                          deadline=clock.now + 3600, s_per_window_step=0.5, reporter=Quiet())
    assert made is not None and made.name == "jl/sde"
    samples, wall = made.samples, made.provenance["wall_s"]
    assert made.provenance["sampler"] == "sde" and made.provenance["steps"] == 2
    n_chunks = -(-batch.size // CHUNK)
    assert samples is not None and samples.values.shape[:2] == (batch.size, 3)
    assert model.seeds == [10 + i for i in range(n_chunks)] and wall == batch.size


def test_forecast_until_when_the_plan_says_it_cannot_end_in_time_samples_nothing(
        batch: ForecastBatch, clock: _FakeClock) -> None:
    model: Any = _CountingModel(clock, s_per_window=1.0)
    # planned: 2 steps x 1 s per window-step x batch.size windows > the time left
    samples = forecast_until(model, batch, 3, name="f", sampler="sde", steps=2, seed=0,
                             deadline=clock.now + 2 * batch.size - 1, s_per_window_step=1.0,
                             reporter=Quiet())
    assert samples is None and model.seeds == []


def test_forecast_until_when_mgd_cost_tips_the_plan_over_samples_nothing(
        batch: ForecastBatch, clock: _FakeClock) -> None:
    model: Any = _CountingModel(clock)
    deadline = clock.now + 1.1 * batch.size  # fits sde (1.0 per window), not sde-mgd (1.15)
    samples = forecast_until(model, batch, 3, name="f", sampler="sde", steps=1, seed=0,
                             deadline=deadline, s_per_window_step=1.0, reporter=Quiet())
    assert samples is not None
    samples = forecast_until(model, batch, 3, name="f", sampler="sde-mgd", steps=1, seed=0,
                             deadline=deadline, s_per_window_step=1.0, reporter=Quiet())
    assert samples is None


def test_forecast_until_when_it_falls_behind_the_plan_stops_before_the_deadline(
        batch: ForecastBatch, clock: _FakeClock) -> None:
    # planned 0.1 s per window, measured 1 s: after the first chunk the rest cannot fit
    model: Any = _CountingModel(clock, s_per_window=1.0)
    deadline = clock.now + batch.size / 2
    samples = forecast_until(model, batch, 3, name="f", sampler="sde", steps=1, seed=0,
                             deadline=deadline, s_per_window_step=0.1, reporter=Quiet())
    assert samples is None and model.seeds == [0] and clock.now <= deadline


def test_train_callback_when_past_the_stop_time_raises_budget_stop() -> None:
    reporter = Quiet()
    callback, seen = _train_callback(reporter, total=10, stop_at=time.monotonic() - 1.0)
    with pytest.raises(BudgetStop):
        callback(TrainEvent("step", 3, 0, 0.5, 1e-3))
    assert seen == [3] and issubclass(BudgetStop, KeyboardInterrupt)


def test_train_callback_when_on_time_or_at_the_last_step_records_the_step_and_goes_on() -> None:
    reporter = Quiet()
    reporter.stage("training")
    callback, seen = _train_callback(reporter, total=10, stop_at=time.monotonic() + 3600)
    callback(TrainEvent("step", 3, 0, 0.5, 1e-3))  # on time: no BudgetStop
    callback(TrainEvent("eval", 3, 0, 0.5, 1e-3))  # not a step: neither seen nor reported
    assert seen == [3] and reporter.updates["training"] == [(3, "loss 0.500")]
    late, late_seen = _train_callback(reporter, total=10, stop_at=time.monotonic() - 1.0)
    late(TrainEvent("step", 10, 0, 0.25, 1e-3))  # the last step: nothing left to save
    assert late_seen == [10] and reporter.updates["training"][-1] == (10, "loss 0.250")


@pytest.mark.slow
def test_train_model_when_a_resumed_run_has_no_step_left_reports_the_steps_trained(
        tmp_path: Path) -> None:
    from tapecast.demo.inputs import FeatureOptions, build_features
    from tapecast.features.featureset import FeatureSet
    from tapecast.sim import SyntheticMarketConfig, generate_market
    from tests.models.test_jl_csdi import tiny_config

    tables = generate_market(SyntheticMarketConfig(n_sessions=3, trades_per_session=3_000),
                             seed=2)
    assert tables.trades is not None
    build_features(tables.trades, tables.quotes, tmp_path / "f",
                   FeatureOptions(window_trades=20, context=8, horizon=2, min_train=20,
                                  min_test=4), "tiny")
    fs = FeatureSet.open(tmp_path / "f")
    kwargs: dict[str, Any] = {"shuffle": False, "planned_s": 3600.0, "reporter": Quiet()}
    first = train_model(fs, tiny_config(steps=3), tmp_path / "run", "k", **kwargs)
    # killed after the last step but before the manifest recorded it: the re-run resumes
    again = train_model(fs, tiny_config(steps=3), tmp_path / "run", "k", **kwargs)
    assert first["steps"] == again["steps"] == 3 and not again["stopped_by_budget"]
    assert (tmp_path / "run" / KEY_FILE).read_text().strip() == "k"


@pytest.mark.parametrize("load,cores,expected", [
    (0.0, 2, 2), (0.9, 2, 2), (1.0, 2, 1), (3.4, 2, 1), (0.0, 16, 4), (13.2, 16, 3),
    (0.0, 1, 1)])
def test_sampling_threads_when_other_jobs_load_the_cores_leaves_them_theirs(
        load: float, cores: int, expected: int) -> None:
    assert sampling_threads(load, cores) == expected

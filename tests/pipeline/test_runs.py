from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from tapecast.core.forecast import Samples
from tapecast.features.batch import ForecastBatch
from tapecast.pipeline.progress import Quiet
from tapecast.pipeline.runs import CHUNK, BudgetStop, _train_callback, sample_until
from tapecast.train import TrainEvent
from tests.models.batches import batch_from_series, synthetic_windows


class _CountingModel:
    """Stands in for JLCSDI in ``sample_until``: zeros, and records each call's seed."""

    def __init__(self, pause_s: float = 0.0) -> None:
        self.seeds: list[int] = []
        self.pause_s = pause_s

    def sample(self, batch: ForecastBatch, n: int, *, sampler: str, steps: int,
               seed: int) -> Samples:
        self.seeds.append(seed)
        time.sleep(self.pause_s)
        values = np.zeros((batch.size, n, len(batch.channels), batch.horizon), np.float32)
        return Samples(values, batch.channels)


@pytest.fixture
def batch() -> ForecastBatch:
    series = synthetic_windows(np.random.default_rng(0), 60)
    return batch_from_series(series, context=8, horizon=2, stride=4)


def test_sample_until_when_time_allows_samples_every_chunk_with_seed_plus_index(
        batch: ForecastBatch) -> None:
    model: Any = _CountingModel()
    samples, _ = sample_until(model, batch, 3, sampler="sde", steps=2, seed=10,
                              deadline=time.monotonic() + 3600, reporter=Quiet())
    n_chunks = -(-batch.size // CHUNK)
    assert samples is not None and samples.values.shape[:2] == (batch.size, 3)
    assert model.seeds == [10 + i for i in range(n_chunks)]


def test_sample_until_when_the_next_chunk_would_pass_the_deadline_returns_none(
        batch: ForecastBatch) -> None:
    model: Any = _CountingModel(pause_s=0.05)
    samples, _ = sample_until(model, batch, 3, sampler="sde", steps=2, seed=0,
                              deadline=time.monotonic() + 0.07, reporter=Quiet())
    assert samples is None and len(model.seeds) < -(-batch.size // CHUNK)


def test_train_callback_when_past_the_stop_time_raises_budget_stop() -> None:
    reporter = Quiet()
    callback, seen = _train_callback(reporter, total=10, stop_at=time.monotonic() - 1.0)
    with pytest.raises(BudgetStop):
        callback(TrainEvent("step", 3, 0, 0.5, 1e-3))
    assert seen == [3] and issubclass(BudgetStop, KeyboardInterrupt)


def test_train_callback_when_on_time_or_at_the_last_step_does_not_stop() -> None:
    callback, _ = _train_callback(Quiet(), total=10, stop_at=time.monotonic() + 3600)
    callback(TrainEvent("step", 3, 0, 0.5, 1e-3))
    late, _ = _train_callback(Quiet(), total=10, stop_at=time.monotonic() - 1.0)
    late(TrainEvent("step", 10, 0, 0.5, 1e-3))  # the last step: nothing left to save

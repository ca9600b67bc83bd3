"""Climatology draws whole, complete training windows of the origin's instrument."""

from __future__ import annotations

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.models import get_baseline
from tests.models.batches import batch_from_series, concat, synthetic_windows


def _rows(values: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(r) for r in values}


def test_climatology_when_sampled_returns_actual_training_windows() -> None:
    rng = np.random.default_rng(0)
    series = synthetic_windows(rng, 60).astype(np.float32).astype(np.float64)
    train = batch_from_series(series, context=20, horizon=5)
    test = batch_from_series(synthetic_windows(rng, 30), context=20, horizon=5, first_id=500)
    samples = get_baseline("climatology").fit(train).sample(test, 50, seed=1)
    drawn = samples.values.transpose(0, 1, 3, 2).reshape(-1, 8)  # (B*S*H, K) whole windows
    assert _rows(drawn.astype(np.float64)) <= _rows(series)
    assert len(_rows(drawn)) > 30  # many distinct windows, not one repeated


def test_climatology_when_training_window_incomplete_never_draws_it() -> None:
    series = synthetic_windows(np.random.default_rng(1), 40)
    series[::2, 0] = np.nan  # every other window lacks imbalance
    train = batch_from_series(series, context=10, horizon=2)
    forecaster = get_baseline("climatology").fit(train)
    samples = forecaster.sample(train.select(slice(0, 3)), 200, seed=0)
    assert forecaster.n_incomplete == 20
    drawn = samples.values[..., 5, :]  # log_ret identifies the window
    assert set(np.unique(drawn)) <= set(series[1::2, 5].astype(np.float32))


def test_climatology_when_per_instrument_draws_from_own_instrument() -> None:
    low = np.zeros((30, 8))
    high = np.ones((30, 8))
    train = concat(batch_from_series(low, 5, 2), batch_from_series(high, 5, 2, instrument="QQQ"))
    test = concat(batch_from_series(high, 5, 2, instrument="SPY").select(slice(0, 1)),
                  batch_from_series(low, 5, 2, instrument="QQQ").select(slice(0, 1)),
                  batch_from_series(low, 5, 2, instrument="IWM").select(slice(0, 1)))
    values = get_baseline("climatology").fit(train).sample(test, 100, seed=0).values
    assert np.all(values[0] == 0.0) and np.all(values[1] == 1.0)
    assert set(np.unique(values[2])) == {0.0, 1.0}  # unknown instrument: pooled windows
    pooled = get_baseline("climatology", per_instrument=False).fit(train)
    assert set(np.unique(pooled.sample(test, 100, seed=0).values[0])) == {0.0, 1.0}


def test_climatology_when_no_complete_training_window_raises() -> None:
    series = synthetic_windows(np.random.default_rng(2), 20)
    series[::2, 0] = np.nan
    series[1::2, 1] = np.nan
    with pytest.raises(TapecastError, match="no training window"):
        get_baseline("climatology").fit(batch_from_series(series, 5, 2))

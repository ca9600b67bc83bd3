"""Tests of the forecaster seam's shared parts: training windows, NaN handling, registry."""

from __future__ import annotations

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.models.base import (
    Baseline,
    ChannelStats,
    TrainingWindows,
    context_moments,
    forward_fill,
    nan_moments,
    register,
)
from tests.models.batches import batch_from_series, concat, sessions_batch


def _ramp(n: int, k: int = 2, offset: float = 0.0) -> np.ndarray:
    """Window t has value offset + t in channel 0 and offset - t in channel 1: (n, k)."""
    t = np.arange(n, dtype=float)
    return np.stack([offset + t, offset - t][:k], axis=1)


def test_training_windows_when_origins_overlap_takes_each_window_once() -> None:
    batch = batch_from_series(_ramp(40), context=10, horizon=3)  # stride 1: 28 origins
    windows = TrainingWindows.from_batch(batch)
    assert np.array_equal(windows.window_ids, np.arange(40))
    assert np.array_equal(windows.values, _ramp(40))
    # transitions between horizon windows: from window C = 10 on
    assert windows.pairs.shape == (29, 2, 2)
    assert np.array_equal(windows.pairs[:, 0, 0], np.arange(10.0, 39.0))
    assert np.array_equal(windows.pairs[:, 1, 0] - windows.pairs[:, 0, 0], np.ones(29))


def test_training_windows_when_origins_shuffled_gives_the_same_windows() -> None:
    batch = batch_from_series(_ramp(40), context=10, horizon=3, stride=2)
    order = np.random.default_rng(0).permutation(batch.size)
    a, b = TrainingWindows.from_batch(batch), TrainingWindows.from_batch(batch.select(order))
    assert np.array_equal(a.values, b.values) and np.array_equal(a.pairs, b.pairs)


def test_training_windows_when_contexts_cross_sessions_has_no_pair_across_them() -> None:
    # ids run on across sessions and contexts reach back over the gap, as in the dataset
    batch = sessions_batch([_ramp(20), _ramp(20, offset=100.0)], context=5, horizon=2)
    crossing = (batch.context[:, 0, 0] < 100.0) & (batch.target[:, 0, 0] >= 100.0)
    assert crossing.any()  # some contexts do reach back over the jump
    windows = TrainingWindows.from_batch(batch)
    assert windows.values.shape == (40, 2)
    jumps = windows.pairs[:, 1, 0] - windows.pairs[:, 0, 0]
    assert np.all(jumps == 1.0)
    assert windows.pairs.shape[0] == 14 + 19  # t = 5..18 and t = 20..38


def test_training_windows_when_instruments_share_ids_keeps_both() -> None:
    spy = batch_from_series(_ramp(15), context=5, horizon=2)
    qqq = batch_from_series(_ramp(15, offset=50.0), context=5, horizon=2, instrument="QQQ")
    windows = TrainingWindows.from_batch(concat(spy, qqq))
    assert windows.values.shape == (30, 2)
    assert windows.for_instrument("QQQ").values[0, 0] == 50.0
    assert windows.for_instrument("QQQ").pairs.shape[0] == 9  # t = 5..13


def test_training_windows_when_value_is_inf_stores_nan_and_drops_incomplete_rows() -> None:
    series = _ramp(12)
    series[4, 1] = np.inf
    windows = TrainingWindows.from_batch(batch_from_series(series, context=4, horizon=2))
    assert np.isnan(windows.values[4, 1])
    assert windows.complete_rows().shape == (11, 2)
    assert windows.pairs.shape == (7, 2, 2)  # t = 4..10
    assert windows.complete_pairs().shape == (6, 2, 2)  # (4, 5) dropped


def test_forward_fill_when_gaps_fills_last_then_first_then_fallback() -> None:
    ctx = np.array([[[np.nan, 1.0, np.nan, 3.0, np.nan],
                     [np.nan] * 5]])  # (1, 2, 5)
    filled = forward_fill(ctx, np.array([9.0, 7.0]))
    assert np.array_equal(filled[0, 0], [1.0, 1.0, 1.0, 3.0, 3.0])
    assert np.array_equal(filled[0, 1], [7.0] * 5)


def test_nan_moments_when_values_missing_matches_numpy_on_defined_values() -> None:
    x = np.random.default_rng(0).normal(size=(3, 50))
    x[0, ::3] = np.nan
    mean, std, n = nan_moments(x, axis=1)
    assert n[0] == 33
    assert mean[0] == pytest.approx(np.nanmean(x[0]))
    assert std[0] == pytest.approx(np.nanstd(x[0], ddof=1))


def test_context_moments_when_fewer_than_two_values_uses_fallback() -> None:
    ctx = np.full((1, 2, 4), np.nan)
    ctx[0, 0] = [1.0, 2.0, 3.0, 4.0]
    ctx[0, 1, 2] = 5.0
    mean, std = context_moments(ctx, ChannelStats(np.array([0.0, -1.0]), np.array([1.0, 2.0])))
    assert mean[0, 0] == 2.5 and std[0, 0] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert (mean[0, 1], std[0, 1]) == (-1.0, 2.0)


def test_channel_stats_when_channel_never_defined_raises() -> None:
    series = _ramp(10)
    series[:, 1] = np.nan
    windows = TrainingWindows.from_batch(batch_from_series(series, context=4, horizon=2))
    with pytest.raises(TapecastError, match="no finite value"):
        ChannelStats.from_windows(windows)


def test_register_when_name_taken_by_another_class_raises() -> None:
    from tapecast.models.baselines import Naive

    class Impostor(Naive):
        pass

    assert register(Naive) is Naive  # registering the same class again is harmless
    with pytest.raises(TapecastError, match="already registered"):
        register(Impostor)
    assert issubclass(Impostor, Baseline)

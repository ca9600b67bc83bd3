"""Naive persistence: every sample is the last defined context value."""

from __future__ import annotations

import dataclasses

import numpy as np

from tapecast.models import get_baseline
from tests.models.batches import batch_from_series, synthetic_windows


def test_naive_when_sampled_repeats_last_context_value() -> None:
    batch = batch_from_series(synthetic_windows(np.random.default_rng(0), 60), 20, 5, stride=7)
    values = get_baseline("naive").fit(batch).sample(batch, 3).values
    expected = batch.context[:, :, -1].astype(np.float32)  # (B, K)
    assert np.array_equal(values, np.broadcast_to(expected[:, None, :, None], values.shape))


def test_naive_when_last_value_missing_uses_latest_defined_one() -> None:
    batch = batch_from_series(synthetic_windows(np.random.default_rng(1), 30), 20, 5, stride=20)
    ctx = batch.context.copy()
    ctx[0, 0, -3:] = np.nan
    gappy = dataclasses.replace(batch, context=ctx)
    values = get_baseline("naive").fit(batch).sample(gappy, 2).values
    assert np.all(values[0, :, 0] == np.float32(batch.context[0, 0, -4]))

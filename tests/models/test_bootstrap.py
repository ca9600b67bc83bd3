"""Block bootstrap: every sample is a concatenation of whole context blocks."""

from __future__ import annotations

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.models import get_baseline
from tests.models.batches import batch_from_series, synthetic_windows


def _is_context_segment(path: np.ndarray, context: np.ndarray) -> bool:
    """Whether ``path`` (K, L) equals ``context[:, s:s+L]`` for some start s."""
    length = path.shape[1]
    return any(np.array_equal(path, context[:, s:s + length])
               for s in range(context.shape[1] - length + 1))


@pytest.mark.parametrize(("block", "horizon"), [(5, 10), (3, 10), (1, 4), (4, 6)])
def test_bootstrap_when_sampled_is_made_of_context_blocks(block: int, horizon: int) -> None:
    rng = np.random.default_rng(block)
    train = batch_from_series(synthetic_windows(rng, 60), 30, horizon)
    test = batch_from_series(synthetic_windows(rng, 70), 30, horizon, stride=15)
    values = get_baseline("bootstrap", block_length=block).fit(train).sample(
        test, 20, seed=0).values
    context = test.context.astype(np.float32)
    for i in range(test.size):
        for s in range(20):
            for start in range(0, horizon, block):
                path = values[i, s, :, start:start + block]  # (K, <= block)
                assert _is_context_segment(path, context[i])


def test_bootstrap_when_blocks_are_drawn_covers_many_start_positions() -> None:
    rng = np.random.default_rng(0)
    series = np.tile(np.arange(40.0)[:, None], (1, 8))  # window t holds t in every channel
    batch = batch_from_series(series, 30, 10)
    values = get_baseline("bootstrap", block_length=5).fit(batch).sample(batch.select(
        slice(0, 1)), 400, seed=int(rng.integers(100))).values[0, :, 0, :]  # (S, H)
    starts = values[:, [0, 5]].ravel()
    assert set(np.unique(starts)) == set(np.arange(26.0))  # every start 0..C-b appears


def test_bootstrap_when_block_longer_than_context_uses_whole_context() -> None:
    batch = batch_from_series(np.tile(np.arange(12.0)[:, None], (1, 2)), 4, 8)
    values = get_baseline("bootstrap", block_length=50).fit(batch).sample(batch, 3).values
    assert np.array_equal(values[0, 0, 0], [0, 1, 2, 3, 0, 1, 2, 3])


def test_bootstrap_config_when_block_length_zero_raises() -> None:
    with pytest.raises(TapecastError, match="block_length"):
        get_baseline("bootstrap", block_length=0)

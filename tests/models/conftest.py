"""Fixtures shared by the forecaster tests: the contract batches and a tiny Chronos-Bolt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tapecast.core.batch import ForecastBatch
from tests.models.batches import batch_from_series, concat, synthetic_windows
from tests.models.tiny_chronos import build_tiny_bolt

C, H = 100, 10
"""Context and horizon of the contract batches."""


@pytest.fixture(scope="module")
def tiny_bolt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Chronos-Bolt saved locally (the hub is unreachable)."""
    return build_tiny_bolt(tmp_path_factory.mktemp("tiny-bolt"))


@pytest.fixture(scope="module")
def train() -> ForecastBatch:
    """Stride-1 origins over 400 synthetic order-flow windows, as the train split."""
    series = synthetic_windows(np.random.default_rng(1), 400)
    return batch_from_series(series, C, H)


@pytest.fixture(scope="module")
def test_batch() -> ForecastBatch:
    """One SPY origin and one of an instrument absent from training (few: GARCH fits per origin)."""
    rng = np.random.default_rng(2)
    spy = batch_from_series(synthetic_windows(rng, 110), C, H, first_id=1000)
    other = batch_from_series(synthetic_windows(rng, 110), C, H, instrument="QQQ")
    return concat(spy, other)

"""The baselines' registry and what only baselines offer (fitting on ``TrainingWindows``,
naive's degenerate ensemble). The forecaster contract itself is
``tests/models/test_forecaster_contract.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.models import TrainingWindows, baseline_names, get_baseline
from tapecast.models.base import Baseline

NAMES = ("bootstrap", "chronos", "climatology", "garch", "hist-vol", "naive", "var")
DETERMINISTIC = {"naive"}


@pytest.fixture(scope="module")
def make(tiny_bolt: Path) -> Callable[[str], Baseline]:
    def build(name: str) -> Baseline:
        return get_baseline(name, model=str(tiny_bolt)) if name == "chronos" else get_baseline(name)
    return build


def test_registry_when_listing_names_has_every_cli_name() -> None:
    assert baseline_names() == NAMES


def test_get_baseline_when_name_unknown_raises() -> None:
    with pytest.raises(TapecastError, match="unknown baseline 'arima'"):
        get_baseline("arima")


def test_get_baseline_when_option_unknown_raises_naming_options() -> None:
    with pytest.raises(TapecastError, match="block_length"):
        get_baseline("bootstrap", block=3)


def test_get_baseline_when_option_has_wrong_type_raises_tapecast_error() -> None:
    with pytest.raises(TapecastError, match="bootstrap"):
        get_baseline("bootstrap", block_length="five")


def test_naive_when_seed_differs_gives_the_same_degenerate_ensemble(make, train,
                                                                    test_batch) -> None:
    forecaster = make("naive").fit(train)
    a = forecaster.sample(test_batch, 8, seed=7).values
    assert np.array_equal(a, forecaster.sample(test_batch, 8, seed=8).values)


@pytest.mark.parametrize("name", NAMES)
def test_fit_when_given_training_windows_matches_fit_on_batch(name: str, make, train,
                                                              test_batch) -> None:
    from_batch = make(name).fit(train).sample(test_batch, 4, seed=5).values
    windows = make(name).fit(TrainingWindows.from_batch(train)).sample(test_batch, 4, seed=5)
    assert np.array_equal(from_batch, windows.values)

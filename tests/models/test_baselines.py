"""Contract suite: every registered baseline honours the Forecaster seam the same way."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models import Forecaster, TrainingWindows, baseline_names, get_baseline
from tapecast.models.base import Baseline
from tests.models.batches import batch_from_series, concat, synthetic_windows
from tests.models.tiny_chronos import build_tiny_bolt

NAMES = ("bootstrap", "chronos", "climatology", "garch", "hist-vol", "naive", "var")
DETERMINISTIC = {"naive"}
C, H = 100, 10


@pytest.fixture(scope="module")
def tiny_bolt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bolt(tmp_path_factory.mktemp("tiny-bolt"))


@pytest.fixture(scope="module")
def make(tiny_bolt: Path) -> Callable[[str], Baseline]:
    def build(name: str) -> Baseline:
        return get_baseline(name, model=str(tiny_bolt)) if name == "chronos" else get_baseline(name)
    return build


@pytest.fixture(scope="module")
def train() -> ForecastBatch:
    series = synthetic_windows(np.random.default_rng(1), 400)
    return batch_from_series(series, C, H)  # stride-1 origins, as the train split


@pytest.fixture(scope="module")
def test_batch() -> ForecastBatch:
    """One SPY origin and one of an instrument absent from training (few: GARCH fits per origin)."""
    rng = np.random.default_rng(2)
    spy = batch_from_series(synthetic_windows(rng, 110), C, H, first_id=1000)
    other = batch_from_series(synthetic_windows(rng, 110), C, H, instrument="QQQ")
    return concat(spy, other)


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


@pytest.mark.parametrize("name", NAMES)
def test_baseline_when_built_satisfies_forecaster_protocol(name: str, make) -> None:
    forecaster = make(name)
    assert isinstance(forecaster, Forecaster)
    assert forecaster.name == name
    record = json.loads(json.dumps(forecaster.to_dict()))
    assert record["name"] == name and isinstance(record["config"], dict)


@pytest.mark.parametrize("name", NAMES)
def test_sample_when_fitted_returns_finite_float32_of_batch_shape(name: str, make, train,
                                                                  test_batch) -> None:
    samples = make(name).fit(train, seed=0).sample(test_batch, 16, seed=0)
    assert samples.values.shape == (test_batch.size, 16, 8, H)
    assert samples.values.dtype == np.float32
    assert np.isfinite(samples.values).all()
    assert samples.channels == test_batch.channels


@pytest.mark.parametrize("name", NAMES)
def test_sample_when_same_seed_gives_identical_samples(name: str, make, train,
                                                       test_batch) -> None:
    forecaster = make(name).fit(train)
    first = forecaster.sample(test_batch, 8, seed=7).values
    again = forecaster.sample(test_batch, 8, seed=7).values
    assert np.array_equal(first, again)


@pytest.mark.parametrize("name", sorted(set(NAMES) - DETERMINISTIC))
def test_sample_when_seed_differs_gives_different_samples(name: str, make, train,
                                                          test_batch) -> None:
    forecaster = make(name).fit(train)
    a = forecaster.sample(test_batch, 8, seed=7).values
    b = forecaster.sample(test_batch, 8, seed=8).values
    assert not np.array_equal(a, b)


def test_naive_when_seed_differs_gives_the_same_degenerate_ensemble(make, train,
                                                                    test_batch) -> None:
    forecaster = make("naive").fit(train)
    a = forecaster.sample(test_batch, 8, seed=7).values
    assert np.array_equal(a, forecaster.sample(test_batch, 8, seed=8).values)


@pytest.mark.parametrize("name", NAMES)
def test_sample_when_batch_has_metadata_passes_horizon_part_through(name: str, make, train,
                                                                    test_batch) -> None:
    samples = make(name).fit(train).sample(test_batch, 4, seed=0)
    assert np.array_equal(samples.window_ids, test_batch.window_ids[:, C:])
    assert np.array_equal(samples.timestamps, test_batch.timestamps[:, C:])
    assert np.array_equal(samples.instruments, test_batch.instruments)
    assert np.array_equal(samples.regimes, test_batch.regimes)


@pytest.mark.parametrize("name", NAMES)
def test_sample_when_not_fitted_raises(name: str, make, test_batch) -> None:
    with pytest.raises(TapecastError, match="fitted before sampling"):
        make(name).sample(test_batch, 4)


@pytest.mark.parametrize("name", NAMES)
def test_sample_when_channels_differ_from_fit_raises(name: str, make, train,
                                                     test_batch) -> None:
    forecaster = make(name).fit(train)
    renamed = dataclasses.replace(test_batch, channels=tuple(reversed(test_batch.channels)))
    with pytest.raises(TapecastError, match="fitted on channels"):
        forecaster.sample(renamed, 4)


@pytest.mark.parametrize("name", NAMES)
def test_sample_when_n_samples_below_one_raises(name: str, make, train, test_batch) -> None:
    with pytest.raises(TapecastError, match="n_samples"):
        make(name).fit(train).sample(test_batch, 0)


def _with_gaps(batch: ForecastBatch) -> ForecastBatch:
    """Scattered NaN and inf, NaN last values, and one channel undefined over a whole context."""
    ctx = batch.context.copy()
    rng = np.random.default_rng(3)
    ctx[rng.random(ctx.shape) < 0.2] = np.nan
    ctx[0, :5, -3:] = np.nan  # imbalances of the last windows undefined
    ctx[1, 0, :] = np.nan  # a whole context without imbalance
    ctx[1, 6, 10] = np.inf
    return dataclasses.replace(batch, context=ctx)


@pytest.mark.parametrize("name", NAMES)
def test_sample_when_context_has_nan_gives_finite_samples(name: str, make, train,
                                                          test_batch) -> None:
    samples = make(name).fit(train).sample(_with_gaps(test_batch), 8, seed=0)
    assert np.isfinite(samples.values).all()


@pytest.mark.parametrize("name", NAMES)
def test_fit_when_given_training_windows_matches_fit_on_batch(name: str, make, train,
                                                              test_batch) -> None:
    from_batch = make(name).fit(train).sample(test_batch, 4, seed=5).values
    windows = make(name).fit(TrainingWindows.from_batch(train)).sample(test_batch, 4, seed=5)
    assert np.array_equal(from_batch, windows.values)

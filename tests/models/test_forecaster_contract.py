"""Contract suite: every forecaster (each registered baseline and JL-CSDI) honours
:class:`tapecast.core.forecaster.Forecaster` the same way.

A new forecaster joins by adding its name to :data:`FORECASTERS` and a line to ``build``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tapecast.core.batch import ForecastBatch, OriginSource
from tapecast.core.errors import TapecastError
from tapecast.core.forecaster import Forecaster
from tapecast.evaluate.walkforward import walk_forward
from tapecast.models import baseline_names, get_baseline
from tapecast.models.jl_csdi import JLCSDI
from tests.models.conftest import C, H
from tests.models.test_jl_csdi import tiny_config

FORECASTERS = (*baseline_names(), "jl-csdi")
DETERMINISTIC = {"naive"}
Make = Callable[[str], Any]


@pytest.fixture(scope="module")
def make(tiny_bolt: Path) -> Make:
    """A fresh, unfitted forecaster by name."""
    def build(name: str) -> Any:
        if name == "jl-csdi":
            return JLCSDI(tiny_config(steps=2).with_sizes(C, H))
        if name == "chronos":
            return get_baseline(name, model=str(tiny_bolt))
        return get_baseline(name)
    return build


@pytest.fixture(scope="module")
def fitted(make: Make, train: ForecastBatch) -> dict[str, Any]:
    """Each forecaster fitted once (seed 0), for the tests that only sample."""
    return {name: make(name).fit(train, seed=0) for name in FORECASTERS}


class _Origins:
    """A dataset-like source of origins that is not a batch (as ``ForecastDataset`` is)."""

    def __init__(self, batch: ForecastBatch) -> None:
        self._batch = batch

    def __len__(self) -> int:
        return self._batch.size

    def batch(self, index: Any) -> ForecastBatch:
        return self._batch.select(index)


def _with_gaps(batch: ForecastBatch) -> ForecastBatch:
    """Scattered NaN and inf, NaN last values, and one channel undefined over a whole context."""
    ctx = batch.context.copy()
    rng = np.random.default_rng(3)
    ctx[rng.random(ctx.shape) < 0.2] = np.nan
    ctx[0, :5, -3:] = np.nan  # imbalances of the last windows undefined
    ctx[1, 0, :] = np.nan  # a whole context without imbalance
    ctx[1, 6, 10] = np.inf
    return dataclasses.replace(batch, context=ctx)


@pytest.mark.parametrize("name", FORECASTERS)
def test_forecaster_when_built_satisfies_the_protocol_and_records_itself(name: str,
                                                                         make: Make) -> None:
    forecaster = make(name)
    assert isinstance(forecaster, Forecaster)
    assert forecaster.name == name
    record = json.loads(json.dumps(forecaster.to_dict()))
    assert record["name"] == name and isinstance(record["config"], dict)


@pytest.mark.parametrize("name", FORECASTERS)
def test_fit_when_called_returns_the_forecaster_itself(name: str, make: Make,
                                                       train: ForecastBatch) -> None:
    forecaster = make(name)
    assert forecaster.fit(train, None, seed=0, run_dir=None) is forecaster


@pytest.mark.parametrize("name", FORECASTERS)
def test_sample_when_fitted_returns_finite_float32_of_batch_shape(
        name: str, fitted: dict[str, Any], test_batch: ForecastBatch) -> None:
    samples = fitted[name].sample(test_batch, 16, seed=0)
    assert samples.values.shape == (test_batch.size, 16, 8, H)
    assert samples.values.dtype == np.float32
    assert np.isfinite(samples.values).all()
    assert samples.channels == test_batch.channels


@pytest.mark.parametrize("name", FORECASTERS)
def test_sample_when_same_seed_gives_identical_samples(name: str, fitted: dict[str, Any],
                                                       test_batch: ForecastBatch) -> None:
    first = fitted[name].sample(test_batch, 8, seed=7).values
    assert np.array_equal(first, fitted[name].sample(test_batch, 8, seed=7).values)


@pytest.mark.parametrize("name", sorted(set(FORECASTERS) - DETERMINISTIC))
def test_sample_when_seed_differs_gives_different_samples(name: str, fitted: dict[str, Any],
                                                          test_batch: ForecastBatch) -> None:
    a = fitted[name].sample(test_batch, 8, seed=7).values
    assert not np.array_equal(a, fitted[name].sample(test_batch, 8, seed=8).values)


@pytest.mark.parametrize("name", FORECASTERS)
def test_sample_when_batch_has_metadata_passes_horizon_part_through(
        name: str, fitted: dict[str, Any], test_batch: ForecastBatch) -> None:
    samples = fitted[name].sample(test_batch, 4, seed=0)
    assert np.array_equal(samples.window_ids, test_batch.window_ids[:, C:])
    assert np.array_equal(samples.timestamps, test_batch.timestamps[:, C:])
    assert np.array_equal(samples.instruments, test_batch.instruments)
    assert np.array_equal(samples.regimes, test_batch.regimes)


@pytest.mark.parametrize("name", FORECASTERS)
def test_sample_when_not_fitted_raises(name: str, make: Make, test_batch: ForecastBatch) -> None:
    with pytest.raises(TapecastError, match="fitted before sampling"):
        make(name).sample(test_batch, 4)


@pytest.mark.parametrize("name", FORECASTERS)
def test_sample_when_channels_differ_from_fit_raises(name: str, fitted: dict[str, Any],
                                                     test_batch: ForecastBatch) -> None:
    renamed = dataclasses.replace(test_batch, channels=tuple(reversed(test_batch.channels)))
    with pytest.raises(TapecastError, match="fitted on channels"):
        fitted[name].sample(renamed, 4)


@pytest.mark.parametrize("name", FORECASTERS)
def test_sample_when_context_has_nan_gives_finite_samples(name: str, fitted: dict[str, Any],
                                                          test_batch: ForecastBatch) -> None:
    samples = fitted[name].sample(_with_gaps(test_batch), 8, seed=0)
    assert np.isfinite(samples.values).all()


@pytest.mark.parametrize("name", FORECASTERS)
def test_make_batch_when_given_the_raw_context_samples_as_the_full_batch(
        name: str, fitted: dict[str, Any], test_batch: ForecastBatch) -> None:
    """What a service holds (values and counts of the last C windows) forecasts like the
    dataset's batch of the same origins."""
    counts = {k: v[:, :C] for k, v in test_batch.extras.items()}  # (B, C): context only
    built = fitted[name].make_batch(test_batch.context, extras=counts,
                                    instruments=test_batch.instruments)
    assert isinstance(built, ForecastBatch)
    assert (built.size, built.context_length, built.horizon) == (test_batch.size, C, H)
    assert np.isnan(built.target).all()
    from_context = fitted[name].sample(built, 4, seed=3).values
    np.testing.assert_array_equal(from_context, fitted[name].sample(test_batch, 4, seed=3).values)


@pytest.mark.parametrize("name", FORECASTERS)
def test_make_batch_when_context_has_other_channel_count_raises(
        name: str, fitted: dict[str, Any], test_batch: ForecastBatch) -> None:
    counts = {k: v[:, :C] for k, v in test_batch.extras.items()}
    with pytest.raises(TapecastError, match="context must have shape"):
        fitted[name].make_batch(test_batch.context[:, :3], extras=counts)


@pytest.mark.parametrize("name", FORECASTERS)
def test_fit_when_given_a_source_of_origins_matches_fit_on_the_batch(
        name: str, make: Make, train: ForecastBatch, test_batch: ForecastBatch) -> None:
    source: OriginSource = _Origins(train)
    assert isinstance(source, OriginSource)
    on_source = make(name).fit(source, seed=0).sample(test_batch, 4, seed=5).values
    on_batch = make(name).fit(train, seed=0).sample(test_batch, 4, seed=5).values
    np.testing.assert_array_equal(on_source, on_batch)


@pytest.mark.parametrize("name", FORECASTERS)
def test_walk_forward_when_given_the_forecaster_runs_every_arm(
        name: str, make: Make, train: ForecastBatch, test_batch: ForecastBatch) -> None:
    result = walk_forward([("fold", train, test_batch)], lambda: make(name),
                          make_random=lambda: get_baseline("climatology"),
                          make_naive=lambda: get_baseline("naive"), seeds=(0,), n_samples=4)
    assert result.forecaster == name
    assert {r.arm for r in result.runs} == {"REAL", "SHUFFLE", "RANDOM", "NAIVE"}
    assert all(np.isfinite(r.mean_crps) for r in result.runs)


@pytest.mark.parametrize("name", FORECASTERS)
def test_forecaster_when_inspected_has_the_protocols_signatures(name: str, make: Make) -> None:
    """fit(train, val=None, *, seed, run_dir), sample(batch, n_samples, *, seed, ...),
    make_batch(context, *, horizon, timestamps, instruments, extras): keyword-only as the
    Protocol has them, so a caller of the contract never passes them by position."""
    forecaster = make(name)
    fit = inspect.signature(forecaster.fit).parameters
    assert list(fit)[:2] == ["train", "val"] and fit["val"].default is None
    for keyword in ("seed", "run_dir"):
        assert fit[keyword].kind is inspect.Parameter.KEYWORD_ONLY
    assert fit["run_dir"].default is None
    sample = inspect.signature(forecaster.sample).parameters
    assert list(sample)[:2] == ["batch", "n_samples"]
    assert sample["seed"].kind is inspect.Parameter.KEYWORD_ONLY
    made = inspect.signature(forecaster.make_batch).parameters
    for keyword in ("horizon", "timestamps", "instruments", "extras"):
        assert made[keyword].kind is inspect.Parameter.KEYWORD_ONLY
        assert made[keyword].default is None


@pytest.mark.parametrize("name", FORECASTERS)
def test_fit_when_called_twice_equals_one_fit(name: str, make: Make, train: ForecastBatch,
                                              test_batch: ForecastBatch) -> None:
    """A second fit starts afresh: nothing of the first (weights, state) carries over."""
    other = dataclasses.replace(train, context=train.context[::-1].copy(),
                                target=train.target[::-1].copy())
    twice = make(name).fit(other, seed=1).fit(train, seed=0)
    once = make(name).fit(train, seed=0)
    np.testing.assert_array_equal(twice.sample(test_batch, 4, seed=2).values,
                                  once.sample(test_batch, 4, seed=2).values)


@pytest.mark.parametrize("name", FORECASTERS)
@pytest.mark.parametrize("bad", [True, 2.5, "3", 0])
def test_sample_when_n_samples_is_not_a_positive_integer_raises(
        name: str, bad: object, fitted: dict[str, Any], test_batch: ForecastBatch) -> None:
    with pytest.raises(TapecastError, match="n_samples must be a positive integer"):
        fitted[name].sample(test_batch, bad)


@pytest.mark.parametrize("name", FORECASTERS)
def test_forecaster_when_batch_targets_other_channels_raises_naming_them(
        name: str, make: Make, fitted: dict[str, Any], train: ForecastBatch,
        test_batch: ForecastBatch) -> None:
    """The order-flow forecasters and baselines model the context's own channels; a batch that
    forecasts another channel (the price family's) is refused in one line, not mis-read."""
    other = dataclasses.replace(test_batch, target=test_batch.target[:, :1],
                                target_channels=("r_30s",))
    with pytest.raises(TapecastError, match=r"forecasts the context's own channels"):
        fitted[name].sample(other, 4)
    other_train = dataclasses.replace(train, target=train.target[:, :1],
                                      target_channels=("r_30s",))
    with pytest.raises(TapecastError, match=r"r_30s"):
        make(name).fit(other_train, seed=0)

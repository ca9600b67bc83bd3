"""PriceDiffusion: the conditional diffusion forecaster of the 30-s price distribution."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.features.price import PriceGridConfig
from tapecast.features.price_dataset import PriceDataset
from tapecast.models.price_diffusion import (
    PriceDiffusion,
    PriceDiffusionConfig,
    price_diffusion_config,
)
from tapecast.models.price_diffusion_io import PriceNormalizer
from tests.features.test_price import synthetic_grid
from tests.models.batches import batch_from_series, synthetic_windows


def tiny(steps: int = 20) -> PriceDiffusionConfig:
    return price_diffusion_config("tiny").with_train(max_steps=steps, eval_every=steps)


@pytest.fixture(scope="module")
def built() -> tuple[object, object, PriceGridConfig]:
    return synthetic_grid()


@pytest.fixture(scope="module")
def data(built: tuple[object, object, PriceGridConfig]) -> PriceDataset:
    return PriceDataset(*built)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def train(data: PriceDataset) -> ForecastBatch:
    return data.batch(np.arange(0, len(data), 7))


@pytest.fixture(scope="module")
def test_batch(data: PriceDataset) -> ForecastBatch:
    return data.batch(np.arange(3, len(data), 997))


@pytest.fixture(scope="module")
def fitted(train: ForecastBatch) -> PriceDiffusion:
    return PriceDiffusion(tiny()).fit(train, seed=0, progress=False)


def test_sample_when_fitted_gives_returns_on_the_price_lattice(
        fitted: PriceDiffusion, test_batch: ForecastBatch) -> None:
    out = fitted.sample(test_batch, 64, seed=1)
    assert out.values.shape == (test_batch.size, 64, 1, 1) and out.values.dtype == np.float32
    assert out.channels == ("log_return",)
    price = test_batch.extra("origin_price")[:, None]
    k = np.expm1(out.values[:, :, 0, 0].astype(np.float64)) * price / \
        test_batch.extra("lattice_step")[:, None]
    np.testing.assert_allclose(k, np.rint(k), atol=1e-3)  # whole half-ticks (float32 values)
    assert (out.values == 0).mean() > 0.02  # an atom at an unchanged price
    continuous = fitted.sample(test_batch, 64, seed=1, lattice=False).values[:, :, 0, 0]
    moved = continuous != 0  # the atom at zero stays; the moved part is off the lattice
    k_moved = (np.expm1(continuous.astype(np.float64)) * price /
               test_batch.extra("lattice_step")[:, None])[moved]
    assert moved.mean() > 0.5 and np.abs(k_moved - np.rint(k_moved)).mean() > 0.1
    np.testing.assert_array_equal(out.window_ids, test_batch.window_ids[:, -1:])


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm-solver++"])
def test_sample_when_sampler_named_is_seeded_and_finite(
        fitted: PriceDiffusion, test_batch: ForecastBatch, sampler: str) -> None:
    steps = 50 if sampler == "ddpm" else None
    a = fitted.sample(test_batch, 16, sampler=sampler, steps=steps, seed=4)
    b = fitted.sample(test_batch, 16, sampler=sampler, steps=steps, seed=4)
    c = fitted.sample(test_batch, 16, sampler=sampler, steps=steps, seed=5)
    np.testing.assert_array_equal(a.values, b.values)
    assert np.isfinite(a.values).all() and not np.array_equal(a.values, c.values)
    with pytest.raises(TapecastError, match="unknown price sampler 'sde'"):
        fitted.sample(test_batch, 4, sampler="sde")


def test_zero_probability_when_trained_tracks_the_unchanged_share(
        fitted: PriceDiffusion, train: ForecastBatch, test_batch: ForecastBatch) -> None:
    p0 = fitted.zero_probability(test_batch)
    assert p0.shape == (test_batch.size,) and np.all((p0 > 0) & (p0 < 1))
    zero_share = (fitted.sample(test_batch, 256, seed=2).values == 0).mean(axis=(1, 2, 3))
    assert abs(zero_share.mean() - p0.mean()) < 0.05  # the atom is p0 (plus nothing else)
    assert abs(p0.mean() - (train.target == 0).mean()) < 0.1


def test_fit_when_called_twice_equals_one_fit(train: ForecastBatch,
                                              test_batch: ForecastBatch) -> None:
    model = PriceDiffusion(tiny(5))
    first = model.fit(train, seed=2, progress=False).sample(test_batch, 8, seed=0).values
    second = model.fit(train, seed=2, progress=False).sample(test_batch, 8, seed=0).values
    np.testing.assert_array_equal(first, second)


def test_save_when_loaded_back_samples_identically(fitted: PriceDiffusion, tmp_path: Path,
                                                   test_batch: ForecastBatch) -> None:
    folder = fitted.save(tmp_path / "m")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors",
                                                  "normalization.json"}
    loaded = PriceDiffusion.load(folder)
    np.testing.assert_array_equal(loaded.sample(test_batch, 8, seed=3).values,
                                  fitted.sample(test_batch, 8, seed=3).values)
    assert loaded.tick_size == pytest.approx(0.01) and loaded.config == fitted.config


def test_load_when_files_are_bad_names_the_file(fitted: PriceDiffusion, tmp_path: Path) -> None:
    folder = fitted.save(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(TapecastError, match=r"model\.safetensors: no weights"):
        PriceDiffusion.load(folder)
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**meta, "kind": "tapecast.jl-csdi"}))
    with pytest.raises(TapecastError, match="not a price-diffusion model"):
        PriceDiffusion.load(folder)
    (folder / "normalization.json").write_text("{")
    with pytest.raises(TapecastError, match=r"normalization\.json: not readable JSON"):
        PriceNormalizer.load(folder / "normalization.json")


def test_make_batch_when_given_raw_context_samples_as_the_dataset_batch(
        fitted: PriceDiffusion, test_batch: ForecastBatch) -> None:
    made = fitted.make_batch(test_batch.context,
                             extras={"origin_price": test_batch.extra("origin_price"),
                                     "price_source": test_batch.extra("price_source")})
    np.testing.assert_array_equal(fitted.sample(made, 8, seed=0).values,
                                  fitted.sample(test_batch, 8, seed=0).values)
    one = fitted.make_batch(test_batch.context[0],
                            extras={"origin_price": float(test_batch.extra("origin_price")[0]),
                                    "price_source": str(test_batch.extra("price_source")[0])})
    np.testing.assert_array_equal(fitted.sample(one, 8, seed=0).values,
                                  fitted.sample(test_batch.select(np.arange(1)), 8, seed=0).values)
    with pytest.raises(TapecastError, match="origin's price"):
        fitted.make_batch(test_batch.context)
    with pytest.raises(TapecastError, match="reads 120 context seconds"):
        fitted.make_batch(test_batch.context[:, :, :60],
                          extras={"origin_price": test_batch.extra("origin_price"),
                                  "lattice_step": test_batch.extra("lattice_step")})


def test_fit_when_given_order_flow_origins_is_refused() -> None:
    with pytest.raises(TapecastError, match="forecasts a return from price features"):
        orderflow = batch_from_series(synthetic_windows(np.random.default_rng(0), 64), 8, 2)
        PriceDiffusion(tiny()).fit(orderflow, progress=False)


def test_sample_when_not_fitted_or_channels_differ_raises(fitted: PriceDiffusion,
                                                          test_batch: ForecastBatch) -> None:
    with pytest.raises(TapecastError, match="fitted or loaded first"):
        PriceDiffusion(tiny()).sample(test_batch, 4)
    other = dataclasses.replace(test_batch, channels=tuple(f"c{i}" for i in
                                                           range(len(test_batch.channels))))
    with pytest.raises(TapecastError, match="fitted on channels"):
        fitted.sample(other, 4)


def test_fit_when_target_is_the_path_forecasts_30_steps(
        built: tuple[object, object, PriceGridConfig]) -> None:
    path = PriceDataset(*built, target="path")  # type: ignore[arg-type]
    model = PriceDiffusion(tiny(5)).fit(path.batch(np.arange(0, len(path), 50)), progress=False)
    out = model.sample(path.batch(np.arange(3)), 4)
    assert out.values.shape == (3, 4, 1, 30) and model.config.net.target_dim == 30


def test_fit_when_context_carries_the_volatility_learns_it() -> None:
    """Heteroscedastic toy: the target's scale is exp(context feature); a trained model's
    continuous samples must be wider where the feature is high."""
    rng = np.random.default_rng(0)
    n, k, c = 4096, 3, 60
    context = rng.normal(size=(n, k, c))
    log_sigma = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    context[:, 0, :] = log_sigma[:, None]
    target = 1e-3 * np.exp(log_sigma) * rng.normal(size=n)
    batch = ForecastBatch.from_context(("vol", "a", "b"), context, 1,
                                       extras={"origin_price": np.full(n, 100.0),
                                               "lattice_step": np.full(n, 0.005)},
                                       target_channels=("log_return",))
    batch = dataclasses.replace(batch, target=target[:, None, None])
    config = price_diffusion_config("tiny").with_train(max_steps=400, batch_size=128,
                                                       eval_every=400)
    model = PriceDiffusion(config).fit(batch, progress=False)
    probe = batch.select(np.arange(200))
    out = model.sample(probe, 128, lattice=False).values[:, :, 0, 0]
    wide, narrow = out[log_sigma[:200] > 0].std(), out[log_sigma[:200] < 0].std()
    assert wide / narrow > 3.0  # true ratio e^2 = 7.4


def test_forecast_batch_when_given_price_origins_scores_the_return(
        fitted: PriceDiffusion, test_batch: ForecastBatch) -> None:
    from tapecast.evaluate.metrics import evaluate_forecast
    from tapecast.workflows.forecast import forecast_batch

    forecast = forecast_batch(fitted, test_batch, 32, seed=0)
    assert forecast is not None and forecast.context is None  # context holds other channels
    np.testing.assert_array_equal(forecast.realized, test_batch.target)
    scores = evaluate_forecast(forecast)
    assert scores["crps"]["log_return"]["mean"] > 0 and scores["n_windows"] == test_batch.size


def test_fit_when_run_folder_holds_another_run_refuses_to_resume(
        train: ForecastBatch, tmp_path: Path) -> None:
    run = tmp_path / "run"
    PriceDiffusion(tiny(4)).fit(train, run_dir=run, progress=False)
    with pytest.raises(TapecastError, match=r"another model or data \(different "
                                            r"shuffle_pairs_seed\)"):
        PriceDiffusion(tiny(4)).fit(train, run_dir=run, shuffle_pairs_seed=1, progress=False)
    with pytest.raises(TapecastError, match=r"training data \(normalization\.json\)"):
        PriceDiffusion(tiny(4)).fit(train.select(np.arange(0, train.size, 2)), run_dir=run,
                                    progress=False)
    again = PriceDiffusion(tiny(4)).fit(train, run_dir=run, progress=False)  # the same run
    assert again.training["steps"] == 4
    PriceDiffusion(tiny(4)).fit(train, run_dir=run, shuffle_pairs_seed=1, resume=False,
                                progress=False)  # afresh


@pytest.mark.parametrize(("field", "value", "message"), [
    ("target_scale", [-1.0], r"field 'target_scale' must be > 0"),
    ("mean", ["x"], r"field 'mean' is malformed"),
    ("channels", 3, r"field 'channels' is malformed \(expected a list of strings\)"),
    ("std", [1.0], r"field 'std' has 1 entries, one per channel \(10\) expected"),
    ("clip", None, r"field 'clip' is malformed"),
])
def test_normalizer_load_when_a_field_is_bad_names_it(fitted: PriceDiffusion, tmp_path: Path,
                                                      field: str, value: object,
                                                      message: str) -> None:
    folder = fitted.save(tmp_path / "m")
    path = folder / "normalization.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, field: value}))
    with pytest.raises(TapecastError, match=message):
        PriceNormalizer.load(path)
    del data[field]
    path.write_text(json.dumps(data))
    with pytest.raises(TapecastError, match=f"field '{field}' is missing"):
        PriceNormalizer.load(path)

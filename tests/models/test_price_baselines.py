"""Price baselines (issue 13): the properties of each, and the forecaster contract on price batches.

The contract suite of ``test_forecaster_contract.py`` is built on order-flow batches (8 channels
forecasting themselves), so the same checks run here on PriceDataset batches.
"""

from __future__ import annotations

import dataclasses
import json
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pytest
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.core.forecaster import Forecaster
from tapecast.features.price import PriceGridConfig
from tapecast.features.price_dataset import PriceDataset
from tapecast.models import baseline_names
from tapecast.models.price_baselines import (
    PriceGarchT,
    PriceGarchTConfig,
    PriceQuantReg,
    PriceQuantRegConfig,
    PriceTraining,
    garch_t,
    get_price_baseline,
    price_baseline_names,
)
from tapecast.models.price_baselines.garch_t import fit_constant_t, garch_filter
from tapecast.models.price_baselines.quantreg import inverse_cdf
from tests.features.test_price import synthetic_grid
from tests.models.batches import batch_from_series, synthetic_windows

NAMES = ("price-bootstrap", "price-climatology", "price-garch-t", "price-histvol",
         "price-quantreg")
PATH_NAMES = tuple(n for n in NAMES if n != "price-quantreg")
CASES = [(n, "return") for n in NAMES] + [(n, "path") for n in PATH_NAMES]
T0 = np.datetime64("2014-06-02T13:30:00", "ns")


# ----------------------------------------------------------------------------------------------
# fixtures: a PriceDataset over synthetic bars, and batches built from a known return series


@pytest.fixture(scope="module")
def built() -> tuple[Any, Any, PriceGridConfig]:
    return synthetic_grid()


@pytest.fixture(scope="module")
def datasets(built: tuple[Any, Any, PriceGridConfig]) -> dict[str, PriceDataset]:
    grid, windows, config = built
    return {"return": PriceDataset(grid, windows, config, target="return"),
            "path": PriceDataset(grid, windows, config, target="path")}


@pytest.fixture(scope="module")
def train(datasets: dict[str, PriceDataset]) -> dict[str, ForecastBatch]:
    return {kind: data.batch(np.arange(6000)) for kind, data in datasets.items()}


@pytest.fixture(scope="module")
def test_batch(datasets: dict[str, PriceDataset]) -> dict[str, ForecastBatch]:
    rows = np.arange(len(datasets["return"]) - 300, len(datasets["return"]), 3)
    return {kind: data.batch(rows) for kind, data in datasets.items()}


@pytest.fixture(scope="module")
def fitted(train: dict[str, ForecastBatch]) -> dict[tuple[str, str], Any]:
    """Each baseline fitted once per target kind (seed 0)."""
    return {(name, kind): get_price_baseline(name).fit(train[kind], seed=0)
            for kind in ("return", "path") for name in (NAMES if kind == "return" else PATH_NAMES)}


def returns_batch(returns: NDArray[np.float64], context: int, *, stride: int = 1,
                  path: bool = False, features: NDArray[np.float64] | None = None,
                  instrument: str = "X", first_id: int = 0, horizon_s: int = 30
                  ) -> ForecastBatch:
    """Price-like origins over one series of 1-s returns (N,): context ``log_ret`` (and
    ``features`` (N, 3) as ``rv_30s, rv_120s, time_of_day``), target the 30-s return or path."""
    n = returns.size
    origins = np.arange(context - 1, n - horizon_s, stride)  # (B,) last context row
    ctx_idx = origins[:, None] + np.arange(-context + 1, 1)  # (B, C)
    ahead = origins[:, None] + np.arange(1, horizon_s + 1)  # (B, H_s)
    cum = np.cumsum(returns[ahead], axis=1)  # (B, H_s)
    target, pos = (cum, ahead) if path else (cum[:, -1:], ahead[:, -1:])
    channels: tuple[str, ...] = ("log_ret",)
    ctx = returns[ctx_idx][:, None, :]  # (B, 1, C)
    if features is not None:
        channels = ("log_ret", "rv_30s", "rv_120s", "time_of_day")
        ctx = np.concatenate([ctx, features[ctx_idx].transpose(0, 2, 1)], axis=1)  # (B, 4, C)
    ids = np.concatenate([ctx_idx, pos], axis=1).astype(np.int64) + first_id
    b = origins.size
    return ForecastBatch(channels, ctx, target[:, None, :], ids,
                         T0 + ids * np.timedelta64(1, "s"), np.full(b, instrument),
                         np.full(b, "", dtype=str),
                         {"price_source": np.full(b, "mid"), "origin_price": np.full(b, 50.0),
                          "lattice_step": np.full(b, 0.005)},
                         target_channels=("log_return",))


def simulate_garch(n: int, omega: float, alpha: float, beta: float, nu: float, seed: int
                   ) -> NDArray[np.float64]:
    """A GARCH(1,1)-t series of n scaled returns (burn-in dropped)."""
    rng = np.random.default_rng(seed)
    eta = rng.standard_t(nu, n + 500) * np.sqrt((nu - 2) / nu)
    eps, var = np.empty(n + 500), omega / (1 - alpha - beta)
    for t in range(n + 500):
        eps[t] = np.sqrt(var) * eta[t]
        var = omega + alpha * eps[t] ** 2 + beta * var
    return eps[500:]


# ----------------------------------------------------------------------------------------------
# the registry


def test_price_baseline_names_when_listed_are_the_five_and_leave_order_flow_names_alone() -> None:
    assert price_baseline_names() == NAMES
    assert not any(name.startswith("price-") for name in baseline_names())


def test_get_price_baseline_when_name_or_option_unknown_raises_one_line() -> None:
    with pytest.raises(TapecastError, match="unknown price baseline 'price-x'"):
        get_price_baseline("price-x")
    with pytest.raises(TapecastError, match="has no option"):
        get_price_baseline("price-histvol", sigma=1.0)
    with pytest.raises(TapecastError, match="block_length"):
        get_price_baseline("price-bootstrap", block_length=0)
    model = get_price_baseline("price-quantreg", rv_channels="rv_10s, rv_60s", lattice=False)
    assert model.config.rv_channels == ("rv_10s", "rv_60s") and model.config.lattice is False


# ----------------------------------------------------------------------------------------------
# the contract, on PriceDataset batches


@pytest.mark.parametrize("name", NAMES)
def test_price_baseline_when_built_satisfies_the_protocol_and_records_itself(name: str) -> None:
    model = get_price_baseline(name)
    assert isinstance(model, Forecaster) and model.name == name
    record = json.loads(json.dumps(model.to_dict()))
    assert record["name"] == name and record["config"]["lattice"] is True


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_sample_when_fitted_gives_float32_returns_with_the_horizon_metadata(
        name: str, kind: str, fitted: dict[tuple[str, str], Any],
        test_batch: dict[str, ForecastBatch]) -> None:
    batch = test_batch[kind]
    samples = fitted[name, kind].sample(batch, 16, seed=0)
    h = 1 if kind == "return" else 30
    assert samples.values.shape == (batch.size, 16, 1, h)
    assert samples.values.dtype == np.float32 and np.isfinite(samples.values).all()
    assert samples.channels == ("log_return",)
    c = batch.context_length
    assert np.array_equal(samples.window_ids, batch.window_ids[:, c:])
    assert np.array_equal(samples.timestamps, batch.timestamps[:, c:])
    assert np.array_equal(samples.instruments, batch.instruments)


@pytest.mark.parametrize("name", NAMES)
def test_sample_when_seed_repeats_is_identical_and_differs_across_seeds(
        name: str, fitted: dict[tuple[str, str], Any],
        test_batch: dict[str, ForecastBatch]) -> None:
    model, batch = fitted[name, "return"], test_batch["return"]
    a = model.sample(batch, 8, seed=7).values
    assert np.array_equal(a, model.sample(batch, 8, seed=7).values)
    assert not np.array_equal(a, model.sample(batch, 8, seed=8).values)


@pytest.mark.parametrize("name", NAMES)
def test_fit_when_called_twice_equals_fit_once(name: str, train: dict[str, ForecastBatch],
                                               test_batch: dict[str, ForecastBatch]) -> None:
    other = train["return"].select(np.arange(3000, 6000))
    once = get_price_baseline(name).fit(train["return"], seed=0)
    twice = get_price_baseline(name).fit(other, seed=0)
    assert twice.fit(train["return"], None, seed=0, run_dir=None) is twice
    batch = test_batch["return"]
    assert np.array_equal(once.sample(batch, 8, seed=1).values,
                          twice.sample(batch, 8, seed=1).values)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_make_batch_when_given_the_raw_context_samples_as_the_dataset_batch(
        name: str, kind: str, fitted: dict[tuple[str, str], Any],
        test_batch: dict[str, ForecastBatch]) -> None:
    model, batch = fitted[name, kind], test_batch[kind]
    made = model.make_batch(batch.context, instruments=batch.instruments,
                            extras={k: batch.extra(k) for k in ("origin_price", "lattice_step")})
    c = batch.context_length
    assert np.array_equal(made.window_ids[:, c:] - made.window_ids[:, c - 1:c],
                          batch.window_ids[:, c:] - batch.window_ids[:, c - 1:c])
    assert np.array_equal(model.sample(made, 8, seed=3).values,
                          model.sample(batch, 8, seed=3).values)
    one = model.make_batch(batch.context[0], instruments=batch.instruments[0],
                           extras={"origin_price": batch.extra("origin_price")[0],
                                   "lattice_step": batch.extra("lattice_step")[0]})
    assert model.sample(one, 4, seed=0).values.shape[:2] == (1, 4)


@pytest.mark.parametrize("name", NAMES)
def test_price_baseline_when_given_an_order_flow_batch_refuses_in_one_line(
        name: str, fitted: dict[tuple[str, str], Any]) -> None:
    order_flow = batch_from_series(synthetic_windows(np.random.default_rng(0), 200), 100, 10)
    for call in (lambda: get_price_baseline(name).fit(order_flow),
                 lambda: fitted[name, "return"].sample(order_flow, 4)):
        with pytest.raises(TapecastError, match="forecasts the price family's 'log_return'") \
                as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_sample_when_not_fitted_or_batch_changed_raises(
        name: str, fitted: dict[tuple[str, str], Any],
        test_batch: dict[str, ForecastBatch]) -> None:
    batch = test_batch["return"]
    with pytest.raises(TapecastError, match="fitted before sampling"):
        get_price_baseline(name).sample(batch, 4)
    renamed = dataclasses.replace(batch, channels=tuple(reversed(batch.channels)))
    with pytest.raises(TapecastError, match="fitted on channels"):
        fitted[name, "return"].sample(renamed, 4)
    with pytest.raises(TapecastError, match="n_samples"):
        fitted[name, "return"].sample(batch, 0)


@pytest.mark.parametrize("name", ["price-climatology", "price-quantreg"])
def test_target_learning_baselines_when_horizon_differs_from_fit_refuse(
        name: str, fitted: dict[tuple[str, str], Any],
        test_batch: dict[str, ForecastBatch]) -> None:
    with pytest.raises(TapecastError, match="fitted on horizon steps"):
        fitted[name, "return"].sample(test_batch["path"], 4)


def test_quantreg_when_given_the_path_target_refuses(train: dict[str, ForecastBatch]) -> None:
    with pytest.raises(TapecastError, match="30-s return only"):
        get_price_baseline("price-quantreg").fit(train["path"])


@pytest.mark.parametrize("name", NAMES)
def test_lattice_when_on_puts_every_sample_on_the_lattice_with_exact_zeros(
        name: str, fitted: dict[tuple[str, str], Any],
        test_batch: dict[str, ForecastBatch]) -> None:
    batch = test_batch["return"]
    values = fitted[name, "return"].sample(batch, 64, seed=0).values[:, :, 0, 0]
    price = batch.extra("origin_price")[:, None]
    k = np.expm1(values.astype(np.float64)) * price / batch.extra("lattice_step")[:, None]
    np.testing.assert_allclose(k, np.rint(k), atol=1e-3)  # float32 samples
    assert (values == 0).mean() > 0.02


def test_lattice_when_extras_are_missing_refuses_in_one_line(
        fitted: dict[tuple[str, str], Any], test_batch: dict[str, ForecastBatch]) -> None:
    model = fitted["price-histvol", "return"]
    with pytest.raises(TapecastError, match=r"needs extras \['origin_price', 'lattice_step'\]"):
        model.sample(model.make_batch(test_batch["return"].context), 4)


def test_lattice_when_off_gives_continuous_samples(train: dict[str, ForecastBatch],
                                                   test_batch: dict[str, ForecastBatch]) -> None:
    model = get_price_baseline("price-histvol", lattice=False).fit(train["return"])
    values = model.sample(test_batch["return"], 64, seed=0).values
    assert (values == 0).mean() < 0.01


# ----------------------------------------------------------------------------------------------
# the training returns


def test_price_training_when_origins_overlap_takes_each_grid_row_once_in_runs() -> None:
    r = np.random.default_rng(0).normal(size=400)
    first = returns_batch(r[:200], 20, stride=1)
    second = returns_batch(r[200:], 20, stride=7, first_id=1000)  # a later session
    data = PriceTraining.from_batch(ForecastBatch.concat([second, first]))
    expected = np.concatenate([r[:200 - 30], r[200:200 + 20 + 7 * ((170 - 20) // 7)]])
    np.testing.assert_array_equal(data.returns, expected)
    assert data.run_starts.tolist() == [0, 170]
    np.testing.assert_array_equal(data.steps, [30])


# ----------------------------------------------------------------------------------------------
# per-baseline properties


def test_climatology_when_sampled_reproduces_the_training_quantiles_per_instrument(
        train: dict[str, ForecastBatch], test_batch: dict[str, ForecastBatch]) -> None:
    base = train["return"]
    wide = dataclasses.replace(base.select(np.arange(3000)), target=base.target[:3000] * 3,
                               instruments=np.full(3000, "Y"))
    model = get_price_baseline("price-climatology", lattice=False).fit(
        ForecastBatch.concat([base.select(np.arange(3000, 6000)), wide]))
    batch = test_batch["return"].select(np.arange(3))
    batch = dataclasses.replace(batch, instruments=np.array(["X", "Y", "Z"]))
    values = model.sample(batch, 20_000, seed=0).values[:, :, 0, 0].astype(np.float64)
    levels = [0.05, 0.25, 0.5, 0.75, 0.95]
    own = {"X": base.target[3000:6000, 0, 0], "Y": wide.target[:, 0, 0]}
    own["Z"] = np.concatenate([own["X"], own["Y"]])  # unseen: pooled
    for i, name in enumerate("XYZ"):
        assert np.isin(values[i], own[name].astype(np.float32)).all()
        np.testing.assert_allclose(np.quantile(values[i], levels), np.quantile(own[name], levels),
                                   atol=0.1 * own[name].std())


def test_climatology_when_path_target_draws_whole_training_paths(
        fitted: dict[tuple[str, str], Any], train: dict[str, ForecastBatch],
        test_batch: dict[str, ForecastBatch]) -> None:
    model = get_price_baseline("price-climatology", lattice=False).fit(train["path"])
    values = model.sample(test_batch["path"], 50, seed=0).values[:, :, 0, :].reshape(-1, 30)
    paths = {tuple(p) for p in train["path"].target[:, 0, :].astype(np.float32).tolist()}
    assert all(tuple(v) in paths for v in values.tolist())


def test_histvol_when_context_returns_are_known_matches_sigma_sqrt_h(
        train: dict[str, ForecastBatch]) -> None:
    c = train["return"].context_length
    context = np.zeros((len(train["return"].channels), c))  # (K, C) one origin
    context[0] = np.where(np.arange(c) % 2 == 0, 2e-4, -2e-4)  # log_ret, std known
    sigma = np.std(context[0], ddof=1)
    for kind, steps in (("return", np.array([30])), ("path", np.arange(1, 31))):
        model = get_price_baseline("price-histvol", lattice=False).fit(train[kind])
        batch = model.make_batch(context, extras={"origin_price": 50.0, "lattice_step": 0.005})
        values = model.sample(batch, 40_000, seed=0).values[0, :, 0, :].astype(np.float64)
        np.testing.assert_allclose(values.std(axis=0), sigma * np.sqrt(steps), rtol=0.03)
        np.testing.assert_allclose(values.mean(axis=0), 0.0, atol=0.03 * sigma * np.sqrt(30))
        increments = np.diff(values, axis=1)  # a random walk: independent increments
        if increments.shape[1]:
            assert abs(np.corrcoef(increments[:, 0], increments[:, 1])[0, 1]) < 0.03


def test_histvol_when_context_has_too_few_returns_takes_the_training_sigma(
        train: dict[str, ForecastBatch]) -> None:
    model = get_price_baseline("price-histvol", lattice=False).fit(train["return"])
    context = np.full((len(train["return"].channels), train["return"].context_length), np.nan)
    batch = model.make_batch(context, instruments="X")
    values = model.sample(batch, 20_000, seed=0).values[0, :, 0, 0]
    sigma = PriceTraining.from_batch(train["return"]).returns.std(ddof=1)
    np.testing.assert_allclose(values.std(), sigma * np.sqrt(30), rtol=0.03)


def test_bootstrap_when_sampled_lays_whole_context_blocks_end_to_end() -> None:
    c, length = 60, 4
    # return t is t·1e-6: a block is a run of +1e-6 steps
    marker = np.arange(1, 1001, dtype=np.float64) * 1e-6
    train = returns_batch(marker[:500], c, path=True)
    model = get_price_baseline("price-bootstrap", lattice=False, block_length=length).fit(train)
    batch = returns_batch(marker[500:], c, path=True).select(np.arange(2))
    values = model.sample(batch, 200, seed=0).values[:, :, 0, :].astype(np.float64)
    increments = np.diff(values, axis=2, prepend=0.0)  # (B, S, 30) the drawn 1-s returns
    ticks = np.rint(increments / 1e-6).astype(np.int64)
    contexts = np.rint(batch.context[:, 0, :] / 1e-6).astype(np.int64)  # (B, C)
    for i in range(2):
        assert np.isin(ticks[i], contexts[i]).all()
    blocks = ticks[:, :, :28].reshape(2, 200, 7, length)  # 28 s of whole blocks
    assert (np.diff(blocks, axis=3) == 1).all()  # consecutive within a block
    assert (np.diff(ticks, axis=2) != 1).any()  # and blocks start anywhere


def test_bootstrap_when_context_has_no_complete_block_draws_training_returns(
        train: dict[str, ForecastBatch]) -> None:
    model = get_price_baseline("price-bootstrap", lattice=False).fit(train["path"])
    context = np.full((len(train["path"].channels), train["path"].context_length), np.nan)
    context[0, ::3] = 1.0  # every block has a NaN
    values = model.sample(model.make_batch(context, instruments="X"), 50, seed=0).values
    pool = PriceTraining.from_batch(train["path"]).returns
    increments = np.diff(values[0, :, 0, :].astype(np.float64), axis=1, prepend=0.0)
    assert np.isin(np.round(increments, 9), np.round(pool, 9)).mean() > 0.99


# ----------------------------------------------------------------------------------------------
# GARCH-t


def test_garch_t_when_fitted_on_a_simulated_series_recovers_its_parameters() -> None:
    omega, alpha, beta, nu = 0.05, 0.08, 0.88, 6.0  # scaled units (1e4 · return)
    eps = simulate_garch(30_000, omega, alpha, beta, nu, seed=5)
    train = returns_batch(eps / 1e4, 120, stride=60)  # overlapping contexts, deduplicated
    model = PriceGarchT(PriceGarchTConfig(lattice=False)).fit(train)
    p = model.params["X"]
    assert abs(p.alpha - alpha) < 0.02 and abs(p.beta - beta) < 0.03
    assert abs(p.omega - omega) < 0.5 * omega and abs(p.nu - nu) < 1.5
    assert model.fallbacks == []


def test_garch_t_when_the_garch_fit_fails_falls_back_to_constant_variance_t(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    nu = 5.0
    eps = 2.0 * rng.standard_t(nu, 20_000) / np.sqrt(nu / (nu - 2))  # variance 4, no clustering
    p = fit_constant_t(eps)
    assert p is not None and p.alpha == p.beta == 0.0
    assert abs(p.omega - 4.0) < 0.2 and abs(p.nu - nu) < 1.0
    monkeypatch.setattr(garch_t, "fit_garch_t", lambda eps: None)
    train = returns_batch(eps / 1e4, 120, stride=60)
    model = PriceGarchT(PriceGarchTConfig(lattice=False)).fit(train)
    assert model.constant_variance and model.params["X"].alpha == 0.0
    draws = model.sample(train.select(np.arange(5)), 4000, seed=0).values[:, :, 0, -1]
    assert abs(draws.std() * 1e4 / np.sqrt(30 * 4.0) - 1) < 0.05  # 30 s of variance 4


def test_garch_filter_when_compared_with_arch_gives_its_conditional_variance() -> None:
    from arch import arch_model

    omega, alpha, beta, nu = 0.05, 0.1, 0.85, 5.0
    eps = simulate_garch(120, omega, alpha, beta, nu, seed=2)
    fixed = arch_model(eps, mean="Zero", vol="GARCH", p=1, q=1, dist="t",
                       rescale=False).fix([omega, alpha, beta, nu])
    ours = garch_filter(eps[None], *(np.array([v]) for v in (omega, alpha, beta)))[0]  # (C+1,)
    np.testing.assert_allclose(ours[:-1], np.asarray(fixed.conditional_volatility) ** 2,
                               rtol=1e-10)
    ahead = fixed.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0]
    np.testing.assert_allclose(ours[-1], ahead, rtol=1e-10)


def test_garch_t_when_sampled_follows_the_filtered_variance() -> None:
    omega, alpha, beta, nu = 0.05, 0.08, 0.88, 6.0
    eps = simulate_garch(20_000, omega, alpha, beta, nu, seed=7)
    model = PriceGarchT(PriceGarchTConfig(lattice=False)).fit(
        returns_batch(eps / 1e4, 120, stride=120))
    calm, wild = np.full(120, 0.1), np.full(120, 3.0)  # scaled returns
    batch = model.make_batch(np.stack([calm, wild])[:, None, :] / 1e4)
    values = model.sample(batch, 20_000, seed=0).values[:, :, 0, 0].astype(np.float64) * 1e4
    p = model.params["X"]
    sigma2 = garch_filter(np.stack([calm, wild]), *(np.full(2, v) for v in
                                                    (p.omega, p.alpha, p.beta)))[:, -1]
    persistence = p.alpha + p.beta  # E σ²_{t+k} = σ̄² + (α+β)^k (σ²_{t+1} - σ̄²)
    long_run = p.omega / (1 - persistence)
    expected = (30 * long_run + (sigma2 - long_run)
                * (1 - persistence ** 30) / (1 - persistence))
    np.testing.assert_allclose(values.var(axis=1), expected, rtol=0.1)


# ----------------------------------------------------------------------------------------------
# quantile regression


def _normal_ppf(p: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.array([NormalDist().inv_cdf(float(v)) for v in p])


def _heteroscedastic(n: int, seed: int, volatility: str
                     ) -> tuple[ForecastBatch, NDArray[np.float64], NDArray[np.float64]]:
    """Origins whose 30-s return has scale s(x) set by the last context rv_30s: returns the
    batch, the scale and rv_30s per origin."""
    rng = np.random.default_rng(seed)
    c, length = 5, n + 40
    rv30 = np.exp(rng.normal(-17.0, 0.6, length))
    features = np.stack([rv30, rv30 * np.exp(rng.normal(0, 0.2, length)),
                         rng.uniform(0.01, 1.0, length)], axis=1)  # (N, 3)
    batch = returns_batch(np.zeros(length), c, stride=1, features=features)
    last = batch.context[:, 1, -1]  # (B,) rv_30s at the origin
    if volatility == "log":
        scale = 1e-4 * (1.0 + 0.4 * (np.log(last) + 17.0))
    else:
        scale = 2.0 * np.sqrt(last)
    target = scale * rng.standard_normal(batch.size)
    return dataclasses.replace(batch, target=target[:, None, None]), scale, last


@pytest.mark.parametrize("volatility", ["log", "level"])
def test_quantreg_when_scale_follows_volatility_tracks_the_true_quantiles(
        volatility: Literal["log", "level"]) -> None:
    train, _, _ = _heteroscedastic(6000, 0, volatility)
    config = PriceQuantRegConfig(lattice=False, volatility=volatility, n_quantiles=9,
                                 time_of_day=False)
    model = PriceQuantReg(config).fit(train, seed=0)
    test, scale, _ = _heteroscedastic(300, 1, volatility)
    q = model.predict_quantiles(test)  # (B, 9)
    truth = scale[:, None] * _normal_ppf(model.config.levels)[None, :]
    assert np.abs(q - truth).max() < 0.25 * scale.max()
    assert np.median(np.abs(q - truth) / scale[:, None]) < 0.08
    values = model.sample(test, 4000, seed=0).values[:, :, 0, 0].astype(np.float64)
    z = values / scale[:, None]  # standardized: N(0, 1) if the quantiles are right
    levels = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(np.quantile(z, levels), _normal_ppf(levels), atol=0.1)


def test_inverse_cdf_when_u_hits_the_levels_returns_the_quantiles_with_linear_tails() -> None:
    q = np.array([[-2.0, 0.0, 1.0, 4.0]])  # levels 0.2, 0.4, 0.6, 0.8
    u = np.array([[0.2, 0.4, 0.5, 0.8, 0.0, 1.0]])
    np.testing.assert_allclose(inverse_cdf(q, u), [[-2.0, 0.0, 0.5, 4.0, -4.0, 7.0]])

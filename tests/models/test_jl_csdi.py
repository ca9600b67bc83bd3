from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.core.errors import TapecastError
from tapecast.diffusion.training import diffusion_loss
from tapecast.features.channels import IMBALANCE_CHANNELS
from tapecast.features.featureset import FeatureSet
from tapecast.models.jl_csdi import JLCSDI
from tapecast.models.jl_csdi_config import JLCSDIConfig, NoiseName, jlcsdi_config
from tapecast.models.jl_csdi_io import (
    NormalizedOrigins,
    context_moment_targets,
    covered_windows,
    plugin_counts,
)
from tapecast.nets import denoiser_config
from tapecast.train import TrainConfig, TrainEvent
from tests.commands.test_features_cmd import _store

runner = CliRunner()


def tiny_config(noise: str = "jump-laplace", steps: int = 4, **changes: Any) -> JLCSDIConfig:
    """A JL-CSDI config small enough to train in seconds (C = 8, H = 2)."""
    net = denoiser_config("small").replace(n_blocks=1, channels=16, heads=2, ff_dim=16,
                                           time_emb_dim=8, feature_emb_dim=4,
                                           diffusion_emb_dim=8, context=8, horizon=2)
    train = TrainConfig(lr=3e-3, batch_size=8, max_epochs=None, max_steps=steps, eval_every=2,
                        log_every=1, seed=0, num_threads=1)
    return JLCSDIConfig(denoiser=net, noise=cast(NoiseName, noise), train_timesteps=50,
                        noise_draws=2, sample_steps={"ddpm": 3, "ddim": 3, "sde": 3, "sde-mgd": 3},
                        train=train, name="tiny", **changes)


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> FeatureSet:
    tmp = tmp_path_factory.mktemp("jlfeat")
    out = tmp / "feat"
    result = runner.invoke(app, ["features", str(_store(tmp)), "--window-trades", "10",
                                 "--context", "8", "--horizon", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return FeatureSet.open(out)


@pytest.fixture(scope="module")
def fitted(features: FeatureSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, JLCSDI]:
    models = {}
    for noise in ("gaussian", "jump-laplace"):
        model = JLCSDI(tiny_config(noise))
        run = tmp_path_factory.mktemp(f"run-{noise}")
        model.fit(features.dataset("train"), features.dataset("val"), run_dir=run, progress=False,
                  normalizer=features.fit_normalizer())
        models[noise] = model
    return models


def _weights(model: JLCSDI) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.net.state_dict().items()}


# ----------------------------------------------------------------------------------------------
# config


def test_config_when_round_tripped_through_json_is_equal() -> None:
    config = tiny_config("gaussian", mgd_strength=0.3)
    again = JLCSDIConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.default_sampler == "ddim"


def test_config_when_esc1_has_the_card_settings() -> None:
    config = jlcsdi_config("jl-csdi-esc1")
    net = config.denoiser
    assert (net.n_blocks, net.channels, net.heads, net.ff_dim) == (6, 528, 6, 2112)
    assert (config.noise, config.schedule, config.train_timesteps) == ("jump-laplace",
                                                                      "tanh6-1", 800)
    assert config.steps_for("sde-mgd") == 50 and config.jl_dt == pytest.approx(0.12)
    assert (config.jl_t_max, config.jl_laplace_scale) == (6.0, 1.0)
    assert config.default_sampler == "sde-mgd"


@pytest.mark.parametrize("changes, field", [
    ({"noise": "uniform"}, "noise"), ({"sampler": "sde"}, "sampler"),
    ({"mgd_strength": 0.0}, "mgd_strength"), ({"sample_steps": {"euler": 3}}, "sample_steps"),
    ({"noise_draws": 0}, "noise_draws"), ({"zero_terminal_snr": True}, "zero_terminal_snr"),
    ({"gaussian_prediction": "x0"}, "gaussian_prediction")])
def test_config_when_value_invalid_raises_naming_the_field(changes: dict[str, Any],
                                                          field: str) -> None:
    with pytest.raises(TapecastError, match=field):
        tiny_config("gaussian").replace(**changes)


def test_config_when_unknown_key_or_preset_raises() -> None:
    with pytest.raises(TapecastError, match="bogus"):
        JLCSDIConfig.from_dict({**tiny_config().to_dict(), "bogus": 1})
    with pytest.raises(TapecastError, match="small"):
        jlcsdi_config("huge")


def test_with_noise_when_switching_resets_the_default_sampler() -> None:
    config = jlcsdi_config("small").with_noise("gaussian")
    assert config.noise == "gaussian" and config.default_sampler == "ddim"
    assert config.with_sizes(8, 2).denoiser.context == 8


# ----------------------------------------------------------------------------------------------
# training


@pytest.mark.parametrize("noise", ["gaussian", "jump-laplace"])
def test_fit_when_tiny_model_trains_writes_a_loadable_model_folder(
        fitted: dict[str, JLCSDI], noise: str) -> None:
    model = fitted[noise]
    assert model.training["steps"] == 4 and model.training["best_val_loss"] is not None
    assert np.isfinite(model.training["best_val_loss"])
    assert model.stats is not None and model.stats.scale.shape == (8,)


def test_diffusion_loss_when_no_target_observed_is_zero() -> None:
    model = JLCSDI(tiny_config())
    batch = {"context": torch.randn(3, 8, 8), "context_mask": torch.ones(3, 8, 8),
             "target": torch.randn(3, 8, 2), "target_mask": torch.zeros(3, 8, 2)}
    loss = diffusion_loss(model.net, model.noise, batch, torch.Generator().manual_seed(0), draws=2)
    assert float(loss.detach()) == 0.0
    batch["target_mask"] = torch.ones(3, 8, 2)
    loss = diffusion_loss(model.net, model.noise, batch, torch.Generator().manual_seed(0), draws=2)
    assert float(loss.detach()) > 0.0


def test_fit_when_bf16_autocast_trains_with_a_finite_loss(features: FeatureSet,
                                                          tmp_path: Path) -> None:
    model = JLCSDI(tiny_config().with_train(bf16=True, max_steps=2))
    result = model.fit(features.dataset("train"), features.dataset("val"), run_dir=tmp_path,
                       progress=False).train_result
    assert result.step == 2 and result.best_val_loss is not None
    assert np.isfinite(result.best_val_loss)


def test_fit_when_dataset_sizes_differ_from_config_raises(features: FeatureSet,
                                                          tmp_path: Path) -> None:
    model = JLCSDI(tiny_config().with_sizes(6, 2))
    with pytest.raises(TapecastError, match="8 context"):
        model.fit(features.dataset("train"), None, run_dir=tmp_path, progress=False)


def test_fit_when_interrupted_at_step_3_and_resumed_equals_straight_6(
        features: FeatureSet, tmp_path: Path) -> None:
    config = tiny_config(steps=6)
    train, val = features.dataset("train"), features.dataset("val")
    straight = JLCSDI(config)
    straight.fit(train, val, run_dir=tmp_path / "straight", progress=False)

    def stop_at_3(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == 3:
            raise KeyboardInterrupt

    first = JLCSDI(config)
    with pytest.raises(KeyboardInterrupt):
        first.fit(train, val, run_dir=tmp_path / "resumed", callbacks=[stop_at_3], progress=False)
    with pytest.raises(TapecastError, match="not finished"):
        JLCSDI.load(tmp_path / "resumed")
    again = JLCSDI(config)
    result = again.fit(train, val, run_dir=tmp_path / "resumed", progress=False).train_result
    assert result.resumed_from == 3 and result.step == 6
    for name, tensor in _weights(straight).items():
        assert torch.equal(tensor, again.net.state_dict()[name]), name


def test_fit_when_run_folder_holds_another_model_refuses_to_resume(
        features: FeatureSet, tmp_path: Path) -> None:
    def stop_at_1(event: TrainEvent) -> None:
        if event.kind == "step":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        JLCSDI(tiny_config()).fit(features.dataset("train"), None, run_dir=tmp_path,
                                  callbacks=[stop_at_1], progress=False)
    with pytest.raises(TapecastError, match="another model"):
        JLCSDI(tiny_config("gaussian")).fit(features.dataset("train"), None, run_dir=tmp_path,
                                            progress=False)


# ----------------------------------------------------------------------------------------------
# sampling


@pytest.mark.parametrize("noise, sampler", [("gaussian", "ddim"), ("gaussian", "ddpm"),
                                            ("jump-laplace", "sde"),
                                            ("jump-laplace", "sde-mgd")])
def test_sample_when_fitted_gives_shapes_and_horizon_metadata(
        fitted: dict[str, JLCSDI], features: FeatureSet, noise: str, sampler: str) -> None:
    batch = features.dataset("test").batch(slice(0, 3))
    samples = fitted[noise].sample(batch, 5, sampler=sampler, seed=1)
    assert samples.values.shape == (3, 5, 8, 2) and samples.values.dtype == np.float32
    assert np.isfinite(samples.values).all()
    np.testing.assert_array_equal(samples.window_ids, batch.window_ids[:, 8:])
    np.testing.assert_array_equal(samples.timestamps, batch.timestamps[:, 8:])
    np.testing.assert_array_equal(samples.regimes, batch.regimes)
    assert samples.channels == batch.channels and list(samples.instruments) == ["XYZ"] * 3
    imbalance = samples.values[:, :, : len(IMBALANCE_CHANNELS)]
    assert imbalance.min() >= -1.0 and imbalance.max() <= 1.0


def test_sample_when_model_space_is_zero_returns_the_normalizers_inverse_of_zero(
        fitted: dict[str, JLCSDI], features: FeatureSet) -> None:
    model = fitted["gaussian"]
    assert model.normalizer is not None
    batch = features.dataset("test").batch(slice(0, 2))
    raw = model._to_raw(np.zeros((2, 3, 8, 2)), batch)  # (B, S, K, H)
    t_hat, n_hat = plugin_counts(batch, "context-mean")
    expected = model.normalizer.inverse(np.zeros((2, 3, 8, 2)), t_hat, n_hat, axis=2)
    np.testing.assert_allclose(raw, expected.astype(np.float32))
    k = batch.channels.index("log_tot_vol")  # original units: a log volume, not a z-score
    median = float(features.windows.filter(pl.col("split") == "train")["log_tot_vol"].median())
    assert abs(float(raw[0, 0, k, 0]) - median) < 1.0


def test_sample_when_same_seed_repeats_and_other_seed_differs(
        fitted: dict[str, JLCSDI], features: FeatureSet) -> None:
    model, batch = fitted["jump-laplace"], features.dataset("test").batch(slice(0, 2))
    first = model.sample(batch, 4, sampler="sde", seed=7).values
    np.testing.assert_array_equal(first, model.sample(batch, 4, sampler="sde", seed=7).values)
    assert not np.array_equal(first, model.sample(batch, 4, sampler="sde", seed=8).values)


def test_sample_when_sampler_does_not_fit_the_noise_raises_naming_the_right_ones(
        fitted: dict[str, JLCSDI], features: FeatureSet) -> None:
    batch = features.dataset("test").batch(slice(0, 1))
    with pytest.raises(TapecastError, match=r"needs a jump-laplace-noise model.*use 'ddpm', "
                       r"'ddim'|use 'ddpm' or 'ddim'"):
        fitted["gaussian"].sample(batch, 2, sampler="sde-mgd")
    with pytest.raises(TapecastError, match="'sde' or 'sde-mgd'"):
        fitted["jump-laplace"].sample(batch, 2, sampler="ddim")


def test_sample_when_unfitted_or_batch_sizes_differ_raises(fitted: dict[str, JLCSDI],
                                                           features: FeatureSet) -> None:
    batch = features.dataset("test").batch(slice(0, 1))
    with pytest.raises(TapecastError, match="must be fitted before sampling"):
        JLCSDI(tiny_config()).sample(batch, 2)
    with pytest.raises(TapecastError, match="n_samples"):
        fitted["gaussian"].sample(batch, 0)


def test_sample_when_mgd_targets_unconditional_or_conditional_both_run(
        fitted: dict[str, JLCSDI], features: FeatureSet) -> None:
    model, batch = fitted["jump-laplace"], features.dataset("test").batch(slice(0, 2))
    cond = model.sample(batch, 6, sampler="sde-mgd", seed=3, mgd_targets="conditional")
    uncond = model.sample(batch, 6, sampler="sde-mgd", seed=3, mgd_targets="unconditional")
    assert not np.array_equal(cond.values, uncond.values)
    with pytest.raises(TapecastError, match="conditional"):
        model.sample(batch, 6, sampler="sde-mgd", mgd_targets="sometimes")


# ----------------------------------------------------------------------------------------------
# save / load


def test_save_load_when_round_tripped_gives_the_same_samples(
        fitted: dict[str, JLCSDI], features: FeatureSet, tmp_path: Path) -> None:
    model = fitted["jump-laplace"]
    model.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "config.json", "model.safetensors", "normalization.json", "data_stats.json"}
    loaded = JLCSDI.load(tmp_path / "m")
    assert loaded.config == model.config and loaded.training == model.training
    batch = features.dataset("test").batch(slice(0, 2))
    np.testing.assert_array_equal(model.sample(batch, 4, seed=2).values,
                                  loaded.sample(batch, 4, seed=2).values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("noise", ["gaussian", "jump-laplace"])
def test_sample_when_the_net_is_on_cuda_samples_there_like_on_cpu(
        noise: str, features: FeatureSet, tmp_path: Path) -> None:
    fitted = JLCSDI(tiny_config(noise)).fit(features.dataset("train"), run_dir=tmp_path,
                                            progress=False)
    batch = features.dataset("test").batch(slice(0, 2))
    on_cpu = fitted.sample(batch, 4, seed=2).values
    fitted.net.to("cuda")
    assert fitted.device.type == "cuda"
    np.testing.assert_allclose(fitted.sample(batch, 4, seed=2).values, on_cpu, atol=1e-3)


@pytest.mark.parametrize("counts,message", [
    ({"n_trades": [40] * 8}, "needs the context windows' n_signed"),
    ({"n_trades": [40] * 5, "n_signed": [38] * 5}, r"n_trades must have shape \(B, 8\)"),
    ({"n_trades": [40.5] * 8, "n_signed": [38] * 8}, "n_trades must hold finite whole"),
    ({"n_trades": [np.nan] * 8, "n_signed": [38] * 8}, "n_trades must hold finite whole"),
    ({"n_trades": [40] * 8, "n_signed": [-1] * 8}, "n_signed must hold finite whole"),
    ({"n_trades": [40] * 8, "n_signed": [41] * 8}, "n_signed must not exceed n_trades"),
])
def test_make_batch_when_counts_are_bad_raises_one_line(
        counts: dict[str, Any], message: str, fitted: dict[str, JLCSDI]) -> None:
    with pytest.raises(TapecastError, match=message):
        fitted["gaussian"].make_batch(np.zeros((8, 8)), extras=counts)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm-solver++"])
def test_fit_when_v_prediction_at_zero_terminal_snr_samples_finite_forecasts(
        sampler: str, features: FeatureSet) -> None:
    config = tiny_config("gaussian", steps=2, gaussian_prediction="v", zero_terminal_snr=True)
    model = JLCSDI(config).fit(features.dataset("train"), progress=False)
    assert model.noise.prediction == "v" and float(model.noise.alpha_bar(49)) == 0.0
    batch = features.dataset("test").batch(slice(0, 2))
    samples = model.sample(batch, 4, sampler=sampler, steps=3, seed=0)
    assert samples.values.shape == (2, 4, 8, 2) and np.isfinite(samples.values).all()


def test_device_when_built_is_the_cpu(fitted: dict[str, JLCSDI]) -> None:
    assert fitted["gaussian"].device == torch.device("cpu")


def test_load_when_folder_or_files_are_wrong_raises_one_line_errors(
        fitted: dict[str, JLCSDI], tmp_path: Path) -> None:
    with pytest.raises(TapecastError, match="no such JL-CSDI model folder"):
        JLCSDI.load(tmp_path / "nope")
    folder = fitted["gaussian"].save(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(TapecastError, match="weights do not fit") as info:
        JLCSDI.load(folder)
    assert "\n" not in str(info.value)
    (folder / "config.json").write_text("{", encoding="utf-8")
    with pytest.raises(TapecastError, match="not valid JSON"):
        JLCSDI.load(folder)


def test_load_when_weights_are_of_another_size_raises(fitted: dict[str, JLCSDI],
                                                      tmp_path: Path) -> None:
    folder = fitted["gaussian"].save(tmp_path / "m")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["denoiser"]["channels"] = 32
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(TapecastError, match="weights do not fit"):
        JLCSDI.load(folder)


# ----------------------------------------------------------------------------------------------
# data helpers


def test_covered_windows_when_train_dataset_keeps_only_train_windows(
        features: FeatureSet) -> None:
    covered = covered_windows(features.dataset("train"))
    assert covered.height > 0 and set(covered["split"].unique()) == {"train"}
    assert covered.select(pl.struct("instrument", "window").is_unique().all()).item()


def test_context_moment_targets_when_ar1_context_recovers_forecast_error_moments() -> None:
    rng = np.random.default_rng(0)
    n, phi = 20000, 0.5
    innov = rng.multivariate_normal([0, 0], [[1.0, 0.6], [0.6, 2.0]], size=n)  # (n, 2)
    x = np.zeros((n, 2))
    for i in range(1, n):
        x[i] = phi * x[i - 1] + innov[i]
    context = torch.from_numpy(x.T[None].copy())  # (1, 2, n)
    targets = context_moment_targets(context, torch.ones_like(context), horizon=2)
    # h = 1: var(e); h = 2: var(e)(1 + phi^2); targets average over h
    np.testing.assert_allclose(targets.central[0, :, 0].numpy(),
                               [1.0 * 1.125, 2.0 * 1.125], rtol=0.05)
    assert float(targets.covariance[0, 0, 1]) == pytest.approx(0.6 * 1.125, rel=0.1)
    assert abs(float(targets.central[0, 0, 1])) < 0.1  # Gaussian: no skew
    assert float(targets.central[0, 0, 2]) == pytest.approx(
        3 * (1 + (1 + phi**2) ** 2) / 2, rel=0.1)


def test_context_moment_targets_when_channel_unobserved_uses_the_fallback() -> None:
    context = torch.randn(1, 2, 30, generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(context)
    mask[0, 1] = 0
    targets = context_moment_targets(context, mask, horizon=3)
    assert targets.central[0, 1].tolist() == [1.0, 0.0, 3.0]
    assert float(targets.covariance[0, 0, 1]) == 0.0


def test_plugin_counts_when_horizon_counts_change_stay_the_same(features: FeatureSet) -> None:
    batch = features.dataset("test").batch(slice(0, 2))
    t_hat, _ = plugin_counts(batch, "context-mean")
    n_signed = batch.extra("n_signed")
    np.testing.assert_allclose(t_hat[:, 0, 0], n_signed[:, :8].mean(axis=1))
    n_signed[:, 8:] = 10_000
    assert np.array_equal(plugin_counts(batch, "context-mean")[0], t_hat)
    assert plugin_counts(batch, "context-last")[1][0, 0, 0] == batch.extra("n_trades")[0, 7]


# ----------------------------------------------------------------------------------------------
# the card's architecture


@pytest.mark.slow
def test_esc1_when_built_runs_one_training_step_and_one_sampling_step(
        tmp_path: Path) -> None:
    store = _store(tmp_path, per_day=1300)
    feat = tmp_path / "feat"
    result = runner.invoke(app, ["features", str(store), "--window-trades", "10",
                                 "--out", str(feat)])
    assert result.exit_code == 0, result.output
    fs = FeatureSet.open(feat)
    config = jlcsdi_config("jl-csdi-esc1").with_train(max_epochs=None, max_steps=1,
                                                      batch_size=1, num_threads=1)
    model = JLCSDI(config.replace(noise_draws=1))
    assert model.n_parameters == 48_579_057  # docs/nets.md; the card says 61.93 M
    before = _weights(model)
    model.fit(fs.dataset("train"), None, run_dir=tmp_path / "run", progress=False)
    assert any(not torch.equal(before[k], v) for k, v in model.net.state_dict().items())
    samples = model.sample(fs.dataset("test").batch(slice(0, 1)), 2, steps=1)
    assert samples.values.shape == (1, 2, 8, 10) and np.isfinite(samples.values).all()


def test_normalized_origins_when_pairs_permuted_keeps_context_and_moves_target(
        features: FeatureSet) -> None:
    data = features.dataset("train")
    normalizer = features.fit_normalizer()
    scale = np.ones(len(data.channels))
    perm = np.random.default_rng(0).permutation(len(data))
    plain = NormalizedOrigins(data, normalizer, scale)
    shuffled = NormalizedOrigins(data, normalizer, scale, perm)
    rows = torch.arange(min(len(data), 6))
    got, own, moved = shuffled.batch(rows), plain.batch(rows), plain.batch(torch.from_numpy(
        perm[:len(rows)]))
    assert torch.equal(got["context"], own["context"])
    assert torch.equal(got["target"], moved["target"])
    assert not torch.equal(got["target"], own["target"])
    with pytest.raises(TapecastError, match="permute"):
        NormalizedOrigins(data, normalizer, scale, np.zeros(len(data), dtype=np.int64))


def test_fit_when_shuffle_pairs_seed_given_trains_other_weights(features: FeatureSet,
                                                               tmp_path: Path) -> None:
    weights = []
    for seed in (None, 0):
        model = JLCSDI(tiny_config(steps=2))
        model.fit(features.dataset("train"), None, run_dir=tmp_path / str(seed), progress=False,
                  normalizer=features.fit_normalizer(), shuffle_pairs_seed=seed)
        weights.append(_weights(model))
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])

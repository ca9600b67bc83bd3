from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.core.forecast import load_forecast
from tests.commands.test_features_cmd import _store
from tests.models.test_jl_csdi import tiny_config

runner = CliRunner()


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("feat")
    out = tmp / "feat"
    result = runner.invoke(app, ["features", str(_store(tmp)), "--window-trades", "10",
                                 "--context", "8", "--horizon", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def tiny_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps(tiny_config(steps=10).to_dict()))
    return path


def _train(features: Path, config: Path, out: Path, *extra: str) -> str:
    result = runner.invoke(app, ["train", "--model", "csdi", "--config", str(config),
                                 "--features", str(features), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_train_forecast_evaluate_when_tiny_run_scores_beside_climatology(
        features: Path, tiny_json: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    output = _train(features, tiny_json, run, "--max-steps", "2")
    assert "2 steps" in output
    info = json.loads((run / "run.json").read_text())
    assert info["steps"] == 2 and info["features_sha256"] and info["config"]["name"] == "tiny"
    path = tmp_path / "jl.npz"
    result = runner.invoke(app, ["forecast", str(run), "--features", str(features), "--split",
                                 "test", "--n-samples", "4", "--sampler", "sde-mgd", "--steps",
                                 "2", "--seed", "3", "--out", str(path)])
    assert result.exit_code == 0, result.output
    forecast = load_forecast(path)
    assert forecast.name == "jl-csdi/sde-mgd" and forecast.samples.values.shape == (16, 4, 8, 2)
    assert forecast.realized is not None and forecast.context is not None
    prov = forecast.provenance
    assert (prov["sampler"], prov["steps"], prov["seed"], prov["split"]) == ("sde-mgd", 2, 3,
                                                                              "test")
    for key in ("features_sha256", "wall_s", "windows_per_s", "package_version", "git_commit",
                "split_spec", "split"):
        assert key in prov
    clim = tmp_path / "clim.npz"
    result = runner.invoke(app, ["baseline", "climatology", "-F", str(features), "--n-samples",
                                 "4", "--out", str(clim)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(path), str(clim), "--out",
                                 str(tmp_path / "report"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics["forecasters"]) == {"jl-csdi/sde-mgd", "climatology"}
    assert metrics["forecasters"]["jl-csdi/sde-mgd"]["crps"]["mean"] is not None


def test_forecast_when_same_seed_writes_the_same_samples(features: Path, tiny_json: Path,
                                                         tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(features, tiny_json, run, "--max-steps", "1", "--noise", "gaussian")
    values = []
    for name in ("a", "b"):
        result = runner.invoke(app, ["forecast", str(run), "-F", str(features), "--n-samples",
                                     "3", "--chunk", "5", "--out", str(tmp_path / f"{name}.npz")])
        assert result.exit_code == 0, result.output
        values.append(load_forecast(tmp_path / f"{name}.npz"))
    np.testing.assert_array_equal(values[0].samples.values, values[1].samples.values)
    assert values[0].provenance["sampler"] == "ddim" and values[0].provenance["steps"] == 3


def test_train_when_run_again_with_more_steps_resumes_from_the_checkpoint(
        features: Path, tiny_json: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(features, tiny_json, run, "--max-steps", "2")
    _train(features, tiny_json, run, "--max-steps", "4")
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    assert json.loads((run / "run.json").read_text())["steps"] == 4
    _train(features, tiny_json, run, "--max-steps", "1", "--fresh")
    assert json.loads((run / "run.json").read_text())["steps"] == 1


def test_train_when_model_or_config_unknown_exits_2(features: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--model", "lstm", "--features", str(features),
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "csdi" in result.output
    result = runner.invoke(app, ["train", "--config", "huge", "--features", str(features),
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "jl-csdi-esc1" in result.output
    result = runner.invoke(app, ["train", "--noise", "poisson", "--features", str(features),
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "noise" in result.output


def test_train_when_device_or_precision_is_bad_exits_2_naming_the_field(
        features: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--device", "tpu", "--features", str(features),
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "TrainConfig.device: must be 'cpu', 'cuda'" in result.output
    result = runner.invoke(app, ["train", "--precision", "fp8", "--features", str(features),
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "TrainConfig.precision: must be one of" in result.output
    if not torch.cuda.is_available():
        result = runner.invoke(app, ["train", "--device", "cuda", "--features", str(features),
                                     "--out", str(tmp_path / "r")])
        assert result.exit_code == 2 and "cuda" in result.output.lower()


def test_forecast_when_sampler_misfits_or_run_missing_exits_2(
        features: Path, tiny_json: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(features, tiny_json, run, "--max-steps", "1", "--noise", "gaussian")
    result = runner.invoke(app, ["forecast", str(run), "-F", str(features), "--sampler",
                                 "sde-mgd", "--out", str(tmp_path / "f.npz")])
    assert result.exit_code == 2 and "needs a jump-laplace-noise model" in result.output
    assert "use 'ddpm', 'ddim'" in result.output or "use 'ddpm' or 'ddim'" in result.output
    assert not (tmp_path / "f.npz").exists()
    result = runner.invoke(app, ["forecast", str(tmp_path / "nope"), "-F", str(features),
                                 "--out", str(tmp_path / "f.npz")])
    assert result.exit_code == 2 and "no such model folder" in result.output

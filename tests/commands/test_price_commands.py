"""``tapecast train/forecast/baseline/evaluate`` on a price features folder (issue 13), end to end
on the synthetic market with the ``tiny`` price-diffusion preset and a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.core.forecast import load_forecast
from tapecast.models.price_diffusion_config import price_diffusion_config
from tests.commands.test_model_cmd import features as orderflow_features  # noqa: F401

runner = CliRunner()


def _run(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return " ".join(output[output.index("error:"):].split())


@pytest.fixture(scope="module")
def price_features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("price") / "feat"
    code, output = _run("features", "--kind", "price", "--synthetic", "--synthetic-sessions", "3",
                        "--context", "60", "--out", out)
    assert code == 0, output
    return out


@pytest.fixture(scope="module")
def tiny_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset validating on 2 batches (the whole val split takes seconds)."""
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    config = price_diffusion_config("tiny").with_train(max_val_batches=2, log_every=1)
    path.write_text(json.dumps(config.to_dict()))
    return path


@pytest.fixture(scope="module")
def price_run(price_features: Path, tiny_json: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    code, output = _run("train", "-F", price_features, "--config", tiny_json, "--max-steps", "2",
                        "--seed", "1", "--out", run)
    assert code == 0, output
    return run


def test_train_when_price_folder_trains_price_diffusion_and_prints_the_summary(
        price_features: Path, tiny_json: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, output = _run("train", "--model", "price-diffusion", "-F", price_features, "--config",
                        tiny_json, "--max-steps", "2", "--shuffle-pairs", "5", "--out", run)
    assert code == 0, output
    for text in ("price-diffusion (tiny)", "steps", "best val loss", "wall time", "parameters"):
        assert text in output
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "price-diffusion" and info["features_kind"] == "price"
    assert info["steps"] == 2 and info["shuffle_pairs_seed"] == 5 and info["features_sha256"]
    assert json.loads((run / "config.json").read_text())["kind"] == "tapecast.price-diffusion"


def test_train_when_run_again_with_more_steps_resumes_from_last(
        price_features: Path, tiny_json: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("train", "-F", price_features, "--config", tiny_json, "--out", run)
    assert _run(*args, "--max-steps", "2")[0] == 0
    code, output = _run(*args, "--max-steps", "3")
    assert code == 0 and "resumed from step 2" in output, output
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3]
    assert json.loads((run / "run.json").read_text())["steps"] == 3


def test_forecast_baseline_evaluate_when_price_run_scores_beside_price_baselines(
        price_features: Path, price_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "pd.npz"
    code, output = _run("forecast", price_run, "-F", price_features, "--n-samples", "16",
                        "--sampler", "ddim", "--steps", "2", "--seed", "3", "--every", "60",
                        "--out", path)
    assert code == 0, output
    forecast = load_forecast(path)
    batch = forecast.samples.batch
    assert forecast.name == "price-diffusion/ddim" and forecast.context is None
    assert forecast.samples.values.shape == (batch, 16, 1, 1) and batch > 300
    assert forecast.samples.channels == ("log_return",)
    prov = forecast.provenance
    assert (prov["sampler"], prov["steps"], prov["seed"], prov["split"], prov["lattice"],
            prov["every"]) == ("ddim", 2, 3, "test", True, 60)
    assert prov["features_kind"] == "price" and len(prov["features_sha256"]) == 64
    paths = [path]
    for name in ("price-climatology", "price-histvol"):
        paths.append(tmp_path / f"{name}.npz")
        code, output = _run("baseline", name, "-F", price_features, "--n-samples", "16",
                            "--every", "60", "--out", paths[-1])
        assert code == 0, output
        assert load_forecast(paths[-1]).samples.values.shape == (batch, 16, 1, 1)
    report = tmp_path / "report"
    code, output = _run("evaluate", *paths, "--out", report)
    assert code == 0, output
    text = " ".join(output.split())
    assert "price-diffusion/ddim" in text and "reference: price-climatology" in text
    metrics = json.loads((report / "metrics.json").read_text())
    entry = metrics["forecasters"]["price-diffusion/ddim"]
    assert entry["channels"] == ["log_return"] and entry["horizon"] == 1
    assert entry["crps"]["mean"] > 0 and entry["corr_frobenius_rel_error"] is None
    assert entry["n_per_regime"]["all"] == batch and "" not in entry["n_per_regime"]
    assert "90" in entry["coverage"] and "log_return" in entry["pit"]
    dm = {(t["a"], t["b"]) for t in metrics["dm_tests"]}
    assert dm == {("price-diffusion/ddim", "price-climatology"),
                  ("price-histvol", "price-climatology")}
    assert (report / "report.html").stat().st_size > 10_000


def test_forecast_when_no_lattice_keeps_the_continuous_samples(
        price_features: Path, price_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "cont.npz"
    code, output = _run("forecast", price_run, "-F", price_features, "--n-samples", "8",
                        "--steps", "2", "--every", "600", "--no-lattice", "--out", path)
    assert code == 0, output
    forecast = load_forecast(path)
    assert forecast.provenance["lattice"] is False
    assert forecast.provenance["sampler"] == "dpm-solver++"


def test_train_when_model_does_not_fit_the_folder_exits_2_in_one_line(
        price_features: Path, orderflow_features: Path,  # noqa: F811
        tmp_path: Path) -> None:
    code, output = _run("train", "--model", "csdi", "-F", price_features, "--out", tmp_path / "r")
    assert code == 2 and ("a price features folder; --model csdi needs an order-flow features "
                          "folder") in _one_line_error(output)
    code, output = _run("train", "--model", "price-diffusion", "-F", orderflow_features,
                        "--out", tmp_path / "r")
    assert code == 2 and "needs a price features folder" in _one_line_error(output)
    code, output = _run("train", "-F", price_features, "--noise", "gaussian", "--out",
                        tmp_path / "r")
    assert code == 2 and "--noise applies to JL-CSDI only" in _one_line_error(output)
    code, output = _run("train", "-F", price_features, "--config", "huge", "--out",
                        tmp_path / "r")
    assert code == 2 and "small, tiny" in _one_line_error(output)
    assert not (tmp_path / "r").exists()


def test_forecast_when_run_missing_or_folder_of_the_other_kind_exits_2(
        price_features: Path, price_run: Path, orderflow_features: Path,  # noqa: F811
        tmp_path: Path) -> None:
    out = tmp_path / "f.npz"
    code, output = _run("forecast", tmp_path / "nope", "-F", price_features, "--out", out)
    assert code == 2 and "no such model folder" in _one_line_error(output)
    code, output = _run("forecast", price_run, "-F", orderflow_features, "--out", out)
    assert code == 2 and "the price-diffusion model in" in _one_line_error(output)
    code, output = _run("forecast", price_run, "-F", price_features, "--sampler", "sde-mgd",
                        "--out", out)
    assert code == 2 and "unknown price sampler 'sde-mgd'" in _one_line_error(output)
    assert not out.exists()


def test_baseline_when_name_is_of_the_other_kind_exits_2_naming_the_right_ones(
        price_features: Path, orderflow_features: Path,  # noqa: F811
        tmp_path: Path) -> None:
    out = tmp_path / "b.npz"
    code, output = _run("baseline", "climatology", "-F", price_features, "--out", out)
    line = _one_line_error(output)
    assert code == 2 and "price-climatology" in line and "not 'climatology'" in line
    code, output = _run("baseline", "price-histvol", "-F", orderflow_features, "--out", out)
    line = _one_line_error(output)
    assert code == 2 and "an order-flow features folder takes the baselines" in line
    assert "climatology" in line
    assert not out.exists()


def test_train_when_interrupted_exits_130_naming_last(
        price_features: Path, tiny_json: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tapecast.models.price_diffusion import PriceDiffusion

    def interrupted(self: PriceDiffusion, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(PriceDiffusion, "fit", interrupted)
    run = tmp_path / "run"
    code, output = _run("train", "-F", price_features, "--config", tiny_json, "--out", run)
    assert code == 130 and f"{run / 'last'} holds the last completed step" in " ".join(
        _one_line_error(output).split())

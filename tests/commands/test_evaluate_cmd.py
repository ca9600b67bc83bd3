from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.commands.evaluate_cmd import option_values
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import load_forecast
from tests.commands.test_features_cmd import _store

runner = CliRunner()


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("feat")
    out = tmp / "feat"
    result = runner.invoke(app, ["features", str(_store(tmp)), "--window-trades", "10",
                                 "--context", "8", "--horizon", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_option_values_when_typed_text_gives_ints_floats_bools_and_strings() -> None:
    assert option_values(["block-length=5", "x=0.5", "flag=true", "model=/a/b"]) == {
        "block_length": 5, "x": 0.5, "flag": True, "model": "/a/b"}
    with pytest.raises(TapecastError, match="KEY=VALUE"):
        option_values(["nonsense"])


def test_baseline_then_evaluate_when_two_baselines_writes_forecasts_and_report(
        features: Path, tmp_path: Path) -> None:
    paths = []
    for name in ("climatology", "naive"):
        path = tmp_path / f"{name}.npz"
        result = runner.invoke(app, ["baseline", name, "-F", str(features), "--n-samples", "8",
                                     "--out", str(path)])
        assert result.exit_code == 0, result.output
        paths.append(path)
    clim = load_forecast(paths[0])
    assert clim.samples.values.shape == (16, 8, 8, 2) and clim.realized is not None
    assert clim.provenance["split"] == "test" and clim.provenance["features_sha256"]
    report = tmp_path / "report"
    result = runner.invoke(app, ["evaluate", *map(str, paths), "--out", str(report), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics["forecasters"]) == {"climatology", "naive"}
    # persistence is a one-point ensemble: no spread at all
    assert set(metrics["forecasters"]["naive"]["diversity_ratio"].values()) == {0.0}
    assert "90" in metrics["forecasters"]["climatology"]["coverage"]
    assert (report / "report.html").stat().st_size > 10_000
    assert json.loads((report / "metrics.json").read_text())["reference"] == "climatology"


def test_baseline_when_unknown_name_or_option_exits_2(features: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["baseline", "nope", "-F", str(features), "--out",
                                 str(tmp_path / "x.npz")])
    assert result.exit_code == 2 and "nope" in result.output
    result = runner.invoke(app, ["baseline", "bootstrap", "-F", str(features), "-O", "bogus=1",
                                 "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 2 and "bogus" in result.output
    assert not (tmp_path / "x.npz").exists()


def test_evaluate_when_reference_is_not_a_forecast_or_names_clash_exits_2(
        features: Path, tmp_path: Path) -> None:
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"clim{seed}.npz"
        args = ["baseline", "climatology", "-F", str(features), "--n-samples", "4", "--seed",
                str(seed), "--out", str(path)]
        assert runner.invoke(app, [*args, "--name", f"clim-{seed}"]).exit_code == 0
        paths.append(path)
    result = runner.invoke(app, ["evaluate", *map(str, paths), "--out", str(tmp_path / "r"),
                                 "--reference", "climatolgy"])
    assert result.exit_code == 2 and "none of the forecasts" in result.output
    result = runner.invoke(app, ["evaluate", *map(str, paths), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "clim-0" in result.output and "clim-1" in result.output

"""``tapecast train`` on a state features folder (the score model) and ``tapecast density``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.commands.cli_helpers import invoke as _invoke
from tests.commands.cli_helpers import one_line_error as _one_line_error


def test_train_when_state_folder_writes_model_normalizer_and_threshold(
        trained: tuple[Path, Path, Path]) -> None:
    st, run, _ = trained
    for name in ("config.json", "model.safetensors", "normalizer.json", "threshold.json",
                 "run.json"):
        assert (run / name).is_file(), name
    assert (run / "normalizer.json").read_bytes() == (st / "normalizer.json").read_bytes()
    threshold = json.loads((run / "threshold.json").read_text())
    assert threshold["quantile"] == 0.99 and threshold["states"] == 3507
    assert np.isfinite(threshold["neg_log_p"])
    meta = json.loads((run / "config.json").read_text())
    assert meta["kind"] == "tapecast.score-matching" and meta["training"]["steps"] == 5
    assert meta["config"]["train"]["seed"] == 3 and len(meta["feature_names"]) == 10


def test_density_when_test_split_writes_log_p_per_bar(
        trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    st, run, _ = trained
    out = tmp_path / "d.parquet"
    code, output = _invoke("density", run, "-F", st, "-o", out)
    assert code == 0, output
    assert "mean log p" in output and "flagged" in output
    frame = pl.read_parquet(out)
    assert frame.columns == ["instrument", "ts", "known_at", "log_p", "anomaly"]
    assert frame.height == 732 and frame["log_p"].is_finite().all()
    threshold = json.loads((run / "threshold.json").read_text())["neg_log_p"]
    assert (frame["anomaly"] == (-frame["log_p"] > threshold)).all()


def test_density_when_exact_agrees_with_hutchinson_on_average(
        trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    st, run, _ = trained
    code, output = _invoke("density", run, "-F", st, "-o", tmp_path / "e.parquet",
                           "--split", "val", "--exact", "--steps", "5")
    assert code == 0, output
    code, output = _invoke("density", run, "-F", st, "-o", tmp_path / "h.parquet",
                           "--split", "val", "--steps", "5")
    assert code == 0, output
    exact = pl.read_parquet(tmp_path / "e.parquet")["log_p"].to_numpy()
    hutch = pl.read_parquet(tmp_path / "h.parquet")["log_p"].to_numpy()
    diff = hutch - exact
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff)) + 1e-6


def test_density_when_bad_inputs_exit_2_and_write_nothing(
        trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    st, run, other = trained
    out = tmp_path / "d.parquet"
    code, output = _invoke("density", run, "-F", other, "-o", out)
    assert code == 2 and "another normalization" in _one_line_error(output)
    code, output = _invoke("density", run, "-F", st, "-o", out, "--split", "train2")
    assert code == 2 and "--split must be one of train, val, test" in _one_line_error(output)
    code, output = _invoke("density", tmp_path / "nope", "-F", st, "-o", out)
    assert code == 2 and "no such model folder" in _one_line_error(output)
    code, output = _invoke("density", run, "-F", run, "-o", out)
    assert code == 2 and "needs a state features folder" in _one_line_error(output)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_forecast_when_score_run_points_to_density(
        trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    st, run, _ = trained
    code, output = _invoke("forecast", run, "-F", st, "-o", tmp_path / "f.npz")
    assert code == 2 and "tapecast density" in _one_line_error(output)
    code, output = _invoke("train", "-F", st, "-o", tmp_path / "r", "--preset", "tiny",
                           "--device", "cpu")
    assert code == 2 and "do not apply to the score model" in _one_line_error(output)
    assert not (tmp_path / "r").exists() and not (tmp_path / "f.npz").exists()


def test_baseline_when_given_a_state_folder_exits_2_pointing_to_density(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    assert _invoke("features", "--kind", "state", "--sp500", "-o", folder)[0] == 0
    code, output = _invoke("baseline", "climatology", "-F", folder, "-o", tmp_path / "b.npz")
    assert code == 2 and "tapecast density" in output
    assert not (tmp_path / "b.npz").exists()


def test_generate_when_score_run_writes_scenarios_with_given_features_fixed(
        trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, run, _ = trained
    out = tmp_path / "scen"
    code, output = _invoke("generate", run, "-o", out, "--samples", "64", "--seed", "1",
                           "--given", "return_1=-0.02", "--given", "volume_ratio=1.5")
    assert code == 0, output
    frame = pl.read_parquet(out / "scenarios.parquet")
    assert frame.height == 64 and frame["sample"].to_list() == list(range(64))
    np.testing.assert_allclose(frame["return_1"].to_numpy(), -0.02, rtol=1e-6)
    np.testing.assert_allclose(frame["volume_ratio"].to_numpy(), 1.5, rtol=1e-6)
    assert frame["return_5"].std() > 0 and "z_return_5" in frame.columns
    summary = json.loads((out / "summary.json").read_text())
    assert summary["given"] == {"return_1": -0.02, "volume_ratio": 1.5}
    # same seed, same draws
    code, _ = _invoke("generate", run, "-o", tmp_path / "again", "--samples", "64", "--seed",
                      "1", "--given", "return_1=-0.02", "--given", "volume_ratio=1.5")
    assert code == 0
    assert pl.read_parquet(tmp_path / "again" / "scenarios.parquet").equals(frame)


@pytest.mark.parametrize(("args", "words"), [
    (["--given", "rsi"], "expected FEATURE=VALUE"),
    (["--given", "rsi=abc"], "is not a finite number"),
    (["--given", "rsi=0.5", "--given", "rsi=0.6"], "given twice"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["-s", "feed.csv"], "a score model draws states"),
    (["--given", "return_1=-0.5"], "outside the training range"),
])
def test_generate_when_score_run_and_bad_options_exit_2_and_write_nothing(
        trained: tuple[Path, Path, Path], tmp_path: Path, args: list[str], words: str) -> None:
    _, run, _ = trained
    code, output = _invoke("generate", run, "-o", tmp_path / "scen", *args)
    assert code == 2 and words in _one_line_error(output)
    assert not (tmp_path / "scen").exists()


def test_density_and_generate_when_out_is_inside_the_run_refuse(
        trained: tuple[Path, Path, Path]) -> None:
    st, run, _ = trained
    code, output = _invoke("density", run, "-F", st, "-o", run / "d.parquet")
    assert code == 2 and "inside the input folder" in _one_line_error(output)
    code, output = _invoke("generate", run, "-o", run / "scen")
    assert code == 2 and "inside the input folder" in _one_line_error(output)
    assert not (run / "d.parquet").exists() and not (run / "scen").exists()


def test_train_when_model_score_alias_is_given_trains_the_score_model(tmp_path: Path) -> None:
    code, output = _invoke("features", "--kind", "state", "--sp500", "--out", tmp_path / "st")
    assert code == 0, output
    code, output = _invoke("train", "-F", tmp_path / "st", "-o", tmp_path / "run", "--model",
                           "score", "--preset", "tiny", "--max-steps", "2")
    assert code == 0, output
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["kind"] == "tapecast.score-matching"

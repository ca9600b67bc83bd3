"""``tapecast features --kind state``: bars or the embedded S&P 500 -> a state features folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.features.state_featureset import StateFeatureSet
from tests.conftest import shared_file
from tests.features.test_state import make_bars, random_bars

runner = CliRunner()


def _csv(frame: pl.DataFrame, path: Path) -> Path:
    """Hourly bars as the generic CSV: symbol, bob, eob, close, high, low, volume, amount."""
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    frame.select(pl.col("instrument").alias("symbol"), pl.col("ts").dt.strftime(stamp).alias("bob"),
                 (pl.col("ts") + pl.duration(hours=1)).dt.strftime(stamp).alias("eob"),
                 "close", "high", "low", "volume",
                 (pl.col("close") * pl.col("volume")).alias("amount")).write_csv(path)
    return path


def _invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["features", "--kind", "state", *map(str, args)])
    return result.exit_code, result.output


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return " ".join(output[output.index("error:"):].split())


def test_features_state_when_sp500_writes_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "st"
    code, output = _invoke("--sp500", "--out", out, "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{"):])
    assert report["kind"] == "state" and report["instruments"]["SP500"]["rows"] == 5011
    assert report["split"]["rows_per_split"] == {"train": 3507, "val": 732, "test": 732,
                                                 "embargo": 40}
    meta = json.loads((out / "features.json").read_text())
    assert meta["kind"] == "state" and len(meta["features"]) == 10
    fs = StateFeatureSet.open(out)
    assert np.abs(fs.matrix("train")).max() <= 5.0


def test_features_state_when_csv_bars_writes_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "bars"
    folder.mkdir()
    _csv(random_bars(300, seed=1), folder / "x_bars.csv")
    code, output = _invoke(folder, "--out", tmp_path / "st", "--embargo", "5",
                           "--train-fraction", "0.6", "--val-fraction", "0.2")
    assert code == 0, output
    fs = StateFeatureSet.open(tmp_path / "st")
    assert fs.split["embargo_rows"] == 5 and fs.split["train"] == 0.6
    assert fs.summary["X"]["rows"] == 280


def test_features_state_when_lean_hourly_bars_writes_the_folder(tmp_path: Path) -> None:
    spy = shared_file("lean/equity/usa/hour/spy.zip")
    code, output = _invoke(spy, "--out", tmp_path / "st")
    assert code == 0, output
    assert StateFeatureSet.open(tmp_path / "st").summary["SPY"]["bars"] > 40_000


def test_features_state_when_too_few_bars_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "bars"
    folder.mkdir()
    _csv(random_bars(15, seed=2), folder / "short.csv")
    code, output = _invoke(folder, "--out", tmp_path / "st")
    assert code == 2
    line = _one_line_error(output)
    assert "X: 15 bar(s), fewer than the 21" in line and "short.csv" in line
    assert not (tmp_path / "st").exists()


def test_features_state_when_nan_after_warmup_names_file_row_field(tmp_path: Path) -> None:
    folder = tmp_path / "bars"
    folder.mkdir()
    volume = [1.0] * 25 + [0.0] * 20 + [1.0] * 55
    _csv(make_bars(np.linspace(100, 120, 100).tolist(), volume), folder / "flat.csv")
    code, output = _invoke(folder, "--out", tmp_path / "st")
    assert code == 2
    line = _one_line_error(output)
    assert "X bar 44" in line and "'volume_ratio'" in line and "flat.csv" in line
    assert not (tmp_path / "st").exists()


def test_features_state_when_wrong_flags_exit_2(tmp_path: Path) -> None:
    code, output = _invoke("--sp500", "--context", "60", "--out", tmp_path / "st")
    assert code == 2 and "--context do(es) not apply to --kind state" in _one_line_error(output)
    code, output = _invoke(tmp_path, "--sp500", "--out", tmp_path / "st")
    assert code == 2 and "not both" in _one_line_error(output)
    code, output = _invoke("--out", tmp_path / "st")
    assert code == 2 and "--sp500" in _one_line_error(output)
    result = runner.invoke(app, ["features", "--kind", "price", "--sp500", "--synthetic",
                                 "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "--sp500" in _one_line_error(result.output)
    assert not (tmp_path / "st").exists()

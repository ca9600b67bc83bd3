from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.data.schemas import conform
from tapecast.data.store import write_store
from tapecast.data.tables import Tables
from tapecast.features.featureset import FeatureSet
from tapecast.features.orderflow import CHANNELS
from tests.conftest import shared_file

runner = CliRunner()


def _store(tmp_path: Path, days: int = 5, per_day: int = 400, seed: int = 0) -> Path:
    """A random-walk tape of unsigned trades over ``days`` UTC days (the CLI signs them)."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    day = np.repeat(np.arange(days), per_day)
    ts = (np.datetime64("2024-03-04T10:00", "ns") + day * np.timedelta64(1, "D")
          + np.tile(np.arange(per_day), days) * np.timedelta64(5, "s"))
    price = 100 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], size=n))
    frame = pl.DataFrame({"ts": pl.Series(ts).dt.replace_time_zone("UTC"),
                          "instrument": ["XYZ"] * n, "price": price,
                          "size": rng.integers(1, 20, size=n).astype(float),
                          "side": pl.Series([0] * n, dtype=pl.Int8)})
    write_store(Tables(source="synthetic", format="test", trades=conform(frame, "trades")),
                tmp_path / "store")
    return tmp_path / "store"


def test_features_when_store_given_writes_windows_with_split_and_summary(tmp_path: Path) -> None:
    store = _store(tmp_path)
    out = tmp_path / "feat"
    result = runner.invoke(app, ["features", str(store), "--window-trades", "10", "--context",
                                 "8", "--horizon", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    fs = FeatureSet.open(out)
    assert fs.windows.height == 5 * 40 and set(CHANNELS) <= set(fs.windows.columns)
    signs = report["signs"]  # the tape's first trades have no non-zero tick yet
    assert set(signs) == {"tick_rule", "unsigned"} and sum(signs.values()) == 2000
    assert 1 <= signs["unsigned"] <= 10
    per_split = report["splits"]["samples_per_split"]
    assert per_split["test"] == len(fs.dataset("test")) == (40 - 8 - 2) // 2 + 1
    assert fs.meta.config["window_trades"] == 10 and fs.split_spec.context == 8


def test_features_when_too_few_windows_exits_2_with_a_suggestion(tmp_path: Path) -> None:
    store = _store(tmp_path, per_day=120)
    result = runner.invoke(app, ["features", str(store), "--out", str(tmp_path / "f"),
                                 "--window-trades", "10"])
    assert result.exit_code == 2
    assert "too few windows" in result.output and "trades per window" in result.output
    assert not (tmp_path / "f").exists()


def test_features_when_path_is_not_data_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["features", str(tmp_path / "empty"), "--out",
                                 str(tmp_path / "f")])
    assert result.exit_code == 2 and "neither a tapecast store nor data files" in result.output


@pytest.mark.slow
def test_features_when_spy_ticks_regular_hours_gives_about_900_windows_a_full_day(
        tmp_path: Path) -> None:
    spy = shared_file("lean/equity/usa/tick/spy/20131008_trade.zip").parent
    result = runner.invoke(app, ["features", str(spy), "--session", "us-equity-rth",
                                 "--out", str(tmp_path / "spy"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    per_day = report["windows"]["windows_per_session"]["SPY"]
    assert per_day["2013-10-08"] == 880 and len(per_day) == 5
    assert report["windows"]["dropped_prints"]["non_market_condition"] > 0
    assert report["splits"]["samples_per_split"]["test"] > 0


def test_features_when_out_is_another_folder_refuses_and_keeps_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "keep.txt").write_text("precious")
    result = runner.invoke(app, ["features", str(store), "--window-trades", "10", "--out",
                                 str(keep)])
    assert result.exit_code == 2 and "not a features folder" in result.output
    assert (keep / "keep.txt").read_text() == "precious"


def test_features_when_window_trades_is_zero_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["features", str(_store(tmp_path)), "--window-trades", "0",
                                 "--out", str(tmp_path / "f")])
    assert result.exit_code == 2
    assert "OrderFlowConfig.window_trades: must be >= 1, got 0" in result.output


@pytest.mark.slow
def test_features_when_aig_trades_with_quotes_signs_by_lee_ready(tmp_path: Path) -> None:
    aig = shared_file("lean/equity/usa/tick/aig/20131007_quote.zip").parent
    result = runner.invoke(app, ["features", str(aig), "--session", "us-equity-rth",
                                 "--window-trades", "100", "--out", str(tmp_path / "aig"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    signs = report["signs"]
    assert signs["lee_ready"] > 0.99 * sum(signs.values())
    assert report["splits"]["samples_per_split"]["test"] > 0


@pytest.mark.slow
def test_features_when_binance_captures_uses_venue_signs_and_keeps_markets_apart(
        tmp_path: Path) -> None:
    binance = shared_file("hftbacktest_binance/spot/btcusdt_20240808.gz").parent.parent
    result = runner.invoke(app, ["features", str(binance), "--val-sessions", "0",
                                 "--window-trades", "20", "--context", "50", "--horizon", "5",
                                 "--out", str(tmp_path / "bn"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["signs"]) == {"exchange"}
    assert {"BTCUSDT", "BTCUSDT-PERP", "BTCUSD_PERP"} <= set(report["windows"]["windows"])
    assert report["splits"]["samples_per_split"]["test"] > 0


def test_features_when_two_sessions_and_default_split_suggests_val_sessions_0(
        tmp_path: Path) -> None:
    result = runner.invoke(app, ["features", str(_store(tmp_path, days=2)), "--window-trades",
                                 "10", "--out", str(tmp_path / "f")])
    assert result.exit_code == 2 and "--val-sessions 0" in result.output

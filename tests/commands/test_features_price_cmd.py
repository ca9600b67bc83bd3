"""``tapecast features --kind price``: 1-second bars -> a price features folder."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.features.price_featureset import PriceFeatureSet
from tests.conftest import shared_file
from tests.features.test_price import synthetic_bars

runner = CliRunner()
FAST = ["--kind", "price", "--context", "60"]  # 60-s context: fewer warm-up seconds per session


def _csv(frame: pl.DataFrame, path: Path) -> Path:
    """Trade bars as the seed's generic CSV: symbol, bob, eob, close, high, low, volume, amount."""
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    frame.select(pl.col("instrument").alias("symbol"), pl.col("ts").dt.strftime(stamp).alias("bob"),
                 (pl.col("ts") + pl.duration(seconds=1)).dt.strftime(stamp).alias("eob"),
                 "close", "high", "low", "volume",
                 (pl.col("close") * pl.col("volume")).alias("amount")).write_csv(path)
    return path


def _bars_folder(tmp_path: Path, days: int = 3) -> Path:
    folder = tmp_path / "bars"
    folder.mkdir()
    bars, _ = synthetic_bars(days=days)
    _csv(bars, folder / "x_bars.csv")
    return folder


def _invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["features", *map(str, args)])
    return result.exit_code, result.output


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return " ".join(output[output.index("error:"):].split())


def test_features_price_when_csv_bars_writes_the_folder_and_reports_trade_priced_days(
        tmp_path: Path) -> None:
    out = tmp_path / "feat"
    code, output = _invoke(_bars_folder(tmp_path), *FAST, "--out", out, "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{"):])
    assert report["kind"] == "price"
    assert report["sessions_without_quote_bars"] == [
        ["X", "2024-01-08"], ["X", "2024-01-09"], ["X", "2024-01-10"]]
    assert report["splits"]["sessions_per_split"] == {
        "train": ["2024-01-08"], "val": ["2024-01-09"], "test": ["2024-01-10"]}
    windows = report["windows"]["X"]
    assert windows["by_source"]["mid"]["valid"] == 0 and windows["valid"] > 20_000
    fs = PriceFeatureSet.open(out)
    assert fs.config.context_s == 60 and fs.config.session == "us-equity-rth"
    (entry,) = fs.source["files"]
    assert entry["path"].endswith("x_bars.csv") and len(entry["sha256"]) == 64
    assert len(fs.dataset("test")) == report["splits"]["windows_per_split"]["test"]


def test_features_price_when_printed_shows_the_tables_and_the_trade_days(tmp_path: Path) -> None:
    code, output = _invoke(_bars_folder(tmp_path), *FAST, "--out", tmp_path / "feat")
    assert code == 0, output
    assert "price windows: origins, valid, invalid by reason" in output
    assert "days priced by mid / trade" in output and "zero share" in output
    assert "priced by trades (no quote bars): X 2024-01-08, 2024-01-09, 2024-01-10" in output
    assert "embargo 209 s (at least 90 s)" in " ".join(output.split())


def test_features_price_when_synthetic_market_builds_from_no_files(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    code, output = _invoke("--synthetic", "--synthetic-sessions", "3", *FAST, "--out", out,
                           "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{"):])
    assert report["sessions_without_quote_bars"] == [] and "synthetic market" in report["source"]
    assert PriceFeatureSet.open(out).windows["instrument"].unique().to_list() == ["SYN"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--window-trades", "10"], "--window-trades do(es) not apply to --kind price"),
    (["--embargo", "60"], "embargo of 60 s is shorter than context + horizon (60 + 30 = 90 s)"),
    (["--context", "90"], "context_s"),
    (["--synthetic"], "or --synthetic, not both"),
])
def test_features_price_when_options_conflict_exits_2_with_one_line(
        tmp_path: Path, extra: list[str], message: str) -> None:
    code, output = _invoke(_bars_folder(tmp_path, days=1), *FAST, *extra, "--out",
                           tmp_path / "feat")
    assert code == 2 and message in _one_line_error(output)
    assert not (tmp_path / "feat").exists()


def test_features_when_no_source_names_the_choices(tmp_path: Path) -> None:
    code, output = _invoke(*FAST, "--out", tmp_path / "f")
    assert code == 2 and "or --synthetic for the built-in market" in _one_line_error(output)
    code, output = _invoke("--out", tmp_path / "f")
    assert code == 2 and "give a SOURCE" in _one_line_error(output)
    code, output = _invoke("--out", tmp_path / "f", "--synthetic")
    assert code == 2 and "--synthetic do(es) not apply to --kind orderflow" in output


def test_features_price_when_a_day_is_duplicated_names_the_files_and_writes_nothing(
        tmp_path: Path) -> None:
    folder = _bars_folder(tmp_path, days=1)
    bars, _ = synthetic_bars(days=1)
    _csv(bars.head(500), folder / "x_again.csv")
    code, output = _invoke(folder, *FAST, "--out", tmp_path / "feat")
    line = _one_line_error(output)
    assert code == 2 and "500 timestamp(s) of X duplicated, first on 2024-01-08" in line
    assert "x_again.csv" in line and "x_bars.csv" in line
    assert not (tmp_path / "feat").exists()


def test_features_price_when_a_file_goes_back_in_time_names_file_and_row(tmp_path: Path) -> None:
    folder = tmp_path / "bars"
    folder.mkdir()
    bars, _ = synthetic_bars(days=1)
    _csv(pl.concat([bars.slice(10, 5), bars.slice(0, 10)]), folder / "x_bars.csv")
    code, output = _invoke(folder, *FAST, "--out", tmp_path / "feat")
    line = _one_line_error(output)
    assert code == 2 and "x_bars.csv" in line and "row 6" in line


def test_features_price_when_a_day_has_no_regular_hours_data_names_it(tmp_path: Path) -> None:
    folder = _bars_folder(tmp_path, days=1)
    bars, _ = synthetic_bars(days=1)
    early = bars.filter(pl.col("ts").dt.hour() == 13).with_columns(  # 08:00-09:00 New York
        pl.col("ts") + pl.duration(days=1))
    _csv(early, folder / "x_early.csv")
    code, output = _invoke(folder, *FAST, "--out", tmp_path / "feat")
    line = _one_line_error(output)
    assert code == 2, output
    assert f"X 2024-01-09: {early.height:,} bar(s), none inside the us-equity-rth" in line
    assert "(file(s): x_early.csv)" in line


def test_features_price_when_too_few_bars_for_one_window_exits_2(tmp_path: Path) -> None:
    folder = tmp_path / "bars"
    folder.mkdir()
    bars, _ = synthetic_bars(days=1)
    _csv(bars.filter(pl.col("ts").dt.hour() == 16).head(10), folder / "x_bars.csv")
    code, output = _invoke(folder, *FAST, "--out", tmp_path / "feat")
    assert code == 2 and "too few bars for one window (X 2024-01-08" in _one_line_error(output)
    assert not (tmp_path / "feat").exists()


def test_features_price_when_mid_asked_without_quote_bars_exits_2(tmp_path: Path) -> None:
    code, output = _invoke(_bars_folder(tmp_path, days=1), *FAST, "--price", "mid", "--out",
                           tmp_path / "feat")
    line = _one_line_error(output)
    assert code == 2 and "price='mid': X 2024-01-08 has" in line and "no quote bars" in line
    assert "x_bars.csv" in line


@pytest.fixture
def aig_days(tmp_path: Path) -> Path:
    """AIG 2013-10-04 (trade bars only) and 2013-10-07 (trade and quote bars), linked."""
    folder = tmp_path / "aig"
    folder.mkdir()
    for name in ("20131004_trade.zip", "20131007_trade.zip", "20131007_quote.zip"):
        (folder / name).symlink_to(shared_file(f"lean/equity/usa/second/aig/{name}"))
    return folder


def test_features_price_when_lean_aig_counts_the_trade_only_day(
        tmp_path: Path, aig_days: Path) -> None:
    code, output = _invoke(aig_days, "--kind", "price", "--val-sessions", "0", "--out",
                           tmp_path / "feat", "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{"):])
    assert report["sessions_without_quote_bars"] == [["AIG", "2013-10-04"]]
    assert report["splits"]["sessions_per_split"]["test"] == ["2013-10-07"]
    aig = report["windows"]["AIG"]
    assert aig["by_session"]["2013-10-07"]["valid"] > 20_000
    assert aig["by_source"]["trade"]["valid"] > 0 and aig["by_source"]["mid"]["valid"] > 20_000
    assert 0.1 < aig["by_session"]["2013-10-07"]["zero_return_share"] < 0.5
    files = PriceFeatureSet.open(tmp_path / "feat").source["files"]
    assert sorted(Path(f["path"]).name for f in files) == [
        "20131004_trade.zip", "20131007_quote.zip", "20131007_trade.zip"]


def test_features_price_when_lean_aig_mid_asked_names_the_day_without_quotes(
        tmp_path: Path, aig_days: Path) -> None:
    code, output = _invoke(aig_days, "--kind", "price", "--price", "mid", "--val-sessions", "0",
                           "--out", tmp_path / "feat")
    line = _one_line_error(output)
    assert code == 2 and "AIG 2013-10-04 has" in line and "20131004_trade.zip" in line
    assert not (tmp_path / "feat").exists()

"""``tapecast backtest``: a trained score run on a split, and the walk-forward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.commands.cli_helpers import invoke as _invoke
from tests.commands.cli_helpers import one_line_error as _one_line_error

POSITIONS = ["position_real", "position_shuffle", "position_naive", "position_random"]




def test_backtest_when_run_on_test_split_writes_positions_and_summary(
        trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    st, run, _ = trained
    out = tmp_path / "bt.parquet"
    code, output = _invoke("backtest", run, "-F", st, "-o", out, "--n-boot", "200")
    assert code == 0, output
    assert "REAL" in output and "NAIVE" in output and "0.8-1.5" in output
    frame = pl.read_parquet(out)
    assert frame.columns[:5] == ["instrument", "ts", "known_at", "fold", "next_return"]
    assert set(POSITIONS) <= set(frame.columns)
    assert frame.height == 731  # 732 test states, the last without a next bar
    assert (frame["position_naive"] == 1.0).all()
    assert np.abs(frame["position_real"].to_numpy()).max() <= 1.0
    state = pl.read_parquet(st / "state.parquet")
    test = state.filter(pl.col("split") == "test")
    np.testing.assert_array_equal(frame["next_return"].to_numpy(), test["return_1"][1:])
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["mode"] == "run" and summary["bars"] == 731
    assert summary["seed_claimed_sharpe"] == [0.8, 1.5]
    assert summary["real_sharpe"] == summary["arms"]["REAL"]["metrics"]["sharpe"]
    assert summary["calibration"]["feature_index"] == 0
    assert 0 < summary["arms"]["NAIVE"]["versus_real"]["p_value"] <= 1


def test_backtest_when_walk_forward_trains_a_model_per_fold(
        trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    st, _, _ = trained
    out = tmp_path / "wf.parquet"
    code, output = _invoke("backtest", "-F", st, "--walk-forward", "--folds", "2",
                           "--max-steps", "3", "--n-boot", "100", "-o", out)
    assert code == 0, output
    frame = pl.read_parquet(out)
    assert sorted(frame["fold"].unique().to_list()) == [0, 1]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["mode"] == "walk-forward" and summary["folds"] == 2
    assert [f["steps"] for f in summary["fold_details"]] == [3, 3]
    assert summary["bars"] == frame.height


@pytest.mark.parametrize(("args", "message"), [
    (("--cost", "-0.001"), "--cost must be a finite number >= 0"),
    (("--walk-forward", "--folds", "1"), "--folds must be at least 2"),
    (("--split", "all"), "--split must be one of train, val, test"),
    (("--periods-per-year", "0"), "--periods-per-year must be > 0"),
    (("--folds", "3"), "--folds set the walk-forward's models"),
    (("--preset", "small", "--max-steps", "5"), "--preset, --max-steps set the walk-forward"),
    (("--walk-forward", "--split", "val"), "--split chooses the split RUN trades"),
])
def test_backtest_when_bad_options_exit_2_and_write_nothing(
        trained: tuple[Path, Path, Path], tmp_path: Path, args: tuple[str, ...],
        message: str) -> None:
    st, run, _ = trained
    out = tmp_path / "bt.parquet"
    lead = () if "--walk-forward" in args else (run,)
    code, output = _invoke("backtest", *lead, "-F", st, "-o", out, *args)
    assert code == 2 and message in _one_line_error(output)
    assert not list(tmp_path.iterdir())


def test_backtest_when_bad_inputs_exit_2_and_write_nothing(
        trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    st, run, other = trained
    out = tmp_path / "bt.parquet"
    code, output = _invoke("backtest", run, "-F", other, "-o", out)
    assert code == 2 and "another normalization" in _one_line_error(output)
    code, output = _invoke("backtest", run, "-F", st, "-o", out, "--walk-forward")
    assert code == 2 and "give no RUN" in _one_line_error(output)
    code, output = _invoke("backtest", "-F", st, "-o", out)
    assert code == 2 and "--walk-forward to train one" in _one_line_error(output)
    code, output = _invoke("backtest", run, "-F", run, "-o", out)
    assert code == 2 and "needs a state features folder" in _one_line_error(output)
    price_run = tmp_path / "price"
    price_run.mkdir()
    (price_run / "config.json").write_text(json.dumps({"kind": "tapecast.price-diffusion"}))
    code, output = _invoke("backtest", price_run, "-F", st, "-o", out)
    assert code == 2 and "a price-diffusion model, not a score model" in _one_line_error(output)
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["price"]


def test_backtest_when_out_is_inside_an_input_folder_refuses(
        trained: tuple[Path, Path, Path]) -> None:
    st, run, _ = trained
    before = {p.name: p.stat().st_mtime_ns for p in st.iterdir()}
    code, output = _invoke("backtest", run, "-F", st, "-o", st / "state.parquet")
    assert code == 2 and "inside the input folder" in _one_line_error(output)
    code, output = _invoke("backtest", run, "-F", st, "-o", run / "model.parquet")
    assert code == 2 and "inside the input folder" in _one_line_error(output)
    assert {p.name: p.stat().st_mtime_ns for p in st.iterdir()} == before
    assert not (run / "model.parquet").exists()


def test_backtest_when_several_instruments_refuses(tmp_path: Path) -> None:
    import polars as pl

    from tapecast.data.readers.embedded import sp500_daily_bars

    bars = sp500_daily_bars()
    two = pl.concat([bars, bars.with_columns(pl.lit("COPY").alias("instrument"))])
    from tapecast.features.state_config import StateConfig
    from tapecast.features.state_featureset import StateFeatureSet

    StateFeatureSet.build(two, StateConfig(), source="two").save(tmp_path / "st2")
    code, output = _invoke("backtest", "-F", tmp_path / "st2", "--walk-forward", "-o",
                           tmp_path / "bt.parquet")
    assert code == 2 and "one instrument at a time" in _one_line_error(output)
    assert not (tmp_path / "bt.parquet").exists()

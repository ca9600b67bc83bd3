from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tapecast.cli import app

runner = CliRunner()


def test_demo_when_data_path_is_missing_exits_2_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--data", str(tmp_path / "nope"), "--out",
                                 str(tmp_path / "d")])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "expected an existing" in errors[0]


def test_demo_when_out_is_a_foreign_folder_exits_2_and_leaves_it(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not a demo folder" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("budget", ["0", "-1", "inf", "nan"])
def test_demo_when_budget_is_not_positive_and_finite_exits_2_before_any_work(
        tmp_path: Path, budget: str) -> None:
    result = runner.invoke(app, ["demo", "--budget-minutes", budget, "--out",
                                 str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "--budget-minutes must be a positive finite number" in result.output
    assert not (tmp_path / "d").exists()


def test_demo_when_session_is_unknown_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--session", "lunar", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "FeatureOptions.session: must be one of 'auto', 'us-equity-rth'" in result.output


def test_demo_when_data_is_too_small_exits_2_with_the_counts(tmp_path: Path) -> None:
    from tests.commands.test_features_cmd import _store

    store = _store(tmp_path, days=3, per_day=100)
    result = runner.invoke(app, ["demo", "--data", str(store), "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "too small for the demo" in result.output and "trades" in result.output


def test_demo_when_n_samples_is_below_two_exits_2_naming_the_flag(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--n-samples", "1", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "--n-samples must be at least 2" in result.output

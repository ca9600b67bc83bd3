"""Backtest of the score signal (workflows/score_backtest.py): alignment, arms, walk-forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.evaluate.trading import trading_metrics
from tapecast.workflows.progress import Quiet
from tapecast.workflows.score_backtest import (
    ARMS,
    backtest_arms,
    backtest_states,
    fold_starts,
    next_bar_returns,
    walk_forward,
)

SP500_STATE = "sp500-state"


def _table(n: int, instruments: tuple[str, ...] = ("A", "B"), seed: int = 0) -> pl.DataFrame:
    """A state table with i.i.d. zero-mean daily returns, n rows per instrument."""
    rng = np.random.default_rng(seed)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    frames = [pl.DataFrame({
        "instrument": [name] * n,
        "ts": [start + timedelta(days=i) for i in range(n)],
        "row": np.arange(20, 20 + n),
        "return_1": rng.normal(0.0, 0.01, n)}) for name in instruments]
    table = pl.concat(frames)
    return table.with_columns(known_at=pl.col("ts") + timedelta(hours=6))


def test_next_bar_returns_when_rows_are_consecutive_is_the_next_rows_return() -> None:
    table = _table(5)
    nxt = next_bar_returns(table)
    r = table["return_1"].to_numpy()
    np.testing.assert_array_equal(nxt[[0, 1, 2, 3]], r[[1, 2, 3, 4]])
    np.testing.assert_array_equal(nxt[[5, 6, 7, 8]], r[[6, 7, 8, 9]])
    assert np.isnan(nxt[4]) and np.isnan(nxt[9])  # each instrument's last row: no next bar
    gap = table.filter(pl.col("row") != 22)  # row 21's next row is 23: not the next bar
    assert np.isnan(next_bar_returns(gap)[1])


def test_backtest_states_when_signal_uses_the_bar_it_is_paid_on_would_be_rich() -> None:
    table = _table(3000, ("A",))
    r = table["return_1"].to_numpy()
    folds = np.zeros(table.height, dtype=np.int64)
    # known at row t: the row's own return. Paid the NEXT bar, an i.i.d. return: no skill.
    honest = backtest_states(table, np.sign(r), folds, cost=0.0, n_boot=100)
    assert abs(honest.arms["REAL"].metrics["sharpe"]) < 1.0
    assert honest.returns.size == table.height - 1  # the last row has no next bar
    np.testing.assert_array_equal(honest.returns, r[1:])
    np.testing.assert_allclose(honest.arms["REAL"].pnl, np.sign(r[:-1]) * r[1:])
    # paying row t its own return would make the honest signal this look-ahead one
    cheat = backtest_states(table, np.sign(np.append(r[1:], 0.0)), folds, cost=0.0,
                            n_boot=100)
    assert cheat.arms["REAL"].metrics["sharpe"] > 10


def test_backtest_arms_when_naive_equals_buy_and_hold_metrics() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.0004, 0.01, 500)
    w = rng.uniform(-1, 1, 500)
    res = backtest_arms(w, r, np.repeat([0, 1], 250), cost=0.001, periods_per_year=252, seed=3,
                        n_boot=50)
    assert tuple(res.arms) == ARMS
    assert res.arms["NAIVE"].metrics == trading_metrics(np.ones(500), r, cost=0.001,
                                                        periods_per_year=252)
    assert res.arms["REAL"].metrics == trading_metrics(w, r, cost=0.001, periods_per_year=252)
    np.testing.assert_allclose(res.arms["REAL"].equity, np.cumsum(res.arms["REAL"].pnl))
    assert set(np.unique(res.arms["RANDOM"].positions)) == {-1.0, 1.0}
    assert res.arms["REAL"].versus_real is None
    assert all(res.arms[a].versus_real is not None for a in ARMS[1:])


def test_backtest_arms_when_shuffled_is_a_within_fold_permutation_of_real() -> None:
    w = np.arange(300, dtype=np.float64)
    folds = np.repeat([0, 1, 2], 100)
    res = backtest_arms(w, np.zeros(300), folds, seed=7, n_boot=10)
    shuffled = res.arms["SHUFFLE"].positions
    for k in range(3):
        np.testing.assert_array_equal(np.sort(shuffled[folds == k]), w[folds == k])
    assert not np.array_equal(shuffled, w)
    again = backtest_arms(w, np.zeros(300), folds, seed=7, n_boot=10)
    np.testing.assert_array_equal(again.arms["SHUFFLE"].positions, shuffled)


def test_backtest_arms_when_real_has_planted_skill_bootstrap_p_is_small() -> None:
    rng = np.random.default_rng(2)
    r = rng.normal(0.0, 0.01, 2000)
    right = rng.random(2000) < 0.6  # right 60 % of the time
    w = np.where(right, np.sign(r), -np.sign(r))
    res = backtest_arms(w, r, np.repeat([0, 1], 1000), cost=0.0, n_boot=500, seed=0)
    for arm in ("SHUFFLE", "NAIVE", "RANDOM"):
        versus = res.arms[arm].versus_real
        assert versus is not None and versus.p_value < 0.01 and versus.estimate > 0, arm
    noise = backtest_arms(rng.choice([-1.0, 1.0], 2000), r, np.zeros(2000), n_boot=500)
    naive = noise.arms["NAIVE"].versus_real
    assert naive is not None and naive.p_value > 0.01


def test_backtest_arms_when_inputs_disagree_raise() -> None:
    with pytest.raises(TapecastError, match="one length"):
        backtest_arms(np.zeros(3), np.zeros(4), np.zeros(3))
    with pytest.raises(TapecastError, match="finite"):
        backtest_arms(np.zeros(3), np.array([0.0, np.nan, 0.0]), np.zeros(3))


def test_fold_starts_when_fewer_than_two_folds_raise() -> None:
    with pytest.raises(TapecastError, match="at least 2 folds"):
        fold_starts(_table(50), 1)
    cuts = fold_starts(_table(100), 4)
    assert len(cuts) == 5 and cuts[-1] is None and cuts[:-1] == sorted(cuts[:-1])


@pytest.fixture(scope="module")
def sp500_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from tapecast.cli import app

    out = tmp_path_factory.mktemp("wf") / SP500_STATE
    result = CliRunner().invoke(app, ["features", "--kind", "state", "--sp500", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_walk_forward_when_sp500_tests_each_block_after_its_training(sp500_state: Path) -> None:
    from tapecast.features.state_featureset import StateFeatureSet

    fs = StateFeatureSet.open(sp500_state)
    reporter = Quiet()
    res = walk_forward(fs.table, fs.config.names, folds=2, config="tiny", max_steps=3,
                       embargo=20, n_boot=50, seed=1, reporter=reporter)
    cuts = fold_starts(fs.table, 2)
    assert res.signals.height == fs.table.filter(pl.col("known_at") >= cuts[0]).height
    for info in res.folds:
        before = fs.table.filter(pl.col("known_at") < cuts[info["fold"]]).height
        assert info["fit_rows"] + info["val_rows"] == before - 20  # the purged embargo
        assert info["steps"] == 3
    first = res.signals.filter(pl.col("fold") == 1)["known_at"].min()
    assert first == cuts[1]
    assert np.abs(res.signals["position"].to_numpy()).max() <= 1.0
    assert res.backtest.returns.size == res.signals.height - 1  # the last bar has no next bar
    assert reporter.stages == ["walk-forward"] and reporter.updates["walk-forward"][-1][0] == 2
    again = walk_forward(fs.table, fs.config.names, folds=2, config="tiny", max_steps=3,
                         embargo=20, n_boot=50, seed=1)
    assert again.signals.equals(res.signals)

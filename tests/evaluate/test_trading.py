"""Trading metrics on a tiny hand-computed P&L series with costs, and the undefined cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.evaluate.trading import period_pnl, trading_metrics

# Hand example. positions w = 1 1 -1 0 1, returns r = 1 % -2 % -1 % 3 % 2 %, cost c = 0.1 %.
# traded |w_t - w_{t-1}| (w_{-1} = 0) = 1 0 2 1 1          -> turnover 5 / 5 = 1.0
# gross w·r                         = .01 -.02 .01 0 .02
# pnl = gross - c·traded            = .009 -.020 .008 -.001 .019
# cumulative C                      = .009 -.011 -.003 -.004 .015  -> total_return .015
# running peak (from 0)             = .009 .009 .009 .009 .015     -> max drawdown .020
# mean pnl = .015 / 5 = .003; deviations .006 -.023 .005 -.004 .016, Σ² = 862e-6
#   std (ddof 1) = sqrt(862e-6 / 4);  sharpe = .003 / std · sqrt(252)
# downside: min(pnl, 0)² = 0 400e-6 0 1e-6 0, mean 80.2e-6 -> sortino = .003 / sqrt(80.2e-6) · √252
# win rate: 5 nonzero periods, 3 positive -> 0.6; profit factor = .036 / .021
POSITIONS = [1.0, 1.0, -1.0, 0.0, 1.0]
RETURNS = [0.01, -0.02, -0.01, 0.03, 0.02]
COST = 0.001


def test_period_pnl_when_costs_charged_matches_hand_values() -> None:
    pnl = period_pnl(POSITIONS, RETURNS, cost=COST)
    np.testing.assert_allclose(pnl, [0.009, -0.020, 0.008, -0.001, 0.019], atol=1e-15)


def test_trading_metrics_when_hand_example_matches_hand_values() -> None:
    m = trading_metrics(POSITIONS, RETURNS, cost=COST, periods_per_year=252, initial_equity=1.0)
    assert m["sharpe"] == pytest.approx(0.003 / math.sqrt(862e-6 / 4) * math.sqrt(252), rel=1e-9)
    assert m["sharpe"] == pytest.approx(3.2441, abs=1e-4)
    assert m["sortino"] == pytest.approx(0.003 / math.sqrt(80.2e-6) * math.sqrt(252), rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(0.020, abs=1e-12)
    assert m["max_drawdown_relative"] == pytest.approx(0.020 / 1.009, rel=1e-9)
    assert m["win_rate"] == pytest.approx(0.6)
    assert m["profit_factor"] == pytest.approx(0.036 / 0.021, rel=1e-9)
    assert m["turnover"] == pytest.approx(1.0)
    assert m["total_return"] == pytest.approx(0.015, abs=1e-12)
    assert m["n_periods"] == 5


def test_trading_metrics_when_costs_added_total_return_drops_by_cost_times_traded() -> None:
    free = trading_metrics(POSITIONS, RETURNS)
    paid = trading_metrics(POSITIONS, RETURNS, cost=COST)
    assert free["total_return"] - paid["total_return"] == pytest.approx(COST * 5, abs=1e-15)
    assert free["max_drawdown"] == pytest.approx(0.02, abs=1e-12)  # same trough, no costs
    assert math.isnan(free["max_drawdown_relative"])  # no initial equity given


def test_trading_metrics_when_pnl_only_rises_drawdown_zero_profit_factor_nan() -> None:
    m = trading_metrics([1.0, 1.0, 1.0], [0.01, 0.02, 0.03])
    assert m["max_drawdown"] == 0.0 and m["win_rate"] == 1.0
    assert math.isnan(m["profit_factor"]) and math.isnan(m["sortino"])  # no loss, no downside


def test_trading_metrics_when_first_period_loses_drawdown_counts_from_zero() -> None:
    m = trading_metrics([1.0, 1.0], [-0.05, 0.01])
    assert m["max_drawdown"] == pytest.approx(0.05)


def test_trading_metrics_when_always_flat_ratios_are_nan() -> None:
    m = trading_metrics(np.zeros(10), np.linspace(-0.01, 0.01, 10))
    for key in ("sharpe", "sortino", "win_rate", "profit_factor"):
        assert math.isnan(m[key]), key
    assert m["turnover"] == 0.0 and m["total_return"] == 0.0 and m["max_drawdown"] == 0.0


def test_trading_metrics_when_empty_gives_nan_and_zero_periods() -> None:
    m = trading_metrics([], [])
    assert m["n_periods"] == 0 and math.isnan(m["sharpe"]) and math.isnan(m["max_drawdown"])


def test_trading_metrics_when_periods_per_year_changes_sharpe_scales_by_root() -> None:
    rng = np.random.default_rng(1)
    positions, returns = np.sign(rng.standard_normal(100)), 0.01 * rng.standard_normal(100)
    daily = trading_metrics(positions, returns, periods_per_year=252)["sharpe"]
    hourly = trading_metrics(positions, returns, periods_per_year=252 * 7)["sharpe"]
    assert hourly == pytest.approx(daily * math.sqrt(7), rel=1e-12)


@pytest.mark.parametrize(
    ("positions", "returns", "kwargs"),
    [
        ([1.0, 0.0], [0.01], {}),
        ([1.0, np.nan], [0.01, 0.02], {}),
        ([1.0], [0.01], {"cost": -0.001}),
        ([1.0], [0.01], {"periods_per_year": 0}),
        ([1.0], [0.01], {"initial_equity": 0.0}),
    ],
)
def test_trading_metrics_when_input_invalid_raises(
    positions: list[float], returns: list[float], kwargs: dict[str, float]
) -> None:
    with pytest.raises(TapecastError):
        trading_metrics(positions, returns, **kwargs)  # type: ignore[arg-type]

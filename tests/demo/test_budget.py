from __future__ import annotations

import pytest

from tapecast.core.errors import TapecastError
from tapecast.demo.budget import (
    DEFAULT_SAMPLER_STEPS,
    BudgetPlan,
    BudgetRules,
    Throughput,
    even_windows,
    plan_budget,
)


def _cost(plan: BudgetPlan, s_per_window_step: float) -> float:
    steps = sum(n * (1.15 if k == "sde-mgd" else 1.0) for k, n in plan.sampler_steps.items())
    return plan.n_windows * steps * s_per_window_step


def test_plan_budget_when_budget_is_ample_keeps_defaults_and_every_window() -> None:
    plan = plan_budget(3600.0, Throughput(0.5, 0.01), n_test=45)
    assert plan.train_steps == 250 and plan.models == ("gaussian", "jump-laplace", "shuffle")
    assert plan.sampler_steps == {**DEFAULT_SAMPLER_STEPS, "SHUFFLE": 50}
    assert plan.windows == tuple(range(45)) and plan.skipped == {}


def test_plan_budget_when_default_budget_fits_training_and_sampling_in_their_shares() -> None:
    rules = BudgetRules()
    throughput = Throughput(train_s_per_step=1.0, sample_s_per_window_step=0.054)
    plan = plan_budget(570.0, throughput, n_test=50, rules=rules)
    n_models = len(plan.models)
    assert n_models * plan.train_steps * throughput.train_s_per_step <= plan.train_s
    assert _cost(plan, 0.054) <= plan.forecast_s * (1 - rules.reserve_share) + 1e-9
    assert plan.n_windows >= rules.min_windows
    assert any("subsampled" in n or "reduced" in n for n in plan.notes)


def test_plan_budget_when_training_is_slow_skips_shuffle_and_says_why() -> None:
    plan = plan_budget(600.0, Throughput(train_s_per_step=2.0, sample_s_per_window_step=0.001),
                       n_test=40)
    assert plan.models == ("gaussian", "jump-laplace")
    assert plan.train_steps == 75  # 300 s / (2 models x 2 s)
    assert "SHUFFLE" not in plan.sampler_steps
    assert plan.skipped["SHUFFLE jl/sde"].startswith("n/a budget")


def test_plan_budget_when_sampling_is_slow_reduces_steps_before_windows() -> None:
    # affordable window-steps: 0.7 * 300 s / 0.03 s = 7,000; the defaults need 40 windows x
    # 217.5 = 8,700 -> the steps shrink, every window is kept
    plan = plan_budget(600.0, Throughput(0.1, 0.03), n_test=40)
    assert plan.n_windows == 40
    assert plan.sampler_steps["ddim"] == 10
    assert 25 <= plan.sampler_steps["sde"] < 50
    assert _cost(plan, 0.03) <= 0.7 * plan.forecast_s + 0.5  # rounding of steps


def test_plan_budget_when_sampling_is_very_slow_subsamples_windows_evenly() -> None:
    plan = plan_budget(600.0, Throughput(0.1, 0.1), n_test=100)
    assert plan.sampler_steps["sde"] == 25 and plan.sampler_steps["ddpm"] == 25
    assert 12 <= plan.n_windows < 100
    assert plan.windows[0] == 0 and plan.windows[-1] == 99
    assert any("subsampled evenly" in n for n in plan.notes)


def test_plan_budget_when_the_floor_does_not_fit_drops_shuffle_then_ddpm() -> None:
    # 0.7 * 300 s / 0.25 s = 840 window-steps; 12 windows at the floor steps need 1,365 with
    # every sampler, 1,065 without SHUFFLE, 765 without SHUFFLE and ddpm
    plan = plan_budget(600.0, Throughput(0.1, 0.25), n_test=100)
    assert "SHUFFLE" not in plan.sampler_steps and "ddpm" not in plan.sampler_steps
    assert "shuffle" not in plan.models  # not trained when its forecast cannot be drawn
    assert set(plan.skipped) == {"SHUFFLE jl/sde", "vp/ddpm"}
    assert plan.n_windows >= 12 and _cost(plan, 0.25) <= 0.7 * plan.forecast_s


def test_plan_budget_when_only_one_sampler_fits_trains_only_its_model() -> None:
    # 840 -> 400 window-steps: ddim + sde-mgd at 12 windows need 465, sde-mgd alone 345
    plan = plan_budget(600.0, Throughput(0.1, 0.525), n_test=100)
    assert set(plan.sampler_steps) == {"sde-mgd"} and plan.models == ("jump-laplace",)
    assert plan.train_steps == 250  # the one model gets the whole training part
    assert plan.n_windows >= 12 and _cost(plan, 0.525) <= 0.7 * plan.forecast_s


def test_plan_budget_when_no_sampler_fits_plans_baselines_only_never_an_overrun() -> None:
    plan = plan_budget(600.0, Throughput(0.1, 5.0), n_test=100)
    assert plan.sampler_steps == {} and plan.models == () and plan.train_steps == 0
    assert set(plan.skipped) == {"SHUFFLE jl/sde", "vp/ddpm", "jl/sde", "vp/ddim",
                                 "jl/sde-mgd"}
    assert all(r.startswith("n/a budget") for r in plan.skipped.values())
    assert plan.n_windows == 100  # the baselines are cheap: every test window
    assert not any("over budget" in n for n in plan.notes)


def test_plan_budget_when_round_tripped_through_json_is_unchanged() -> None:
    plan = plan_budget(300.0, Throughput(0.7, 0.05), n_test=33)
    assert BudgetPlan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize("budget,n_test", [(0.0, 10), (-5.0, 10), (100.0, 0)])
def test_plan_budget_when_budget_or_test_set_is_empty_raises(budget: float, n_test: int) -> None:
    with pytest.raises(TapecastError):
        plan_budget(budget, Throughput(1.0, 1.0), n_test=n_test)


def test_throughput_when_rate_is_not_positive_raises() -> None:
    with pytest.raises(TapecastError, match="train_s_per_step"):
        Throughput(0.0, 1.0)


def test_even_windows_when_fewer_asked_spreads_them_over_the_range() -> None:
    assert even_windows(10, 3) == (0, 4, 9) or even_windows(10, 3) == (0, 5, 9)
    assert even_windows(5, 10) == (0, 1, 2, 3, 4)


def test_budget_rules_when_a_count_is_below_one_names_the_field() -> None:
    with pytest.raises(TapecastError, match=r"BudgetRules\.min_windows: must be >= 1"):
        BudgetRules(min_windows=0)

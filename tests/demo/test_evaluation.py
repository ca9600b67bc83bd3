from __future__ import annotations

from typing import Any

from tapecast.demo.evaluation import best_model, report_key

DEMO: dict[str, Any] = {"budget_minutes": 10.0, "plan": {"train_steps": 80},
                        "throughput": {"train_s_per_step": 1.0}, "features": {"window_trades": 500},
                        "notes": ["a"], "reused_steps": ["features"], "skipped": {}}


def _entry(skill: float | None) -> dict[str, Any]:
    return {"crps_skill": {"mean": skill}} if skill is not None else {}


def test_best_model_when_models_are_scored_picks_the_highest_skill_model_only() -> None:
    metrics = {"forecasters": {"climatology": _entry(0.0), "naive": _entry(0.9),
                               "vp/ddim": _entry(0.1), "jl/sde-mgd": _entry(0.3),
                               "SHUFFLE jl/sde": _entry(0.5)}}
    assert best_model(metrics) == "jl/sde-mgd"  # baselines and the SHUFFLE control never


def test_best_model_when_no_model_ran_or_none_is_scored_falls_back() -> None:
    assert best_model({"forecasters": {"climatology": _entry(0.0)}}) is None
    unscored = {"forecasters": {"climatology": _entry(0.0), "jl/sde": _entry(None)}}
    assert best_model(unscored) == "jl/sde"


def test_report_key_when_budget_plan_or_features_change_changes() -> None:
    base = report_key(["k1", "k2"], {}, ["climatology"], DEMO)
    for field, value in (("budget_minutes", 5.0), ("plan", {"train_steps": 40}),
                         ("throughput", {"train_s_per_step": 2.0}),
                         ("features", {"window_trades": 250})):
        assert report_key(["k1", "k2"], {}, ["climatology"], {**DEMO, field: value}) != base
    assert report_key(["k1", "k2"], {"garch": "n/a"}, ["climatology"], DEMO) != base


def test_report_key_when_only_the_run_notes_or_reused_steps_differ_is_unchanged() -> None:
    base = report_key(["k1", "k2"], {}, ["climatology"], DEMO)
    rerun = {**DEMO, "notes": [], "reused_steps": ["features", "report"]}
    assert report_key(["k2", "k1"], {}, ["climatology"], rerun) == base

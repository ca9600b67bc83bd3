from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Forecast
from tapecast.data.store import MANIFEST as STORE_MANIFEST
from tapecast.demo import BudgetRules, DemoOptions, FeatureOptions, Quiet, run_demo
from tapecast.demo.manifest import MANIFEST_FILE, Manifest
from tapecast.demo.run import prepare_out
from tapecast.sim import SyntheticMarketConfig
from tests.models.test_jl_csdi import tiny_config

EVERY_FORECASTER = {"climatology", "naive", "bootstrap", "hist-vol", "garch", "jl/sde-mgd",
                    "jl/sde", "vp/ddim", "vp/ddpm", "SHUFFLE jl/sde"}


def tiny_options(out: Path, **changes: object) -> DemoOptions:
    """A demo that runs in seconds: a 4-session market of 3,000 trades a session, 20-trade
    windows, C = 8, H = 2, the tiny JL-CSDI config (20 steps, 3 reverse steps), 8 samples."""
    options = DemoOptions(
        out=out, budget_minutes=10.0, n_samples=8,
        features=FeatureOptions(window_trades=20, context=8, horizon=2, min_train=20,
                                min_test=4),
        config=tiny_config(steps=20),
        market=SyntheticMarketConfig(n_sessions=4, trades_per_session=3_000),
        rules=BudgetRules(shuffle_min_steps=5, min_windows=4))
    return replace(options, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Quiet]:
    """The demo folder of one tiny run and the reporter it reported to."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    reporter = Quiet()
    run_demo(tiny_options(out), reporter)
    return out, reporter


@pytest.mark.slow
def test_run_demo_when_it_makes_the_market_and_features_reports_one_bar_over_them(
        first_run: tuple[Path, Quiet]) -> None:
    _, reporter = first_run
    stage = "data and features"
    assert reporter.stages[0] == stage and reporter.totals[stage] == 3
    done = [c for c, _ in reporter.updates[stage]]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 3
    assert any("generating the built-in market" in s for _, s in reporter.updates[stage])


@pytest.mark.slow
def test_run_demo_when_tiny_market_writes_report_files_with_every_forecaster(
        first_run: tuple[Path, Quiet]) -> None:
    out, _ = first_run
    for name in ("report.html", "report.png", "metrics.json", MANIFEST_FILE):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "market" / STORE_MANIFEST).is_file()  # the market is a store
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["forecasters"]) == EVERY_FORECASTER
    assert metrics["reference"] == "climatology"
    html = (out / "report.html").read_text()
    assert all(name in html for name in EVERY_FORECASTER)
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plan = metrics["provenance"]["demo"]["plan"]
    assert plan["train_steps"] == 20 and plan["sampler_steps"]["sde"] == 3


@pytest.mark.slow
def test_run_demo_when_rerun_reuses_every_step_and_rewrites_nothing(
        first_run: tuple[Path, Quiet]) -> None:
    out, _ = first_run
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = run_demo(tiny_options(out))
    assert {"features", "throughput/train", "throughput/sample", "train/gaussian",
            "train/jump-laplace", "train/shuffle",
            "forecast/jl/sde-mgd", "forecast/garch", "report"} <= set(again.reused)
    changed = [p for p, t in stamps.items()
               if p.exists() and p.stat().st_mtime_ns != t and p.name != MANIFEST_FILE]
    assert changed == []


def _scored_without_report(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Stub the evaluation (the report itself is tested above); returns the names scored."""
    import tapecast.demo.evaluation as evaluation

    scored: list[list[str]] = []

    def fake_evaluate(run: object, forecasts: list[Forecast], *rest: object) -> dict[str, Any]:
        scored.append([f.name for f in forecasts])
        return {}

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    return scored


@pytest.mark.slow
def test_run_demo_when_a_sampler_option_changes_redoes_only_what_depends_on_it(
        first_run: tuple[Path, Quiet], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    out = tmp_path / "demo"
    shutil.copytree(first_run[0], out)  # the shared first run stays as it was
    scored = _scored_without_report(monkeypatch)
    config = tiny_config(steps=20).replace(
        sample_steps={"ddpm": 3, "ddim": 2, "sde": 3, "sde-mgd": 3})
    again = run_demo(tiny_options(out, config=config), Quiet())
    assert {"features", "forecast/climatology", "forecast/garch"} <= set(again.reused)
    assert {"throughput/train", "train/gaussian", "train/jump-laplace"} <= set(again.reused)
    assert "forecast/vp/ddim" not in again.reused and again.plan.sampler_steps["ddim"] == 2
    assert set(scored[0]) == EVERY_FORECASTER


@pytest.mark.slow
def test_run_demo_when_n_samples_changes_keeps_the_models_and_redraws_the_forecasts(
        first_run: tuple[Path, Quiet], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    out = tmp_path / "demo"
    shutil.copytree(first_run[0], out)
    scored = _scored_without_report(monkeypatch)
    again = run_demo(tiny_options(out, n_samples=6), Quiet())
    assert {"features", "throughput/train", "train/gaussian", "train/jump-laplace",
            "train/shuffle"} <= set(again.reused)
    assert "throughput/sample" not in again.reused  # sampling re-measured at 6 samples
    assert not any(r.startswith("forecast/") for r in again.reused)
    assert set(scored[0]) == EVERY_FORECASTER


def test_prepare_out_when_fresh_deletes_only_the_demo_files(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    Manifest(out, {"features": {"key": "k", "info": {}}}).save()
    (out / "features").mkdir()
    (out / "report.html").write_text("old")
    (out / "mine.txt").write_text("keep")
    prepare_out(out, fresh=True)
    assert not (out / "features").exists() and not (out / "report.html").exists()
    assert not (out / MANIFEST_FILE).exists() and (out / "mine.txt").read_text() == "keep"


def test_prepare_out_when_folder_is_not_a_demo_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "something.txt").write_text("x")
    with pytest.raises(TapecastError, match="not a demo folder"):
        prepare_out(tmp_path, fresh=False)


def test_run_demo_when_market_has_one_session_raises_with_the_counts(tmp_path: Path) -> None:
    options = tiny_options(tmp_path / "d", market=SyntheticMarketConfig(
        n_sessions=1, trades_per_session=3_000))
    with pytest.raises(TapecastError, match="at least 2") as info:
        run_demo(options)
    assert "trades, windows per session" in str(info.value) and "\n" not in str(info.value)


class _LateClock:
    """``time.monotonic`` at 0 on its first call (the run's start), far past any deadline
    after."""

    def __init__(self) -> None:
        self.calls = 0

    def monotonic(self) -> float:
        self.calls += 1
        return 0.0 if self.calls == 1 else 1e6

    def perf_counter(self) -> float:
        return 0.0


@pytest.mark.slow
def test_run_demo_when_time_is_short_still_reuses_a_cached_garch_forecast(
        first_run: tuple[Path, Quiet], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    import tapecast.demo.run as demo_module
    import tapecast.demo.state as demo_state

    out = tmp_path / "demo"
    shutil.copytree(first_run[0], out)
    monkeypatch.setattr(demo_module, "time", _LateClock())
    monkeypatch.setattr(demo_state, "time", _LateClock())
    scored = _scored_without_report(monkeypatch)
    again = run_demo(tiny_options(out), Quiet())
    assert "forecast/garch" in again.reused and "garch" not in again.skipped
    assert set(scored[0]) == EVERY_FORECASTER

"""Regenerate docs/results/orderflow-baselines.md: every baseline on the SPY order-flow windows.

Walk-forward over the SPY sessions in ../shared/data (trained on the sessions before each test
session, stride = horizon), every baseline scored on the same ruler, and the REAL / SHUFFLE /
RANDOM / NAIVE walk-forward verdict for the context-using baselines. Run from the repository
root::

    .venv/bin/python scripts/results_orderflow_baselines.py [--out FILE.md]

Nothing here is tuned on the test sessions: every setting is a library default.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Forecast
from tapecast.evaluate.metrics import build_metrics
from tapecast.evaluate.walkforward import verdict, walk_forward
from tapecast.features.featureset import FeatureSet
from tapecast.models import get_baseline
from tapecast.workflows import fit_and_forecast

SPY = Path("../shared/data/lean/equity/usa/tick/spy")
BASELINES = ("climatology", "hist-vol", "bootstrap", "var", "garch", "naive", "chronos")
WALK_FORWARD_REAL = ("hist-vol", "bootstrap", "var")
N_SAMPLES = 32


def build_features(out: Path) -> FeatureSet:
    cmd = [sys.executable, "-m", "tapecast.cli", "features", str(SPY), "--session",
           "us-equity-rth", "--split", "walk-forward", "--min-train-sessions", "3", "--out",
           str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return FeatureSet.open(out)


def fold_forecasts(fs: FeatureSet, fold: int) -> tuple[list[Forecast], dict[str, str]]:
    train = fs.dataset("train", fold=fold).batch(slice(None))
    test = fs.dataset("test", fold=fold).batch(slice(None))
    forecasts, unavailable = [], {}
    for name in BASELINES:
        options: dict[str, Any] = {"local_files_only": True} if name == "chronos" else {}
        try:  # all test origins in one call (seed 0), as the published page was made
            forecast = fit_and_forecast(get_baseline(name, **options), train, test, N_SAMPLES,
                                        seed=0, chunk=max(test.size, 1),
                                        provenance={"fold": fold})
        except TapecastError as exc:
            if not str(exc).startswith("n/a"):
                raise
            unavailable[name] = str(exc)
            continue
        forecasts.append(forecast)
    return forecasts, unavailable


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"
    return str(value)


def fold_table(metrics: dict[str, Any]) -> list[str]:
    dm = {t["a"]: t for t in metrics["dm_tests"] if t["b"] == metrics["reference"]}
    lines = ["| forecaster | CRPS (scaled) | skill vs climatology | CRPS step 1 | 90 % cov "
             "imbalance (all / low / mid / high) | cov err | corr err | min diversity | "
             "DM p (n_eff) | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in metrics["forecasters"].items():
        cov = e["coverage"]["90"]["imbalance"]
        t = dm.get(name)
        div = [v for v in e["diversity_ratio"].values() if v is not None]
        lines.append(
            f"| {name} | {_f(e['crps']['mean'])} | {_f(e.get('crps_skill', {}).get('mean'))} | "
            f"{_f(e['crps']['by_step'][0])} | "
            + " / ".join(_f(cov.get(r), 2) for r in ("all", "low", "mid", "high"))
            + f" | {_f(e['cov_rel_error'], 2)} | {_f(e['corr_frobenius_rel_error'], 2)} | "
            f"{_f(min(div) if div else None, 2)} | "
            + (f"{_f(t['p_value'], 2)} ({_f(t['n_eff'], 3)})" if t else "reference")
            + f" | {_f(e['wall_s'], 2)} |")
    for name, reason in metrics.get("unavailable", {}).items():
        lines.append(f"| {name} | {reason.split(':')[0]} | | | | | | | | |")
    return lines


def walk_forward_section(fs: FeatureSet, folds: list[int]) -> list[str]:
    batches = [(f"fold {k}", fs.dataset("train", fold=k).batch(slice(None)),
                fs.dataset("test", fold=k).batch(slice(None))) for k in folds]
    lines = []
    for name in WALK_FORWARD_REAL:
        result = walk_forward(batches, functools.partial(get_baseline, name),
                              make_random=lambda: get_baseline("climatology"),
                              make_naive=lambda: get_baseline("naive"), seeds=(0, 1, 2),
                              n_samples=N_SAMPLES)
        v = verdict(result)
        lines.append(f"**REAL = {name}: {'credible' if v.credible else 'not credible'}**\n")
        lines += [f"- {r}" for r in v.reasons]
        table = result.fold_table()
        lines.append("\n| fold | " + " | ".join(result.arms) + " |")
        lines.append("|---|" + "---|" * len(result.arms))
        for fold, arms in table.items():
            lines.append(f"| {fold} | " + " | ".join(
                f"{arms[a]['mean_crps']:.4f}" for a in result.arms) + " |")
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results/orderflow-baselines.md"))
    args = parser.parse_args()
    if not SPY.is_dir():
        raise SystemExit(f"{SPY} not found: run from the repository root with ../shared beside it")
    with tempfile.TemporaryDirectory() as tmp:
        fs = build_features(Path(tmp) / "spy")
        n_folds = len({k for k in range(10) if _has_fold(fs, k)})
        lines = [
            "# Baselines on the SPY order-flow windows",
            "",
            "Generated by `scripts/results_orderflow_baselines.py` (do not edit by hand). SPY "
            "trade ticks 2013-10-07..11 (LEAN), regular hours, 500-trade windows, tick-rule signs, "
            "context 100, horizon 10; walk-forward: each test session is forecast by models "
            "trained on the sessions before it (embargo = horizon), origins every 10 windows "
            f"(stride = horizon); {N_SAMPLES} samples; seed 0. CRPS (scaled) is the mean over "
            "channels of CRPS divided by the std of the channel's realized values "
            "(docs/evaluation-report.md); skill = 1 − CRPS/CRPS of climatology, per channel, "
            "averaged. Coverage is rank-based; a regime with fewer than 30 windows shows –.",
            "",
        ]
        for k in range(n_folds):
            forecasts, unavailable = fold_forecasts(fs, k)
            metrics = build_metrics(forecasts, reference="climatology", unavailable=unavailable)
            day = fs.dataset("test", fold=k).origins["session_date"][0]
            n = next(iter(metrics["forecasters"].values()))
            lines += [f"## Fold {k}: test session {day} ({n['n_windows']} windows; per regime "
                      f"{n['n_per_regime']})", "", *fold_table(metrics), ""]
        lines += ["## Walk-forward verdicts (REAL vs SHUFFLE / RANDOM = climatology / NAIVE = "
                  "persistence, seeds 0-2)", "", *walk_forward_section(fs, list(range(n_folds)))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def _has_fold(fs: FeatureSet, k: int) -> bool:
    try:
        return len(fs.dataset("test", fold=k)) > 0
    except TapecastError:
        return False


if __name__ == "__main__":
    main()

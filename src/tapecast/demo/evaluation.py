"""The demo's last step: ``metrics.json``, ``report.html`` and ``report.png`` in the demo folder.

Scores every forecast on one ruler with :func:`tapecast.evaluate.metrics.build_metrics`
(reference: climatology, the RANDOM control), lists what was skipped as ``n/a`` rows, puts the
plan and the reuse facts into the provenance, and draws the overview of the best model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Forecast
from tapecast.demo.budget import FORECASTER_NAMES, BudgetPlan
from tapecast.demo.manifest import input_key

if TYPE_CHECKING:
    from tapecast.demo.state import RunState

REFERENCE = "climatology"
MODEL_NAMES = tuple(v for k, v in FORECASTER_NAMES.items() if k != "SHUFFLE")


def best_model(metrics: Mapping[str, Any]) -> str | None:
    """The JL-CSDI forecaster with the highest mean CRPS skill (None when no model ran)."""
    entries = metrics["forecasters"]
    scored = [(e.get("crps_skill", {}).get("mean"), n) for n, e in entries.items()
              if n in MODEL_NAMES]
    scored = [(s, n) for s, n in scored if s is not None]
    if scored:
        return str(max(scored)[1])
    present = [n for n in MODEL_NAMES if n in entries]
    return present[0] if present else None


def report_key(keys: Sequence[str], skipped: Mapping[str, str], names: Sequence[str],
               demo: Mapping[str, Any]) -> str:
    """The report step's key: the forecasts (their keys and names), what was skipped, and the
    demo provenance (budget, plan, throughput, features) except ``reused_steps`` and
    ``notes``, which describe the run that wrote the report (a re-run reuses more steps and
    repeats fewer notes; what the notes say of the plan and the features is in the key)."""
    context = {k: v for k, v in demo.items() if k not in ("reused_steps", "notes")}
    return input_key(sorted(keys), dict(skipped), list(names), context)


def evaluate(run: RunState, forecasts: Sequence[Forecast], skipped: Mapping[str, str],
             keys: Sequence[str], plan: BudgetPlan) -> dict[str, Any]:
    """Score ``forecasts`` and write the report files (reused when nothing changed, see
    :func:`report_key`)."""
    from tapecast.evaluate.metrics import build_metrics
    from tapecast.evaluate.report import write_overview, write_report

    out = run.out
    if run.throughput is None:
        raise TapecastError("the demo reports only after planning its budget (no throughput)")
    if not any(f.name == REFERENCE for f in forecasts):
        raise TapecastError("the demo needs the climatology forecast as its reference")
    features = run.manifest.steps.get("features", {}).get("info", {})
    demo = {"budget_minutes": run.options.budget_minutes, "plan": plan.to_dict(),
            "throughput": asdict(run.throughput),
            "features": features, "notes": list(run.notes), "reused_steps": list(run.reused),
            "skipped": dict(skipped)}
    key = report_key(keys, skipped, [f.name for f in forecasts], demo)
    files = [out / n for n in ("metrics.json", "report.html", "report.png")]
    if run.reuse("report", key) is not None and all(p.is_file() for p in files):
        loaded: dict[str, Any] = json.loads(files[0].read_text(encoding="utf-8"))
        return loaded
    run.reporter.stage("evaluating", None)
    metrics = build_metrics(list(forecasts), {"demo": demo}, reference=REFERENCE,
                            unavailable=skipped)
    write_report(metrics, forecasts, out)
    best = best_model(metrics) or REFERENCE
    window_trades = features.get("window_trades")
    title = (f"tapecast demo: best on this test set {best}, "
             f"{metrics['forecasters'][best]['n_windows']} test windows"
             + (f" of {window_trades} trades" if window_trades else "")
             + f" (vs {REFERENCE})")
    write_overview(metrics, forecasts, out / "report.png", best, title)
    run.manifest.mark("report", key, {"best": best})
    run.reporter.done()
    return metrics

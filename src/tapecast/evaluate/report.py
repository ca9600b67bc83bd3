"""``metrics.json`` and a self-contained ``report.html`` (PNG figures inline as base64).

The HTML has no external assets: one file to mail or archive. Contents, in order: provenance, the
model-vs-baselines table, CRPS by horizon step, reliability diagram, PIT histograms, coverage by
regime, fan charts of a few windows, per-channel CRPS and the Diebold-Mariano tests per step. See
``docs/evaluation-report.md``.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tapecast.core.forecast import Forecast
from tapecast.core.io import atomic_write_text
from tapecast.evaluate import plots
from tapecast.evaluate.metrics import ALL_CHANNELS, to_jsonable

HEADLINE_LEVEL = "90"
_NOTE = (
    "CRPS: fair ensemble estimator, averaged over channels in their own units (a channel with a "
    "large scale weighs more). CRPS skill: 1 - CRPS / reference CRPS per channel, averaged over "
    "channels (scale-free; positive = better). Coverage: rank-based central intervals "
    f"(randomized PIT), nominal {HEADLINE_LEVEL} %. Diversity ratio: within-forecast sample "
    "spread over the spread of forecast means across windows (above 1: no mean collapse). DM: "
    "Diebold-Mariano test of per-window mean CRPS with a Newey-West variance; n_eff is the "
    "number of effectively independent windows behind the p-value. Negative CRPS diff: better "
    "than the reference.")

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f2f2f2; } td.name, th.name { text-align: left; }
td.best { font-weight: bold; background: #eef7ee; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
p.note { color: #555; font-size: 0.9em; max-width: 70em; }
"""


def write_report(metrics: Mapping[str, Any], forecasts: Sequence[Forecast],
                 out_dir: str | os.PathLike[str]) -> Path:
    """Write ``metrics.json`` and ``report.html`` into ``out_dir`` (each atomically).

    Parameters
    ----------
    metrics : mapping
        The output of :func:`tapecast.evaluate.metrics.build_metrics`.
    forecasts : sequence of Forecast
        The forecasts behind ``metrics`` (for the fan charts).
    out_dir : path
        Created if missing; other files in it are left alone.

    Returns
    -------
    Path
        ``out_dir``.
    """
    out = Path(out_dir)
    write_metrics(metrics, out / "metrics.json")
    atomic_write_text(out / "report.html", render_html(metrics, forecasts))
    return out


def write_metrics(metrics: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``metrics`` as strict JSON (NaN and inf as null), atomically; returns the path."""
    text = json.dumps(to_jsonable(metrics), indent=2, allow_nan=False)
    atomic_write_text(path, text + "\n")
    return Path(path)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool | str):
        return html.escape(str(value))
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if number != 0 and (abs(number) < 1e-3 or abs(number) >= 1e5):
        return f"{number:.{digits - 1}e}"
    return f"{number:.{digits}g}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; the first column is left-aligned (names), cells are pre-escaped."""
    head = "".join(f'<th{" class=name" if i == 0 else ""}>{html.escape(h)}</th>'
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(
        cell if cell.startswith("<td") else f'<td{" class=name" if i == 0 else ""}>{cell}</td>'
        for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _dm_vs_reference(metrics: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    reference = metrics.get("reference")
    for test in metrics.get("dm_tests", []):
        if test["a"] == name and test["b"] == reference:
            return dict(test)
    return None


def _mean_diversity(entry: Mapping[str, Any]) -> float | None:
    values = [v for v in entry["diversity_ratio"].values() if v is not None]
    return sum(values) / len(values) if values else None


def headline_table(metrics: Mapping[str, Any]) -> str:
    """Model vs baselines: mean CRPS, energy score, 90 % coverage, diversity, DM vs reference."""
    entries = metrics["forecasters"]
    best = min((e["crps"]["mean"] for e in entries.values() if e["crps"]["mean"] is not None),
               default=None)
    reference = metrics.get("reference") or "reference"
    header = ["forecaster", "mean CRPS", f"CRPS skill vs {reference}", "energy score",
              "variogram score",
              f"{HEADLINE_LEVEL} % coverage (all channels)", f"{HEADLINE_LEVEL} % coverage "
              "(imbalance)", "mean diversity ratio", f"CRPS diff vs {reference}",
              f"DM p vs {reference}", "n_eff", "windows", "wall s"]
    rows = []
    for name, e in entries.items():
        cov = e["coverage"][HEADLINE_LEVEL]
        dm = _dm_vs_reference(metrics, name)
        crps = e["crps"]["mean"]
        crps_cell = (f'<td class="best">{_fmt(crps)}</td>' if crps is not None and crps == best
                     else _fmt(crps))
        skill = e.get("crps_skill", {}).get("mean")
        if name == metrics.get("reference"):
            dm = {"mean_diff": "reference", "p_value": "reference", "n_eff": None}
        rows.append([html.escape(name), crps_cell, _fmt(skill, 3), _fmt(e["energy_score"]["mean"]),
                     _fmt(e["variogram_score"]["mean"]), _fmt(cov[ALL_CHANNELS]["all"], 3),
                     _fmt(cov.get("imbalance", {}).get("all"), 3), _fmt(_mean_diversity(e), 3),
                     _fmt(dm and dm["mean_diff"]), _fmt(dm and dm["p_value"], 3),
                     _fmt(dm and dm["n_eff"], 3), _fmt(e["n_windows"]), _fmt(e["wall_s"], 3)])
    for name, reason in (metrics.get("unavailable") or {}).items():
        status = reason.split(":", 1)[0] if reason.startswith("n/a") else "n/a"
        rows.append([html.escape(name), f'<td title="{html.escape(reason)}">'
                     f"{html.escape(status)}</td>", *["" for _ in header[2:]]])
    return _table(header, rows)


def channel_table(metrics: Mapping[str, Any]) -> str:
    """Mean CRPS per channel (rows: forecasters), the best per channel in bold."""
    entries = metrics["forecasters"]
    channels = next(iter(entries.values()))["channels"]
    best = {c: min((e["crps"][c]["mean"] for e in entries.values()
                    if e["crps"][c]["mean"] is not None), default=None) for c in channels}
    rows = []
    for name, e in entries.items():
        cells = [html.escape(name)]
        for c in channels:
            v = e["crps"][c]["mean"]
            cells.append(f'<td class="best">{_fmt(v)}</td>' if v is not None and v == best[c]
                         else _fmt(v))
        rows.append(cells)
    return _table(["forecaster", *channels], rows)


def dm_table(metrics: Mapping[str, Any]) -> str:
    """Every DM test: overall and per horizon step p-values (n_eff beside each)."""
    tests = metrics.get("dm_tests", [])
    if not tests:
        return "<p>No Diebold-Mariano tests (one forecaster only).</p>"
    n_steps = len(tests[0]["by_step"])
    header = ["A vs B", "mean diff (A-B)", "p (all steps)", "n_eff", "n",
              *[f"p step {h + 1} (n_eff)" for h in range(n_steps)]]
    rows = []
    for t in tests:
        steps = [f"{_fmt(s['p_value'], 3)} ({_fmt(s['n_eff'], 3)})" for s in t["by_step"]]
        rows.append([html.escape(f"{t['a']} vs {t['b']}"), _fmt(t["mean_diff"]),
                     _fmt(t["p_value"], 3), _fmt(t["n_eff"], 3), _fmt(t["n"]), *steps])
    return _table(header, rows)


def provenance_table(metrics: Mapping[str, Any]) -> str:
    prov = metrics.get("provenance", {})
    rows = [[html.escape(str(k)), f"<code>{html.escape(json.dumps(v, sort_keys=True))}</code>"]
            for k, v in prov.items() if k != "forecasts"]
    return _table(["fact", "value"], rows)


def _figures(metrics: Mapping[str, Any], forecasts: Sequence[Forecast]) -> list[str]:
    parts = ["<h2>CRPS by horizon step</h2>", _img(plots.crps_by_step(metrics), "CRPS by step"),
             "<h2>Reliability</h2>", _img(plots.reliability_diagram(metrics), "reliability"),
             "<h2>PIT histograms</h2>", _img(plots.pit_histograms(metrics), "PIT histograms"),
             f"<h2>Coverage by regime ({HEADLINE_LEVEL} %)</h2>",
             _img(plots.coverage_by_regime(metrics, HEADLINE_LEVEL), "coverage by regime")]
    if forecasts:
        parts.append("<h2>Fan charts</h2>")
        parts += [_img(plots.fan_chart(forecasts, i), f"fan chart window {i}")
                  for i in plots.sample_windows(forecasts[0])]
    return parts


def render_html(metrics: Mapping[str, Any], forecasts: Sequence[Forecast]) -> str:
    """The report as one HTML string."""
    names = ", ".join(html.escape(n) for n in metrics["forecasters"])
    body = [f"<h1>tapecast evaluation: {names}</h1>",
            "<h2>Model vs baselines</h2>", headline_table(metrics),
            f'<p class="note">{html.escape(_NOTE)}</p>',
            *_figures(metrics, forecasts),
            "<h2>Mean CRPS per channel</h2>", channel_table(metrics),
            "<h2>Diebold-Mariano tests</h2>", dm_table(metrics),
            "<h2>Provenance</h2>", provenance_table(metrics)]
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>tapecast evaluation"
            f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def write_overview(metrics: Mapping[str, Any], forecasts: Sequence[Forecast],
                   path: str | os.PathLike[str], highlight: str, title: str = "") -> Path:
    """Write the one-image overview (:func:`tapecast.evaluate.plots.overview`) as a PNG,
    atomically; returns the path."""
    from tapecast.core.io import atomic_write_bytes

    atomic_write_bytes(path, plots.overview(metrics, forecasts, highlight, HEADLINE_LEVEL,
                                            title))
    return Path(path)

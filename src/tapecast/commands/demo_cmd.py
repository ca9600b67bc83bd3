"""``tapecast demo``: one command from tape to a calibrated forecast report (docs/demo.md).

The work is :func:`tapecast.demo.run_demo`; this module draws its progress with Rich (a bar
per stage, the budget left beside it) and prints the plan, the summary table and the files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tapecast.commands.common import console, err_console, fail, user_errors
from tapecast.commands.progress import RichReporter


def _print_outcome(result: Any, out: Path, budget_minutes: float) -> None:
    from tapecast.commands.evaluate_cmd import print_summary

    print_summary(result.metrics)
    for name, reason in result.skipped.items():
        console.print(f"skipped {escape(name)}: {escape(reason)}", highlight=False,
                      soft_wrap=True)
    if result.reused:
        console.print(f"reused {len(result.reused)} finished step(s) from an earlier run "
                      "(--fresh redoes them): " + escape(", ".join(result.reused)),
                      highlight=False, soft_wrap=True)
    console.print(f"wrote {escape(str(out / 'report.html'))}, report.png and metrics.json in "
                  f"{result.wall_s:.0f} s (budget {60 * budget_minutes:.0f} s)",
                  highlight=False, soft_wrap=True)


def demo(
    data: Annotated[Path | None, typer.Option(
        "--data", "-d", help="A tapecast store, or trade files/folders read directly; default: "
        "the built-in synthetic market.", show_default=False)] = None,
    budget_minutes: Annotated[float, typer.Option(
        help="Wall-clock budget of the whole run, enforced (about half training, half "
        "forecasting and evaluation).")] = 10.0,
    out: Annotated[Path, typer.Option("--out", "-o", help="The demo folder.")]
    = Path("tapecast-demo"),
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Redo every step instead of reusing finished ones.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the market, sampling and baselines.")] = 0,
    n_samples: Annotated[int, typer.Option(help="Samples per forecast origin.")] = 32,
    session: Annotated[str, typer.Option(
        help="Session rule: auto (US regular hours when the tape trades in them, else "
        "calendar days), us-equity-rth, cme-globex or calendar.")] = "auto",
) -> None:
    """Tape -> order-flow features -> JL-CSDI (Gaussian and Jump-Laplace) -> forecasts with
    every sampler, baselines and controls -> OUT/report.html, report.png, metrics.json.

    Re-running the same command reuses finished steps (Ctrl-C leaves a resumable folder).
    """
    with user_errors():
        from tapecast.demo import DemoOptions, FeatureOptions, run_demo

        options = DemoOptions(out=out, data=data, budget_minutes=budget_minutes, fresh=fresh,
                              seed=seed, n_samples=n_samples,
                              features=FeatureOptions.from_dict({"session": session}))
        what = escape(str(data)) if data is not None else "the built-in synthetic market"
        err_console.print(f"tapecast demo: {what} -> {escape(str(out))}, budget "
                          f"{budget_minutes:g} min", highlight=False)
        deadline = time.monotonic() + 60.0 * budget_minutes
        try:
            with RichReporter(deadline) as reporter:
                result = run_demo(options, reporter)
        except KeyboardInterrupt:
            fail(f"interrupted; {out} keeps every finished step: run the same command again to "
                 "resume", code=130)
    _print_outcome(result, out, budget_minutes)

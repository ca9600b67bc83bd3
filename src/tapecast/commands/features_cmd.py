"""``tapecast features``: trades -> signed trades -> order-flow windows -> a features folder."""

from __future__ import annotations

import enum
import json
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tapecast.commands.common import console, err_console, user_errors
from tapecast.commands.sources import file_bar
from tapecast.core.errors import TapecastError

if TYPE_CHECKING:
    pass

MAX_SESSION_ROWS = 40  # the windows-per-session table is printed up to this many rows


class FeatureKind(enum.StrEnum):
    ORDERFLOW = "orderflow"


class SessionOption(enum.StrEnum):
    CALENDAR = "calendar"
    US_EQUITY_RTH = "us-equity-rth"
    CME_GLOBEX = "cme-globex"


class SplitOption(enum.StrEnum):
    LAST = "last"
    DATES = "dates"
    WALK_FORWARD = "walk-forward"


def _date_range(text: str | None, flag: str) -> tuple[date, date] | None:
    """``2013-10-07:2013-10-09`` (inclusive) or one date."""
    if text is None:
        return None
    first, _, last = text.partition(":")
    try:
        return date.fromisoformat(first.strip()), date.fromisoformat((last or first).strip())
    except ValueError:
        raise TapecastError(f"{flag} {text!r}: expected START:END as ISO dates, e.g. "
                            "2013-10-07:2013-10-09") from None


def _check_out(out: Path) -> None:
    """Refuse to replace a folder that is neither empty nor a features folder."""
    from tapecast.features.featureset import META_FILE

    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                               and not (out / META_FILE).is_file())):
        raise TapecastError(f"--out {out}: exists and is not a features folder; "
                            "choose a new folder (an existing features folder is replaced)")


def _print_summary(report: dict[str, Any]) -> None:
    flow, splits = report["windows"], report["splits"]
    table = Table(title="windows per instrument and session", show_header=True)
    for col in ("instrument", "session", "windows"):
        table.add_column(col, justify="right" if col == "windows" else "left")
    rows = [(i, d, n) for i, days in flow["windows_per_session"].items() for d, n in days.items()]
    for inst, day, n in rows[:MAX_SESSION_ROWS]:
        table.add_row(escape(inst), day, f"{n:,}")
    if len(rows) > MAX_SESSION_ROWS:
        table.add_row("…", f"{len(rows) - MAX_SESSION_ROWS} more (see --json)", "")
    console.print(table)
    for inst in flow["windows"]:
        console.print(f"{escape(inst)}: {flow['windows'][inst]:,} windows, "
                      f"{flow['dropped_partial_windows'][inst]:,} partial windows dropped "
                      f"({flow['partial_window_trades'][inst]:,} trades), unsigned share "
                      f"{flow['unsigned_share'].get(inst, 0.0):.2%}, tick "
                      f"{flow['tick_sizes'][inst]:g}"
                      + (" (inferred)" if flow["tick_size_inferred"] else ""))
    dropped = {k: v for k, v in flow["dropped_prints"].items() if v}
    console.print("dropped prints: " + (", ".join(f"{k} {v:,}" for k, v in dropped.items())
                                        or "none"))
    console.print("trade signs: " + ", ".join(f"{k} {v:,}" for k, v in report["signs"].items()))
    per = splits["samples_per_split"]
    console.print("samples per split: " + ", ".join(f"{k} {v:,}" for k, v in per.items())
                  + " (windows: " + ", ".join(f"{k} {v:,}" for k, v in
                                               splits["windows_per_split"].items() if v) + ")")
    console.print(f"wrote {escape(report['out'])} in {report['wall_s']:.1f} s")


def features(
    source: Annotated[Path, typer.Argument(
        help="A tapecast store (from `tapecast ingest`), or data files/folders read directly.",
        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The features folder to write.",
                                      show_default=False)],
    kind: Annotated[FeatureKind, typer.Option(help="Feature family.")] = FeatureKind.ORDERFLOW,
    window_trades: Annotated[int | None, typer.Option(
        help="Trades per window (default 500 unless --window-volume).")] = None,
    window_volume: Annotated[float | None, typer.Option(
        help="Traded size per window (volume clock) instead of a trade count.")] = None,
    session: Annotated[SessionOption, typer.Option(
        help="Session rule; windows never span a session.")] = SessionOption.CALENDAR,
    timezone: Annotated[str, typer.Option(help="Time zone of the calendar session's day.")]
    = "UTC",
    instrument: Annotated[list[str] | None, typer.Option(
        help="Only this instrument (repeatable).", show_default=False)] = None,
    print_filters: Annotated[bool, typer.Option(
        help="Drop suspicious and non-market prints where the data flags them.")] = True,
    regular_hours_only: Annotated[bool, typer.Option(
        help="Keep only 09:30-16:00 New York prints.")] = False,
    min_trades: Annotated[int, typer.Option(help="Drop sessions with fewer trades.")] = 0,
    tick_size: Annotated[float | None, typer.Option(
        help="Price tick for the realized-variance floor (default: inferred).")] = None,
    split: Annotated[SplitOption, typer.Option(help="Split kind.")] = SplitOption.LAST,
    val_sessions: Annotated[int, typer.Option(help="Validation sessions.")] = 1,
    test_sessions: Annotated[int, typer.Option(help="Test sessions (per fold).")] = 1,
    train_dates: Annotated[str | None, typer.Option(help="--split dates: START:END.")] = None,
    val_dates: Annotated[str | None, typer.Option(help="--split dates: START:END.")] = None,
    test_dates: Annotated[str | None, typer.Option(help="--split dates: START:END.")] = None,
    min_train_sessions: Annotated[int, typer.Option(
        help="--split walk-forward: sessions before the first test fold.")] = 3,
    context: Annotated[int, typer.Option(help="Context windows per sample.")] = 100,
    horizon: Annotated[int, typer.Option(help="Forecast windows per sample.")] = 10,
    embargo: Annotated[int | None, typer.Option(
        help="Windows embargoed before each later split (default: the horizon).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Compute trade-time order-flow windows (8 JL-CSDI channels) with a stored split."""
    start = time.perf_counter()
    with user_errors():
        from tapecast.features.featureset import build_feature_set, write_feature_set
        from tapecast.features.orderflow import OrderFlowConfig, orderflow_windows
        from tapecast.features.splits import SplitSpec
        from tapecast.workflows.tape import load_trades, sign

        config = OrderFlowConfig(
            window_trades=(500 if window_trades is None and window_volume is None
                           else window_trades),
            window_volume=window_volume, session=session.value, time_zone=timezone,
            drop_suspicious=print_filters, condition_codes="auto" if print_filters else "none",
            regular_hours_only=regular_hours_only, min_trades=min_trades, tick_size=tick_size)
        spec = SplitSpec(kind=split.value, val_sessions=val_sessions, test_sessions=test_sessions,
                         train_dates=_date_range(train_dates, "--train-dates"),
                         val_dates=_date_range(val_dates, "--val-dates"),
                         test_dates=_date_range(test_dates, "--test-dates"),
                         min_train_sessions=min_train_sessions, context=context,
                         horizon=horizon, embargo=embargo)
        _check_out(out)
        with file_bar(None) as on_file:
            trades, quotes, what = load_trades(source, instrument, on_file=on_file)
        err_console.print(f"tapecast features: {trades.height:,} trades from {escape(what)}",
                          highlight=False)
        signed, signs = sign(trades, quotes)
        result = orderflow_windows(signed, config)
        if result.windows.height == 0:
            size = (f"{config.window_trades} trades" if config.window_trades
                    else f"volume {config.window_volume:g}")
            raise TapecastError(f"{source}: no complete window of {size} in any session "
                                f"({trades.height:,} trades); use a smaller window")
        summary = {"orderflow": result.summary, "signs": signs}
        windows, meta = build_feature_set(result.windows, spec, config=config.to_dict(),
                                          summary=summary, source=str(source))
        write_feature_set(out, windows, meta)
    report = {"out": str(out), "windows": result.summary, "signs": signs,
              "splits": meta.summary["splits"], "wall_s": time.perf_counter() - start}
    if as_json:
        console.print_json(json.dumps(report, default=str))
    else:
        _print_summary(report)

"""The ``tapecast`` command line (Typer + Rich). YAML and user-facing printing live only here."""

from __future__ import annotations

import enum
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tapecast.commands import (
    backtest_cmd,
    demo_cmd,
    evaluate_cmd,
    features_cmd,
    generate_cmd,
    model_cmd,
    score_cmd,
    tokenize_cmd,
    tradefm_cmd,
)
from tapecast.commands.common import console, err_console, fail, user_errors
from tapecast.commands.sources import expand_sources, read_all, read_one
from tapecast.core.errors import TapecastError

if TYPE_CHECKING:
    import polars as pl

    from tapecast.data.tables import Tables

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="tapecast: probabilistic forecasts and synthetic order flow from the tape.")

# one line per format of tapecast.data.detect.FORMATS (`tapecast formats`)
FORMAT_HELP: dict[str, str] = {
    "dbn": "Databento DBN .dbn/.dbn.zst (v1-v3): mbo, trades, tbbo/mbp-1, mbp-10, ohlcv-*",
    "databento-csv": "Databento CSV (.csv/.csv.zst, as the client's to_csv/to_df write it)",
    "lobster": "LOBSTER message + orderbook files (zip, or either CSV of a pair)",
    "lean": "QuantConnect LEAN zips: tick trades/quotes, second..daily trade and quote bars",
    "hftbacktest": "Binance websocket captures, '<local ns> <json>' lines (hftbacktest)",
    "freqtrade": "freqtrade trade lists: JSON [ts, id, null, side, price, amount, cost] or CSV",
    "csv": "generic CSV trades, bars, quotes or L3 events (order ids, actions, sides) with a "
           "column and action mapping (incl. symbol,bob,eob,... bars)",
    "parquet": "generic Parquet trades, bars, quotes or L3 events with a column mapping",
}
MAX_DATE_ROWS = 60  # the per-date table is printed up to this many partitions (--json has all)




class OnConflictOption(enum.StrEnum):
    """``--on-conflict`` choices (see :func:`tapecast.data.store.write_store`)."""

    ERROR = "error"
    REPLACE = "replace"
    APPEND = "append"


@app.callback()
def _root() -> None:
    """tapecast: probabilistic forecasts and synthetic order flow from the tape."""


app.command("demo")(demo_cmd.demo)  # the main job first in --help

# ---------------------------------------------------------------------------------------------
# errors


_fail = fail
_user_errors = user_errors


# ---------------------------------------------------------------------------------------------
# ingest


OptionList = Annotated[list[str] | None, typer.Option(
    "--option", "-O", metavar="KEY=VALUE", show_default=False,
    help="A reader option, repeatable: e.g. -O table=bars -O timezone=America/New_York "
    "-O instrument=ES (see docs/formats.md).")]
MapList = Annotated[list[str] | None, typer.Option(
    "--map", "-m", metavar="COLUMN=SOURCE", show_default=False,
    help="Generic CSV/Parquet: canonical column = source column name (or 0-based position), "
    "repeatable: e.g. -m ts=bob -m price=px.")]


def reader_options(options: list[str] | None, maps: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings from the command line as reader keyword arguments.

    ``--map`` pairs become the ``mapping`` dict (a value of digits is a 0-based position);
    ``true``/``false`` become bools. A malformed pair is a :class:`TapecastError`.
    """
    def pairs(items: list[str] | None, flag: str) -> list[tuple[str, str]]:
        out = []
        for item in items or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise TapecastError(f"{flag} {item!r}: expected KEY=VALUE")
            out.append((key.strip(), value.strip()))
        return out

    kwargs: dict[str, Any] = {}
    for key, value in pairs(options, "--option"):
        lowered = value.lower()
        kwargs[key] = lowered == "true" if lowered in ("true", "false") else value
    mapping = {k: int(v) if v.isdigit() else v for k, v in pairs(maps, "--map")}
    if mapping:
        kwargs["mapping"] = mapping
    return kwargs


@app.command()
def ingest(
    sources: Annotated[list[Path], typer.Argument(
        help="Files or folders to read (folders recursively; README/.md/.tsv/... are skipped).",
        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The store folder (created or added to).",
                                      show_default=False)],
    fmt: Annotated[str | None, typer.Option("--format", "-f",
                                            help="Force this format (see `tapecast formats`).")]
    = None,
    on_conflict: Annotated[OnConflictOption, typer.Option(
        "--on-conflict", help="A partition (table, instrument, date) the store already holds: "
        "error (write nothing), replace it, or append the new rows to it.")]
    = OnConflictOption.ERROR,
    option: OptionList = None,
    map_: MapList = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Read SOURCES into a partitioned Parquet store, atomically: one bad file, nothing written."""
    from tapecast.data.store import write_store

    with _user_errors():
        files, skipped = expand_sources(sources, exclude=out)
        if not files:
            raise TapecastError(f"no data files found in {', '.join(map(str, sources))}")
        parts = read_all(files, fmt, reader_options(option, map_))
        for tables in parts:
            tables.counters.update(replay_anomalies(tables))
        store = write_store(parts, out, on_conflict=on_conflict.value)
        summary = store.summary()
    rows: Counter[str] = Counter()
    for tables in parts:
        rows.update(tables.row_counts())
    report = {"files": [str(f) for f in files],
              "skipped": [{"path": str(p), "reason": r} for p, r in skipped],
              "rows": dict(rows)}
    if as_json:
        typer.echo(json.dumps({"ingest": report, "store": summary}, indent=1))
        return
    console.print(f"ingested {len(files)} file(s) into [bold]{escape(str(out))}[/bold]: "
                  + ", ".join(f"{n:,} {t}" for t, n in rows.items()), highlight=False,
                  soft_wrap=True)
    for path, reason in skipped:
        console.print(f"  skipped {escape(str(path))} ({reason})", highlight=False,
                      style="dim", soft_wrap=True)
    _print_summary(summary)


# ---------------------------------------------------------------------------------------------
# inspect and the shared summary


def _print_summary(summary: dict[str, Any]) -> None:
    """Render :func:`tapecast.data.summary.summarize`'s dict with Rich."""
    tables = Table(title=f"store {summary['store']}", title_justify="left")
    for col in ("table", "instrument", "dates", "rows", "start (UTC)", "end (UTC)"):
        tables.add_column(col, justify="right" if col in ("dates", "rows") else "left",
                          overflow="fold")
    n_partitions = 0
    for name, entry in summary["tables"].items():
        for inst, info in entry["instruments"].items():
            n_partitions += len(info["dates"])
            tables.add_row(name, inst, str(len(info["dates"])), f"{info['rows']:,}",
                           info["start"], info["end"])
    console.print(tables)
    if n_partitions <= MAX_DATE_ROWS:
        dates = Table(title="rows per table, instrument and date", title_justify="left")
        for col in ("table", "instrument", "date", "rows"):
            dates.add_column(col, justify="right" if col == "rows" else "left")
        for name, entry in summary["tables"].items():
            for inst, info in entry["instruments"].items():
                for day, rows in info["dates"].items():
                    dates.add_row(name, inst, day, f"{rows:,}")
        console.print(dates)
    else:
        console.print(f"{n_partitions} partitions (table, instrument, date): `--json` lists "
                      "the rows of each", highlight=False)
    console.print(f"rows rejected: {summary['rows_rejected']}", highlight=False)
    if summary["rows_dropped"]:
        console.print(f"rows dropped by design and counted: {summary['rows_dropped']:,} "
                      "(see the *_dropped / *_skipped counters)", highlight=False)
    counters = summary["counters"]
    if counters:
        console.print("counters: " + ", ".join(f"{k}={v:,}" for k, v in counters.items()),
                      highlight=False)


@app.command()
def inspect(
    store: Annotated[Path, typer.Argument(help="A store folder written by `tapecast ingest`.",
                                          show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Summarize an existing store from its manifest (cheap: reads no Parquet)."""
    from tapecast.data.store import Store

    with _user_errors():
        summary = Store.open(store).summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
    else:
        _print_summary(summary)


# ---------------------------------------------------------------------------------------------
# book and formats


# replay counters that are bookkeeping, not anomalies (the reader already counts the records)
_NOT_ANOMALIES = frozenset({"events", "snapshot_records", "clears"})


def replay_anomalies(tables: Tables) -> dict[str, int]:
    """Replay an events source once (top of book only) and return its anomaly counters,
    prefixed ``replay_`` (crossed books at packet ends, unknown orders, ...), nonzero ones only.

    A full-state source that replays into an impossible state raises
    :class:`tapecast.core.errors.ReplayError`, so such a file is never ingested silently.
    """
    from tapecast.data.book import replay_tables

    if tables.events is None or tables.events.height == 0:
        return {}
    counters = replay_tables(tables, 1).counters
    return {f"replay_{k}": v for k, v in counters.items() if v and k not in _NOT_ANOMALIES}


def replay_source(tables: Tables, n_levels: int) -> tuple[pl.DataFrame, dict[str, int]]:
    """Replay ``tables.events`` (each instrument on its own, rows back in input order).

    Returns the levels frame (one row per event, in input order) and the summed counters.
    """
    from tapecast.data.book import replay_tables

    result = replay_tables(tables, n_levels)  # one book per instrument, rows in input order
    return result.levels, result.counters


@app.command()
def book(
    source: Annotated[Path, typer.Argument(help="An events source (Databento MBO, LOBSTER, ...).",
                                           show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The Parquet file to write.",
                                      show_default=False)],
    levels: Annotated[int, typer.Option("--levels", "-n", min=1, help="Book depth.")] = 10,
    fmt: Annotated[str | None, typer.Option("--format", "-f",
                                            help="Force this format (see `tapecast formats`).")]
    = None,
    option: OptionList = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Replay an event source and write the top-N book after every event (one row per event, in
    input order; LOBSTER orderbook-file columns plus the event timestamp), atomically."""
    from tapecast.core.io import atomic_path

    with _user_errors():
        tables = read_one(source, fmt, reader_options(option, None))
        frame, counters = replay_source(tables, levels)
        with atomic_path(out) as tmp:
            frame.write_parquet(tmp, compression="zstd")
    if as_json:
        typer.echo(json.dumps({"source": str(source), "out": str(out), "rows": frame.height,
                               "levels": levels, "counters": counters}, indent=1))
        return
    console.print(f"wrote {frame.height:,} book rows ({levels} levels) to "
                  f"[bold]{escape(str(out))}[/bold]", highlight=False)
    console.print("replay counters: " + ", ".join(f"{k}={v:,}" for k, v in counters.items()),
                  highlight=False)


@app.command()
def formats() -> None:
    """List the formats tapecast reads (the names `--format` takes)."""
    from tapecast.data.detect import FORMATS

    table = Table(show_header=True)
    table.add_column("format")
    table.add_column("what it reads")
    for name in FORMATS:
        table.add_row(name, escape(FORMAT_HELP.get(name, "")))
    console.print(table)


app.command("features")(features_cmd.features)
app.command("baseline")(evaluate_cmd.baseline)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("train")(model_cmd.train)
app.command("forecast")(model_cmd.forecast)
app.command("tokenize")(tokenize_cmd.tokenize)
app.command("perplexity")(tradefm_cmd.perplexity)
app.command("density")(score_cmd.density)
app.command("backtest")(backtest_cmd.backtest)
app.command("generate")(generate_cmd.generate)
app.command("simulate")(generate_cmd.simulate)


def main() -> None:
    """Console entry point: user errors print one line and exit 2, without a traceback."""
    try:
        app()
    except TapecastError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

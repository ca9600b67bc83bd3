"""``tapecast features``: trades -> signed trades -> order-flow windows -> a features folder;
``--kind price``: 1-second bars -> the price grid and its 30-second windows -> a price folder;
``--kind state``: bars of any length -> market-state vectors (issue 16) -> a state folder."""

from __future__ import annotations

import enum
import json
import re
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from tapecast.commands.common import console, err_console, user_errors
from tapecast.commands.sources import file_bar
from tapecast.core.errors import TapecastError

if TYPE_CHECKING:
    import polars as pl

    from tapecast.features.price import PriceGridConfig
    from tapecast.features.sessions import SessionRule
    from tapecast.features.splits import SplitSpec

MAX_SESSION_ROWS = 40  # the windows-per-session table is printed up to this many rows


class FeatureKind(enum.StrEnum):
    ORDERFLOW = "orderflow"
    PRICE = "price"
    STATE = "state"


class SessionOption(enum.StrEnum):
    CALENDAR = "calendar"
    US_EQUITY_RTH = "us-equity-rth"
    US_EQUITY_EXTENDED = "us-equity-extended"
    CME_GLOBEX = "cme-globex"


class PriceOption(enum.StrEnum):
    AUTO = "auto"
    MID = "mid"
    TRADE = "trade"


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


@dataclass(frozen=True)
class SplitOptions:
    """The split flags, shared by both kinds."""

    kind: SplitOption
    val_sessions: int
    test_sessions: int
    train_dates: str | None
    val_dates: str | None
    test_dates: str | None
    min_train_sessions: int

    def dates(self) -> dict[str, tuple[date, date] | None]:
        return {f"{name}_dates": _date_range(getattr(self, f"{name}_dates"), f"--{name}-dates")
                for name in ("train", "val", "test")}


@dataclass(frozen=True)
class PriceOptions:
    """The flags of ``--kind price``."""

    source: Path | None
    out: Path
    session: SessionOption | None
    timezone: str
    instruments: list[str] | None
    tick_size: float | None
    price: PriceOption | None
    max_gap: int | None
    synthetic: bool
    synthetic_sessions: int
    seed: int
    context: int | None
    horizon: int | None
    embargo: int | None


def _check_unused(kind: str, **given: object) -> None:
    """Refuse flags of the other feature family (None: not given)."""
    wrong = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is not None]
    if wrong:
        raise TapecastError(f"{', '.join(wrong)} do(es) not apply to {kind}")


def _orderflow_features(source: Path, out: Path, window_trades: int | None,
                        window_volume: float | None, session: SessionOption, timezone: str,
                        instrument: list[str] | None, print_filters: bool,
                        regular_hours_only: bool, min_trades: int, tick_size: float | None,
                        splits: SplitOptions, context: int, horizon: int,
                        embargo: int | None) -> dict[str, Any]:
    """Trades -> signed trades -> order-flow windows -> the folder ``out``; the report."""
    from tapecast.features.featureset import build_feature_set, write_feature_set
    from tapecast.features.orderflow import OrderFlowConfig, orderflow_windows
    from tapecast.features.splits import SplitSpec
    from tapecast.workflows.tape import load_trades, sign

    if session is SessionOption.US_EQUITY_EXTENDED:
        raise TapecastError("--session us-equity-extended applies to --kind price only")
    rule = cast("SessionRule", session.value)
    config = OrderFlowConfig(
        window_trades=(500 if window_trades is None and window_volume is None
                       else window_trades),
        window_volume=window_volume, session=rule, time_zone=timezone,
        drop_suspicious=print_filters, condition_codes="auto" if print_filters else "none",
        regular_hours_only=regular_hours_only, min_trades=min_trades, tick_size=tick_size)
    spec = SplitSpec(kind=splits.kind.value, val_sessions=splits.val_sessions,
                     test_sessions=splits.test_sessions, **splits.dates(),
                     min_train_sessions=splits.min_train_sessions, context=context,
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
    return {"out": str(out), "windows": result.summary, "signs": signs,
            "splits": meta.summary["splits"]}


# --- --kind price -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadedBars:
    """1-second bars from a source: the tables, what they are, and which file holds what.

    ``index`` maps each file to the (instrument, ISO local date) pairs of its bars, to name the
    file in an error about an instrument and a day.
    """

    bars: pl.DataFrame | None
    quote_bars: pl.DataFrame | None
    what: str
    files: list[Path]
    index: dict[Path, set[tuple[str, str]]]


def _days(frame: pl.DataFrame | None, zone: str) -> set[tuple[str, str]]:
    import polars as pl

    if frame is None or frame.height == 0:
        return set()
    pairs = frame.select("instrument", pl.col("ts").dt.convert_time_zone(zone).dt.date()
                         .cast(pl.String)).unique()
    return {(str(i), str(d)) for i, d in pairs.iter_rows()}


def _only(frame: pl.DataFrame | None, instruments: list[str] | None) -> pl.DataFrame | None:
    import polars as pl

    if frame is None or not instruments:
        return frame
    return frame.filter(pl.col("instrument").is_in(instruments))


_PRICE_HINT = ("1-second trade or quote bars", "--kind price reads bars, e.g. LEAN second "
               "*_trade.zip and *_quote.zip, Databento ohlcv-1s, a bars CSV")


def _load_bars(source: Path, instruments: list[str] | None, zone: str,
               hint: tuple[str, str] = _PRICE_HINT) -> LoadedBars:
    """Trade and quote bars of a store or of data files (sorted by instrument, then time)."""
    from tapecast.data.store import MANIFEST, Store
    from tapecast.data.tables import concat_tables
    from tapecast.workflows.tape import expand_sources, read_all

    index: dict[Path, set[tuple[str, str]]] = {}
    files: list[Path] = []
    if (source / MANIFEST).is_file():
        store = Store.open(source)
        bars, quotes = (store.read(t, instruments) if t in store.tables else None
                        for t in ("bars", "quote_bars"))
        what = f"store {source}"
    else:
        files, _ = expand_sources([source])
        if not files:
            raise TapecastError(f"{source}: neither a tapecast store nor data files")
        with file_bar(len(files)) as on_file:
            parts = read_all(files, None, on_file=on_file)
        for path, part in zip(files, parts, strict=True):
            index[path] = (_days(_only(part.bars, instruments), zone)
                           | _days(_only(part.quote_bars, instruments), zone))
        tables = concat_tables(parts)
        bars, quotes = (_only(tables.bars, instruments), _only(tables.quote_bars, instruments))
        what = f"{len(files)} file(s) under {source}"
    if not any(f is not None and f.height for f in (bars, quotes)):
        only = f" for instrument(s) {', '.join(instruments)}" if instruments else ""
        raise TapecastError(f"{source}: no {hint[0]}{only} (found in {len(files)} file(s); "
                            f"{hint[1]})")
    ordered = [None if f is None or f.height == 0 else
               f.sort("instrument", "ts", maintain_order=True) for f in (bars, quotes)]
    return LoadedBars(ordered[0], ordered[1], what, files, index)


def _synthetic_bars(sessions: int, seed: int) -> LoadedBars:
    from tapecast.sim import SyntheticMarketConfig, generate_market
    from tapecast.sim.bars import market_bars

    config = SyntheticMarketConfig(n_sessions=sessions)
    tables = market_bars(generate_market(config, seed=seed))
    what = f"the synthetic market ({sessions} sessions, seed {seed})"
    return LoadedBars(tables.bars, tables.quote_bars, what, [], {})


def _name_files(message: str, index: dict[Path, set[tuple[str, str]]]) -> str:
    """``message`` with the files holding the instrument-day it names, when it names one."""
    words = set(re.findall(r"[\w.\-]+", message))
    hits = [p.name for p, days in index.items()
            if any(inst in words and day in words for inst, day in days)]
    if not hits:
        return message
    more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
    return f"{message} (file(s): {', '.join(hits[:3])}{more})"


def _price_config(opts: PriceOptions) -> PriceGridConfig:
    from tapecast.features.price import PriceGridConfig

    changes: dict[str, Any] = {
        "session": (opts.session or SessionOption.US_EQUITY_RTH).value,
        "time_zone": opts.timezone, "price": (opts.price or PriceOption.AUTO).value}
    for name, value in (("context_s", opts.context), ("horizon_s", opts.horizon),
                        ("max_gap_s", opts.max_gap), ("tick_size", opts.tick_size)):
        if value is not None:
            changes[name] = value
    return PriceGridConfig(**changes)


def _price_spec(config: PriceGridConfig, splits: SplitOptions, embargo: int | None
                ) -> SplitSpec:
    from tapecast.features.price_splits import price_split_spec

    return price_split_spec(config, splits.kind.value, val_sessions=splits.val_sessions,
                            test_sessions=splits.test_sessions, **splits.dates(),
                            min_train_sessions=splits.min_train_sessions, embargo_s=embargo)


def _price_features(opts: PriceOptions, splits: SplitOptions) -> dict[str, Any]:
    """1-second bars -> grid, windows, split -> the folder ``opts.out``; the report."""
    from tapecast.features.price import session_zone
    from tapecast.features.price_featureset import PriceFeatureSet

    config = _price_config(opts)
    spec = _price_spec(config, splits, opts.embargo)
    _check_out(opts.out)
    if opts.synthetic and opts.source is not None:
        raise TapecastError(f"give a SOURCE ({opts.source}) or --synthetic, not both")
    if opts.synthetic:
        loaded = _synthetic_bars(opts.synthetic_sessions, opts.seed)
    elif opts.source is None:
        raise TapecastError("give a SOURCE (1-second bars: a store or data files) or "
                            "--synthetic for the built-in market")
    else:
        zone = session_zone(config.session, config.time_zone).key
        loaded = _load_bars(opts.source, opts.instruments, zone)
    counts = [f"{0 if f is None else f.height:,} {name}" for f, name in
              ((loaded.bars, "trade bars"), (loaded.quote_bars, "quote bars"))]
    err_console.print(f"tapecast features: {' and '.join(counts)} from {escape(loaded.what)}",
                      highlight=False)
    try:
        built = PriceFeatureSet.build(loaded.bars, loaded.quote_bars, config, spec,
                                      source=loaded.what, files=loaded.files)
    except TapecastError as exc:
        raise TapecastError(_name_files(str(exc), loaded.index)) from None
    built.save(opts.out)
    return {"out": str(opts.out), "kind": "price", "source": loaded.what,
            "grid": built.summary["grid"]["instruments"],
            "sessions_without_quote_bars": built.summary["grid"]["sessions_without_quote_bars"],
            "windows": built.summary["windows"], "splits": built.summary["splits"],
            "config": config.to_dict()}


def _print_price_summary(report: dict[str, Any]) -> None:
    reasons = ("session_start", "session_end", "no_price", "stale")
    origins = Table(title="price windows: origins, valid, invalid by reason",
                    box=box.SIMPLE_HEAD)
    for col in ("instrument", "origins", "valid", "start", "end", "no price", "stale"):
        origins.add_column(col, justify="left" if col == "instrument" else "right")
    prices = Table(title="days priced by mid / trade, zero 30-s returns", box=box.SIMPLE_HEAD)
    for col in ("instrument", "days", "mid", "trade", "valid mid", "valid trade", "zero share"):
        prices.add_column(col, justify="left" if col == "instrument" else "right")
    trade_days: dict[str, list[str]] = {}
    for inst, day in report["sessions_without_quote_bars"]:
        trade_days.setdefault(inst, []).append(day)
    for inst, w in report["windows"].items():
        origins.add_row(escape(inst), f"{w['origins']:,}", f"{w['valid']:,}",
                        *(f"{w['invalid'][r]:,}" for r in reasons))
        sessions, n_trade = report["grid"][inst]["sessions"], len(trade_days.get(inst, []))
        zero = w["zero_return_share"]
        prices.add_row(escape(inst), f"{sessions:,}", f"{sessions - n_trade:,}", f"{n_trade:,}",
                       *(f"{w['by_source'][s]['valid']:,}" for s in ("mid", "trade")),
                       "-" if zero is None else f"{zero:.1%}")
    console.print(origins)
    console.print(prices)
    if trade_days:
        days = "; ".join(f"{escape(i)} {', '.join(d)}" for i, d in trade_days.items())
        console.print(f"priced by trades (no quote bars): {days}")
    else:
        console.print("every session has quote bars (priced by the quote mid once quoted)")
    sp = report["splits"]
    per = ", ".join(f"{k} {v:,}" for k, v in sp["windows_per_split"].items() if v)
    console.print(f"windows per split ({sp['kind']}): {per}")
    days = "; ".join(f"{k} {', '.join(v)}" for k, v in sp["sessions_per_split"].items() if v)
    gap = sp["closest_gap_s"]
    console.print(f"sessions: {days}; embargo {sp['embargo_s']} s (at least "
                  f"{sp['min_embargo_s']} s), closest origins of two splits "
                  + ("-" if gap is None else f"{gap:,} s") + " apart")
    console.print(f"wrote {escape(report['out'])} in {report['wall_s']:.1f} s")


# --- --kind state -------------------------------------------------------------------------------
_STATE_HINT = ("trade bars", "--kind state reads OHLCV bars of any length: LEAN hour, daily or "
               "minute *_trade.zip, Databento ohlcv, a bars CSV; or give --sp500")


def _state_error(message: str, index: dict[Path, set[tuple[str, str]]]) -> str:
    """``message`` with the files of the instrument-day it names, else of the instrument."""
    named = _name_files(message, index)
    if named != message:
        return named
    first = message.split(" ", 1)[0].rstrip(":")
    hits = [p.name for p, days in index.items() if any(inst == first for inst, _ in days)]
    more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
    return f"{message} (file(s): {', '.join(hits[:3])}{more})" if hits else message


def _state_features(source: Path | None, out: Path, sp500: bool, instruments: list[str] | None,
                    train: float, val: float, embargo: int | None) -> dict[str, Any]:
    """Bars -> market-state vectors, time split, train normalizer -> the folder ``out``."""
    from tapecast.data.readers.embedded import sp500_daily_bars
    from tapecast.features.state_config import StateConfig
    from tapecast.features.state_featureset import StateFeatureSet

    config = StateConfig()
    _check_out(out)
    if sp500 and source is not None:
        raise TapecastError(f"give a SOURCE ({source}) or --sp500, not both")
    if sp500:
        loaded = LoadedBars(sp500_daily_bars(), None, "the S&P 500 daily bars of the arch wheel",
                            [], {})
    elif source is None:
        raise TapecastError("give a SOURCE (bars: a store or data files) or --sp500 for the "
                            "embedded S&P 500 daily bars")
    else:
        loaded = _load_bars(source, instruments, "UTC", _STATE_HINT)
    if loaded.bars is None:
        raise TapecastError(f"{loaded.what}: quote bars only; --kind state needs trade bars "
                            "(high, low, close, volume)")
    err_console.print(f"tapecast features: {loaded.bars.height:,} bars from "
                      f"{escape(loaded.what)}", highlight=False)
    try:
        built = StateFeatureSet.build(loaded.bars, config, train=train, val=val,
                                      embargo=embargo, source=loaded.what, files=loaded.files)
    except TapecastError as exc:
        raise TapecastError(_state_error(str(exc), loaded.index)) from None
    built.save(out)
    return {"out": str(out), "kind": "state", "source": loaded.what,
            "features": list(config.names), "warmup": config.warmup,
            "instruments": built.summary, "split": built.split,
            "normalizer": built.normalizer.to_dict(), "config": config.to_dict()}


def _print_state_summary(report: dict[str, Any]) -> None:
    table = Table(title="market-state rows per instrument", box=box.SIMPLE_HEAD)
    for col in ("instrument", "bars", "rows", "warm-up dropped", "first", "last"):
        table.add_column(col, justify="left" if col in ("instrument", "first", "last")
                         else "right")
    for inst, s in report["instruments"].items():
        table.add_row(escape(inst), f"{s['bars']:,}", f"{s['rows']:,}",
                      f"{s['warmup_dropped']:,}", s["first_ts"], s["last_ts"])
    console.print(table)
    sp = report["split"]
    per = ", ".join(f"{k} {v:,}" for k, v in sp["rows_per_split"].items())
    console.print(f"rows per split ({sp['train']:.0%}/{sp['val']:.0%}/{sp['test']:.0%} by time, "
                  f"embargo {sp['embargo_rows']} rows): {per}; val from {sp['val_start']}, "
                  f"test from {sp['test_start']}")
    console.print(f"features: {', '.join(report['features'])} (z-scored on train, clipped at "
                  f"±{report['normalizer']['clip']:g} σ)")
    console.print(f"wrote {escape(report['out'])} in {report['wall_s']:.1f} s")


def features(
    out: Annotated[Path, typer.Option("--out", "-o", help="The features folder to write.",
                                      show_default=False)],
    source: Annotated[Path | None, typer.Argument(
        help="A tapecast store (from `tapecast ingest`), or data files/folders read directly "
             "(--kind price: 1-second trade and quote bars).", show_default=False)] = None,
    kind: Annotated[FeatureKind, typer.Option(help="Feature family.")] = FeatureKind.ORDERFLOW,
    window_trades: Annotated[int | None, typer.Option(
        help="Trades per window (default 500 unless --window-volume).")] = None,
    window_volume: Annotated[float | None, typer.Option(
        help="Traded size per window (volume clock) instead of a trade count.")] = None,
    session: Annotated[SessionOption | None, typer.Option(
        help="Session rule; windows never span a session (default: calendar; --kind price: "
             "us-equity-rth).", show_default=False)] = None,
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
        help="Price tick for the realized-variance floor (default: inferred; --kind price: "
             "the price lattice, default 0.01).")] = None,
    price: Annotated[PriceOption | None, typer.Option(
        help="--kind price: the quote mid where quoted, else the last trade (auto); the mid "
             "only, a day without quote bars an error (mid); the trade close (trade).",
        show_default=False)] = None,
    max_gap: Annotated[int | None, typer.Option(
        help="--kind price: a window whose context holds a row staler than this many seconds "
             "is invalid (default 60).", show_default=False)] = None,
    synthetic: Annotated[bool, typer.Option(
        "--synthetic", help="--kind price: the built-in synthetic market's bars instead of a "
                            "SOURCE.")]
    = False,
    synthetic_sessions: Annotated[int, typer.Option(
        help="--synthetic: sessions to generate.")] = 5,
    seed: Annotated[int, typer.Option(help="--synthetic: the market's seed.")] = 0,
    sp500: Annotated[bool, typer.Option(
        "--sp500", help="--kind state: the S&P 500 daily bars embedded in the arch wheel "
                        "(1999-2018) instead of a SOURCE.")] = False,
    train_fraction: Annotated[float, typer.Option(
        help="--kind state: share of the time span in train.")] = 0.70,
    val_fraction: Annotated[float, typer.Option(
        help="--kind state: share of the time span in validation (test: the rest).")] = 0.15,
    split: Annotated[SplitOption, typer.Option(help="Split kind.")] = SplitOption.LAST,
    val_sessions: Annotated[int, typer.Option(help="Validation sessions.")] = 1,
    test_sessions: Annotated[int, typer.Option(help="Test sessions (per fold).")] = 1,
    train_dates: Annotated[str | None, typer.Option(help="--split dates: START:END.")] = None,
    val_dates: Annotated[str | None, typer.Option(help="--split dates: START:END.")] = None,
    test_dates: Annotated[str | None, typer.Option(help="--split dates: START:END.")] = None,
    min_train_sessions: Annotated[int, typer.Option(
        help="--split walk-forward: sessions before the first test fold.")] = 3,
    context: Annotated[int | None, typer.Option(
        help="Context windows per sample (default 100); --kind price: seconds, 60, 120 or 300 "
             "(default 120).", show_default=False)] = None,
    horizon: Annotated[int | None, typer.Option(
        help="Forecast windows per sample (default 10); --kind price: seconds (default 30).",
        show_default=False)] = None,
    embargo: Annotated[int | None, typer.Option(
        help="Windows embargoed before each later split (default: the horizon); --kind price: "
             "seconds, at least context + horizon (default: the features' reach, context + "
             "longest realized-variance span - 1 + horizon); --kind state: rows (default: the "
             "warm-up, 20).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Compute trade-time order-flow windows (8 JL-CSDI channels), or with --kind price the
    1-second price grid and its 30-second windows, or with --kind state market-state vectors
    per bar (z-scored on train), with a stored split."""
    start = time.perf_counter()
    with user_errors():
        if kind is not FeatureKind.STATE:
            _check_unused(f"--kind {kind.value}", sp500=sp500 or None,
                          train_fraction=None if train_fraction == 0.70 else train_fraction,
                          val_fraction=None if val_fraction == 0.15 else val_fraction)
        if kind is FeatureKind.STATE:
            _check_unused("--kind state", window_trades=window_trades,
                          window_volume=window_volume, min_trades=min_trades or None,
                          regular_hours_only=regular_hours_only or None, price=price,
                          max_gap=max_gap, synthetic=synthetic or None, session=session,
                          tick_size=tick_size, context=context, horizon=horizon)
            report = _state_features(source, out, sp500, instrument, train_fraction,
                                     val_fraction, embargo)
        elif kind is FeatureKind.PRICE:
            _check_unused("--kind price", window_trades=window_trades,
                          window_volume=window_volume, min_trades=min_trades or None,
                          regular_hours_only=regular_hours_only or None,
                          print_filters=None if print_filters else False)
            options = PriceOptions(source, out, session, timezone, instrument, tick_size, price,
                                   max_gap, synthetic, synthetic_sessions, seed, context,
                                   horizon, embargo)
            splits = SplitOptions(split, val_sessions, test_sessions, train_dates, val_dates,
                                  test_dates, min_train_sessions)
            report = _price_features(options, splits)
        else:
            _check_unused("--kind orderflow", price=price, max_gap=max_gap,
                          synthetic=synthetic or None)
            if source is None:
                raise TapecastError("give a SOURCE: a tapecast store or data files")
            report = _orderflow_features(
                source, out, window_trades, window_volume, session or SessionOption.CALENDAR,
                timezone, instrument, print_filters, regular_hours_only, min_trades, tick_size,
                SplitOptions(split, val_sessions, test_sessions, train_dates, val_dates,
                             test_dates, min_train_sessions),
                100 if context is None else context, 10 if horizon is None else horizon,
                embargo)
    report["wall_s"] = time.perf_counter() - start
    if as_json:
        console.print_json(json.dumps(report, default=str))
    elif kind is FeatureKind.PRICE:
        _print_price_summary(report)
    elif kind is FeatureKind.STATE:
        _print_state_summary(report)
    else:
        _print_summary(report)

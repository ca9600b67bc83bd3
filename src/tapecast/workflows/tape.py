"""The tape from disk: finding data files, reading them, trades and quotes, trade signs.

What ``tapecast ingest`` / ``features`` and the demo share below the command line (the commands
add Rich progress bars through the ``on_file`` callbacks)::

    files, skipped = expand_sources([Path("../shared/data/lean/equity/usa/tick/spy")])
    trades, quotes, what = load_trades(Path("spy"))        # a store, or data files
    signed, counts = sign(trades, quotes)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tapecast.core.errors import TapecastError

if TYPE_CHECKING:
    import polars as pl

    from tapecast.data.tables import Tables

# files a folder expansion passes over: documentation and listings, not market data
SKIP_SUFFIXES = frozenset({".md", ".tsv", ".txt", ".rst", ".pdf", ".html", ".htm", ".py",
                           ".yaml", ".yml", ".toml", ".ini", ".log", ".sha256", ".lock",
                           ".png", ".jpg", ".jpeg", ".gif", ".svg"})
SKIP_STEMS = ("readme", "license", "licence", "manifest", "summary", "changelog", "notice")


def _skip_reason(path: Path) -> str | None:
    """Why a file found in a folder is not read (None: read it)."""
    name = path.name.lower()
    if name.startswith("."):
        return "hidden file"
    if path.suffix.lower() in SKIP_SUFFIXES or name.startswith(SKIP_STEMS):
        return "not a data file"
    return None


def _lobster_partner(path: Path, chosen: set[Path]) -> bool:
    """True for a LOBSTER orderbook CSV whose message file is read too (the pair is read once)."""
    from tapecast.data.readers.lobster import parse_name

    parsed = parse_name(path.name)
    if parsed is None or parsed[1] != "orderbook":
        return False
    return path.with_name(parsed[0].file("message")) in chosen


def expand_sources(sources: list[Path], exclude: Path | None = None
                   ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files to read from ``sources`` (folders expanded recursively, in name order) and the
    files skipped with why; files under ``exclude`` (the output store) are passed over. A
    missing source is a user error."""
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for src in sources:
        if not src.exists():
            raise TapecastError(f"{src}: expected an existing file or folder")
        if src.is_dir():
            for path in sorted(p for p in src.rglob("*") if p.is_file()):
                reason = _skip_reason(path.relative_to(src))
                if reason is None and any(part.startswith(".")
                                          for part in path.relative_to(src).parts):
                    reason = "hidden folder"
                (skipped.append((path, reason)) if reason else files.append(path))
        else:
            files.append(src)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    if len(unique) < len(files):
        skipped.append((Path("(duplicates)"), f"{len(files) - len(unique)} given twice"))
    chosen = set(unique)
    store = None if exclude is None else exclude.resolve()
    kept = []
    for path in unique:
        if store is not None and path.is_relative_to(store):
            continue  # the store being written, found inside a source folder
        if _lobster_partner(path, chosen):
            skipped.append((path, "read with its LOBSTER message file"))
        else:
            kept.append(path)
    return kept, skipped


def read_one(path: Path, fmt: str | None, options: dict[str, Any]) -> Tables:
    """:func:`tapecast.data.read`, with reader options a reader does not take named clearly."""
    import inspect

    import tapecast.data
    from tapecast.data.detect import detect, reader_for

    if options:
        name = fmt or detect(path)
        params = inspect.signature(reader_for(name)).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(options) - set(params))
            if unknown:
                takes = [n for n in params if n != "path"]
                raise TapecastError(
                    f"{path}: format '{name}' takes no option "
                    f"{', '.join(map(repr, unknown))}; it takes: {', '.join(takes) or 'none'}")
    return tapecast.data.read(path, format=fmt, **options)


def read_all(files: list[Path], fmt: str | None, options: dict[str, Any] | None = None, *,
             on_file: Callable[[Path], None] | None = None) -> list[Tables]:
    """Read every file (all before any write); ``on_file(path)`` is called before each."""
    out = []
    for path in files:
        if on_file is not None:
            on_file(path)
        out.append(read_one(path, fmt, options or {}))
    return out


def load_trades(source: Path, instruments: list[str] | None = None, *,
                on_file: Callable[[Path], None] | None = None
                ) -> tuple[pl.DataFrame, pl.DataFrame | None, str]:
    """Trades and quotes of a store folder, or of data files read directly.

    ``on_file`` is called before each data file is read (a progress bar).
    Returns (trades sorted by instrument and time, quotes or None, a description of the source).
    """
    import polars as pl

    from tapecast.data.store import MANIFEST, Store

    if (source / MANIFEST).is_file():
        store = Store.open(source)
        if "trades" not in store.tables:
            raise TapecastError(f"{source}: the store holds no trades table "
                                f"(tables: {', '.join(store.tables) or 'none'})")
        trades = store.read("trades", instruments)
        quotes = store.read("quotes", instruments) if "quotes" in store.tables else None
        what = f"store {source}"
    else:
        from tapecast.data.tables import concat_tables

        files, _ = expand_sources([source])
        if not files:
            raise TapecastError(f"{source}: neither a tapecast store nor data files")
        tables = concat_tables(read_all(files, None, on_file=on_file))
        if tables.trades is None:
            raise TapecastError(f"{source}: no trades in {len(files)} file(s)")
        trades, quotes = tables.trades, tables.quotes
        if instruments:
            trades = trades.filter(pl.col("instrument").is_in(instruments))
            quotes = None if quotes is None else quotes.filter(
                pl.col("instrument").is_in(instruments))
        what = f"{len(files)} file(s) under {source}"
    if trades is None or trades.height == 0:
        raise TapecastError(f"{source}: no trades"
                            + (f" for instrument(s) {', '.join(instruments)}" if instruments
                               else ""))
    trades = trades.sort("instrument", "ts", maintain_order=True)
    if quotes is not None:
        quotes = quotes.sort("instrument", "ts", maintain_order=True) if quotes.height else None
    return trades, quotes, what


def sign(trades: pl.DataFrame, quotes: pl.DataFrame | None) -> tuple[pl.DataFrame, dict[str, int]]:
    """Venue side, else Lee–Ready against ``quotes``, else the tick rule; counts by source."""
    from tapecast.data.aggressor import sign_trades

    signed = sign_trades(trades, quotes)
    counts = Counter(str(s) for s in signed["side_source"].cast(str).fill_null("unsigned"))
    return signed, dict(counts)

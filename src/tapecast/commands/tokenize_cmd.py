"""``tapecast tokenize``: L3 event sources → a TradeFM token corpus and its frozen tokenizer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tapecast.commands.common import console, user_errors


def _fractions(text: str) -> tuple[float, float, float]:
    from tapecast.core.errors import TapecastError

    try:
        parts = tuple(float(x) / 100 for x in text.split("/"))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise TapecastError(f"--split {text!r}: expected TRAIN/VAL/TEST percentages, e.g. "
                            "60/20/20")
    return parts[0], parts[1], parts[2]


def _tiers(values: list[str]) -> dict[str, str]:
    from tapecast.core.errors import TapecastError

    out = {}
    for item in values:
        name, sep, tier = item.partition("=")
        if not sep or not name or not tier:
            raise TapecastError(f"--tier {item!r}: expected INSTRUMENT=TIER, e.g. ESH4=high")
        out[name] = tier
    return out


def tokenize(
    sources: Annotated[list[Path], typer.Argument(
        help="L3 event files or folders: Databento MBO (DBN/CSV), LOBSTER zips, ...")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (tokenizer.json and "
                                                          "corpus/)")],
    split: Annotated[str, typer.Option(help="Train/val/test percentages of each session, in "
                                            "time order")] = "60/20/20",
    embargo: Annotated[int, typer.Option(help="Tokens dropped after each split cut")] = 256,
    half_life: Annotated[float, typer.Option(help="Half-life (s) of the EW-VWAP mid")] = 10.0,
    staleness: Annotated[float, typer.Option(
        help="Seconds after the last print before the book mid is used")] = 60.0,
    tier: Annotated[list[str] | None, typer.Option(
        help="Liquidity tier of an instrument, INSTRUMENT=TIER (repeatable)")] = None,
    default_tier: Annotated[str, typer.Option(help="Tier of the other instruments")] = "medium",
) -> None:
    """Build a TradeFM token corpus: event features, a tokenizer calibrated on the train split
    only, then every token of every split (docs/tokenizer.md)."""
    with user_errors():
        from tapecast.features.events import EventFeatureConfig
        from tapecast.workflows.tape import expand_sources
        from tapecast.workflows.tokenize import tokenize_sources

        files, skipped = expand_sources(sources, exclude=out)
        for path, why in skipped:
            console.print(f"skipped {path}: {why}")
        start = time.perf_counter()
        result = tokenize_sources(
            files, out, fractions=_fractions(split), embargo=embargo,
            events_config=EventFeatureConfig(half_life_s=half_life, staleness_s=staleness),
            tiers=_tiers(tier or []), default_tier=default_tier)
        table = Table(title="token events per source")
        for col in ("source", "tokens", "outcome cancels", "outcome modifies", "book-mid share"):
            table.add_column(col, justify="left" if col == "source" else "right")
        for path in files:
            rows = [r for r in result.summary["rules"][str(path)] if r.get("add_bid") is not None]
            shares = [r.get("book_mid_share") or 0.0 for r in rows]
            table.add_row(path.name, f"{sum(int(r.get('tokens', 0)) for r in rows):,}",
                          f"{sum(int(r.get('outcome_cancels', 0)) for r in rows):,}",
                          f"{sum(int(r.get('outcome_modifies', 0)) for r in rows):,}",
                          f"{max(shares, default=0.0):.1%}")
        console.print(table)
        counts = ", ".join(f"{k} {v:,}" for k, v in result.summary["tokens"].items())
        console.print(f"tokens per split: {counts} (embargo {embargo} after each cut)")
        console.print(f"wrote {out}/tokenizer.json, {out}/corpus and {out}/summary.json in "
                      f"{time.perf_counter() - start:.1f} s")

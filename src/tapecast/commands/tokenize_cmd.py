"""``tapecast tokenize``: L3 event sources → a TradeFM token corpus and its frozen tokenizer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tapecast.commands.common import console, user_errors

if TYPE_CHECKING:
    from tapecast.data.tables import Tables


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


def _inputs(sources: list[Path], out: Path, synthetic: bool, sessions: int, seed: int
            ) -> list[Path | Tables]:
    """The files under ``sources``, or the synthetic L3 market's tables (``--synthetic``)."""
    from tapecast.core.errors import TapecastError

    if synthetic:
        if sources:
            raise TapecastError(f"give SOURCES ({sources[0]}) or --synthetic, not both")
        from tapecast.sim.l3_market import SyntheticL3Config, generate_l3_market

        return [generate_l3_market(SyntheticL3Config(n_sessions=sessions), seed=seed)]
    if not sources:
        raise TapecastError("give SOURCES (L3 event files or folders), or --synthetic for the "
                            "built-in market")
    from tapecast.workflows.tape import expand_sources

    files, skipped = expand_sources(sources, exclude=out)
    for path, why in skipped:
        console.print(f"skipped {path}: {why}")
    return list(files)


def tokenize(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (tokenizer.json and "
                                                          "corpus/)")],
    sources: Annotated[list[Path] | None, typer.Argument(
        help="L3 event files or folders: Databento MBO (DBN/CSV), LOBSTER zips, ... (none "
        "with --synthetic)", show_default=False)] = None,
    split: Annotated[str, typer.Option(help="Train/val/test percentages of each session, in "
                                            "time order")] = "60/20/20",
    embargo: Annotated[int, typer.Option(help="Tokens dropped after each split cut")] = 256,
    half_life: Annotated[float | None, typer.Option(
        help="Half-life (s) of the EW-VWAP mid (default 10; with --tokenizer, its own)",
        show_default=False)] = None,
    staleness: Annotated[float | None, typer.Option(
        help="Seconds after the last print before the book mid is used (default 60; with "
        "--tokenizer, its own)", show_default=False)] = None,
    tier: Annotated[list[str] | None, typer.Option(
        help="Liquidity tier of an instrument, INSTRUMENT=TIER (repeatable)")] = None,
    default_tier: Annotated[str, typer.Option(help="Tier of the other instruments")] = "medium",
    tokenizer: Annotated[Path | None, typer.Option(
        help="Encode with this frozen tokenizer.json (a trained model's, for a zero-shot "
        "test source) instead of calibrating one; e.g. with --split 0/0/100",
        show_default=False)] = None,
    synthetic: Annotated[bool, typer.Option(
        "--synthetic", help="The built-in synthetic L3 market (zero-intelligence order flow "
        "on a book, docs/synthetic-market.md) instead of SOURCES.")] = False,
    synthetic_sessions: Annotated[int, typer.Option(
        help="--synthetic: sessions to generate (20,000 orders each).")] = 2,
    seed: Annotated[int, typer.Option(help="--synthetic: the market's seed.")] = 0,
) -> None:
    """Build a TradeFM token corpus: event features, a tokenizer calibrated on the train split
    only (or a frozen one, --tokenizer), then every token of every split (docs/tokenizer.md)."""
    with user_errors():
        from tapecast.features.events import EventFeatureConfig
        from tapecast.features.tokenizer import Tokenizer
        from tapecast.workflows.tokenize import tokenize_sources

        start = time.perf_counter()
        inputs = _inputs(sources or [], out, synthetic, synthetic_sessions, seed)
        frozen = None if tokenizer is None else Tokenizer.load(tokenizer)
        events_config = None
        if half_life is not None or staleness is not None or frozen is None:
            base = EventFeatureConfig()
            if frozen is not None:  # the frozen tokenizer's settings, with the overrides
                from tapecast.workflows.tokenize import EVENT_FEATURES

                stored = frozen.provenance.get(EVENT_FEATURES)
                base = EventFeatureConfig.from_dict(stored) if isinstance(stored, dict) else base
            events_config = base.replace(
                half_life_s=base.half_life_s if half_life is None else half_life,
                staleness_s=base.staleness_s if staleness is None else staleness)
        result = tokenize_sources(
            inputs, out, fractions=_fractions(split), embargo=embargo,
            events_config=events_config, tiers=_tiers(tier or []), default_tier=default_tier,
            tokenizer=frozen)
        table = Table(title="token events per source")
        for col in ("source", "tokens", "outcome cancels", "outcome modifies", "book-mid share"):
            table.add_column(col, justify="left" if col == "source" else "right")
        for path in inputs:
            key, label = (str(path), path.name) if isinstance(path, Path) else (path.source,) * 2
            rows = [r for r in result.summary["rules"][key] if r.get("add_bid") is not None]
            shares = [r.get("book_mid_share") or 0.0 for r in rows]
            table.add_row(label, f"{sum(int(r.get('tokens', 0)) for r in rows):,}",
                          f"{sum(int(r.get('outcome_cancels', 0)) for r in rows):,}",
                          f"{sum(int(r.get('outcome_modifies', 0)) for r in rows):,}",
                          f"{max(shares, default=0.0):.1%}")
        console.print(table)
        counts = ", ".join(f"{k} {v:,}" for k, v in result.summary["tokens"].items())
        console.print(f"tokens per split: {counts} (embargo {embargo} after each cut)")
        console.print(f"wrote {out}/tokenizer.json, {out}/corpus and {out}/summary.json in "
                      f"{time.perf_counter() - start:.1f} s")

"""Rollouts of simulated order flow from a real starting point, written like real data.

The path of ``tapecast generate`` (TradeFM in closed loop) and ``tapecast simulate`` (the
baselines: Hawkes, zero-intelligence, the unigram token sampler)::

    start = rollout_start(Path("esh4.mbo.dbn.zst"), upto=40_000, tokenizer=model.tokenizer,
                          context=256)
    markets, stats = generate_rollouts(model, start, n_events=4096, rollouts=4, seed=0)
    write_rollouts(markets, Path("sim/"), {"generator": "tradefm", **stats})

1. The source is read and replayed up to ``upto`` events
   (:func:`tapecast.sim.session.start_from_tables`): the book, the mid estimator and the
   prompt there.
2. A baseline is calibrated on the source's token events **before** the start only (the same
   events the prompt comes from), so nothing after the start informs it.
3. Each rollout runs in its own market (:class:`tapecast.sim.session.SimulatedMarket`).
4. ``OUT/rollout-NNN.mbo.csv`` (Databento MBO CSV: the starting book as a snapshot, then the
   flow; :func:`tapecast.data.writers.write_mbo_csv`) and ``OUT/summary.json`` (generator,
   seed, start, counters, the share of cancels that found no order, events/s) are written
   atomically: every command reads the rollouts like a recorded session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_dir, file_sha256
from tapecast.data.tables import Tables
from tapecast.data.writers import write_mbo_csv
from tapecast.features.events import event_features_from_tables
from tapecast.features.tokenizer import Tokenizer
from tapecast.sim.session import RolloutStart, SimulatedMarket, simulate, start_from_tables
from tapecast.workflows.tape import read_one

__all__ = ["GENERATORS", "baseline_generator", "generate_rollouts", "rollout_start",
           "simulate_rollouts", "start_summary", "write_rollouts"]

GENERATORS: Final = ("hawkes", "zi", "unigram")
SUMMARY_FILE: Final = "summary.json"
ADVANCE: Final = 1000  # events a start may move on to find a two-sided book (LOBSTER L1)


def rollout_start(source: Path, *, upto: int | None = None, tokenizer: Tokenizer | None = None,
                  context: int = 0, tier: str = "medium", instrument: str | None = None
                  ) -> tuple[RolloutStart, Tables]:
    """Read ``source`` and replay it up to ``upto`` events; the start and the tables."""
    tables = read_one(source, None, {})
    if tables.events is None:
        raise TapecastError(f"{source}: no events table (an L3 source: Databento MBO, LOBSTER, "
                            "a generic events file)")
    if upto is not None and upto < 1:
        raise TapecastError(f"--upto must be at least 1 event, got {upto}")
    start = start_from_tables(tables, tokenizer, context=context, upto=upto, tier=tier,
                              instrument=instrument, advance=ADVANCE)
    return start, tables


def baseline_generator(name: str, tables: Tables, start: RolloutStart, *,
                       tokenizer: Tokenizer | None = None, corpus: Any = None) -> Any:
    """A baseline calibrated on the source's token events before ``start`` (``upto``).

    ``unigram`` counts tokens of ``corpus`` (a :class:`TokenCorpus` encoded by ``tokenizer``)
    when given, else encodes the events before the start with ``tokenizer``.
    """
    from tapecast.sim.hawkes import HawkesGenerator
    from tapecast.sim.zero_intelligence import ZeroIntelligenceGenerator, book_context

    if name not in GENERATORS:
        raise TapecastError(f"--generator must be one of {', '.join(GENERATORS)}, got {name!r}")
    events = tables.events
    assert events is not None
    before = _before_start(tables, start)
    tokens = event_features_from_tables(before, start.config).tokens
    if tokens.height < 2:
        raise TapecastError(f"{tables.source}: {tokens.height} token events before the start, "
                            "too few to calibrate a generator on")
    if name == "hawkes":
        return HawkesGenerator.fit(tokens, source=tables.source)
    if name == "zi":
        _, resting = book_context(before, tokens)
        trades = before.trades
        return ZeroIntelligenceGenerator.calibrate(
            tokens, trades=trades, mean_resting=resting, tick=start.tick / 1e9,
            source=tables.source)
    from tapecast.sim.token_sampler import UnigramTokenGenerator

    if tokenizer is None:
        raise TapecastError("the unigram sampler needs a tokenizer (--tokenizer FILE)")
    if corpus is not None:
        return UnigramTokenGenerator.from_corpus(corpus, tokenizer, instrument=start.instrument)
    import numpy as np

    ids = tokenizer.encode((tokens["action"] == "cancel").cast(pl.Int64).to_numpy(),
                           (tokens["side"] == "ask").cast(pl.Int64).to_numpy(),
                           tokens["delta_p"].to_numpy(), tokens["log_size"].to_numpy(),
                           tokens["dt"].to_numpy())
    counts = np.bincount(ids, minlength=tokenizer.vocab_size).astype(np.float64)
    return UnigramTokenGenerator(tokenizer, counts + 0.1)  # add-0.1 smoothing


def _before_start(tables: Tables, start: RolloutStart) -> Tables:
    """``tables`` cut to the instrument's events up to the start (trades likewise)."""
    from dataclasses import replace

    events = tables.events
    assert events is not None
    mine = events.filter(pl.col("instrument") == start.instrument)
    clock = pl.coalesce("ts_recv", "ts_event").dt.epoch("ns")
    mine = mine.filter(clock <= start.t_ns)
    trades = tables.trades
    if trades is not None:
        trades = trades.filter((pl.col("instrument") == start.instrument)
                               & (pl.col("ts").dt.epoch("ns") <= start.t_ns))
    levels = tables.levels.head(mine.height) if tables.levels is not None and \
        tables.levels.height == events.height else tables.levels
    return replace(tables, events=mine, trades=trades, levels=levels)


def simulate_rollouts(generator: Any, start: RolloutStart, *, n_events: int, rollouts: int,
                      seed: int) -> tuple[list[SimulatedMarket], dict[str, Any]]:
    """``rollouts`` markets of ``generator`` (seeds ``seed``, ``seed + 1``, ...)."""
    if rollouts < 1:
        raise TapecastError(f"--rollouts must be at least 1, got {rollouts}")
    began = time.perf_counter()
    markets = [simulate(generator, start, n_events, seed=seed + r) for r in range(rollouts)]
    wall = time.perf_counter() - began
    return markets, {"wall_s": round(wall, 3),
                     "events_per_s": round(rollouts * n_events / max(wall, 1e-9), 1)}


def generate_rollouts(model: Any, start: RolloutStart, *, n_events: int, rollouts: int,
                      seed: int, temperature: float = 1.0, top_k: int | None = None,
                      batch: int | None = None) -> tuple[list[SimulatedMarket], dict[str, Any]]:
    """TradeFM closed-loop rollouts, ``batch`` (default all) sampled together."""
    from tapecast.sim.tradefm_loop import generate

    if rollouts < 1:
        raise TapecastError(f"--rollouts must be at least 1, got {rollouts}")
    size = min(batch or rollouts, rollouts)
    began = time.perf_counter()
    markets: list[SimulatedMarket] = []
    for first in range(0, rollouts, size):
        out = generate(model, start, n_events, batch=min(size, rollouts - first),
                       temperature=temperature, top_k=top_k, seed=seed + first)
        markets.extend(out.markets)
    wall = time.perf_counter() - began
    return markets, {"wall_s": round(wall, 3),
                     "events_per_s": round(rollouts * n_events / max(wall, 1e-9), 1),
                     "batch": size}


def write_rollouts(markets: Sequence[SimulatedMarket], out: Path, summary: dict[str, Any]
                   ) -> dict[str, Any]:
    """Write each market's events as ``rollout-NNN.mbo.csv`` and ``summary.json`` into
    ``out`` atomically; returns the summary written."""
    counters = [m.counters for m in markets]
    cancels = sum(c["cancels"] for c in counters)
    full = {**summary, "rollouts": len(markets), "counters": counters,
            "cancel_miss_share": sum(c["cancels_missed"] for c in counters) / max(cancels, 1),
            "files": [f"rollout-{r:03d}.mbo.csv" for r in range(len(markets))]}
    with atomic_dir(out) as staging:
        for market, name in zip(markets, full["files"], strict=True):
            write_mbo_csv(market.events(), staging / name)
        (staging / SUMMARY_FILE).write_text(json.dumps(full, indent=1, default=str) + "\n")
    return full


def start_summary(source: Path, start: RolloutStart, upto: int | None) -> dict[str, Any]:
    """What the summary records of the starting point."""
    return {"source": str(source), "source_sha256": file_sha256(source),
            "instrument": start.instrument, "upto": upto, "events_fed": start.events_fed,
            "start_ns": start.t_ns,
            "tick": start.tick / 1e9, "prompt_tokens": int(start.tokens.size)}

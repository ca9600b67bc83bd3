"""``tapecast generate`` and ``tapecast simulate``.

``generate`` serves two generative models, told apart by the run folder: TradeFM in closed loop
from a real starting point, written as Databento MBO CSV rollouts
(:mod:`tapecast.workflows.rollouts`), and the score model of market states, whose scenarios
(states drawn by annealed Langevin, optionally with some features fixed) are written as
Parquet (:mod:`tapecast.workflows.scenarios`). ``simulate`` runs the baseline order-flow
generators through the same matching engine as TradeFM."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tapecast.commands.common import console, err_console, refuse_inside, user_errors
from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_path, atomic_write_text

SCENARIO_FILE = "scenarios.parquet"


def _check(events: int, rollouts: int, out: Path) -> None:
    if events < 1:
        raise TapecastError(f"--events must be at least 1, got {events}")
    if rollouts < 1:
        raise TapecastError(f"--rollouts must be at least 1, got {rollouts}")
    if out.exists() and not out.is_dir():
        raise TapecastError(f"--out {out}: is a file; give a folder")


def _report(out: Path, summary: dict[str, Any], began: float) -> None:
    table = Table(title=f"wrote {escape(str(out))}", title_justify="left")
    for col in ("rollout", "orders", "adds", "cancels", "cancels missed", "fills"):
        table.add_column(col, justify="right")
    for r, c in enumerate(summary["counters"]):
        table.add_row(str(r), f"{c['events']:,}", f"{c['adds']:,}", f"{c['cancels']:,}",
                      f"{c['cancels_missed']:,}", f"{c['trades']:,}")
    console.print(table)
    console.print(f"{summary['generator']}: cancels that found no order "
                  f"{summary['cancel_miss_share']:.1%}; {summary['events_per_s']:,.0f} "
                  f"events/s; {time.perf_counter() - began:.1f} s in all")


Source = Annotated[Path, typer.Option(
    "--source", "-s", help="The real L3 session to start from (Databento MBO, LOBSTER, a "
    "generic events file).", show_default=False)]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (rollout-NNN.mbo.csv, "
                                   "summary.json).", show_default=False)]
Upto = Annotated[int | None, typer.Option(
    help="Start after this many events of the source (default: after all of them).",
    show_default=False)]
Events = Annotated[int, typer.Option("--events", "-n", help="Orders per rollout.")]
Rollouts = Annotated[int, typer.Option(help="Independent rollouts.")]
Seed = Annotated[int, typer.Option(help="Seed of rollout 0 (rollout r: seed + r).")]


OptionalSource = Annotated[Path | None, typer.Option(
    "--source", "-s", help="TradeFM: the real L3 session to start from (Databento MBO, "
    "LOBSTER, a generic events file).", show_default=False)]


def generate(
    run: Annotated[Path, typer.Argument(help="A trained TradeFM or score-model run folder.",
                                        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output folder: rollout-NNN.mbo.csv + summary.json (TradeFM), "
        "scenarios.parquet + summary.json (score model).", show_default=False)],
    source: OptionalSource = None,
    upto: Upto = None,
    events: Events = 4096,
    rollouts: Rollouts = 4,
    batch: Annotated[int | None, typer.Option(
        help="Rollouts sampled together (default: all).", show_default=False)] = None,
    seed: Seed = 0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    top_k: Annotated[int | None, typer.Option(help="Sample among the k likeliest tokens.",
                                              show_default=False)] = None,
    tier: Annotated[str, typer.Option(help="Liquidity tier of the instrument.")] = "medium",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.",
                                                show_default=False)] = None,
    samples: Annotated[int, typer.Option(help="Score model: states to draw.")] = 1000,
    given: Annotated[list[str] | None, typer.Option(
        help="Score model: hold a feature at a raw value, FEATURE=VALUE (repeatable); the "
        "other features are drawn given it.", show_default=False)] = None,
) -> None:
    """Generate with a trained model: TradeFM order flow in closed loop through the matching
    engine, from the book and the last CONTEXT events of a real session (docs/tradefm.md); or
    market-state scenarios from a score model, optionally with some features fixed
    (docs/score-matching.md)."""
    began = time.perf_counter()
    with user_errors():
        import torch

        from tapecast.commands.folders import run_kind

        kind = run_kind(run)
        if kind == "score-matching":
            if source is not None or upto is not None:
                raise TapecastError("--source/--upto start TradeFM rollouts; a score model "
                                    "draws states (use --samples and --given)")
            _scenarios(run, out, samples, given or [], seed, began, threads)
            return
        if given:
            raise TapecastError(f"--given fixes features of a score model's states; {run} "
                                f"holds a {kind} model")
        if kind != "tradefm":
            raise TapecastError(f"{run}: a {kind} model; generate needs a TradeFM or a score "
                                "model (forecasters write samples with `tapecast forecast`)")
        if source is None:
            raise TapecastError("TradeFM rollouts need --source, the real session to start "
                                "from")

        from tapecast.models.tradefm import TradeFMModel
        from tapecast.workflows.rollouts import (
            generate_rollouts,
            rollout_start,
            start_summary,
            write_rollouts,
        )

        _check(events, rollouts, out)
        if temperature <= 0:
            raise TapecastError(f"--temperature must be > 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise TapecastError(f"--top-k must be at least 1, got {top_k}")
        if threads is not None:
            torch.set_num_threads(max(1, threads))
        model = TradeFMModel.load(run)
        assert model.net is not None
        start, _ = rollout_start(source, upto=upto, tokenizer=model.tokenizer,
                                 context=model.config.net.context, tier=tier)
        err_console.print(f"tapecast generate: {escape(repr(model))}, {rollouts} rollouts x "
                          f"{events:,} orders from {escape(str(source))}", highlight=False)
        markets, stats = generate_rollouts(model, start, n_events=events, rollouts=rollouts,
                                           seed=seed, temperature=temperature, top_k=top_k,
                                           batch=batch)
        summary = write_rollouts(markets, out, {
            "generator": "tradefm", "run": str(run), "seed": seed, "events": events,
            "temperature": temperature, "top_k": top_k, **stats,
            **start_summary(source, start, upto)})
    _report(out, summary, began)


def _scenarios(run: Path, out: Path, samples: int, given_items: list[str], seed: int,
               began: float, threads: int | None = None) -> None:
    """Draw ``samples`` states from the score model in ``run`` into ``out/scenarios.parquet``."""
    import numpy as np

    from tapecast.commands.score_cmd import NORMALIZER_COPY
    from tapecast.features.state_normalize import StateNormalizer
    from tapecast.models.score_matching import ScoreMatching
    from tapecast.workflows.scenarios import generate_scenarios, parse_given

    if samples < 1:
        raise TapecastError(f"--samples must be at least 1, got {samples}")
    if out.exists() and not out.is_dir():
        raise TapecastError(f"--out {out}: is a file; give a folder")
    refuse_inside(out, "--out", run)
    normalizer_file = run / NORMALIZER_COPY
    if not normalizer_file.is_file():
        raise TapecastError(f"{normalizer_file}: missing; the run was not finished by "
                            "`tapecast train` (train it again)")
    normalizer = StateNormalizer.load(normalizer_file)
    model = ScoreMatching.load(run)
    if threads is not None:  # the model samples with its config's thread count
        model.config = model.config.with_train(num_threads=max(1, threads))
    given = parse_given(given_items, normalizer.features)
    err_console.print(f"tapecast generate: {escape(repr(model))}, {samples:,} states"
                      + (f" given {given}" if given else ""), highlight=False)
    frame = generate_scenarios(model, normalizer, samples, given=given, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / SCENARIO_FILE) as tmp:
        frame.write_parquet(tmp)
    summary = {"generator": "score-matching", "run": str(run), "samples": samples,
               "given": given, "seed": seed, "sampler": {
                   "n_levels": model.config.n_levels,
                   "steps_per_level": model.config.steps_per_level,
                   "epsilon": model.config.epsilon},
               "wall_s": round(time.perf_counter() - began, 3)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    table = Table(title=f"wrote {escape(str(out / SCENARIO_FILE))}", title_justify="left")
    for col in ("feature", "given", "mean", "std", "1 %", "99 %"):
        table.add_column(col, justify="right")
    for name in normalizer.features:
        v = frame[name].to_numpy()
        table.add_row(name, "" if name not in given else f"{given[name]:.4g}",
                      f"{v.mean():.4g}", f"{v.std():.4g}", f"{np.quantile(v, 0.01):.4g}",
                      f"{np.quantile(v, 0.99):.4g}")
    console.print(table)
    console.print(f"{samples:,} states in {time.perf_counter() - began:.1f} s")


def simulate(
    generator: Annotated[str, typer.Option(
        "--generator", "-g", help="hawkes, zi (zero-intelligence) or unigram (the token "
        "sampler; needs --tokenizer).", show_default=False)],
    source: Source,
    out: Out,
    upto: Upto = None,
    events: Events = 4096,
    rollouts: Rollouts = 4,
    seed: Seed = 0,
    tokenizer: Annotated[Path | None, typer.Option(
        help="tokenizer.json of the unigram sampler (a model's or a tokenize folder's).",
        show_default=False)] = None,
) -> None:
    """Simulate order flow with a baseline generator calibrated on the source's events before
    the start, through the same matching engine as `generate` (docs/order-flow-baselines.md)."""
    began = time.perf_counter()
    with user_errors():
        from tapecast.features.tokenizer import Tokenizer
        from tapecast.workflows.rollouts import (
            GENERATORS,
            baseline_generator,
            rollout_start,
            simulate_rollouts,
            start_summary,
            write_rollouts,
        )

        _check(events, rollouts, out)
        if generator not in GENERATORS:
            raise TapecastError(f"--generator must be one of {', '.join(GENERATORS)}, got "
                                f"{generator!r}")
        frozen = None if tokenizer is None else Tokenizer.load(tokenizer)
        if generator == "unigram" and frozen is None:
            raise TapecastError("--generator unigram needs --tokenizer FILE")
        # with a tokenizer, its event settings (EW-VWAP half-life, staleness) for the mid
        start, tables = rollout_start(source, upto=upto, tokenizer=frozen)
        gen = baseline_generator(generator, tables, start, tokenizer=frozen)
        err_console.print(f"tapecast simulate: {generator}, {rollouts} rollouts x {events:,} "
                          f"orders from {escape(str(source))}", highlight=False)
        markets, stats = simulate_rollouts(gen, start, n_events=events, rollouts=rollouts,
                                           seed=seed)
        summary = write_rollouts(markets, out, {
            "generator": generator, "seed": seed, "events": events, **stats,
            **start_summary(source, start, upto)})
    _report(out, summary, began)

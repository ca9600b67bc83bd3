"""The TradeFM side of ``tapecast train`` and the ``tapecast perplexity`` command (issue 14).

``model_cmd.train`` dispatches here when the folder is a ``tapecast tokenize`` folder (or
``--model tradefm``); ``perplexity`` scores a trained model on a token folder's val or test
split beside the unigram, factorized and bigram baselines
(:func:`tapecast.models.tradefm_eval.score_tokens`), per source and per liquidity tier.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tapecast.commands.common import console, err_console, fail, user_errors
from tapecast.commands.folders import corpus_folder, require_features_kind
from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text

if TYPE_CHECKING:
    from tapecast.models.tradefm_config import TradeFMModelConfig

RUN_FILE = "run.json"


@dataclass(frozen=True)
class TradeFMTrainOptions:
    """``tapecast train`` options that reach a TradeFM run."""

    config: str = "tiny"
    max_steps: int | None = None
    seed: int | None = None
    device: str | None = None
    precision: str | None = None
    fresh: bool = False


def tradefm_config(opts: TradeFMTrainOptions) -> TradeFMModelConfig:
    """A preset (``tiny``, ``125M``, ``250M``, ``500M``; a preset name wins over a file of that
    name) or a config.json (a bare config, a model folder's ``config.json`` or the folder
    itself), with the command-line overrides."""
    from tapecast.models.folder import preset_or_file
    from tapecast.models.tradefm_config import (
        TRADEFM_MODEL_PRESETS,
        TradeFMModelConfig,
        tradefm_model_config,
    )

    config = preset_or_file(opts.config, TRADEFM_MODEL_PRESETS, tradefm_model_config,
                            TradeFMModelConfig.from_dict, "TradeFM")
    changes = {key: value for key, value in (
        ("max_steps", opts.max_steps), ("seed", opts.seed), ("device", opts.device),
        ("precision", opts.precision)) if value is not None}
    return config.with_train(**changes) if changes else config


def train_tradefm(tokens: Path, out: Path, opts: TradeFMTrainOptions) -> None:
    """Train TradeFM on the train split of the token folder ``tokens`` (early stop on val);
    ``out`` becomes its model folder with ``run.json``. Ctrl-C leaves ``out/last``."""
    from tapecast.commands.price_cmd import print_train_summary
    from tapecast.features.token_corpus import TokenCorpus
    from tapecast.models.tradefm import TradeFMModel

    corpus = TokenCorpus.open(corpus_folder(tokens))
    cfg = tradefm_config(opts)
    model = TradeFMModel(cfg)
    n = {split: sum(s.length for s in corpus.select(split)) for split in ("train", "val")}
    err_console.print(
        f"tapecast train: TradeFM {escape(cfg.name)!r} (context {cfg.net.context}), "
        f"{n['train']:,} train tokens, {n['val']:,} val tokens, "
        f"{cfg.train.max_steps or '-'} steps of {cfg.train.batch_size} windows", highlight=False)
    try:
        model.fit(corpus, run_dir=out, resume=not opts.fresh)
    except KeyboardInterrupt:
        fail(f"interrupted; {out / 'last'} holds the last completed step: run the same "
             "command again to resume", code=130)
    result = model.train_result
    run = {"model": "tradefm", "tokens": str(tokens), "config": cfg.to_dict(),
           "n_parameters": model.n_parameters, **model.training}
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 writes
        atomic_write_text(out / RUN_FILE, json.dumps(run, indent=1) + "\n")
    print_train_summary(out, cfg.name, model.n_parameters, result.step, result.best_val_loss,
                        result.best_step, result.wall_s, result.resumed_from, model="TradeFM")
    if model.training.get("still_improving") and n["val"]:
        err_console.print("note: validation loss was still falling at the last step; more "
                          "steps (--max-steps) may help", highlight=False)


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, spec)


def perplexity(
    tokens: Annotated[Path, typer.Option(
        "--tokens", "-T", help="A `tapecast tokenize` folder encoded by the model's tokenizer "
        "(`tapecast tokenize --tokenizer RUN/tokenizer.json` for another source).",
        show_default=False)],
    run: Annotated[Path | None, typer.Argument(
        help="A trained TradeFM model folder (omit it to score the baselines alone).",
        show_default=False)
    ] = None,
    split: Annotated[str, typer.Option(help="Split to score: val or test.")] = "test",
    baselines: Annotated[bool, typer.Option(
        "--baselines/--no-baselines", help="Score the unigram, factorized and bigram "
        "baselines (fitted on each source's train split, so a folder tokenized with --split "
        "0/0/100 needs --no-baselines) beside the model.")] = True,
    top_levels: Annotated[int | None, typer.Option(
        help="Score only events inside the N best price levels of their side (the model "
        "still reads every event).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Also write the scores as JSON.", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 16,
    threads: Annotated[int | None, typer.Option(
        help="torch CPU threads (default: torch's).", show_default=False)] = None,
) -> None:
    """Per-token cross-entropy and perplexity of a TradeFM model on a token folder's split,
    per source and per liquidity tier, beside the token baselines with block-bootstrap 95 %
    intervals of the difference (docs/tradefm.md)."""
    start = time.perf_counter()
    with user_errors():
        import torch

        from tapecast.features.token_corpus import TokenCorpus
        from tapecast.models.tradefm import TradeFMModel
        from tapecast.models.tradefm_eval import score_rows, score_tokens

        if split not in ("val", "test"):
            raise TapecastError(f"--split must be val or test, got {split!r}")
        from tapecast.features.events import LEVELS

        if top_levels is not None and not 1 <= top_levels <= LEVELS:
            raise TapecastError(f"--top-levels must be in 1..{LEVELS} (a token's level counts "
                                f"up to {LEVELS} better levels), got {top_levels}")
        if batch_size < 1:
            raise TapecastError(f"--batch-size must be at least 1, got {batch_size}")
        if threads is not None:
            if threads < 1:
                raise TapecastError(f"--threads must be at least 1, got {threads}")
            torch.set_num_threads(threads)
        if out is not None and out.is_dir():
            raise TapecastError(f"--out {out}: is a folder; give a file name (.json)")
        require_features_kind(tokens, "tokens", "`tapecast perplexity`")
        model = None if run is None else TradeFMModel.load(run)
        corpus = TokenCorpus.open(corpus_folder(tokens))
        scores = score_tokens(model, corpus, split, baselines=baselines, max_level=top_levels,
                              batch_size=batch_size)
        rows: list[dict[str, Any]] = [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in row.items()} for row in score_rows(scores)]  # JSON has no NaN
        if out is not None:
            payload: dict[str, Any] = {
                "run": None if run is None else str(run), "tokens": str(tokens),
                "split": split, "top_levels": top_levels, "rows": rows,
                "wall_s": round(time.perf_counter() - start, 3)}
            atomic_write_text(out, json.dumps(payload, indent=1) + "\n")
    title = f"{split} split of {escape(str(tokens))}" + (
        "" if top_levels is None else
        f", events inside the top {top_levels} level{'s' if top_levels > 1 else ''}")
    table = Table(title=title, title_justify="left")
    columns = [("group", "left"), ("model", "left"), ("tokens", "right"),
               ("CE (nats)", "right"), ("perplexity", "right")]
    if run is not None and baselines:
        columns.append(("TradeFM − model [95 % CI]", "right"))
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        model_name = str(row["model"]) + (f" ({row['note']})" if row["note"] else "")
        diff = ("–" if row["diff"] is None else
                f"{row['diff']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]")
        cells = [escape(str(row["group"])), escape(model_name), f"{row['tokens']:,}",
                 _fmt(row["ce"], ".3f"), _fmt(row["perplexity"], ",.1f"), diff]
        table.add_row(*cells[:len(columns)])
    console.print(table)
    if out is not None:
        console.print(f"wrote {escape(str(out))}")

"""The score-model side of ``tapecast train`` and the ``tapecast density`` command (issue 16).

``model_cmd.train`` dispatches here when the features folder is a state one (``tapecast
features --kind state``): :class:`~tapecast.models.score_matching.ScoreMatching` is fitted on
the train split's normalized states (early stop on val) and the run folder gets, beside the
model's ``config.json`` and ``model.safetensors``:

- ``normalizer.json``, a byte copy of the features folder's, so ``density`` refuses states
  normalized another way (another folder, other split fractions, other bars);
- ``threshold.json``, the 99th percentile of −log p over the train states (at most 10,000 of
  them, drawn with seed 0; Hutchinson divergence, computed once at train time), the anomaly
  threshold ``density`` flags against;
- ``run.json``, the provenance (features folder, config, training outcome).

``density`` writes log p per bar of a split, with the bar's instrument and times and the
anomaly flag, as Parquet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from tapecast.commands.common import console, err_console, fail, refuse_inside, user_errors
from tapecast.commands.folders import require_features_kind, run_kind
from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_path, atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:

    from tapecast.models.score_matching_config import ScoreMatchingConfig

RUN_FILE = "run.json"
NORMALIZER_COPY = "normalizer.json"  # tapecast.features.state_featureset.NORMALIZER_FILE
THRESHOLD_FILE = "threshold.json"
QUANTILE = 0.99
DENSITY_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ScoreTrainOptions:
    """``tapecast train`` options that reach a score-model run."""

    config: str = "small"
    max_steps: int | None = None
    seed: int | None = None
    fresh: bool = False


def score_config(opts: ScoreTrainOptions) -> ScoreMatchingConfig:
    """A preset (``small``, ``tiny``; a preset name wins over a file of that name) or a
    config.json (a bare config, a model folder's ``config.json`` or the folder itself), with
    the command-line overrides."""
    from tapecast.models.folder import preset_or_file
    from tapecast.models.score_matching_config import (
        PRESETS,
        ScoreMatchingConfig,
        score_matching_config,
    )

    config = preset_or_file(opts.config, PRESETS, score_matching_config,
                            ScoreMatchingConfig.from_dict, "score-matching")
    changes = {key: value for key, value in (("max_steps", opts.max_steps),
                                             ("seed", opts.seed)) if value is not None}
    return config.with_train(**changes) if changes else config


def train_score(features: Path, out: Path, opts: ScoreTrainOptions) -> None:
    """Train the score model on the train split of the state folder ``features`` (early stop on
    val); ``out`` becomes its model folder with the normalizer copy, the anomaly threshold and
    ``run.json``. Ctrl-C leaves ``out/last``."""
    import numpy as np

    from tapecast.commands.price_cmd import print_train_summary
    from tapecast.features.state_featureset import NORMALIZER_FILE, StateFeatureSet
    from tapecast.models.score_anomaly import threshold_states
    from tapecast.models.score_matching import ScoreMatching

    require_features_kind(features, "state", "the score model")
    fs = StateFeatureSet.open(features)
    cfg = score_config(opts)
    if not opts.fresh and (out / NORMALIZER_COPY).is_file():
        _require_same_normalizer(out, features)
    train, val = fs.matrix("train"), fs.matrix("val")
    model = ScoreMatching(cfg)
    err_console.print(
        f"tapecast train: score model {escape(cfg.name)!r} ({cfg.objective}), {len(train):,} "
        f"train states, {len(val):,} val states of dimension {train.shape[1]}, "
        f"{cfg.train.max_steps or '-'} steps", highlight=False)
    try:
        model.fit(train, val if len(val) else None, run_dir=out, resume=not opts.fresh,
                  feature_names=fs.config.names)
    except KeyboardInterrupt:
        fail(f"interrupted; {out / 'last'} holds the last completed step: run the same "
             "command again to resume", code=130)
    result = model.train_result
    atomic_write_bytes(out / NORMALIZER_COPY, (features / NORMALIZER_FILE).read_bytes())
    start = time.perf_counter()
    sample = threshold_states(train)
    neg = -model.log_prob_chunked(sample, seed=0)
    threshold = {"quantile": QUANTILE, "neg_log_p": float(np.quantile(neg, QUANTILE)),
                 "split": "train", "states": len(sample), "divergence": "hutchinson",
                 "n_probes": 1, "seed": 0, "wall_s": round(time.perf_counter() - start, 3)}
    atomic_write_text(out / THRESHOLD_FILE, json.dumps(threshold, indent=1) + "\n")
    assert model.net is not None
    n_parameters = sum(p.numel() for p in model.net.parameters())
    run = {"model": "score-matching", "features": str(features),
           "state_sha256": fs.source.get("state_sha256"), "config": cfg.to_dict(),
           "n_parameters": n_parameters, **model.training}
    atomic_write_text(out / RUN_FILE, json.dumps(run, indent=1) + "\n")
    print_train_summary(out, cfg.name, n_parameters, result.step, result.best_val_loss,
                        result.best_step, result.wall_s, result.resumed_from,
                        model="score-matching")


def _require_same_normalizer(run: Path, features: Path) -> None:
    """Refuse ``features`` unless its normalizer is the one ``run`` was trained with."""
    from tapecast.features.state_featureset import NORMALIZER_FILE
    from tapecast.features.state_normalize import StateNormalizer

    mine = StateNormalizer.load(run / NORMALIZER_COPY)
    theirs = StateNormalizer.load(features / NORMALIZER_FILE)
    if mine.to_dict() != theirs.to_dict():
        what = ("other features" if mine.features != theirs.features else
                "another normalization (mean, std or clip differ)")
        raise TapecastError(f"{features}: states of {what} than the model in {run} was "
                            f"trained on ({run / NORMALIZER_COPY}); score a state folder "
                            "built with the run's data and split, or train on this one")


def _threshold(run: Path) -> float:
    """The anomaly threshold of −log p that ``train`` stored in ``run``."""
    file = run / THRESHOLD_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return float(data["neg_log_p"])
    except FileNotFoundError:
        raise TapecastError(f"{file}: missing; the run was not finished by `tapecast train` "
                            "(train it again)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TapecastError(f"{file}: invalid ({exc})") from None


def density(
    run: Annotated[Path, typer.Argument(help="A trained score-model run folder.",
                                        show_default=False)],
    features: Annotated[Path, typer.Option(
        "--features", "-F", help="A state features folder of the run's normalization.",
        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The Parquet file to write.",
                                      show_default=False)],
    split: Annotated[str, typer.Option(help="Split to score: train, val or test.")] = "test",
    exact: Annotated[bool, typer.Option(
        "--exact", help="Exact divergence (D backward passes per step) instead of "
        "Hutchinson's estimate.")] = False,
    n_probes: Annotated[int, typer.Option(help="Hutchinson probes per state.")] = 1,
    steps: Annotated[int | None, typer.Option(
        help="RK4 steps of the probability-flow ODE (default: the model's).",
        show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the Hutchinson probes.")] = 0,
) -> None:
    """log p (nats) of each state of SPLIT under a trained score model, with an anomaly flag
    where −log p exceeds the train split's 99th percentile (RUN/threshold.json, computed at
    train time), written as Parquet: instrument, ts, known_at, log_p, anomaly."""
    start = time.perf_counter()
    with user_errors():
        import polars as pl

        if split not in DENSITY_SPLITS:
            raise TapecastError(f"--split must be one of {', '.join(DENSITY_SPLITS)}, got "
                                f"{split!r}")
        if n_probes < 1:
            raise TapecastError(f"--n-probes must be at least 1, got {n_probes}")
        if steps is not None and steps < 1:
            raise TapecastError(f"--steps must be at least 1, got {steps}")
        if out.is_dir():
            raise TapecastError(f"--out {out}: is a folder; give a file name (.parquet)")
        refuse_inside(out, "--out", run, features)
        kind = run_kind(run)
        if kind != "score-matching":
            raise TapecastError(f"{run}: a {kind} model, not a score model of states (train "
                                "one with `tapecast train -F STATE_FOLDER`)")
        require_features_kind(features, "state", f"the score model in {run}")
        _require_same_normalizer(run, features)
        threshold = _threshold(run)
        from tapecast.features.state_featureset import StateFeatureSet
        from tapecast.models.score_matching import ScoreMatching

        model = ScoreMatching.load(run)
        fs = StateFeatureSet.open(features)
        x = fs.matrix(split)
        if not len(x):
            raise TapecastError(f"{features}: no state in the {split} split")
        divergence = "exact" if exact else "hutchinson"
        err_console.print(f"tapecast density: {escape(repr(model))}, {len(x):,} {split} states, "
                          f"{divergence} divergence", highlight=False)
        log_p = model.log_prob_chunked(x, divergence=divergence, n_probes=n_probes, seed=seed,
                                       steps=steps)
        frame = (fs.table.filter(pl.col("split") == split)
                 .select("instrument", "ts", "known_at")
                 .with_columns(pl.Series("log_p", log_p),
                               pl.Series("anomaly", -log_p > threshold)))
        with atomic_path(out) as tmp:
            frame.write_parquet(tmp)
        summary: dict[str, Any] = {
            "bars": frame.height, "mean_log_p": float(log_p.mean()),
            "flagged": int(frame["anomaly"].sum()), "threshold": threshold,
            "wall_s": time.perf_counter() - start}
    table = Table(title=f"log p of the {split} split of {escape(str(features))}",
                  title_justify="left", show_header=False, box=box.SIMPLE, padding=(0, 1))
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("bars", f"{summary['bars']:,}")
    table.add_row("mean log p", f"{summary['mean_log_p']:.3f} nats")
    table.add_row("flagged", f"{summary['flagged']:,} ({summary['flagged'] / summary['bars']:.1%})"
                  f" at -log p > {summary['threshold']:.3f} (train 99th percentile)")
    table.add_row("divergence", divergence)
    table.add_row("wall time", f"{summary['wall_s']:.1f} s")
    console.print(table)
    console.print(f"wrote {escape(str(out))}")

"""The price-features side of ``tapecast train``, ``forecast`` and ``baseline`` (issue 13).

``model_cmd`` and ``evaluate_cmd`` own the options and dispatch here when the features folder
(or the run folder) is a price one: the price-diffusion forecaster
(:class:`tapecast.models.price_diffusion.PriceDiffusion`) and the ``price-`` baselines
(:mod:`tapecast.models.price_baselines`). The forecast files are the same ``.npz`` as JL-CSDI's,
so ``tapecast evaluate`` scores both.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich import box
from rich.markup import escape
from rich.table import Table

from tapecast.commands.common import console, err_console, fail
from tapecast.commands.progress import RichReporter
from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text

if TYPE_CHECKING:
    from tapecast.core.batch import ForecastBatch
    from tapecast.core.forecast import Forecast
    from tapecast.features.price_dataset import PriceDataset, Target
    from tapecast.features.price_featureset import PriceFeatureSet
    from tapecast.models.price_diffusion_config import PriceDiffusionConfig

RUN_FILE = "run.json"
TARGETS = ("return", "path")
PRICE_CHUNK = 256  # origins sampled together: a price window is small, the encoder runs once


@dataclass(frozen=True)
class PriceTrainOptions:
    """``tapecast train`` options that reach a price-diffusion run."""

    config: str = "small"
    max_steps: int | None = None
    seed: int | None = None
    device: str | None = None
    precision: str | None = None
    fresh: bool = False
    fold: int | None = None
    shuffle_pairs: int | None = None
    target: str | None = None


def check_target(target: str | None) -> Target:
    """``--target`` as a price dataset target (``return`` when not given)."""
    if target is None:
        return "return"
    if target not in TARGETS:
        raise TapecastError(f"--target must be return or path, got {target!r}")
    return "return" if target == "return" else "path"


def price_config(opts: PriceTrainOptions) -> PriceDiffusionConfig:
    """A preset (``small``, ``tiny``) or a config.json (a bare config or a model folder's
    ``config.json``), with the command-line overrides."""
    from tapecast.models.folder import preset_or_file
    from tapecast.models.price_diffusion_config import (
        PRESETS,
        PriceDiffusionConfig,
        price_diffusion_config,
    )

    config = preset_or_file(opts.config, PRESETS, price_diffusion_config,
                            PriceDiffusionConfig.from_dict, "price-diffusion")
    changes = {key: value for key, value in (
        ("max_steps", opts.max_steps), ("seed", opts.seed), ("device", opts.device),
        ("precision", opts.precision)) if value is not None}
    return config.with_train(**changes) if changes else config


def train_price(features: Path, out: Path, opts: PriceTrainOptions) -> None:
    """Train the price-diffusion model on the train split of ``features`` (validating on val);
    ``out`` becomes its model folder with ``run.json``. Ctrl-C leaves ``out/last``."""
    from tapecast.features.price_featureset import PriceFeatureSet
    from tapecast.models.price_diffusion import PriceDiffusion
    from tapecast.workflows.forecast import split_provenance

    target = check_target(opts.target)
    fs = PriceFeatureSet.open(features)
    cfg = price_config(opts)
    train_set = fs.dataset("train", target, fold=opts.fold)
    val_set = (fs.dataset("val", target, fold=opts.fold) if fs.split_spec.val_sessions > 0
               else None)
    forecaster = PriceDiffusion(cfg)
    shuffle = "" if opts.shuffle_pairs is None else f", shuffled pairs (seed {opts.shuffle_pairs})"
    err_console.print(
        f"tapecast train: price-diffusion {escape(cfg.name)!r}, {target} target, "
        f"{len(train_set):,} train origins, {0 if val_set is None else len(val_set):,} val "
        f"origins, {cfg.train.max_steps or '-'} steps{shuffle}", highlight=False)
    try:
        forecaster.fit(train_set, val_set, run_dir=out, resume=not opts.fresh,
                       shuffle_pairs_seed=opts.shuffle_pairs)
    except KeyboardInterrupt:
        fail(f"interrupted; {out / 'last'} holds the last completed step: run the same "
             "command again to resume", code=130)
    result = forecaster.train_result
    run = {**split_provenance(features, fs, "train", opts.fold), "model": "price-diffusion",
           "target": target, "config": forecaster.config.to_dict(),
           "n_parameters": forecaster.n_parameters, **forecaster.training}
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 writes
        atomic_write_text(out / RUN_FILE, json.dumps(run, indent=1) + "\n")
    print_train_summary(out, forecaster.config.name, forecaster.n_parameters, result.step,
                        result.best_val_loss, result.best_step, result.wall_s,
                        result.resumed_from)


def print_train_summary(out: Path, preset: str, n_parameters: int, steps: int,
                        best_val_loss: float | None, best_step: int | None, wall_s: float,
                        resumed_from: int | None, *, model: str = "price-diffusion") -> None:
    """The Rich table ``tapecast train`` prints after a price-diffusion (or ``model``) run."""
    table = Table(title=f"trained {escape(str(out))}", title_justify="left", show_header=False,
                  box=box.SIMPLE, padding=(0, 1))
    table.add_column("what")
    table.add_column("value", justify="right")
    best = "-" if best_val_loss is None else f"{best_val_loss:.4f} at step {best_step}"
    resumed = "" if resumed_from is None else f" (resumed from step {resumed_from})"
    table.add_row("model", f"{escape(model)} ({escape(preset)})")
    table.add_row("steps", f"{steps:,}{resumed}")
    table.add_row("best val loss", best)
    table.add_row("wall time", f"{wall_s:.1f} s ({wall_s / max(steps, 1):.3f} s/step)")
    table.add_row("parameters", f"{n_parameters:,}")
    console.print(table)


def _origins(data: PriceDataset, every: int | None, horizon_s: int) -> ForecastBatch:
    """Every ``every``-th origin of ``data`` (default: one per horizon, so that the forecast
    targets do not overlap and a DM test of them needs no overlap correction)."""
    step = horizon_s if every is None else every
    if step < 1:
        raise TapecastError(f"--every must be at least 1, got {step}")
    return data.batch(np.arange(0, len(data), step))


def _open_split(features: Path, split: str, target: Target, fold: int | None,
                every: int | None) -> tuple[PriceFeatureSet, ForecastBatch]:
    from tapecast.features.price_featureset import PriceFeatureSet

    fs = PriceFeatureSet.open(features)
    batch = _origins(fs.dataset(split, target, fold=fold), every, fs.config.horizon_s)
    return fs, batch


@dataclass(frozen=True)
class PriceForecastOptions:
    """``tapecast forecast`` options that reach a price-diffusion model."""

    split: str = "test"
    n_samples: int = 256
    sampler: str | None = None
    steps: int | None = None
    seed: int = 0
    fold: int | None = None
    chunk: int | None = None
    lattice: bool | None = None
    every: int | None = None


def forecast_price(run: Path, features: Path, out: Path, opts: PriceForecastOptions,
                   threads: int) -> Forecast:
    """Sample the price-diffusion model of ``run`` over a split of ``features``; write and
    return the forecast (samples (B, S, 1, H) of ``log_return``, no context)."""
    from tapecast.models.price_diffusion import PriceDiffusion
    from tapecast.workflows import forecast_batch
    from tapecast.workflows.forecast import split_provenance

    start = time.perf_counter()
    model = PriceDiffusion.load(run)
    name = opts.sampler or model.config.sampler
    n_steps = opts.steps if opts.steps is not None else model.config.steps_for(name)
    lattice = model.config.lattice if opts.lattice is None else opts.lattice
    target: Target = "return" if model.config.net.target_dim == 1 else "path"
    fs, batch = _open_split(features, opts.split, target, opts.fold, opts.every)
    chunk = opts.chunk or PRICE_CHUNK
    err_console.print(f"tapecast forecast: {escape(repr(model))}, {batch.size:,} {opts.split} "
                      f"origins, {name} {n_steps} steps, {opts.n_samples} samples, lattice "
                      f"{'on' if lattice else 'off'}", highlight=False)
    provenance: dict[str, Any] = {**split_provenance(features, fs, opts.split, opts.fold),
                                  "run": str(run), "threads": threads, "target": target,
                                  "every": opts.every or fs.config.horizon_s}
    with RichReporter(transient=True) as reporter:
        reporter.stage(f"sampling {name}", batch.size)
        made = forecast_batch(model, batch, opts.n_samples, name=f"{model.name}/{name}",
                              seed=opts.seed, chunk=chunk, reporter=reporter, sampler=name,
                              steps=n_steps, lattice=lattice, provenance=provenance)
    assert made is not None  # no stop hook
    made.provenance["wall_s"] = time.perf_counter() - start
    made.save(out)
    return made


def baseline_price(name: str, features: Path, options: dict[str, Any], *, split: str,
                   n_samples: int, seed: int, fold: int | None, label: str | None,
                   every: int | None, target: str | None, chunk: int) -> Forecast:
    """Fit price baseline ``name`` on the train split of ``features`` and forecast ``split``."""
    from tapecast.features.price_featureset import PriceFeatureSet
    from tapecast.models.price_baselines import get_price_baseline
    from tapecast.workflows import fit_and_forecast
    from tapecast.workflows.forecast import split_provenance

    start = time.perf_counter()
    kind = check_target(target)
    model = get_price_baseline(name, **options)
    fs = PriceFeatureSet.open(features)
    if fs.split_spec.kind == "walk-forward" and fold is None:
        raise TapecastError(f"{features}: the features use walk-forward folds; pass --fold K "
                            "to fit on the sessions before test fold K and forecast it")
    train = fs.dataset("train", kind, fold=fold)
    batch = _origins(fs.dataset(split, kind, fold=fold), every, fs.config.horizon_s)
    err_console.print(f"tapecast baseline {name}: fitting on {len(train):,} train origins, "
                      f"forecasting {batch.size:,} {split} origins ({kind} target)",
                      highlight=False)
    provenance = {**split_provenance(features, fs, split, fold), "target": kind,
                  "every": every or fs.config.horizon_s}
    with RichReporter(transient=True) as reporter:
        reporter.stage(f"sampling {name}", batch.size)
        made = fit_and_forecast(model, train, batch, n_samples, name=label or name, seed=seed,
                                chunk=chunk, provenance=provenance, reporter=reporter)
    made.provenance["wall_s"] = time.perf_counter() - start
    return made

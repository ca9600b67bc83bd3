"""``tapecast train`` (fit JL-CSDI, price-diffusion or TradeFM) and ``tapecast forecast`` (sample
a forecaster). The features folder's kind picks the model (an order-flow folder JL-CSDI, a price
folder price-diffusion, in :mod:`tapecast.commands.price_cmd`, a ``tapecast tokenize`` folder
TradeFM, in :mod:`tapecast.commands.tradefm_cmd`); a run folder's ``config.json`` tells
``forecast`` which model it holds."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from tapecast.commands.common import console, err_console, fail, user_errors
from tapecast.commands.folders import FeaturesKind, features_kind, require_features_kind, run_kind
from tapecast.commands.progress import RichReporter
from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text

if TYPE_CHECKING:
    from tapecast.core.forecast import Forecast
    from tapecast.features.featureset import FeatureSet
    from tapecast.models.jl_csdi_config import JLCSDIConfig

MODELS = ("csdi", "jl-csdi", "price-diffusion", "tradefm", "score-matching")
MODEL_ALIASES = {"score": "score-matching"}  # the issue's and the docs' short name
MODEL_FOR_FEATURES = {"orderflow": "csdi", "price": "price-diffusion", "tokens": "tradefm",
                      "state": "score-matching"}
DEFAULT_PRESET = {"price-diffusion": "small", "tradefm": "tiny",
                  "score-matching": "small"}  # else JL-CSDI's "small"
JL_CSDI_CHUNK = 4
RUN_FILE = "run.json"


def _config(name: str, noise: str | None, max_steps: int | None, fs: FeatureSet,
            seed: int | None, device: str | None = None,
            precision: str | None = None) -> JLCSDIConfig:
    """A preset or a config.json, sized to the features, with the command-line overrides."""
    from tapecast.models.folder import preset_or_file
    from tapecast.models.jl_csdi_config import JLCSDI_CONFIGS, JLCSDIConfig, jlcsdi_config

    config = preset_or_file(name, JLCSDI_CONFIGS, jlcsdi_config, JLCSDIConfig.from_dict,
                            "JL-CSDI")
    spec = fs.split_spec
    config = config.with_sizes(spec.context, spec.horizon)
    if noise is not None:
        config = config.with_noise(noise)
    if max_steps is not None:
        config = config.with_train(max_steps=max_steps)
    if seed is not None:
        config = config.with_train(seed=seed)
    if device is not None:
        config = config.with_train(device=device)
    if precision is not None:
        config = config.with_train(precision=precision)
    return config


def _model_for(features: Path, model: str | None) -> str:
    """``--model``, checked against the features folder's kind (default: the folder's model)."""
    kind = features_kind(features)
    if model is None:
        return MODEL_FOR_FEATURES[kind]
    model = MODEL_ALIASES.get(model, model)
    if model not in MODELS:
        raise TapecastError(f"--model must be one of {', '.join(MODELS)} (or score), got "
                            f"{model!r}")
    wanted: FeaturesKind = ("price" if model == "price-diffusion" else
                            "tokens" if model == "tradefm" else
                            "state" if model == "score-matching" else "orderflow")
    require_features_kind(features, wanted, f"--model {model}")
    return model


def train(
    features: Annotated[Path, typer.Option(
        "--features", "-F", help="A features folder (or a `tapecast tokenize` folder).",
        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, model).",
                                      show_default=False)],
    model: Annotated[str | None, typer.Option(
        help="csdi (or jl-csdi) on an order-flow features folder, price-diffusion on a price "
        "one, tradefm on a token folder, score-matching (or score) on a state folder (default: the "
        "folder's).", show_default=False)] = None,
    config: Annotated[str | None, typer.Option(
        "--config", "--preset",
        help="Preset (JL-CSDI: small, jl-csdi-esc1; price-diffusion: small, tiny; TradeFM: "
        "tiny, 125M, 250M, 500M; score-matching: small, tiny) or a config.json path "
        "(default: small; TradeFM tiny).",
        show_default=False)] = None,
    noise: Annotated[str | None, typer.Option(
        help="gaussian or jump-laplace (default: the config's).", show_default=False)] = None,
    max_steps: Annotated[int | None, typer.Option(
        help="Stop after this many optimiser steps (default: the config's).",
        show_default=False)] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start afresh instead of resuming OUT/last.")] = False,
    fold: Annotated[int | None, typer.Option(
        help="Walk-forward fold (features with --split walk-forward).")] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed (default: the config's).",
                                             show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        help="cpu, cuda, cuda:N or auto (CUDA when present); under torchrun each rank takes "
        "cuda:LOCAL_RANK (default: the config's, cpu).", show_default=False)] = None,
    precision: Annotated[str | None, typer.Option(
        help="fp32, bf16, fp16 (CUDA only, with a gradient scaler) or auto (bf16 where this "
        "CPU or GPU runs it fast) (default: the config's, fp32).", show_default=False)] = None,
    shuffle_pairs: Annotated[int | None, typer.Option(
        help="price-diffusion: train the SHUFFLE control, each context paired with another "
        "origin's target (a permutation drawn from this seed).", show_default=False)] = None,
    target: Annotated[str | None, typer.Option(
        help="price-diffusion: return (the 30-s log return) or path (the 30-step return "
        "path) (default: return).", show_default=False)] = None,
) -> None:
    """Train JL-CSDI (order-flow features), price-diffusion (price features), TradeFM (a
    `tapecast tokenize` folder) or the score model (state features) on the train split,
    validating on val; OUT becomes a model folder.

    Ctrl-C writes OUT/last; the same command resumes from there.
    """
    with user_errors():
        name = _model_for(features, model)
        config = config or DEFAULT_PRESET.get(name, "small")
        if name in ("price-diffusion", "tradefm", "score-matching") and noise is not None:
            raise TapecastError(f"--noise applies to JL-CSDI only, not to {name}")
        if name == "price-diffusion":
            from tapecast.commands.price_cmd import PriceTrainOptions, train_price

            train_price(features, out, PriceTrainOptions(
                config, max_steps, seed, device, precision, fresh, fold, shuffle_pairs, target))
            return
        if name == "tradefm":
            if shuffle_pairs is not None or target is not None or fold is not None:
                raise TapecastError("--shuffle-pairs, --target and --fold do not apply to "
                                    "TradeFM (a token folder)")
            from tapecast.commands.tradefm_cmd import TradeFMTrainOptions, train_tradefm

            train_tradefm(features, out, TradeFMTrainOptions(
                config, max_steps, seed, device, precision, fresh))
            return
        if name == "score-matching":
            if (shuffle_pairs is not None or target is not None or fold is not None
                    or device is not None or precision is not None):
                raise TapecastError("--shuffle-pairs, --target, --fold, --device and "
                                    "--precision do not apply to the score model (a state "
                                    "features folder)")
            from tapecast.commands.score_cmd import ScoreTrainOptions, train_score

            train_score(features, out, ScoreTrainOptions(config, max_steps, seed, fresh))
            return
        if shuffle_pairs is not None or target is not None:
            raise TapecastError("--shuffle-pairs and --target apply to price-diffusion only "
                                "(a price features folder)")
        from tapecast.features.featureset import FeatureSet
        from tapecast.models.jl_csdi import JLCSDI

        fs = FeatureSet.open(features)
        cfg = _config(config, noise, max_steps, fs, seed, device, precision)
        train_set = fs.dataset("train", fold=fold)
        val_set = fs.dataset("val", fold=fold) if fs.split_spec.val_sessions > 0 else None
        forecaster = JLCSDI(cfg)
        err_console.print(
            f"tapecast train: {escape(repr(forecaster))}, {len(train_set):,} train origins, "
            f"{0 if val_set is None else len(val_set):,} val origins, "
            f"{cfg.train.max_steps or '-'} steps", highlight=False)
        try:
            result = forecaster.fit(train_set, val_set, run_dir=out, resume=not fresh,
                                    normalizer=fs.fit_normalizer(fold)).train_result
        except KeyboardInterrupt:
            fail(f"interrupted; {out / 'last'} holds the last completed step: run the same "
                 "command again to resume", code=130)
        from tapecast.workflows.forecast import split_provenance

        run = {**split_provenance(features, fs, "train", fold), "config": cfg.to_dict(),
               "n_parameters": forecaster.n_parameters, **forecaster.training}
        if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 writes
            atomic_write_text(out / RUN_FILE, json.dumps(run, indent=1) + "\n")
    per_step = result.wall_s / max(result.step, 1)
    best = "-" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
    console.print(f"trained {escape(str(out))}: {result.step} steps in {result.wall_s:.1f} s "
                  f"({per_step:.2f} s/step), best val loss {best} at step {result.best_step}")


def forecast(
    run: Annotated[Path, typer.Argument(help="A trained run (model) folder.",
                                        show_default=False)],
    features: Annotated[Path, typer.Option("--features", "-F", help="A features folder.",
                                           show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The forecast file to write (.npz).",
                                      show_default=False)],
    split: Annotated[str, typer.Option(help="Split to forecast: val or test.")] = "test",
    n_samples: Annotated[int, typer.Option(help="Monte Carlo samples per origin.")] = 32,
    sampler: Annotated[str | None, typer.Option(
        help="ddpm, ddim or dpm-solver++ (Gaussian noise), sde or sde-mgd (Jump-Laplace noise); "
        "default: "
        "the model's.", show_default=False)] = None,
    steps: Annotated[int | None, typer.Option(
        help="Reverse steps (default: the model's for the sampler).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    fold: Annotated[int | None, typer.Option(
        help="Walk-forward fold (features with --split walk-forward).")] = None,
    chunk: Annotated[int | None, typer.Option(
        help="Origins sampled together (default: 4 for JL-CSDI, 256 for price-diffusion).",
        show_default=False)] = None,
    threads: Annotated[int | None, typer.Option(
        help="torch CPU threads (default: torch's; 1 is faster on a busy machine).",
        show_default=False)] = None,
    lattice: Annotated[bool | None, typer.Option(
        "--lattice/--no-lattice", help="price-diffusion: move the sampled returns to the price "
        "lattice, or keep them continuous (default: the model's).", show_default=False)] = None,
    every: Annotated[int | None, typer.Option(
        help="Forecast every N-th origin of the split (default: all for JL-CSDI; one per "
        "horizon, 30 s, for price-diffusion, so the targets do not overlap).",
        show_default=False)] = None,
) -> None:
    """Sample a trained model (JL-CSDI or price-diffusion, read from RUN/config.json) over SPLIT
    and write a forecast file for `evaluate`."""
    start = time.perf_counter()
    with user_errors():
        import torch

        if n_samples < 1 or (chunk is not None and chunk < 1):
            raise TapecastError(f"--n-samples and --chunk must be at least 1, got {n_samples}, "
                                f"{chunk}")
        if split not in ("val", "test"):
            raise TapecastError(f"--split must be val or test, got {split!r}")
        if threads is not None:
            if threads < 1:
                raise TapecastError(f"--threads must be at least 1, got {threads}")
            torch.set_num_threads(threads)
        kind = run_kind(run)
        if kind == "tradefm":
            raise TapecastError(f"{run}: a TradeFM model scores and generates order-flow "
                                "tokens, not forecasts; score it with `tapecast perplexity`")
        if kind == "score-matching":
            raise TapecastError(f"{run}: a score model of market states, not a forecaster; "
                                "score states with `tapecast density`")
        wanted: FeaturesKind = "price" if kind == "price-diffusion" else "orderflow"
        require_features_kind(features, wanted, f"the {kind} model in {run}")
        made: Forecast
        if kind == "price-diffusion":
            from tapecast.commands.price_cmd import PriceForecastOptions, forecast_price

            made = forecast_price(run, features, out, PriceForecastOptions(
                split, n_samples, sampler, steps, seed, fold, chunk, lattice, every),
                torch.get_num_threads())
        else:
            if lattice is not None:
                raise TapecastError("--lattice/--no-lattice apply to price-diffusion only")
            made = _forecast_jl_csdi(run, features, out, split, n_samples, sampler, steps, seed,
                                     fold, chunk or JL_CSDI_CHUNK, every, start)
        samples, sample_s = made.samples, float(made.provenance["sample_s"])
    console.print(f"wrote {escape(str(out))}: {samples.batch:,} origins x {n_samples} samples x "
                  f"{len(samples.channels)} channels x {samples.horizon} steps; sampling "
                  f"{sample_s:.1f} s ({samples.batch / max(sample_s, 1e-9):.2f} windows/s)")


def _forecast_jl_csdi(run: Path, features: Path, out: Path, split: str, n_samples: int,
                      sampler: str | None, steps: int | None, seed: int, fold: int | None,
                      chunk: int, every: int | None, start: float) -> Forecast:
    """Sample the JL-CSDI model of ``run`` over ``split``; write and return the forecast."""
    import numpy as np
    import torch

    from tapecast.features.featureset import FeatureSet
    from tapecast.models.jl_csdi import JLCSDI
    from tapecast.workflows import forecast_batch
    from tapecast.workflows.forecast import split_provenance

    forecaster = JLCSDI.load(run)
    fs = FeatureSet.open(features)
    name = sampler or forecaster.config.default_sampler
    n_steps = steps if steps is not None else forecaster.config.steps_for(name)
    data = fs.dataset(split, fold=fold)
    if every is not None and every < 1:
        raise TapecastError(f"--every must be at least 1, got {every}")
    batch = data.batch(slice(None) if every in (None, 1) else np.arange(0, len(data), every))
    err_console.print(f"tapecast forecast: {escape(repr(forecaster))}, {batch.size:,} "
                      f"{split} origins, {name} {n_steps} steps, {n_samples} samples",
                      highlight=False)
    with RichReporter(transient=True) as reporter:
        reporter.stage(f"sampling {name}", batch.size)
        made = forecast_batch(
            forecaster, batch, n_samples, name=f"{forecaster.name}/{name}", seed=seed,
            chunk=chunk, reporter=reporter, sampler=name, steps=n_steps,
            provenance={**split_provenance(features, fs, split, fold), "run": str(run),
                        "threads": torch.get_num_threads()})
    assert made is not None  # no stop hook
    made.provenance["wall_s"] = time.perf_counter() - start
    made.save(out)
    return made

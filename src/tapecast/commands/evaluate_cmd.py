"""``tapecast baseline`` (a baseline forecast file) and ``tapecast evaluate`` (the report)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tapecast.commands.common import console, err_console, user_errors
from tapecast.commands.folders import KIND_NAMES, features_kind
from tapecast.commands.progress import RichReporter
from tapecast.core.errors import TapecastError

if TYPE_CHECKING:
    from tapecast.core.forecast import Forecast

CHUNK = 64  # origins sampled together (chunk i is seeded seed + i)
DEFAULT_REFERENCES = ("climatology", "price-climatology")
NAME_WIDTH = 24  # "price-diffusion/dpm-solver++" tells its sampler by the 17th character


def option_values(options: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings as config options: ints, floats, true/false, else strings."""
    out: dict[str, Any] = {}
    for item in options or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise TapecastError(f"--option {item!r}: expected KEY=VALUE")
        value: Any = text.strip()
        if value.lower() in ("true", "false"):
            value = value.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(value)
                    break
                except ValueError:
                    continue
        out[key.strip().replace("-", "_")] = value
    return out


def baseline(
    name: Annotated[str, typer.Argument(
        help="Baseline: climatology, hist-vol, bootstrap, garch, var, naive or chronos "
        "(order-flow features); price-climatology, price-histvol, price-bootstrap, "
        "price-garch-t or price-quantreg (price features).", show_default=False)],
    features: Annotated[Path, typer.Option("--features", "-F", help="A features folder.",
                                           show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The forecast file to write (.npz).",
                                      show_default=False)],
    split: Annotated[str, typer.Option(help="Split to forecast: val or test.")] = "test",
    n_samples: Annotated[int, typer.Option(help="Monte Carlo samples per origin.")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    fold: Annotated[int | None, typer.Option(
        help="Walk-forward fold (features with --split walk-forward).")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-O", metavar="KEY=VALUE", show_default=False,
        help="A baseline config option, repeatable (e.g. -O block_length=5, "
        "-O model=PATH for chronos).")] = None,
    label: Annotated[str | None, typer.Option(
        "--name", help="Name in reports (default: the baseline name); tells apart two runs of "
        "one baseline.")] = None,
    every: Annotated[int | None, typer.Option(
        help="Forecast every N-th origin of the split (default: all on order-flow features; "
        "one per horizon, 30 s, on price features, as `tapecast forecast`).",
        show_default=False)] = None,
    target: Annotated[str | None, typer.Option(
        help="Price features: return (the 30-s log return) or path (default: return).",
        show_default=False)] = None,
) -> None:
    """Fit a baseline on the training split and write its forecast of SPLIT.

    Order-flow names: climatology, hist-vol, bootstrap, garch, var, naive, chronos
    (docs/baselines.md); price names: price-climatology, price-histvol, price-bootstrap,
    price-garch-t, price-quantreg (docs/price-baselines.md).
    """
    start = time.perf_counter()
    with user_errors():
        if n_samples < 1:
            raise TapecastError(f"--n-samples must be at least 1, got {n_samples}")
        if split not in ("val", "test"):
            raise TapecastError(f"--split must be val or test, got {split!r}")
        if out.is_dir():
            raise TapecastError(f"--out {out}: is a folder; give a file name (.npz)")
        if every is not None and every < 1:
            raise TapecastError(f"--every must be at least 1, got {every}")
        _check_baseline_name(name, features)
        if features_kind(features) == "price":
            from tapecast.commands.price_cmd import baseline_price

            made = baseline_price(name, features, option_values(option), split=split,
                                  n_samples=n_samples, seed=seed, fold=fold, label=label,
                                  every=every, target=target, chunk=CHUNK)
        else:
            if target is not None:
                raise TapecastError("--target applies to price features only")
            made = _baseline_orderflow(name, features, option_values(option), split,
                                       n_samples, seed, fold, label, every)
            made.provenance["wall_s"] = time.perf_counter() - start
        made.save(out)
        samples = made.samples
    console.print(f"wrote {escape(str(out))}: {samples.batch:,} origins x {n_samples} samples x "
                  f"{len(samples.channels)} channels x {samples.horizon} steps in "
                  f"{made.provenance['wall_s']:.1f} s")


def _check_baseline_name(name: str, features: Path) -> None:
    """Refuse a baseline of the other kind of features in one line naming the right ones."""
    from tapecast.models import baseline_names
    from tapecast.models.price_baselines import price_baseline_names

    kind = features_kind(features)
    if kind == "tokens":
        raise TapecastError(f"{features}: a token folder; its baselines (unigram, factorized, "
                            "bigram) are scored by `tapecast perplexity`")
    if kind == "state":
        raise TapecastError(f"{features}: a market-state folder; it has no forecast baselines "
                            "(a score model is scored by `tapecast density`)")
    names = price_baseline_names() if kind == "price" else baseline_names()
    other = baseline_names() if kind == "price" else price_baseline_names()
    if name in other:
        raise TapecastError(f"{features}: {KIND_NAMES[kind]} folder takes the "
                            f"baselines {', '.join(names)}, not {name!r}")


def _baseline_orderflow(name: str, features: Path, options: dict[str, Any], split: str,
                        n_samples: int, seed: int, fold: int | None, label: str | None,
                        every: int | None) -> Forecast:
    """Fit order-flow baseline ``name`` on the train split and forecast ``split``."""
    import numpy as np

    from tapecast.features.featureset import FeatureSet
    from tapecast.models import get_baseline
    from tapecast.workflows import fit_and_forecast
    from tapecast.workflows.forecast import split_provenance

    fs = FeatureSet.open(features)
    if fs.split_spec.kind == "walk-forward" and fold is None:
        raise TapecastError(f"{features}: the features use walk-forward folds; pass --fold K "
                            "to fit on the sessions before test fold K and forecast it")
    model = get_baseline(name, **options)
    train = fs.dataset("train", fold=fold)
    test = fs.dataset(split, fold=fold)
    batch = test.batch(slice(None) if every in (None, 1) else np.arange(0, len(test), every))
    err_console.print(f"tapecast baseline {name}: fitting on {len(train):,} train origins, "
                      f"forecasting {batch.size:,} {split} origins", highlight=False)
    provenance = split_provenance(features, fs, split, fold)
    with RichReporter(transient=True) as reporter:
        reporter.stage(f"sampling {name}", batch.size)
        return fit_and_forecast(model, train.batch(slice(None)), batch, n_samples,
                                name=label or name, seed=seed, chunk=CHUNK,
                                provenance=provenance, reporter=reporter)


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"
    return str(value)


def _fixed(value: Any, decimals: int = 2) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def print_summary(metrics: dict[str, Any]) -> None:
    """The model-vs-baselines table on the terminal."""
    first = next(iter(metrics["forecasters"].values()))
    orderflow = "imbalance" in first["coverage"].get("90", {})
    what = "the imbalance channels" if orderflow else f"{', '.join(first['channels'])}"
    table = Table(title=f"CRPS (lower is better), rank-based 90 % coverage of {what} by "
                  "regime, joint errors, diversity, DM vs the reference",
                  show_header=True, box=box.SIMPLE_HEAD, padding=(0, 1))
    for col in ("model", "CRPS", "cov90", "low", "mid", "high", "covE", "corE", "div",
                "DM p", "n_eff"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    dm = {t["a"]: t for t in metrics.get("dm_tests", []) if t.get("b") == metrics.get("reference")}
    for name, entry in metrics["forecasters"].items():
        cov = entry["coverage"].get("90", {})
        group: dict[str, Any] = cov.get("imbalance") or next(iter(cov.values()), {})
        diversity = [v for v in (entry.get("diversity_ratio") or {}).values() if v is not None]
        test = dm.get(name, {})
        table.add_row(escape(name[:NAME_WIDTH]), _cell(entry["crps"]["mean"], 3),
                      *(_fixed(group.get(r)) for r in ("all", "low", "mid", "high")),
                      _fixed(entry.get("cov_rel_error")),
                      _fixed(entry.get("corr_frobenius_rel_error")),
                      _fixed(min(diversity) if diversity else None, 1),
                      _cell(test.get("p_value"), 2), _cell(test.get("n_eff"), 3))
    for name, reason in (metrics.get("unavailable") or {}).items():
        table.add_row(escape(name[:NAME_WIDTH]), escape(reason.split(":", 1)[0]), *[""] * 9)
    # 11 columns need ~100 characters: a narrower console (80 when piped) would cut the numbers
    wide = console if console.width >= 105 else Console(width=110, file=console.file)
    wide.print(table)
    n = next(iter(metrics["forecasters"].values()))
    regimes = ", ".join(f"{k} {v}" for k, v in n["n_per_regime"].items())
    joint = ("covE: covariance error of the first two imbalance channels, corE: "
             "correlation-matrix error, " if orderflow else
             "covE, corE: joint errors, '-' for one channel; ")
    console.print(f"{n['n_windows']:,} windows ({regimes}); a regime "
                  f"with fewer than {n.get('min_regime_windows', 30)} windows shows '-'; "
                  f"{joint}div: lowest diversity ratio over channels; reference: "
                  f"{metrics.get('reference') or 'none'}")


def _default_reference(names: list[str]) -> str:
    """``climatology``, else ``price-climatology`` when one of the forecasts has that name."""
    return next((n for n in DEFAULT_REFERENCES if n in names), DEFAULT_REFERENCES[0])


def evaluate(
    forecasts: Annotated[list[Path], typer.Argument(
        help="Forecast files (.npz) that target the same windows.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder to write.",
                                      show_default=False)],
    reference: Annotated[str | None, typer.Option(
        help="Forecaster the others are tested against (DM, CRPS skill); default: climatology "
        "(or price-climatology) when present, else every pair is tested.",
        show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the randomized PIT.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json.")] = False,
) -> None:
    """Score forecasts on one ruler: metrics.json and report.html in OUT."""
    with user_errors():
        from tapecast.core.forecast import load_forecast
        from tapecast.evaluate.metrics import build_metrics
        from tapecast.evaluate.report import write_report

        loaded: list[Forecast] = [load_forecast(p) for p in forecasts]
        for path, f in zip(forecasts, loaded, strict=True):
            if f.realized is None:
                raise TapecastError(f"{path}: the forecast has no realized values to score")
        names = [f.name for f in loaded]
        if reference is not None and reference not in names:
            raise TapecastError(f"--reference {reference!r} is none of the forecasts "
                                f"({', '.join(names)})")
        metrics = build_metrics(loaded, reference=reference or _default_reference(names),
                                seed=seed)
        write_report(metrics, loaded, out)
    if as_json:
        console.print_json(json.dumps(metrics))
    else:
        print_summary(metrics)
        console.print(f"wrote {escape(str(out / 'report.html'))} and metrics.json")

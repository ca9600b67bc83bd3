"""``tapecast demo`` as a library: tape -> features -> JL-CSDI -> forecasts -> report, in budget.

::

    from tapecast.demo import DemoOptions, run_demo
    result = run_demo(DemoOptions(out=Path("demo"), budget_minutes=10))
    result.metrics["forecasters"]["jl/sde-mgd"]["crps"]["mean"]

Steps (each recorded in ``DIR/demo.json`` with a hash of its inputs, see
:mod:`tapecast.demo.manifest`; a re-run skips finished steps unless ``fresh``):

1. ``data``: the built-in synthetic market written to ``DIR/market/`` (a store), or ``data``;
2. ``features``: order-flow windows in ``DIR/features/`` (:mod:`tapecast.demo.inputs`);
3. ``throughput/train``, ``throughput/sample``: this machine's rates, measured once (then the
   budget is planned from stored facts on every run, :mod:`tapecast.demo.budget`);
4. ``train/<model>``: the ``small`` JL-CSDI models, Gaussian-VP and Jump-Laplace (and the
   SHUFFLE control when it fits) in ``DIR/runs/<model>/``;
5. ``forecast/<name>``: the baselines and controls (climatology = RANDOM, naive = NAIVE,
   bootstrap, hist-vol, garch when time is left) and the four samplers (``ddpm``, ``ddim`` on
   the Gaussian model; ``sde``, ``sde-mgd`` on the Jump-Laplace one) over the planned test
   origins, in ``DIR/forecasts/``;
6. ``report``: ``DIR/metrics.json``, ``DIR/report.html``, ``DIR/report.png``.

The budget counts from the start of the run; data and features come out of it, the rest is
split between training and forecasting+evaluation by the plan.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Forecast, load_forecast
from tapecast.demo import evaluation, inputs, runs
from tapecast.demo.budget import (
    FORECASTER_NAMES,
    SAMPLERS,
    SHUFFLE_SAMPLER,
    BudgetPlan,
    BudgetRules,
    Throughput,
    plan_budget,
)
from tapecast.demo.manifest import MANIFEST_FILE, input_key
from tapecast.demo.state import DemoOptions, DemoResult, RunState
from tapecast.features.featureset import FeatureSet
from tapecast.models.jl_csdi_config import JLCSDIConfig
from tapecast.workflows.progress import Quiet, Reporter

if TYPE_CHECKING:
    pass

BASELINES = ("climatology", "naive", "bootstrap", "hist-vol")
OPTIONAL_BASELINES = {"garch": 0.08}  # name -> share of the forecasting time it must have left
SAMPLER_ORDER = ("sde-mgd", "ddim", "sde", "ddpm", "SHUFFLE")  # most wanted (and cheap) first
EVAL_RESERVE_S = 10.0  # fewest seconds kept for the evaluation at the end
OWNED = ("market", "features", "runs", "forecasts", "probe", MANIFEST_FILE, "metrics.json",
         "report.html", "report.png")


def _forecast_path(out: Path, name: str) -> Path:
    """Where the demo keeps forecaster ``name``'s forecast."""
    return out / "forecasts" / f"{name.replace('/', '_').replace(' ', '_')}.npz"


class DemoRun(RunState):
    """One demo run: its state (:class:`~tapecast.demo.state.RunState`) and its steps."""

    # --- 1-2: data and features ---------------------------------------------------------------

    def data_key(self) -> str:
        if self.options.data is not None:
            if not self.options.data.exists():
                raise TapecastError(f"--data {self.options.data}: expected an existing store, "
                                    "file or folder")
            return inputs.source_key(self.options.data)
        assert self.market is not None
        return input_key("market", asdict(self.market), self.options.seed)

    def features(self) -> FeatureSet:
        data_key = self.data_key()
        key = input_key(data_key, asdict(self.options.features))
        path = self.out / "features"
        info = self.reuse("features", key)
        if info is None or not (path / "features.json").is_file():
            started = time.monotonic()
            # one bar over the parts: (generate and write the market,) read the tape, features
            total = 2 if self.options.data is not None else 3
            self.reporter.stage("data and features", total)
            trades, quotes, what = self.load_source(data_key)
            self.reporter.update(total - 1, "signing trades, computing windows")
            info = inputs.build_features(trades, quotes, path, self.options.features, what)
            self.reporter.update(total, "features written")
            info["wall_s"] = round(time.monotonic() - started, 2)  # data + features
            self.manifest.mark("features", key, info)
            self.reporter.done()
        for text in info["notes"]:
            self.note(text)
        return inputs.open_features(path)

    def load_source(self, data_key: str) -> tuple[Any, Any, str]:
        from tapecast.workflows.tape import load_trades

        if self.options.data is not None:
            self.reporter.update(0, "reading the tape")
            return load_trades(self.options.data, None)
        store = self.out / "market"
        assert self.market is not None
        if self.reuse("data", data_key) is None or not store.is_dir():
            self.note(f"generating the built-in market: {self.market.n_sessions} sessions x "
                      f"~{self.market.trades_per_session:,} trades (seed {self.options.seed})")
            self.reporter.update(0, "generating the built-in market")
            info = inputs.write_market(store, self.market, self.options.seed)
            self.manifest.mark("data", data_key, info)
        self.reporter.update(1, "reading the market store")
        trades, quotes, _ = load_trades(store, None)
        return trades, quotes, f"the built-in market ({store})"

    # --- 3: plan ------------------------------------------------------------------------------

    def measure(self, fs: FeatureSet) -> tuple[Throughput, float]:
        """The two rates, each stored once: seconds per training step keyed by the features
        and the architecture only, seconds per window-step also by the number of samples (so
        changing ``--n-samples`` re-measures sampling and keeps the training plan). Returns
        them and the probe seconds charged to the budget (those of the training probe)."""
        features_key = self.manifest.steps["features"]["key"]
        arch = {k: v for k, v in self.config.to_dict().items() if k not in ("sample_steps",)}
        keys = {"train": input_key(features_key, arch),
                "sample": input_key(features_key, arch, self.options.n_samples)}
        info = {part: self.reuse(f"throughput/{part}", key) for part, key in keys.items()}
        if info["train"] is None or info["sample"] is None:
            self.reporter.stage("measuring throughput", None)
            started = time.monotonic()
            measured = runs.probe_throughput(fs, self.config, self.options.n_samples,
                                             self.out / "probe", self.threads)
            wall = round(time.monotonic() - started, 2)
            self.reporter.done()
            for part, rate in (("train", measured.train_s_per_step),
                               ("sample", measured.sample_s_per_window_step)):
                if info[part] is None:
                    info[part] = {"s": rate, "wall_s": wall}
                    self.manifest.mark(f"throughput/{part}", keys[part], info[part])
        train, sample = dict(info["train"] or {}), dict(info["sample"] or {})
        return Throughput(train["s"], sample["s"]), float(train.get("wall_s", 0.0))

    def plan(self, fs: FeatureSet) -> BudgetPlan:
        """The plan from the stored rates (:meth:`measure`), the budget less the data and
        features time of the run that made them and the training probe, and the rules: a pure
        function of stored facts, so a re-run plans the same."""
        throughput, probe_s = self.measure(fs)
        rules = BudgetRules(**{**asdict(self.options.rules), "sampler_steps": {
            s: self.config.steps_for(s) for s in SAMPLERS}})
        if self.config.train.max_steps is not None:
            rules = BudgetRules(**{**asdict(rules), "max_train_steps":
                                   self.config.train.max_steps})
        spent = float(self.manifest.steps["features"]["info"].get("wall_s", 0.0)) + probe_s
        left = 60.0 * self.options.budget_minutes - spent  # less data, features and the probe
        self.throughput = throughput
        return plan_budget(max(left, 1.0), throughput, len(fs.dataset("test")), rules)

    # --- 4: training --------------------------------------------------------------------------

    def model_config(self, name: str, plan: BudgetPlan) -> JLCSDIConfig:
        noise = "gaussian" if name == "gaussian" else "jump-laplace"
        return self.config.with_noise(noise).with_train(max_steps=plan.train_steps)

    def train(self, fs: FeatureSet, plan: BudgetPlan) -> dict[str, str]:
        """Train every planned model; returns model name -> its key."""
        keys = {}
        feat_key = self.manifest.steps["features"]["key"]
        train_end = time.monotonic() + plan.train_s
        for i, name in enumerate(plan.models):
            config = self.model_config(name, plan)
            trained = {k: v for k, v in config.to_dict().items() if k != "sample_steps"}
            key = input_key(feat_key, trained, name == "shuffle")
            run = self.out / "runs" / name
            info = self.reuse(f"train/{name}", key)
            if info is None or not (run / "config.json").is_file():
                # this model's share of the training time left (an earlier overrun shrinks it)
                planned_s = max(train_end - time.monotonic(), 0.0) / (len(plan.models) - i)
                info = self.train_one(fs, name, config, key, planned_s)
            keys[name] = input_key(key, info["steps"])  # forecasts follow the steps trained
        return keys

    def train_one(self, fs: FeatureSet, name: str, config: JLCSDIConfig, key: str,
                  planned_s: float) -> dict[str, Any]:
        """Train (or resume) one model; a budget-stopped run is not marked finished, so the
        next run resumes it from its ``last`` checkpoint."""
        self.reporter.stage(f"training {name}", config.train.max_steps)
        resume_key = input_key(key, config.to_dict())  # resume only the very same config
        info = runs.train_model(fs, config, self.out / "runs" / name, resume_key,
                                shuffle=name == "shuffle", planned_s=planned_s,
                                reporter=self.reporter)
        self.reporter.done()
        if info["stopped_by_budget"]:
            self.note(f"{name}: stopped by the budget at step {info['steps']} of "
                      f"{config.train.max_steps} (best weights so far kept; a re-run resumes "
                      "its training)")
        else:
            self.manifest.mark(f"train/{name}", key, info)
        return info

    # --- 5: forecasts -------------------------------------------------------------------------

    def forecasts(self, fs: FeatureSet, plan: BudgetPlan, model_keys: dict[str, str]
                  ) -> tuple[list[Forecast], dict[str, str], list[str]]:
        test = fs.dataset("test").batch(np.asarray(plan.windows))
        train = fs.dataset("train").batch(slice(None))
        common = (self.manifest.steps["features"]["key"], self.options.n_samples, self.options.seed,
                  list(plan.windows))
        made: list[Forecast] = []
        keys: list[str] = []
        skipped = dict(plan.skipped)
        # the baselines run first, out of the sampling part; the samplers must end before the
        # planner's reserve (baselines + evaluation in the plan), left to the evaluation
        reserve = max(EVAL_RESERVE_S, self.options.rules.reserve_share * plan.forecast_s)
        stop = self.deadline - reserve
        for name in BASELINES:
            made.append(self.forecast_step(name, input_key(name, *common), keys,
                                           lambda n=name: runs.baseline_forecast(
                                               n, train, test, self.options.n_samples,
                                               self.options.seed)))
        for sampler in SAMPLER_ORDER:
            if sampler not in plan.sampler_steps:
                continue
            forecast = self.sample_step(sampler, plan, test, model_keys, common, keys, stop)
            if forecast is None:
                skipped[FORECASTER_NAMES[sampler]] = ("n/a budget: sampling would have ended "
                                                      "after the deadline (not started, or "
                                                      "stopped when it fell behind)")
            else:
                made.append(forecast)
        for name, share in OPTIONAL_BASELINES.items():
            cached = (self.manifest.done(f"forecast/{name}", input_key(name, *common))
                      is not None and _forecast_path(self.out, name).is_file())
            if not cached and stop - time.monotonic() < share * plan.forecast_s:
                skipped[name] = "n/a budget: not enough time left after the models"
                continue
            made.append(self.forecast_step(name, input_key(name, *common), keys,
                                           lambda n=name: runs.baseline_forecast(
                                               n, train, test, self.options.n_samples,
                                               self.options.seed)))
        return made, skipped, keys

    def forecast_step(self, name: str, key: str, keys: list[str], make: Any) -> Forecast:
        path = _forecast_path(self.out, name)
        keys.append(key)
        if self.reuse(f"forecast/{name}", key) is not None and path.is_file():
            return load_forecast(path)
        self.reporter.stage(f"forecasting {name}", None)
        forecast: Forecast = make()
        forecast.save(path)
        self.manifest.mark(f"forecast/{name}", key, {"wall_s": forecast.provenance.get("wall_s")})
        self.reporter.done()
        return forecast

    def sample_step(self, sampler: str, plan: BudgetPlan, test: Any, model_keys: dict[str, str],
                    common: tuple[Any, ...], keys: list[str], stop: float) -> Forecast | None:
        name = FORECASTER_NAMES[sampler]
        model_name = "shuffle" if sampler == "SHUFFLE" else (
            "gaussian" if SAMPLERS[sampler] == "gaussian" else "jump-laplace")
        real = SHUFFLE_SAMPLER if sampler == "SHUFFLE" else sampler
        steps = plan.sampler_steps[sampler]
        key = input_key(name, model_keys[model_name], real, steps, *common)
        path = _forecast_path(self.out, name)
        if self.reuse(f"forecast/{name}", key) is not None and path.is_file():
            keys.append(key)
            return load_forecast(path)
        model = runs.check_model_folder(self.out / "runs" / model_name)
        assert self.throughput is not None  # planned before any forecast
        self.reporter.stage(f"sampling {name} ({steps} steps)", test.size)
        forecast = runs.forecast_until(
            model, test, self.options.n_samples, name=name, sampler=real, steps=steps,
            seed=self.options.seed, deadline=stop,
            s_per_window_step=self.throughput.sample_s_per_window_step,
            reporter=self.reporter, threads=self.threads)
        self.reporter.done()
        if forecast is None:
            return None
        wall = float(forecast.provenance["wall_s"])
        forecast.save(path)
        self.manifest.mark(f"forecast/{name}", key, {"wall_s": wall, "steps": steps})
        keys.append(key)
        return forecast


def prepare_out(out: Path, fresh: bool) -> None:
    """Refuse a non-empty folder that is not a demo folder; with ``fresh`` delete what an
    earlier demo wrote there (only the demo's own files and folders)."""
    if out.exists() and not out.is_dir():
        raise TapecastError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
        raise TapecastError(f"--out {out}: a non-empty folder that is not a demo folder; "
                            "choose a new or empty folder")
    if fresh and out.is_dir():
        for name in OWNED:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def run_demo(options: DemoOptions, reporter: Reporter | None = None) -> DemoResult:
    """Run (or resume) the demo in ``options.out``; see the module docstring.

    Returns
    -------
    DemoResult
        The metrics (as ``metrics.json``), the plan, the steps reused, what was skipped.

    Raises
    ------
    TapecastError
        Bad input (one line); the folder keeps every finished step.
    """
    prepare_out(options.out, options.fresh)
    run = DemoRun(options, reporter or Quiet())
    fs = run.features()
    plan = run.plan(fs)
    for text in plan.notes:
        run.note(text)
    model_keys = run.train(fs, plan)
    forecasts, skipped, keys = run.forecasts(fs, plan, model_keys)
    metrics = evaluation.evaluate(run, forecasts, skipped, keys, plan)
    return DemoResult(options.out, metrics, plan, run.reused, skipped, run.notes,
                      time.monotonic() - run.start)

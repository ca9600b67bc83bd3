"""The demo's model work: throughput probe, training under a deadline, chunked sampling.

All three go through the public JL-CSDI API (:class:`tapecast.models.jl_csdi.JLCSDI`):
``fit`` with a callback (progress, and a :class:`BudgetStop` when a model overruns its share of
the budget: the training loop then writes its resumable ``last`` checkpoint and the demo keeps
the best EMA weights so far), and ``sample`` over chunks of test origins, started only when
the whole forecast, at the planned rate, ends before the deadline and stopped as soon as the
rest would not.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Forecast
from tapecast.core.io import atomic_write_text
from tapecast.demo.budget import MGD_COST, Throughput
from tapecast.features.featureset import FeatureSet
from tapecast.models import get_baseline
from tapecast.models.jl_csdi import JLCSDI
from tapecast.models.jl_csdi_config import JLCSDIConfig
from tapecast.train import TrainEvent
from tapecast.workflows import fit_and_forecast, forecast_batch
from tapecast.workflows.progress import Reporter

PROBE_TRAIN_STEPS = 4
PROBE_WINDOWS, PROBE_SAMPLE_STEPS = 2, 4
CHUNK = 4  # test origins sampled together (as `tapecast forecast` does)
OVERRUN, OVERRUN_GRACE_S = 1.1, 5.0  # a model is stopped past 1.1x its share of the time + 5 s
KEY_FILE = "demo_key.txt"


class BudgetStop(KeyboardInterrupt):
    """Raised by the training callback when a model overruns its time (the loop saves ``last``
    exactly as on Ctrl-C)."""


MAX_SAMPLING_THREADS = 4


def sampling_threads(load: float | None = None, cores: int | None = None) -> int:
    """torch threads for sampling: the cores that other processes leave free (``cores`` less
    the whole part of the 1-minute load average ``load``; both read now when not given), at
    least 1 and at most :data:`MAX_SAMPLING_THREADS`. On a busy machine two OpenMP threads wait
    for each other (docs/jl-csdi.md), so a 2-core machine with another job on it gets 1. The
    demo decides once, before any work of its own, so that its own load does not count."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(MAX_SAMPLING_THREADS, cores - math.floor(load)))


def _step_timer(times: list[float]) -> Callable[[TrainEvent], None]:
    def record(event: TrainEvent) -> None:
        if event.kind == "step":
            times.append(time.perf_counter())
    return record


def probe_throughput(fs: FeatureSet, config: JLCSDIConfig, n_samples: int,
                     scratch: Path, threads: int | None = None) -> Throughput:
    """Seconds per training step and per window-step of sampling, measured here and now.

    Trains a throwaway Jump-Laplace model for :data:`PROBE_TRAIN_STEPS` steps (the first step,
    with its warm-up, is not counted), then samples :data:`PROBE_WINDOWS` test origins with
    ``sde`` (one warm-up call of one step, then :data:`PROBE_SAMPLE_STEPS` steps timed).
    """
    times: list[float] = []
    model = JLCSDI(config.with_noise("jump-laplace").with_train(
        max_steps=PROBE_TRAIN_STEPS, eval_every=PROBE_TRAIN_STEPS * 100))
    try:
        model.fit(fs.dataset("train"), None, run_dir=scratch, resume=False,
                  normalizer=fs.fit_normalizer(), callbacks=[_step_timer(times)],
                  progress=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    per_step = (times[-1] - times[0]) / max(len(times) - 1, 1)
    test = fs.dataset("test")
    batch = test.batch(np.arange(min(PROBE_WINDOWS, len(test))))
    with _threads(threads or sampling_threads()):
        model.sample(batch, n_samples, sampler="sde", steps=1, seed=0)
        start = time.perf_counter()
        model.sample(batch, n_samples, sampler="sde", steps=PROBE_SAMPLE_STEPS, seed=0)
        per_window_step = (time.perf_counter() - start) / (batch.size * PROBE_SAMPLE_STEPS)
    return Throughput(max(per_step, 1e-4), max(per_window_step, 1e-5))


class _threads:
    """Context manager: torch CPU threads set for the block."""

    def __init__(self, n: int) -> None:
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


def _train_callback(reporter: Reporter, total: int, stop_at: float
                    ) -> tuple[Callable[[TrainEvent], None], list[int]]:
    seen = [0]

    def on_event(event: TrainEvent) -> None:
        if event.kind != "step":
            return
        seen[0] = event.step
        reporter.update(event.step, f"loss {event.train_loss:.3f}")
        if time.monotonic() > stop_at and event.step < total:
            raise BudgetStop
    return on_event, seen


def train_model(fs: FeatureSet, config: JLCSDIConfig, run: Path, key: str, *,
                shuffle: bool, planned_s: float, reporter: Reporter) -> dict[str, Any]:
    """Fit one model in ``run`` (resuming a run of the same key), saved there as a model folder.

    Returns
    -------
    dict
        steps done and planned, wall seconds, whether the budget stopped it.
    """
    key_path = run / KEY_FILE
    resume = key_path.is_file() and key_path.read_text(encoding="utf-8").strip() == key
    if not resume and run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(key_path, key + "\n")
    total = config.train.max_steps or 0
    callback, seen = _train_callback(reporter, total,
                                     time.monotonic() + OVERRUN * planned_s + OVERRUN_GRACE_S)
    val = fs.dataset("val") if "val" in fs.split_spec.splits else None
    model = JLCSDI(config)
    start, stopped = time.perf_counter(), False
    try:
        result = model.fit(fs.dataset("train"), val, run_dir=run, resume=resume,
                           normalizer=fs.fit_normalizer(), callbacks=[callback], progress=False,
                           shuffle_pairs_seed=0 if shuffle else None).train_result
        steps = result.step  # also right when a resumed run had no step left to take
    except BudgetStop:
        stopped, steps = True, seen[0]
        _keep_best(model, run)
    return {"steps": steps, "planned_steps": total, "stopped_by_budget": stopped,
            "wall_s": round(time.perf_counter() - start, 2), "params": model.n_parameters}


def _keep_best(model: JLCSDI, run: Path) -> None:
    """After a budget stop: the best EMA weights so far (else the current ones), saved."""
    from tapecast.train import checkpoint

    if checkpoint.read_best(run) is not None:
        checkpoint.load_best(run, model.net)
    model.training = {**model.training, "stopped_by_budget": True}
    model.save(run)


def forecast_until(model: JLCSDI, batch: ForecastBatch, n_samples: int, *, name: str,
                   sampler: str, steps: int, seed: int, deadline: float,
                   s_per_window_step: float, reporter: Reporter, threads: int | None = None
                   ) -> Forecast | None:
    """The workflow's :func:`~tapecast.workflows.forecast_batch` over ``batch`` in chunks of
    :data:`CHUNK` (chunk ``i`` seeded ``seed + i``), only when it can end by ``deadline``
    (time.monotonic).

    Before the first chunk the whole forecast is costed at the planned rate
    (``s_per_window_step`` x ``steps`` per window, ``sde-mgd`` weighted by
    :data:`tapecast.demo.budget.MGD_COST`): when it would end after the deadline nothing is
    sampled. Before each later chunk the rest is costed at the slower of the planned and the
    measured rate, and sampling stops when the rest would end after the deadline (the chunks
    done are then lost: a forecast must cover every planned window).

    Returns
    -------
    Forecast or None
        Named ``name``, its provenance with ``wall_s`` (the sampling seconds); None when skipped
        or stopped.
    """
    planned = s_per_window_step * steps * (MGD_COST if sampler == "sde-mgd" else 1.0)
    start = time.perf_counter()

    def past_deadline(done: int, _elapsed: float) -> bool:
        measured = (time.perf_counter() - start) / done if done else 0.0
        return time.monotonic() + max(planned, measured) * (batch.size - done) > deadline

    with _threads(threads or sampling_threads()):
        forecast = forecast_batch(model, batch, n_samples, name=name, seed=seed, chunk=CHUNK,
                                  reporter=reporter, stop=past_deadline, sampler=sampler,
                                  steps=steps)
    if forecast is not None:
        forecast.provenance["wall_s"] = time.perf_counter() - start
    return forecast


def baseline_forecast(name: str, train: ForecastBatch, test: ForecastBatch, n_samples: int,
                      seed: int) -> Forecast:
    """Fit baseline ``name`` on the training origins and forecast ``test`` (as ``tapecast
    baseline`` does: chunks of 64 origins, chunk ``i`` seeded ``seed + i``)."""
    return fit_and_forecast(get_baseline(name), train, test, n_samples, seed=seed, chunk=64)


def check_model_folder(run: Path) -> JLCSDI:
    """Load a trained model folder (a TapecastError when it is incomplete)."""
    if not run.is_dir():
        raise TapecastError(f"{run}: the model folder is missing; re-run the demo")
    return JLCSDI.load(run)

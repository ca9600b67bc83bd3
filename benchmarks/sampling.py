"""Windows per second of the JL-CSDI forecaster's ``sample()``: architectures and samplers.

The speed section of issue 5, measured side by side in one run through the public forecaster
API (:class:`tapecast.models.jl_csdi.JLCSDI`):

* **architecture** ``full-grid`` CSDI (the whole 110-window grid at every reverse step) against
  ``context-cached`` (context encoded once, the denoiser over the 10 horizon windows), both the
  ``small`` preset's width, depth, heads and feed-forward (hence the same parameter count), both
  Gaussian-VP models sampled with ``ddim`` at 10 steps. Target: cached >= 5x full-grid.
* **sampler** ``ddim`` at 10 steps (Gaussian-VP model) against ``sde`` at 50 steps (Jump-Laplace
  model, the card's settings), both context-cached; ``sde-mgd`` at 50 beside them.
  ``--all`` adds full-grid ``sde`` at 50 (the architecture ratio at the card's step count).
* **efficiency** achieved GFLOP/s of each ``sample()`` call as a share of a bare fp32 1024²
  matmul timed in the same run, at the same thread count, before and after the timings.

Run from the repository root::

    .venv/bin/python benchmarks/sampling.py [--quick] [--all] [--windows 2] [--rounds 3]

Data: the SPY order-flow windows of ``../shared/data`` (``tapecast features ... --session
us-equity-rth``, 500 trades per window) when present, else a synthetic random-walk tape
(``--window-trades 10``). Each model is fitted for 2 steps of 2 windows (``fit`` with no
validation set): the weights do not change the cost of a step, and ``sample()`` needs a fitted
normalizer. Every case samples the same first ``--windows`` test windows, 32 samples each, seed 0.

Figures: each case runs once per round, in turn within the round (interleaved, so a busy
machine slows the cases alike); best and median wall seconds over ``--rounds`` rounds, after a
warm-up. Windows/s = windows / wall seconds. ``cpu/wall`` is process CPU over wall seconds (median):
below the thread count, other jobs took the cores. Ratios come from the best times and, per
round, the median of the per-round ratios. FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` (matmuls and attention, not elementwise work) on a
1-step and a 2-step call, giving the per-step and the once-per-call (context encoding) parts,
then scaled to the timed step count. GFLOP/s use the best wall time.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch.utils.flop_counter import FlopCounterMode

from tapecast.core.batch import ForecastBatch
from tapecast.data.schemas import conform
from tapecast.data.store import write_store
from tapecast.data.tables import Tables
from tapecast.features.featureset import FeatureSet
from tapecast.models.jl_csdi import JLCSDI
from tapecast.models.jl_csdi_config import jlcsdi_config

SPY = Path(__file__).resolve().parents[2] / "shared" / "data" / "lean/equity/usa/tick/spy"
SAMPLES = 32
ENV_PEAK_FP32 = 218.0  # GFLOP/s, 1024² fp32 matmul, 2 threads, quiet machine (ENVIRONMENT.md)


@dataclass(frozen=True)
class Case:
    """One timed configuration: a fitted model, its sampler and reverse steps."""

    name: str
    model: JLCSDI
    sampler: str
    steps: int


def build_features(folder: Path) -> tuple[str, FeatureSet]:
    """The SPY features (regular hours, 500 trades per window), else a synthetic tape's."""
    if any(SPY.glob("*_trade.zip")):
        source, options, label = SPY, ["--session", "us-equity-rth"], "SPY ticks (5 sessions)"
    else:
        source, options = synthetic_store(folder / "store"), ["--window-trades", "10"]
        label = "synthetic tape (no SPY data found)"
    out = folder / "features"
    cmd = [sys.executable, "-m", "tapecast.cli", "features", str(source), *options,
           "--context", "100", "--horizon", "10", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return label, FeatureSet.open(out)


def synthetic_store(path: Path, days: int = 5, per_day: int = 2_000) -> Path:
    """A random-walk tape of unsigned trades over ``days`` UTC days (200 windows of 10 a day)."""
    rng = np.random.default_rng(0)
    n = days * per_day
    day = np.repeat(np.arange(days), per_day)
    ts = (np.datetime64("2024-03-04T09:00", "ns") + day * np.timedelta64(1, "D")
          + np.tile(np.arange(per_day), days) * np.timedelta64(2, "s"))
    frame = pl.DataFrame({"ts": pl.Series(ts).dt.replace_time_zone("UTC"),
                          "instrument": ["SYN"] * n,
                          "price": 100 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], size=n)),
                          "size": rng.integers(1, 20, size=n).astype(float),
                          "side": pl.Series([0] * n, dtype=pl.Int8)})
    write_store(Tables(source="synthetic", format="benchmark",
                       trades=conform(frame, "trades")), path)
    return path


def fitted_model(fs: FeatureSet, noise: str, architecture: str, run_dir: Path) -> JLCSDI:
    """The ``small`` preset with ``noise`` and ``architecture``, fitted for 2 tiny steps."""
    base = jlcsdi_config("small").with_noise(noise)
    config = (base.replace(denoiser=base.denoiser.replace(architecture=architecture))
              .with_train(max_steps=2, batch_size=2, eval_every=2, log_every=1))
    model = JLCSDI(config)
    model.fit(fs.dataset("train"), None, run_dir=run_dir, progress=False,
              normalizer=fs.fit_normalizer())
    return model


def sample_flops(case: Case, batch: ForecastBatch) -> tuple[int, int]:
    """FLOPs of one ``sample()`` call at ``case.steps`` and of one reverse step.

    Counted on a 1-step and a 2-step call: their difference is one step (one denoiser call on
    B·S rows), the rest the once-per-call work (context encoding). The calls also warm up.
    """
    counts = []
    for steps in (1, 2):
        counter = FlopCounterMode(display=False)
        with counter:
            case.model.sample(batch, SAMPLES, sampler=case.sampler, steps=steps, seed=0)
        counts.append(int(counter.get_total_flops()))
    per_step = counts[1] - counts[0]
    return counts[0] - per_step + case.steps * per_step, per_step


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    """Best GFLOP/s of a bare fp32 ``a @ b`` of two size² matrices right now (after a warm-up)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def interleaved(rounds: int, runs: Mapping[str, Callable[[], object]]
                ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU seconds of every run in each of ``rounds`` rounds, the runs one
    after the other within a round, so that a busy machine slows the runs compared alike."""
    walls: dict[str, list[float]] = {key: [] for key in runs}
    cpus: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(rounds):
        for key, fn in runs.items():
            wall0, cpu0 = time.perf_counter(), time.process_time()
            fn()
            walls[key].append(time.perf_counter() - wall0)
            cpus[key].append(time.process_time() - cpu0)
    return walls, cpus


def make_cases(fs: FeatureSet, folder: Path, full_grid_sde: bool) -> list[Case]:
    """The fitted models and the timed (model, sampler, steps) cases."""
    models = {(noise, arch): fitted_model(fs, noise, arch, folder / f"{noise}-{arch}")
              for noise, arch in (("gaussian", "full-grid"), ("gaussian", "context-cached"),
                                  ("jump-laplace", "context-cached"))
              + ((("jump-laplace", "full-grid"),) if full_grid_sde else ())}
    cases = [Case("full-grid ddim 10", models["gaussian", "full-grid"], "ddim", 10),
             Case("cached ddim 10", models["gaussian", "context-cached"], "ddim", 10),
             Case("cached sde 50", models["jump-laplace", "context-cached"], "sde", 50),
             Case("cached sde-mgd 50", models["jump-laplace", "context-cached"], "sde-mgd", 50)]
    if full_grid_sde:
        cases.append(Case("full-grid sde 50", models["jump-laplace", "full-grid"], "sde", 50))
    return cases


def print_cases(cases: list[Case], walls: dict[str, list[float]], cpus: dict[str, list[float]],
                flops: dict[str, tuple[int, int]], windows: int, peak_now: float) -> None:
    """One line per case: rates, wall, CPU share, FLOPs and GFLOP/s against the peaks."""
    print(f"{'case':<20}{'params':>9}{'win/s':>9}{'median':>9}{'best s':>9}{'cpu/wall':>9}"
          f"{'GFLOP':>8}{'GFLOP/s':>9}{'of now':>8}{'of 218':>8}")
    for case in cases:
        best, median = min(walls[case.name]), statistics.median(walls[case.name])
        cpu_share = statistics.median(c / w for c, w in zip(cpus[case.name], walls[case.name],
                                                             strict=True))
        gflops = flops[case.name][0] / best / 1e9
        print(f"{case.name:<20}{case.model.n_parameters / 1e6:>8.3f}M{windows / best:>9.2f}"
              f"{windows / median:>9.2f}{best:>9.3f}{cpu_share:>9.2f}"
              f"{flops[case.name][0] / 1e9:>8.2f}{gflops:>9.1f}{100 * gflops / peak_now:>7.1f}%"
              f"{100 * gflops / ENV_PEAK_FP32:>7.1f}%")


def print_ratio(label: str, fast: str, slow: str, walls: dict[str, list[float]],
                flops: dict[str, tuple[int, int]], target: str = "") -> None:
    """Speed-up of ``fast`` over ``slow``: best times, per-round median (min, max), FLOPs."""
    per_round = np.array(walls[slow]) / np.array(walls[fast])
    best = min(walls[slow]) / min(walls[fast])
    print(f"{label}: {fast} / {slow} windows/s {best:.1f}x (best times); per round median "
          f"{np.median(per_round):.1f}x (min {per_round.min():.1f}x, max {per_round.max():.1f}x);"
          f" FLOPs {flops[slow][0] / flops[fast][0]:.1f}x fewer{target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=None,
                        help="test windows per sample() call (default 2; --quick 1)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved timing rounds (default 3; --quick 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, as the small preset's training)")
    parser.add_argument("--quick", action="store_true", help="about a minute: 1 window, 1 round")
    parser.add_argument("--all", action="store_true", help="also time full-grid sde at 50 steps")
    args = parser.parse_args()
    windows = args.windows or (1 if args.quick else 2)
    rounds = args.rounds or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        label, fs = build_features(Path(tmp))
        cases = make_cases(fs, Path(tmp), args.all)
        batch = fs.dataset("test").batch(slice(0, windows))
    flops = {case.name: sample_flops(case, batch) for case in cases}  # also the warm-up
    peak_before = matmul_gflops()
    runs = {case.name: functools.partial(case.model.sample, batch, SAMPLES, sampler=case.sampler,
                                         steps=case.steps, seed=0) for case in cases}
    walls, cpus = interleaved(rounds, runs)
    peak_after = matmul_gflops()
    print(f"{label}: {batch.size} test windows x {SAMPLES} samples per sample() call, "
          f"best of {rounds} interleaved rounds; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), fp32; load average before "
          f"{load[0]:.2f}, after {os.getloadavg()[0]:.2f} (2 cores, shared with other jobs)")
    print(f"bare fp32 1024² matmul at {torch.get_num_threads()} thread(s): {peak_before:.0f} "
          f"GFLOP/s before, {peak_after:.0f} after ('of now' uses before; 'of 218' is "
          f"ENVIRONMENT.md's 2-thread quiet-machine figure)")
    print_cases(cases, walls, cpus, flops, batch.size, peak_before)
    print_ratio("architecture (ddim 10)", "cached ddim 10", "full-grid ddim 10", walls, flops,
                "; target >= 5x")
    print_ratio("sampler (cached)", "cached ddim 10", "cached sde 50", walls, flops)
    if args.all:
        print_ratio("architecture (sde 50)", "cached sde 50", "full-grid sde 50", walls, flops)
        print_ratio("sampler (full-grid)", "full-grid ddim 10", "full-grid sde 50", walls, flops)
    print(f"total run {time.perf_counter() - started:.0f} s (features, 2-step fits, FLOP counts,"
          f" timings)")


if __name__ == "__main__":
    main()

"""Latency of one price prediction: 1 window × 256 samples on 1 thread (issue 13, "Speed").

A prediction is what a live service calls: :meth:`tapecast.models.PriceDiffusion.sample` on a
raw one-window batch, from the raw context to 256 returns on the price lattice (normalize,
build the sampler, encode the window once, run the sampler, scale, snap to the lattice, mix in
the zero-move atom from the encoder's head, wrap in ``Samples``). The forecaster is the ``small``
preset (CNN encoder d = 128, FiLM-MLP 4 × 256, zero head, D = 1: the 30-s return) fitted for
one step on a synthetic market (``tapecast.sim``; the weights do not change the cost).

* **latency**: p50 and p99 of ``sample`` for dpm-solver++ at 5, 10 and 20 steps and ddim at 10
  and 20, fp32 and, where bf16 is fast here (:func:`tapecast.train.bf16_is_fast`, decided at
  run time), under ``torch.autocast("cpu", torch.bfloat16)``. ``--predictions`` (1000) per
  setting of ≤ 10 steps, half that at 20 steps, 20 for ddpm over all 1000 steps. Beside them
  the bare network loop (:func:`tapecast.diffusion.draw_samples` on an already-normalized
  context, what the previous version of this script timed) at the same settings: forecaster
  p50 / network p50 is the wrapper's overhead. The cases take turns in ``--rounds`` rounds, so
  a busy machine slows them alike. ``--quick``: 40 predictions, no ddpm, bf16 and the network
  at the headline setting (dpm-solver++ 10) only.
* **stages**: the median of each step of ``sample`` run alone (headline setting, fp32), and of
  ``sample`` and the bare network loop called in turn (the wrapper's overhead). The window is
  encoded once per call (since 942394e; before it the zero head encoded it a second time).
* **FLOPs** per prediction counted with ``torch.utils.flop_counter.FlopCounterMode`` over one
  real call (matmuls and convolutions; elementwise work not counted) and checked against the
  analytic count (2·m·k·n per matmul, convolutions as matmuls).
* **bare matmul**: ``torch.mm`` over the same shapes (same FLOPs) on preallocated operands, in
  the case's dtype, timed in the same run: ``share`` = bare time / p50, the part of a prediction
  that is matmul work at this size. Speed of light: a 1024² matmul on 1 thread, fp32 and bf16.
* **batched**: windows/s of ``sample`` at 64 windows × 256 samples, dpm-solver++ 10, 1 thread.

Prints a table and writes nothing, unless ``--json PATH``. ONNX export is not measured:
onnxruntime is not a dependency of this project. Run from the repository root::

    .venv/bin/python benchmarks/price_latency.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from timing import cpu_description  # benchmarks/timing.py (the script's folder is on sys.path)
from torch.utils.flop_counter import FlopCounterMode

from tapecast.core.batch import ForecastBatch
from tapecast.core.forecast import Samples
from tapecast.diffusion import draw_samples, get_sampler
from tapecast.features.price import PriceGridConfig, price_grid
from tapecast.features.price_dataset import PriceDataset
from tapecast.features.price_lattice import snap_returns
from tapecast.features.price_windows import price_windows
from tapecast.models.price_diffusion import (
    PriceDiffusion,
    _mix_zero_atom,
    price_diffusion_config,
)
from tapecast.nets.film import PriceDenoiser, PriceDenoiserConfig
from tapecast.sim import SyntheticMarketConfig, generate_market
from tapecast.sim.bars import market_bars
from tapecast.train import bf16_is_fast

SAMPLES, BATCH, WINDOWS = 256, 64, 32
SETTINGS = (("dpm-solver++", 5), ("dpm-solver++", 10), ("dpm-solver++", 20), ("ddim", 10),
            ("ddim", 20))
HEADLINE = ("dpm-solver++", 10)
Shape = tuple[int, int, int]  # (m, k, n) of an (m × k) @ (k × n) product
Route = Literal["forecaster", "network"]


@dataclass(frozen=True)
class Case:
    """One timed prediction setting: which call, sampler, steps, dtype."""

    path: Route
    sampler: str
    steps: int
    bf16: bool = False

    @property
    def name(self) -> str:
        return f"{self.path}: {self.sampler} {self.steps}{' bf16' if self.bf16 else ''}"


@dataclass
class Fixture:
    """The fitted forecaster, its one-window batches, their normalized contexts, a 64-batch."""

    model: PriceDiffusion
    net: PriceDenoiser
    batches: list[ForecastBatch]
    contexts: list[torch.Tensor]
    big: ForecastBatch


def build_fixture() -> Fixture:
    """The ``small`` forecaster fitted one step on one synthetic session (~20,000 trades)."""
    market = generate_market(SyntheticMarketConfig(n_sessions=1, trades_per_session=20_000),
                             seed=1)
    tables = market_bars(market)
    assert tables.bars is not None
    grid_config = PriceGridConfig()
    grid, _ = price_grid(tables.bars, tables.quote_bars, grid_config)
    windows, _ = price_windows(grid, grid_config)
    data = PriceDataset(grid, windows, grid_config)
    config = price_diffusion_config("small").with_train(max_steps=1, eval_every=1)
    model = PriceDiffusion(config).fit(data.batch(np.arange(0, len(data), 20)), progress=False)
    assert model.net is not None and model.normalizer is not None
    picks = np.linspace(0, len(data) - 1, WINDOWS).astype(np.int64)
    batches = [data.batch(picks[i:i + 1]) for i in range(WINDOWS)]
    contexts = [torch.from_numpy(model.normalizer.context(b)) for b in batches]
    big = data.batch(np.linspace(0, len(data) - 1, BATCH).astype(np.int64))
    return Fixture(model, model.net.eval(), batches, contexts, big)


# ----------------------------------------------------------------------------------------------
# timing helpers


def autocast(bf16: bool) -> contextlib.AbstractContextManager[object]:
    return (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
            else contextlib.nullcontext())


def predictor(fx: Fixture, case: Case) -> Callable[[int], object]:
    """One prediction of window ``i % WINDOWS`` with seed ``i``."""
    if case.path == "network":
        proc = get_sampler(case.sampler, fx.model.noise)
        proc.set_timesteps(case.steps)

        def network(i: int) -> object:
            with autocast(case.bf16), torch.no_grad():
                return draw_samples(fx.net, proc, {"context": fx.contexts[i % WINDOWS]},
                                    SAMPLES, (1,), seed=i)
        return network

    def forecast(i: int) -> object:
        with autocast(case.bf16):
            return fx.model.sample(fx.batches[i % WINDOWS], SAMPLES, sampler=case.sampler,
                                   steps=case.steps, seed=i)
    return forecast


def latencies(runs: dict[Case, Callable[[int], object]], counts: dict[Case, int], rounds: int
              ) -> dict[Case, list[float]]:
    """Seconds of each prediction; the cases take turns, ``counts[case] / rounds`` per round."""
    out: dict[Case, list[float]] = {case: [] for case in runs}
    for run in runs.values():  # warm-up
        for i in range(2):
            run(i)
    for r in range(rounds):
        for case, run in runs.items():
            per_round = -(-counts[case] // rounds)
            gc.collect()
            for i in range(r * per_round, min((r + 1) * per_round, counts[case])):
                start = time.perf_counter()
                run(i)
                out[case].append(time.perf_counter() - start)
    return out


def median_seconds(repeats: int, fn: Callable[[], object], warm: bool = True) -> float:
    if warm:
        fn()
    gc.collect()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# ----------------------------------------------------------------------------------------------
# FLOPs and the bare matmul


def encoder_shapes(c: PriceDenoiserConfig, windows: int = 1) -> list[Shape]:
    """Every matmul of one ``condition`` call: CNN encoder, condition FiLM, zero head."""
    d, film = c.encoder_dim, c.depth * c.film_dim
    out = [(windows * c.context, 2 * c.n_features, d)]  # 1×1 input convolution (mask channels)
    out += [(windows * c.context, c.kernel_size * d, d)] * c.encoder_layers  # causal convs
    out += [(windows, 2 * d, d), (windows, d, film)]  # pool, condition's FiLM
    return out + ([(windows, d, 1)] if c.zero_head else [])


def step_shapes(c: PriceDenoiserConfig, rows: int) -> list[Shape]:
    """Every matmul of one network evaluation with the time shared by all rows."""
    w, film = c.width, c.depth * c.film_dim
    out = [(1, c.time_dim, w), (1, w, film), (rows, c.target_dim, w)]
    return out + [(rows, w, w)] * c.depth + [(rows, w, c.target_dim)]


def case_shapes(c: PriceDenoiserConfig, case: Case, windows: int = 1) -> list[Shape]:
    """The matmuls of one prediction: one encoding per window, ``steps`` evaluations."""
    return encoder_shapes(c, windows) + step_shapes(c, windows * SAMPLES) * case.steps


def flops(shapes: list[Shape]) -> int:
    return sum(2 * m * k * n for m, k, n in shapes)


def counted_flops(run: Callable[[int], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        run(0)
    return int(counter.get_total_flops())


def bare_matmul_seconds(shapes: list[Shape], repeats: int, dtype: torch.dtype) -> float:
    """Best time of ``torch.mm`` over ``shapes`` on preallocated operands of ``dtype``."""
    operands = {s: (torch.randn(s[0], s[1], dtype=dtype), torch.randn(s[1], s[2], dtype=dtype))
                for s in set(shapes)}
    outs = {s: torch.empty(s[0], s[2], dtype=dtype) for s in operands}
    pairs = [(operands[s][0], operands[s][1], outs[s]) for s in shapes]

    def run() -> None:
        for a, b, out in pairs:
            torch.mm(a, b, out=out)

    run()
    gc.collect()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def peak_gflops(dtype: torch.dtype, repeats: int) -> float:
    """A 1024² matmul on this thread count: the speed of light."""
    return 2 * 1024**3 / bare_matmul_seconds([(1024, 1024, 1024)], repeats, dtype) / 1e9


# ----------------------------------------------------------------------------------------------
# the parts of one sample() call


def stage_times(fx: Fixture, repeats: int) -> dict[str, float]:
    """Median seconds of each step of ``sample`` (headline setting, fp32), run alone."""
    model, net, batch = fx.model, fx.net, fx.batches[0]
    normalizer = model.normalizer
    assert normalizer is not None
    scale = normalizer.target_scale
    context = fx.contexts[0]
    proc = get_sampler(HEADLINE[0], model.noise)
    proc.set_timesteps(HEADLINE[1])
    x = draw_samples(net, proc, {"context": context}, SAMPLES, (1,), seed=0)
    continuous = x.double().numpy() * scale
    price, step = batch.extra("origin_price"), batch.extra("lattice_step")
    r = snap_returns(continuous, price, step)
    cond = net.condition({"context": context})
    assert cond.zero_logit is not None
    logit = cond.zero_logit
    c = batch.context_length

    def sampler_setup() -> None:
        get_sampler(HEADLINE[0], model.noise).set_timesteps(HEADLINE[1])

    parts: list[tuple[str, Callable[[], object]]] = [
        ("normalize context (numpy)", lambda: normalizer.context(batch)),
        ("build sampler + set_timesteps", sampler_setup),
        ("encode window (condition)", lambda: net.condition({"context": context})),
        ("draw_samples (encode + loop)", lambda: draw_samples(
            net, proc, {"context": context}, SAMPLES, (1,), seed=0)),
        ("to numpy, scale", lambda: x.double().numpy() * scale),
        ("snap to lattice", lambda: snap_returns(continuous, price, step)),
        ("zero atom: p0, mix (numpy)", lambda: _mix_zero_atom(
            torch.sigmoid(logit.double()).numpy(), r, continuous, price, step, True, 0)),
        ("Samples(...)", lambda: Samples(r[:, :, None, :].astype(np.float32),
                                         batch.target_names, batch.window_ids[:, c:],
                                         batch.timestamps[:, c:], batch.instruments,
                                         batch.regimes))]
    with torch.no_grad():
        out = {label: median_seconds(repeats, fn) for label, fn in parts}
    whole, bare = paired(fx, repeats)
    return {**out, "sample() end to end": whole, "bare network loop, paired": bare}


def paired(fx: Fixture, repeats: int) -> tuple[float, float]:
    """Median seconds of ``sample`` and of the bare network loop on the same window, called in
    turn (a busy machine slows both alike)."""
    forecast = predictor(fx, Case("forecaster", *HEADLINE))
    network = predictor(fx, Case("network", *HEADLINE))
    times: dict[Callable[[int], object], list[float]] = {forecast: [], network: []}
    gc.collect()
    for _ in range(repeats):
        for fn in times:
            start = time.perf_counter()
            fn(0)
            times[fn].append(time.perf_counter() - start)
    return float(np.median(times[forecast])), float(np.median(times[network]))


def batched(fx: Fixture, bf16s: list[bool], quick: bool) -> list[dict[str, Any]]:
    """Windows/s of 64 windows × 256 samples per call, dpm-solver++ 10, 1 thread: median of 3
    after a warm-up call (quick: one call, the forecaster only)."""
    out = []
    assert fx.model.normalizer is not None
    contexts = torch.from_numpy(fx.model.normalizer.context(fx.big))
    proc = get_sampler(HEADLINE[0], fx.model.noise)
    proc.set_timesteps(HEADLINE[1])
    for bf16 in bf16s:
        calls: dict[str, Callable[[], object]] = {
            "forecaster": lambda: fx.model.sample(fx.big, SAMPLES, sampler=HEADLINE[0],
                                                  steps=HEADLINE[1], seed=0),
            "network": lambda: draw_samples(fx.net, proc, {"context": contexts}, SAMPLES,
                                            (1,), seed=0)}
        for path, call in list(calls.items())[:1 if quick else 2]:
            with autocast(bf16), torch.no_grad():
                seconds = median_seconds(1 if quick else 3, call, warm=not quick)
            case = Case("forecaster" if path == "forecaster" else "network", *HEADLINE, bf16)
            gflop = flops(case_shapes(fx.net.config, case, BATCH)) / 1e9
            out.append({"path": path, "bf16": bf16, "seconds": seconds,
                        "windows_per_s": BATCH / seconds, "gflop_per_s": gflop / seconds})
    return out


# ----------------------------------------------------------------------------------------------
# main


def make_cases(quick: bool) -> list[Case]:
    """Every setting for the forecaster, fp32 and bf16, and the bare network beside it; quick:
    the forecaster's settings in fp32 and the headline's others."""
    settings = [HEADLINE] if quick else list(SETTINGS)
    cases = [Case("forecaster", s, n) for s, n in SETTINGS]
    cases += [Case("network", s, n) for s, n in settings]
    if bf16_is_fast():
        cases += [Case(p, s, n, bf16=True) for p in ("forecaster", "network")
                  for s, n in settings]
    if not quick:
        cases.append(Case("forecaster", "ddpm", 1000))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="40 predictions per setting, fewer cases, no ddpm (under a minute)")
    parser.add_argument("--predictions", type=int, default=None)
    parser.add_argument("--ddpm-predictions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    n_pred = args.predictions or (40 if args.quick else 1000)
    started = time.perf_counter()
    torch.set_num_threads(1)
    print(f"CPU: {cpu_description()}")
    load_before = os.getloadavg()[0]
    print(f"load average before: {load_before:.2f}; bf16 fast here: {bf16_is_fast()}; "
          f"1 thread; {SAMPLES} samples per prediction")
    fx = build_fixture()
    torch.set_num_threads(1)  # fit may set its own
    print(f"forecaster: {fx.model!r}, zero head {fx.net.config.zero_head}")
    cases = make_cases(args.quick)
    runs = {case: predictor(fx, case) for case in cases}
    counts = {case: args.ddpm_predictions if case.sampler == "ddpm"
              else n_pred if case.steps <= 10 else n_pred // 2 for case in cases}
    timed = latencies(runs, counts, args.rounds)
    repeats = 3 if args.quick else 10
    peaks = {"fp32": peak_gflops(torch.float32, repeats)}
    if bf16_is_fast():
        peaks["bf16"] = peak_gflops(torch.bfloat16, repeats)
    rows = latency_rows(fx, cases, timed, runs, repeats)
    print_latency(rows, peaks)
    stages = stage_times(fx, 20 if args.quick else 200)
    print_stages(stages, rows)
    batch_rows = batched(fx, [False, *([True] if bf16_is_fast() else [])], args.quick)
    print_batched(batch_rows)
    load_after = os.getloadavg()[0]
    print(f"\nload average after: {load_after:.2f}; wall {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "date": datetime.date.today().isoformat(), "cpu": cpu_description(),
            "load_before": load_before, "load_after": load_after, "peak_gflops": peaks,
            "latency": rows, "stages_s": stages, "batched": batch_rows}, indent=1) + "\n")


def latency_rows(fx: Fixture, cases: list[Case], timed: dict[Case, list[float]],
                 runs: dict[Case, Callable[[int], object]], repeats: int
                 ) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        ms = 1e3 * np.array(timed[case])
        shapes = case_shapes(fx.net.config, case)
        dtype = torch.bfloat16 if case.bf16 else torch.float32
        bare = 1e3 * bare_matmul_seconds(shapes, 2 if case.sampler == "ddpm" else repeats,
                                         dtype)
        counted = counted_flops(runs[case]) if case.steps <= 20 else None
        p50 = float(np.percentile(ms, 50))
        rows.append({**asdict(case), "n": len(ms), "p50_ms": p50,
                     "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
                     "analytic_mflop": flops(shapes) / 1e6,
                     "counted_mflop": None if counted is None else counted / 1e6,
                     "bare_mm_ms": bare})
    return rows


def print_latency(rows: list[dict[str, Any]], peaks: dict[str, float]) -> None:
    print(f"\n{'case':<34}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'MFLOP':>8}{'GFLOP/s':>9}"
          f"{'bare ms':>9}{'share':>7}{'/net':>6}  p99<100 p99<20")
    p50s = {(r["path"], r["sampler"], r["steps"], r["bf16"]): r["p50_ms"] for r in rows}
    for r in rows:
        case = Case(r["path"], r["sampler"], r["steps"], r["bf16"])
        mflop = r["counted_mflop"] or r["analytic_mflop"]
        net = p50s.get(("network", r["sampler"], r["steps"], r["bf16"]))
        ratio = f"{r['p50_ms'] / net:>6.2f}" if net and r["path"] != "network" else f"{'':>6}"
        print(f"{case.name:<34}{r['n']:>5}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{mflop:>8.0f}"
              f"{mflop / r['p50_ms']:>9.1f}{r['bare_mm_ms']:>9.2f}"
              f"{r['bare_mm_ms'] / r['p50_ms']:>7.0%}{ratio}"
              f"  {'yes' if r['p99_ms'] < 100 else 'NO':>7}"
              f" {'yes' if r['p99_ms'] < 20 else 'no':>6}")
    checked = [r for r in rows if r["counted_mflop"] is not None]
    worst = max(abs(r["counted_mflop"] / r["analytic_mflop"] - 1) for r in checked)
    print(f"MFLOP counted by FlopCounterMode over one real call ({len(checked)} cases; the "
          f"analytic count agrees within {worst:.2%}); ddpm analytic. share = bare torch.mm over "
          f"the same shapes in the case's dtype / p50; /net = p50 / the bare network's p50.")
    print("speed of light, 1024² matmul, 1 thread: " +
          ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))


def print_stages(stages: dict[str, float], rows: list[dict[str, Any]]) -> None:
    total = stages["sample() end to end"]
    print(f"\nstages of one sample() call, {HEADLINE[0]} {HEADLINE[1]}, fp32 (median, run "
          "alone):")
    for label, seconds in stages.items():
        print(f"  {label:<32}{1e3 * seconds:>8.3f} ms  {seconds / total:>5.1%}")
    p50 = {(r["path"], r["bf16"]): r["p50_ms"] for r in rows
           if (r["sampler"], r["steps"]) == HEADLINE}
    fc, net = p50[("forecaster", False)], p50[("network", False)]
    bare = stages["bare network loop, paired"]
    print(f"  wrapper overhead: {1e3 * (total - bare):.2f} ms ({total / bare - 1:.1%}) called in "
          f"turn; {fc - net:.2f} ms ({fc / net - 1:.1%}) between the latency run's p50s")


def print_batched(rows: list[dict[str, Any]]) -> None:
    print(f"\nbatched: {BATCH} windows x {SAMPLES} samples per call, {HEADLINE[0]} "
          f"{HEADLINE[1]}, 1 thread (median):")
    for r in rows:
        print(f"  {r['path']:<11}{' bf16' if r['bf16'] else ' fp32'}: "
              f"{r['windows_per_s']:8.1f} windows/s ({r['seconds']:.3f} s per call, "
              f"{r['gflop_per_s']:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()

"""Latency of one price prediction: 1 window × 256 samples on 1 thread (issue 13, "Speed").

The network is :class:`tapecast.nets.film.PriceDenoiser` with its default config (K = 10 context
channels, C = 120 s, CNN encoder d = 128, FiLM-MLP 4 × 256) at D = 1 (the 30-s return) and
D = 30 (the path), freshly initialised (the weights do not change the cost). A prediction is
one :func:`tapecast.diffusion.draw_samples` call, the live path: encode the window once, draw
the initial noise, run the sampler.

* **latency**: p50 and p99 over ``--predictions`` predictions (1000; ``--quick`` 200) for
  ``ddim`` and ``dpm-solver++`` at 5, 10 and 20 network evaluations, and ``ddpm`` over all
  1000 steps (``--ddpm-predictions``, 20; quick 3). The cases take turns in ``--rounds``
  rounds, so a busy machine slows them alike. Targets: p99 < 100 ms, aim < 20 ms.
* **FLOPs** per prediction counted analytically (2·m·k·n per matmul; convolutions as matmuls;
  elementwise work not counted), checked against ``torch.utils.flop_counter`` once.
* **bare matmul**: the same matmul shapes (same count) as ``torch.mm`` on preallocated tensors,
  timed in the same run: ``share`` = bare time / p50, the part of a prediction that is matmul
  work at this size. Beside it one network evaluation alone (time shared by all rows, and per
  row, i.e. what the shared time embedding saves) and a bare 4 × 256 MLP (Linear + SiLU) on 256
  rows, the issue's 1.2-1.9 ms estimate.
* **batched**: windows/s at 64 windows × 256 samples per call, 10 evaluations.
* **bf16**: where the CPU has AMX or AVX512-BF16 (checked at run time), the evaluation and the
  10-step predictions again under ``torch.autocast("cpu", torch.bfloat16)``.

Run from the repository root::

    .venv/bin/python benchmarks/price_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tapecast.diffusion import GaussianNoise, draw_samples, get_sampler
from tapecast.features.price import PriceGridConfig
from tapecast.features.price_windows import context_features
from tapecast.nets.film import PriceDenoiser, PriceDenoiserConfig
from tapecast.train import bf16_is_fast

SAMPLES, BATCH, T = 256, 64, 1000
Shape = tuple[int, int, int]  # (m, k, n) of an (m × k) @ (k × n) product


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Best wall seconds of ``repeats`` calls, garbage collected once before them (``timing.py``
    collects before every call, which costs more than these millisecond calls)."""
    gc.collect()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@dataclass(frozen=True)
class Case:
    """One timed prediction setting."""

    sampler: str
    evals: int
    target_dim: int
    bf16: bool = False

    @property
    def name(self) -> str:
        return f"{self.sampler} {self.evals}{' bf16' if self.bf16 else ''}"


def matmul_shapes(c: PriceDenoiserConfig, evals: int, rows: int = SAMPLES,
                  windows: int = 1) -> list[Shape]:
    """Every matmul of one prediction (CNN encoder, shared time embedding)."""
    d, w, film = c.encoder_dim, c.width, c.depth * c.film_dim
    once = [(windows * c.context, 2 * c.n_features, d)]  # 1×1 input convolution
    once += [(windows * c.context, c.kernel_size * d, d)] * c.encoder_layers  # causal convs
    once += [(windows, 2 * d, d), (windows, d, film)]  # pool, condition's FiLM
    step = [(1, c.time_dim, w), (1, w, film), (rows, c.target_dim, w)]
    step += [(rows, w, w)] * c.depth + [(rows, w, c.target_dim)]
    return once + step * evals


def flops(shapes: list[Shape]) -> int:
    return sum(2 * m * k * n for m, k, n in shapes)


def bare_matmul_seconds(shapes: list[Shape], repeats: int) -> float:
    """Best time of ``torch.mm`` over ``shapes`` on preallocated operands."""
    operands = {s: (torch.randn(s[0], s[1]), torch.randn(s[1], s[2])) for s in set(shapes)}
    outs = {s: torch.empty(s[0], s[2]) for s in operands}
    pairs = [(operands[s][0], operands[s][1], outs[s]) for s in shapes]

    def run() -> None:
        for a, b, out in pairs:
            torch.mm(a, b, out=out)

    run()
    return best_of(repeats, run)


def cpu_description() -> str:
    """lscpu's model name, the bf16 flags present, torch's CPU capability."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("Model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("Flags")), [])
    bf16 = [f for f in ("amx_bf16", "avx512_bf16", "avx512f") if f in flags]
    return (f"{model}; {os.cpu_count()} CPUs; flags {', '.join(bf16) or 'no AVX512/AMX'}; "
            f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})")


def autocast(bf16: bool) -> contextlib.AbstractContextManager[object]:
    return (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
            else contextlib.nullcontext())


def predictor(net: PriceDenoiser, case: Case, contexts: torch.Tensor
              ) -> Callable[[int], None]:
    """One prediction of window ``i % len(contexts)`` with seed ``i``."""
    noise = GaussianNoise.from_schedule("cosine", T, prediction="v")
    sampler = get_sampler(case.sampler, noise)
    sampler.set_timesteps(case.evals)

    def predict(i: int) -> None:
        with autocast(case.bf16):
            draw_samples(net, sampler, {"context": contexts[i % len(contexts):][:1]}, SAMPLES,
                         (case.target_dim,), seed=i)

    return predict


def latencies(runs: dict[Case, Callable[[int], None]], counts: dict[Case, int], rounds: int
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


def evaluation_times(net: PriceDenoiser, repeats: int) -> dict[str, float]:
    """Seconds of one network evaluation at 256 rows, and of its parts' bare equivalents."""
    c = net.config
    cond = net.condition({"context": torch.randn(1, c.n_features, c.context)}).expand(SAMPLES)
    x = torch.randn(SAMPLES, c.target_dim)
    shared = torch.tensor(500.0).expand(SAMPLES)
    per_row = 500.0 + torch.arange(SAMPLES, dtype=torch.float32) * 1e-3  # distinct: no sharing
    layers: list[nn.Module] = []
    for _ in range(c.depth):
        layers += [nn.Linear(c.width, c.width), nn.SiLU()]
    mlp = nn.Sequential(*layers)
    h = torch.randn(SAMPLES, c.width)
    times: dict[str, float] = {}
    calls: list[tuple[str, Callable[[], object]]] = [
        ("net, shared t", lambda: net(x, shared, cond)),
        ("net, t per row", lambda: net(x, per_row, cond)),
        (f"bare {c.depth}x{c.width} MLP", lambda: mlp(h))]
    with torch.no_grad():
        for label, fn in calls:
            fn()
            times[label] = best_of(repeats, fn)
        if bf16_is_fast():
            with autocast(True):
                net(x, shared, cond)
                times["net, shared t, bf16"] = best_of(repeats, lambda: net(x, shared, cond))
    mm = [(SAMPLES, c.width, c.width)] * c.depth
    times[f"bare {c.depth} mm 256x{c.width}x{c.width}"] = bare_matmul_seconds(mm, repeats)
    return times


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def counted_flops(net: PriceDenoiser, case: Case, contexts: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        predictor(net, case, contexts)(0)
    return int(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 predictions, 3 of ddpm")
    parser.add_argument("--predictions", type=int, default=None)
    parser.add_argument("--ddpm-predictions", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    n_pred = args.predictions or (200 if args.quick else 1000)
    n_ddpm = args.ddpm_predictions or (3 if args.quick else 20)
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    k = len(context_features(PriceGridConfig()))
    print(f"CPU: {cpu_description()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}; bf16 fast here: {bf16_is_fast()}; "
          f"1 thread; {SAMPLES} samples per prediction")
    nets = {d: PriceDenoiser(PriceDenoiserConfig(n_features=k, target_dim=d)).eval()
            for d in (1, 30)}
    contexts = torch.randn(32, k, 120, generator=torch.Generator().manual_seed(0))
    cases = [Case(s, n, d) for d in (1, 30) for s in ("ddim", "dpm-solver++") for n in (5, 10, 20)]
    cases += [Case("ddpm", T, d) for d in (1, 30)]
    if bf16_is_fast():
        cases += [Case("dpm-solver++", 10, d, bf16=True) for d in (1, 30)]
    runs = {case: predictor(nets[case.target_dim], case, contexts) for case in cases}
    counts = {case: n_ddpm if case.sampler == "ddpm" else n_pred for case in cases}
    timed = latencies(runs, counts, args.rounds)
    print_latency(cases, timed, nets, counted_flops(nets[1], cases[4], contexts))
    for d, net in nets.items():
        print(f"\none network evaluation, D = {d}, {SAMPLES} rows (best of 200):")
        for label, seconds in evaluation_times(net, 200).items():
            print(f"  {label:<28}{1e3 * seconds:>8.3f} ms")
    print_batched(nets, contexts)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def print_latency(cases: list[Case], timed: dict[Case, list[float]],
                  nets: dict[int, PriceDenoiser], counted: int) -> None:
    print(f"\n{'case':<20}{'D':>3}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
          f"{'MFLOP':>8}{'GFLOP/s':>9}{'bare ms':>9}{'share':>7}  p99<100  p99<20")
    for case in cases:
        ms = 1e3 * np.array(timed[case])
        p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
        shapes = matmul_shapes(nets[case.target_dim].config, case.evals)
        bare = 1e3 * bare_matmul_seconds(shapes, 5 if case.sampler == "ddpm" else 50)
        print(f"{case.name:<20}{case.target_dim:>3}{len(ms):>6}{p50:>9.2f}{p99:>9.2f}"
              f"{ms.mean():>9.2f}{flops(shapes) / 1e6:>8.1f}{flops(shapes) / p50 / 1e6:>9.1f}"
              f"{bare:>9.2f}{bare / p50:>7.0%}  {'yes' if p99 < 100 else 'NO':>7}"
              f"  {'yes' if p99 < 20 else 'no':>6}")
    analytic = flops(matmul_shapes(nets[1].config, cases[4].evals))
    print(f"FLOPs check ({cases[4].name}, D = 1): analytic {analytic / 1e6:.2f} M, "
          f"torch flop counter {counted / 1e6:.2f} M")


def print_batched(nets: dict[int, PriceDenoiser], contexts: torch.Tensor) -> None:
    print(f"\nbatched: {BATCH} windows x {SAMPLES} samples per call, dpm-solver++ 10 "
          f"(best of 3)")
    batch = {"context": contexts.repeat(BATCH // len(contexts) + 1, 1, 1)[:BATCH]}
    sampler = get_sampler("dpm-solver++", GaussianNoise.from_schedule("cosine", T,
                                                                     prediction="v"))
    sampler.set_timesteps(10)
    for n_threads in sorted({1, os.cpu_count() or 1}):
        for d, net in nets.items():
            with threads(n_threads):
                def call(net: PriceDenoiser = net, d: int = d) -> None:
                    draw_samples(net, sampler, batch, SAMPLES, (d,), seed=0)

                call()
                best = best_of(3, call)
            gflop = flops(matmul_shapes(net.config, 10, BATCH * SAMPLES, BATCH)) / 1e9
            print(f"  D = {d:>2}, {n_threads} thread(s): {BATCH / best:8.1f} windows/s "
                  f"({best:.3f} s per call, {gflop / best:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()

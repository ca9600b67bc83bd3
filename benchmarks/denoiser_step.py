"""Seconds per reverse step of the full-grid CSDI denoiser beside the context-cached one.

One window (K = 8, C = 100, H = 10) sampled 32 times: the context is encoded once and broadcast
over the 32 samples, then one denoiser evaluation (eval mode, no grad) on (32, 8, 10) is timed.
Both nets get the same config (width, depth, heads, feed-forward), hence the same parameters.

Run: ``.venv/bin/python benchmarks/denoiser_step.py [--sizes small esc1] [--repeats N] [--bf16]``.

Printed per size and net: best and median wall seconds per step over ``--repeats`` timed steps
(after a warm-up step; the two nets alternate, so both see the same load), CPU seconds per step
(all threads), FLOPs per step counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls
and attention; elementwise work is not counted), achieved GFLOP/s at the best wall time as a
share of this machine's 1024² matmul peak on a quiet machine (``../shared/ENVIRONMENT.md``: fp32
218, bf16 282 GFLOP/s) and of a bare 1024² matmul timed now, the context encoding (once per
window) and one window at 50 reverse steps. Other jobs may share the 2 cores: the bare matmul
timed before and after says how much of the machine was ours.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import time
from collections.abc import Callable, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from tapecast.nets import DenoiserConfig, build_denoiser, count_parameters, denoiser_config

PEAK_GFLOPS = {"fp32": 218.0, "bf16": 282.0}  # 1024² matmul, ENVIRONMENT.md
ARCHS = ("full-grid", "context-cached")
SIZES = {"small": denoiser_config("small"), "esc1": denoiser_config("jl-csdi-esc1")}


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Best wall seconds of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return min(walls)


def matmul_gflops(precision: str, size: int = 1024) -> float:
    """Bare square matmul GFLOP/s right now (the denominator other jobs leave us).

    fp32: ``a @ b``; bf16: an fp32 ``nn.Linear`` under bf16 autocast, the path the nets take.
    """
    a, linear = torch.randn(size, size), torch.nn.Linear(size, size, bias=False)
    if precision == "fp32":
        return 2 * size**3 / best_seconds(lambda: a @ linear.weight, 10) / 1e9
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        return 2 * size**3 / best_seconds(lambda: linear(a), 5) / 1e9


def count_flops(config: DenoiserConfig, samples: int) -> tuple[int, int]:
    """FLOPs (matmuls and attention) of one step and of one context encoding.

    Counted on the "meta" device: shapes only, nothing is computed.
    """
    with torch.device("meta"):
        net = build_denoiser(config).eval()
        context = torch.zeros(1, config.n_features, config.context)
        x_noisy = torch.zeros(samples, config.n_features, config.horizon)
        t = torch.zeros(samples)
    counts = []
    with torch.no_grad():
        for call in ("encode", "step"):
            counter = FlopCounterMode(display=False)
            with counter:
                cache = net.encode_context(context).expand(samples)
                if call == "step":
                    net(x_noisy, t, cache)
            counts.append(int(counter.get_total_flops()))
    return counts[1] - counts[0], counts[0]


def interleaved_steps(steps: Mapping[str, Callable[[], object]], repeats: int, warm_up: bool
                      ) -> dict[str, tuple[float, float, float]]:
    """(best wall, median wall, median CPU) seconds per call of each ``steps`` entry.

    The entries are timed in turn within each repeat, so both nets see the same load.
    """
    for fn in steps.values():
        if warm_up:
            fn()
    walls: dict[str, list[float]] = {name: [] for name in steps}
    cpus: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            wall0, cpu0 = time.perf_counter(), time.process_time()
            fn()
            walls[name].append(time.perf_counter() - wall0)
            cpus[name].append(time.process_time() - cpu0)
    return {name: (min(walls[name]), statistics.median(walls[name]),
                   statistics.median(cpus[name])) for name in steps}


def bench_size(name: str, samples: int, repeats: int, precision: str, peak_now: float,
               warm_up: bool) -> None:
    """Print the step timings of both architectures at one size."""
    base = SIZES[name]
    generator = torch.Generator().manual_seed(0)
    context = torch.randn(1, base.n_features, base.context, generator=generator)
    x_noisy = torch.randn(samples, base.n_features, base.horizon, generator=generator)
    t = torch.full((samples,), 10.0)
    nets = {arch: build_denoiser(base.replace(architecture=arch)).eval() for arch in ARCHS}
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        caches = {arch: nets[arch].encode_context(context).expand(samples) for arch in ARCHS}
        steps = {arch: functools.partial(nets[arch], x_noisy, t, caches[arch]) for arch in ARCHS}
        encodes = {arch: functools.partial(nets[arch].encode_context, context) for arch in ARCHS}
        timings = interleaved_steps(steps, repeats, warm_up)
        encode_s = {arch: best_seconds(encodes[arch], min(3, repeats)) for arch in ARCHS}
    flops = {arch: count_flops(nets[arch].config, samples)[0] for arch in ARCHS}
    for arch in ARCHS:
        best, median, cpu = timings[arch]
        gflops = flops[arch] / best / 1e9
        print(f"{name:<6}{arch:<16}{count_parameters(nets[arch]) / 1e6:>8.2f}M"
              f"{best:>9.4f}{median:>9.4f}{cpu:>9.4f}{flops[arch] / 1e9:>9.2f}{gflops:>9.1f}"
              f"{100 * gflops / PEAK_GFLOPS[precision]:>7.1f}%{100 * gflops / peak_now:>7.1f}%"
              f"{encode_s[arch]:>9.4f}{encode_s[arch] + 50 * best:>9.2f}")
    full, cached = (timings[arch][0] for arch in ARCHS)
    window = [encode_s[arch] + 50 * timings[arch][0] for arch in ARCHS]
    print(f"{name:<6}full-grid / context-cached: step {full / cached:.1f}x (best), "
          f"{timings[ARCHS[0]][1] / timings[ARCHS[1]][1]:.1f}x (median), "
          f"{timings[ARCHS[0]][2] / timings[ARCHS[1]][2]:.1f}x (CPU), "
          f"FLOPs {flops[ARCHS[0]] / flops[ARCHS[1]]:.1f}x; one window at 50 steps "
          f"(encode included) {window[0] / window[1]:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["small", "esc1"])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast instead of fp32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = "bf16" if args.bf16 else "fp32"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {precision}, "
          f"{args.samples} samples of one window, best of {args.repeats} (esc1: 1, no warm-up)")
    print(f"{'size':<6}{'net':<16}{'params':>9}{'best s':>9}{'median':>9}{'cpu s':>9}"
          f"{'GFLOP':>9}{'GFLOP/s':>9}{'peak':>8}{'now':>8}{'encode':>9}{'50 steps':>9}")
    peak_now = matmul_gflops(precision)
    print(f"bare {precision} 1024² matmul now: {peak_now:.0f} GFLOP/s "
          f"(quiet machine: {PEAK_GFLOPS[precision]:.0f} in ENVIRONMENT.md)")
    for name in args.sizes:
        # esc1: one timed step each, no warm-up (a full-grid step is minutes on a busy machine)
        repeats, warm_up = (args.repeats, True) if name == "small" else (1, False)
        bench_size(name, args.samples, repeats, precision, peak_now, warm_up)
    print(f"bare {precision} 1024² matmul after: {matmul_gflops(precision):.0f} GFLOP/s")


if __name__ == "__main__":
    main()

"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Best wall-clock seconds of ``repeats`` calls (garbage collected before each)."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def cpu_description() -> str:
    """lscpu's model name, the bf16 flags present, torch's CPU capability."""
    import os
    import subprocess

    import torch

    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("Model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("Flags")), [])
    bf16 = [f for f in ("amx_bf16", "avx512_bf16", "avx512f") if f in flags]
    return (f"{model}; {os.cpu_count()} CPUs; flags {', '.join(bf16) or 'no AVX512/AMX'}; "
            f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})")

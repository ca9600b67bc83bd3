"""Where and in which precision a fit runs: device, process-group backend, autocast, scaler.

* :func:`resolve_device` turns ``TrainConfig.device`` into a ``torch.device``: ``"cpu"``,
  ``"cuda"`` / ``"cuda:N"``, or ``"auto"`` (CUDA when present). Under torchrun, ``"cuda"`` and
  ``"auto"`` give each rank its own GPU, ``cuda:LOCAL_RANK``, and :func:`backend_for` picks NCCL
  for CUDA and gloo for CPU.
* :func:`resolve_precision` turns ``TrainConfig.precision`` into ``"fp32"``, ``"bf16"`` or
  ``"fp16"``. ``"auto"`` is bf16 on a CUDA device that supports it and on a CPU where bf16
  matrix products are fast (:func:`bf16_is_fast`: AMX or AVX512-BF16; on an AVX2-only CPU a
  bf16 matmul is several times *slower* than fp32), fp32 otherwise. ``"fp16"`` is CUDA only.
* :func:`autocast` is the context the loss runs in; :func:`make_scaler` the gradient scaler
  (enabled for fp16 only, the range of float16 gradients being too small without it).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Literal

import torch

from tapecast.core.config import ConfigError
from tapecast.train.config import Precision

Resolved = Literal["fp32", "bf16", "fp16"]
CPU_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def resolve_device(name: str, *, local_rank: int = 0, distributed: bool = False) -> torch.device:
    """The device of a fit.

    Parameters
    ----------
    name : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    local_rank : int
        This process's ``LOCAL_RANK`` under torchrun (its GPU when ``distributed``).
    distributed : bool
        True under torchrun with more than one process.

    Raises
    ------
    ConfigError
        ``"TrainConfig.device: ..."`` (a :class:`~tapecast.core.errors.TapecastError`) when
        CUDA is asked for but not available, or ``cuda:N`` names a missing GPU.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("TrainConfig", "device", f"{name!r} asked for, but this torch build "
                          "sees no CUDA device; use 'cpu' or 'auto'")
    index = local_rank if name == "cuda" and distributed else torch.device(name).index or 0
    if index >= torch.cuda.device_count():
        raise ConfigError("TrainConfig", "device", f"cuda:{index} asked for, but only "
                          f"{torch.cuda.device_count()} CUDA device(s) are visible")
    return torch.device("cuda", index)


def backend_for(device: torch.device) -> str:
    """The torch.distributed backend for ``device``: ``"nccl"`` for CUDA, ``"gloo"`` else."""
    return "nccl" if device.type == "cuda" else "gloo"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (empty where there is no such file)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def bf16_is_fast() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX or AVX512-BF16).

    Read from ``/proc/cpuinfo`` (Linux), else from torch's own CPU probe where it has one.
    Cached: the answer does not change while the process runs.
    """
    flags = cpu_flags()
    if flags:
        return bool(flags & CPU_BF16_FLAGS)
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    cpu_module = getattr(torch._C, "_cpu", None)
    return any(bool(getattr(cpu_module, probe, lambda: False)()) for probe in probes)


def resolve_precision(precision: Precision, device: torch.device) -> Resolved:
    """The precision a run on ``device`` uses for ``precision`` (module docstring).

    Raises
    ------
    ConfigError
        ``"TrainConfig.precision: ..."`` (a :class:`~tapecast.core.errors.TapecastError`) for
        ``"fp16"`` on a CPU, or ``"bf16"`` on a GPU without bfloat16.
    """
    cuda = device.type == "cuda"
    if precision == "auto":
        fast = torch.cuda.is_bf16_supported() if cuda else bf16_is_fast()
        return "bf16" if fast else "fp32"
    if precision == "fp16" and not cuda:
        raise ConfigError("TrainConfig", "precision", "'fp16' needs a CUDA device (its gradient "
                          "scaler is CUDA only); use 'bf16' or 'fp32' on a CPU")
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("TrainConfig", "precision",
                          f"{device} has no bfloat16; use 'fp16' or 'fp32'")
    return precision


def autocast(device: torch.device, precision: Resolved) -> contextlib.AbstractContextManager[None]:
    """``torch.autocast`` for the loss: bfloat16 or float16, or disabled for fp32."""
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32")


def make_scaler(device: torch.device, precision: Resolved) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 (on CUDA) only; disabled it passes values through."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")

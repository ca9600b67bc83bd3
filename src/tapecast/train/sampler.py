"""Which samples form each training batch: stateless samplers, seeded per (seed, epoch, batch).

A sampler answers two questions, both pure functions of their arguments, so a resumed run draws
exactly the batches the uninterrupted run would have drawn:

* ``steps_per_epoch(n, batch_size)``: how many batches make one epoch of ``n`` samples;
* ``indices(n, batch_size, seed=, epoch=, batch=)``: the sample indices (int64, (B,)) of batch
  ``batch`` of epoch ``epoch``.

:class:`EpochShuffle` (the default) walks a fresh permutation of the samples each epoch;
:class:`RandomWindows` draws every batch independently and uniformly, e.g. offsets into a token
stream (:class:`tapecast.train.data.TokenWindows`), where an "epoch" is only a bookkeeping unit.
Samplers are frozen dataclasses: their ``repr`` is stored in the checkpoint, and resuming with
another sampler is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from tapecast.core.errors import TapecastError

DATA, TRAIN, VAL = 1, 2, 3  # stream tags of derive_seeds


def derive_seeds(seed: int, *words: int) -> tuple[int, int]:
    """Two independent 64-bit seeds for the stream ``(seed, *words)`` (numpy SeedSequence)."""
    first, second = np.random.SeedSequence([seed, *words]).generate_state(2, dtype=np.uint64)
    return int(first), int(second)


@contextlib.contextmanager
def seeded_stream(seed: int, *words: int, device: torch.device) -> Iterator[torch.Generator]:
    """A generator seeded from ``(seed, *words)``; the global torch RNG is seeded too for the
    block (dropout) and restored afterwards."""
    loss_seed, global_seed = derive_seeds(seed, *words)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.default_generator.manual_seed(global_seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(global_seed)
        yield torch.Generator(device=device).manual_seed(loss_seed)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffled sample order of ``epoch``: int64, (n,), a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(derive_seeds(seed, DATA, epoch)[0])
    return torch.randperm(n, generator=generator)


@runtime_checkable
class BatchSampler(Protocol):
    """The batches of a training run, as pure functions of their position (module docstring)."""

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        """Batches per epoch of a dataset of ``n`` samples (>= 1)."""
        ...

    def indices(self, n: int, batch_size: int, *, seed: int, epoch: int,
                batch: int) -> torch.Tensor:
        """Sample indices of batch ``batch`` of ``epoch``: int64, (B,) with 1 <= B <= size."""
        ...


@dataclass(frozen=True)
class EpochShuffle:
    """Each epoch, a permutation of all samples seeded by ``(seed, epoch)``, cut into batches.

    Parameters
    ----------
    drop_last : bool
        Drop the last incomplete batch of each epoch (else it is shorter).
    """

    drop_last: bool = False
    _cache: dict[tuple[int, int, int], torch.Tensor] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        """``n // B`` with ``drop_last``, else ``ceil(n / B)``.

        Raises
        ------
        TapecastError
            When ``drop_last`` leaves no batch.
        """
        steps = n // batch_size if self.drop_last else -(-n // batch_size)
        if steps == 0:
            raise TapecastError(f"fit: {n} training samples make no full batch of {batch_size} "
                                f"(drop_last is on)")
        return steps

    def indices(self, n: int, batch_size: int, *, seed: int, epoch: int,
                batch: int) -> torch.Tensor:
        """Positions ``batch·B .. (batch+1)·B − 1`` of the epoch's permutation."""
        key = (seed, epoch, n)
        if key not in self._cache:  # one permutation per epoch, kept while the epoch runs
            self._cache.clear()
            self._cache[key] = epoch_order(seed, epoch, n)
        start = batch * batch_size
        return self._cache[key][start: start + batch_size]


@dataclass(frozen=True)
class RandomWindows:
    """Every batch ``B`` indices drawn uniformly from ``[0, n)`` (with replacement), seeded by
    ``(seed, epoch, batch)``: random windows of a token stream rather than a permutation.

    Parameters
    ----------
    epoch_steps : int or None
        Batches per epoch (the cadence of ``eval_every="epoch"`` and of ``max_epochs``); None
        gives ``ceil(n / B)``.
    """

    epoch_steps: int | None = None

    def __post_init__(self) -> None:
        if self.epoch_steps is not None and (
                not isinstance(self.epoch_steps, int) or self.epoch_steps < 1):
            raise TapecastError(f"random windows: expected epoch_steps >= 1 or None, got "
                                f"{self.epoch_steps!r}")

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        """``epoch_steps``, or ``ceil(n / B)``."""
        return self.epoch_steps or -(-n // batch_size)

    def indices(self, n: int, batch_size: int, *, seed: int, epoch: int,
                batch: int) -> torch.Tensor:
        """``B`` uniform draws from ``[0, n)``: int64, (B,)."""
        generator = torch.Generator().manual_seed(derive_seeds(seed, DATA, epoch, batch)[0])
        return torch.randint(0, n, (batch_size,), generator=generator)

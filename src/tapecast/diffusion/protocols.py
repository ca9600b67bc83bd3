"""The contracts of the generative core: a noise process and a sampler.

A sampler holds no ``nn.Module`` and a network never loops over steps (diffusers' scheduler
seam, ``../shared/STYLE.md``); the loop over reverse steps lives in the model. Noise processes
and samplers import their types from here, never from :mod:`tapecast.diffusion.registry`, which
imports them (so the package has no import cycle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import torch

NoiseKind = str
"""The name of a noise family (``"gaussian"``, ``"jump-laplace"``...): a sampler fits one."""


class NoiseProcess(Protocol):
    """A forward noising process: training targets, the terminal law and moment transfer."""

    kind: NoiseKind
    num_train_timesteps: int

    def sample_timesteps(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = ...,
        device: torch.device | str | None = ...,
    ) -> torch.Tensor: ...

    def add_noise(
        self, x0: torch.Tensor, t: torch.Tensor, *, generator: torch.Generator | None = ...
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def model_time(self, t: torch.Tensor) -> torch.Tensor: ...

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor: ...

    def init_noise(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = ...,
        *,
        dtype: torch.dtype = ...,
        device: torch.device | str | None = ...,
    ) -> torch.Tensor: ...

    def moment_transfer(
        self, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


class Sampler(Protocol):
    """The reverse-process contract shared by every sampler (and the MGD wrapper).

    Reverse steps are tracked by their index ``i`` into :attr:`timesteps`, never by the time
    value, so a sampler may visit one noise level several times: the loop is ::

        for i, t in enumerate(sampler.timesteps):
            out = net(x, sampler.model_time(t).expand(len(x)), cond)
            x = sampler.step(out, i, x, generator=generator)

    ``previous_time(i)`` is the time of the sample ``step(..., i, ...)`` returns (``<= 0``: clean
    data).
    """

    @property
    def noise_kind(self) -> NoiseKind: ...

    @property
    def noise(self) -> NoiseProcess: ...

    @property
    def timesteps(self) -> torch.Tensor: ...

    def set_timesteps(self, n_steps: int) -> None: ...

    def init_noise(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = ...,
        *,
        dtype: torch.dtype = ...,
        device: torch.device | str | None = ...,
    ) -> torch.Tensor: ...

    def model_time(self, t: torch.Tensor) -> torch.Tensor: ...

    def previous_time(self, index: int) -> torch.Tensor: ...

    def step(
        self,
        model_output: torch.Tensor,
        index: int,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = ...,
    ) -> torch.Tensor: ...


class Conditioning(Protocol):
    """What a network computes once from a batch's condition (a context encoding, a cache).

    ``expand(n)`` repeats each row ``n`` times, row-major (row ``b·n + s``), so one encoding
    serves ``n`` noise draws or samples of each window without encoding it again.
    """

    def expand(self, n: int) -> Conditioning: ...


class ConditionalDenoiser(Protocol):
    """A network the core trains and samples: ``condition`` once per batch, then a call per
    noise level. Networks never loop over steps (the reverse loop is
    :func:`tapecast.diffusion.sampling.reverse_sample`)."""

    def condition(self, batch: Mapping[str, torch.Tensor]) -> Conditioning:
        """The conditioning of a batch's rows from its tensors (a model's own keys; the core
        reads ``target`` and ``target_mask`` only)."""
        ...

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning, /
                 ) -> torch.Tensor:
        """The model output at ``x_t`` (B, ...) and network times ``t`` (B,), shape of ``x_t``."""
        ...


class RowConditioning:
    """A conditioning held as one tensor with a row per batch row, ``(B, ...)``: ``expand(n)``
    repeats each row ``n`` times (row ``b·n + s``). A bare tensor is not a Conditioning: its
    own ``expand`` broadcasts instead of repeating rows."""

    def __init__(self, value: torch.Tensor) -> None:
        self.value = value

    def expand(self, n: int) -> RowConditioning:
        return RowConditioning(self.value.repeat_interleave(n, dim=0))  # (B·n, ...)


class Unconditional:
    """The conditioning of a network that sees no condition (a score model of a state vector):
    expanding it is a no-op."""

    def expand(self, n: int) -> Unconditional:
        return self

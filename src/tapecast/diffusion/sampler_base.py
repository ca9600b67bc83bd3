"""What every sampler of the core shares: a grid of reverse times, checked by index, and the
noise process' own network time input and terminal law."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.protocols import NoiseProcess

NoiseT = TypeVar("NoiseT", bound=NoiseProcess)


class GridSampler(Generic[NoiseT]):
    """Base of the samplers: ``timesteps`` (set by ``set_timesteps``) and a ``noise``.

    Subclasses set ``self.noise`` and ``self.timesteps`` and implement ``set_timesteps``,
    ``previous_time`` and ``step``; reverse step ``i`` reads its time with :meth:`grid_time`.
    """

    noise: NoiseT
    timesteps: torch.Tensor

    def grid_time(self, index: int) -> torch.Tensor:
        """``timesteps[index]`` (0-d), a TapecastError outside the grid."""
        n = int(self.timesteps.numel())
        if not 0 <= index < n:
            raise TapecastError(f"reverse step {index} is outside the sampler's {n} timesteps"
                                + ("; call set_timesteps first" if n == 0 else ""))
        return self.timesteps[index]

    def model_time(self, t: torch.Tensor | float) -> torch.Tensor:
        """The network's time input for ``t`` (float32 scalar; expand it to the batch)."""
        return self.noise.model_time(torch.as_tensor(t))

    def init_noise(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draws of the noise process' terminal law, shape ``shape``."""
        return self.noise.init_noise(shape, generator, dtype=dtype, device=device)

"""Reverse VE SDE / probability-flow ODE sampler (Song et al. 2021, arXiv 2011.13456).

For the VE SDE ``dx = sqrt(dσ²/dt) dw`` the reverse-time SDE (eq. 6) and the probability-flow ODE
(eq. 13) share the marginals ``p_t``; any mixture of them does too. On the grid
``t_0 = 1 > ... > t_{n-1} = 0`` one step from ``σ = σ(t_i)`` to ``σ' = σ(t_{i+1})`` is the
reverse-diffusion predictor (score SDE App. E) with a stochasticity γ::

    x' = x + (1 + γ)/2 (σ² - σ'²) s_θ(x, σ) + sqrt(γ (σ² - σ'²)) z

γ = 1 is the reverse-diffusion (ancestral-like) predictor, γ = 0 an Euler step of the
probability-flow ODE. The last step goes from σ_min to clean data (σ' = 0,
``previous_time = -1``) without noise: ``x + (1 + γ)/2 σ_min² s_θ``.

Legend: ``sigma`` = σ(t_i), ``sigma_next`` = σ(t_{i+1}), ``stochasticity`` = γ.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.noise_gaussian import draw_normal
from tapecast.diffusion.noise_ve import VENoise
from tapecast.diffusion.registry import is_count, register_sampler
from tapecast.diffusion.sampler_base import GridSampler

if TYPE_CHECKING:
    from tapecast.diffusion.protocols import NoiseKind


@register_sampler("ve-sde", noise_kind="ve")
class VESDESampler(GridSampler[VENoise]):
    """Reverse VE SDE (γ = 1) or probability-flow ODE (γ = 0) on ``n`` times from 1 to 0.

    Parameters
    ----------
    noise : VENoise
        The model's forward process.
    stochasticity : float
        γ ≥ 0.
    """

    noise_kind: NoiseKind = "ve"

    def __init__(self, noise: VENoise, stochasticity: float = 1.0) -> None:
        if not isinstance(noise, VENoise):
            raise TapecastError(f"the VE SDE sampler needs VENoise, got {type(noise).__name__}")
        if not stochasticity >= 0:
            raise TapecastError(f"stochasticity must be >= 0, got {stochasticity}")
        self.noise = noise
        self.stochasticity = float(stochasticity)
        self.timesteps = torch.zeros(0, dtype=torch.float64)

    def set_timesteps(self, n_steps: int) -> None:
        """``n`` evenly spaced times from 1 to 0 (one step: ``t = 1`` to clean data)."""
        if not is_count(n_steps) or n_steps < 1:
            raise TapecastError(f"number of sampling steps must be >= 1, got {n_steps!r}")
        self.timesteps = torch.linspace(1.0, 0.0, n_steps, dtype=torch.float64)

    def time_at(self, index: int) -> float:
        """The time of reverse step ``index`` (a TapecastError outside the grid)."""
        return float(self.grid_time(index))

    def previous_time(self, index: int) -> torch.Tensor:
        """The next grid time, or ``-1`` (clean, σ = 0) after the last step. float64 scalar."""
        self.time_at(index)
        last = index + 1 >= self.timesteps.numel()
        return torch.tensor(-1.0 if last else float(self.timesteps[index + 1]),
                            dtype=torch.float64)

    def step(
        self,
        model_output: torch.Tensor,
        index: int,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One step from ``σ(timesteps[index])`` to ``σ(previous_time(index))``.

        Parameters
        ----------
        model_output : torch.Tensor
            The network output ``σ ∇log p_σ(x)``, shape of ``x``.
        index : int
            Reverse step into :attr:`timesteps`.
        x : torch.Tensor
            Current sample, shape ``(B, ...)``.
        generator : torch.Generator, optional
            Source of the noise.

        Returns
        -------
        torch.Tensor
            The sample at the next noise level, shape and dtype of ``x``.
        """
        sigma = float(self.noise.sigma(self.time_at(index)))
        sigma_next = float(self.noise.sigma(self.previous_time(index)))
        gap = sigma**2 - sigma_next**2  # σ² - σ'²
        gamma = self.stochasticity
        x_next = x + (0.5 * (1.0 + gamma) * gap / sigma) * model_output
        if gamma == 0 or sigma_next == 0:
            return x_next
        noise = draw_normal(x.shape, generator, x.dtype, x.device)
        return x_next + math.sqrt(gamma * gap) * noise

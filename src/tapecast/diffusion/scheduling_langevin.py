"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) for variance-exploding noise.

``L`` noise levels ``σ_1 > ... > σ_L`` of the model's :class:`VENoise`, at ``L`` evenly spaced
times from ``t = 1`` (``σ_1 = σ_max``) to ``t = 0`` (``σ_L = σ_min``; a single level is σ_min),
are visited ``T`` times each, with step size ``α_i = ε σ_i² / σ_L²`` (Alg. 1, line 3)::

    x ← x + (α_i / 2) s_θ(x, σ_i) + sqrt(α_i) z,   z ~ N(0, I)          (Alg. 1, line 6)

``s_θ(x, σ) = model_output / σ`` (the network predicts ``σ ∇log p_σ``). With ``denoise=True``
(default) one more visit of ``σ_L`` ends the chain with a denoising step without noise
(Jolicoeur-Martineau et al. 2021, arXiv 2009.05475: Tweedie's formula)::

    x ← x + σ_L² s_θ(x, σ_L)     = E[x_0 | x_σL] for the exact score (Tweedie's formula)

So ``timesteps`` (float64, non-increasing, **with repeats**) is each level's ``t`` repeated ``T``
times, plus one final ``t = 0`` for the denoising visit: length ``L T + 1`` (``L T`` without
denoising). ``previous_time(i)`` is the level's own ``t`` for a Langevin step (the chain stays at
that noise level) and ``-1`` (clean data, σ = 0) after the denoising step.

Defaults are NCSN's: ``T = 100`` steps per level, ``ε = 2e-5``; note that ``α_1/σ_1² = ε/σ_L²``
(0.2 with σ_L = 0.01) is the relative step at every level, so ε should scale with ``σ_min²``.

Legend: ``levels`` = t of σ_1 … σ_L, ``steps_per_level`` = T, ``epsilon`` = ε, ``alpha`` = α_i.
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


@register_sampler("langevin", noise_kind="ve")
class AnnealedLangevinSampler(GridSampler[VENoise]):
    """Annealed Langevin dynamics over the VE noise levels (no nn.Module; the caller loops).

    Parameters
    ----------
    noise : VENoise
        The model's forward process.
    steps_per_level : int
        ``T``: Langevin steps at each noise level (NCSN: 100).
    epsilon : float
        ``ε``: the step size at the last level σ_L (NCSN: 2e-5 with σ_L = 0.01).
    denoise : bool
        End with one Tweedie denoising step at σ_L (an extra entry of ``timesteps``).
    """

    noise_kind: NoiseKind = "ve"

    def __init__(
        self,
        noise: VENoise,
        steps_per_level: int = 100,
        epsilon: float = 2e-5,
        denoise: bool = True,
    ) -> None:
        if not isinstance(noise, VENoise):
            raise TapecastError(
                f"annealed Langevin needs VENoise, got {type(noise).__name__}"
            )
        if not is_count(steps_per_level) or steps_per_level < 1:
            raise TapecastError(f"steps_per_level must be an int >= 1, got {steps_per_level!r}")
        if not epsilon > 0:
            raise TapecastError(f"Langevin epsilon must be > 0, got {epsilon}")
        self.noise = noise
        self.steps_per_level = steps_per_level
        self.epsilon = float(epsilon)
        self.denoise = bool(denoise)
        self.levels = torch.zeros(0, dtype=torch.float64)
        self.timesteps = torch.zeros(0, dtype=torch.float64)

    def set_timesteps(self, n_steps: int) -> None:
        """Use ``n_steps`` noise levels ``L`` (``timesteps`` then has ``L T (+ 1)`` entries)."""
        if not is_count(n_steps) or n_steps < 1:
            raise TapecastError(f"number of noise levels must be >= 1, got {n_steps!r}")
        levels = torch.linspace(1.0, 0.0, n_steps, dtype=torch.float64)
        self.levels = levels if n_steps > 1 else torch.zeros(1, dtype=torch.float64)
        visits = self.levels.repeat_interleave(self.steps_per_level)  # (L T,)
        if self.denoise:
            visits = torch.cat([visits, self.levels[-1:]])
        self.timesteps = visits

    def _is_denoising(self, index: int) -> bool:
        return self.denoise and index == self.timesteps.numel() - 1

    def time_at(self, index: int) -> float:
        """The time of reverse step ``index`` (a TapecastError outside the grid)."""
        return float(self.grid_time(index))

    def previous_time(self, index: int) -> torch.Tensor:
        """Time of the sample ``step`` returns: the level's ``t`` (``-1``: denoised, clean).
        float64 scalar."""
        t = self.time_at(index)
        return torch.tensor(-1.0 if self._is_denoising(index) else t, dtype=torch.float64)

    def step_size(self, index: int) -> float:
        """``α_i = ε σ_i² / σ_L²`` at reverse step ``index`` (Alg. 1, line 3)."""
        sigma = float(self.noise.sigma(self.time_at(index)))
        sigma_last = float(self.noise.sigma(float(self.levels[-1])))
        return self.epsilon * (sigma / sigma_last) ** 2

    def step(
        self,
        model_output: torch.Tensor,
        index: int,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One Langevin step at the level of ``timesteps[index]`` (or the final denoising step).

        Parameters
        ----------
        model_output : torch.Tensor
            The network output ``σ ∇log p_σ(x)``, shape of ``x``.
        index : int
            Reverse step into :attr:`timesteps`.
        x : torch.Tensor
            Current sample, shape ``(B, ...)``.
        generator : torch.Generator, optional
            Source of the Langevin noise.

        Returns
        -------
        torch.Tensor
            The next sample, shape and dtype of ``x``.
        """
        t = self.time_at(index)
        sigma = float(self.noise.sigma(t))
        score = model_output / sigma  # s_θ(x, σ_i)
        if self._is_denoising(index):
            return x + sigma**2 * score
        alpha = self.step_size(index)
        z = draw_normal(x.shape, generator, x.dtype, x.device)
        return x + (0.5 * alpha) * score + math.sqrt(alpha) * z

"""DDIM sampling (Song, Meng & Ermon 2021, arXiv 2010.02502) for ε- and v-prediction models.

On a respaced grid ``τ_n > ... > τ_1`` (``ᾱ_{τ_0} = 1``), one step is eq. 12::

    x0_hat = (x_t - sqrt(1 - ᾱ_t) eps) / sqrt(ᾱ_t)
    x_prev = sqrt(ᾱ_prev) x0_hat + sqrt(1 - ᾱ_prev - σ_t²) eps + σ_t z,   z ~ N(0, I)

with ``σ_t = η sqrt((1 - ᾱ_prev)/(1 - ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_prev)`` (eq. 16): ``η = 0`` is the
deterministic DDIM, ``η = 1`` the DDPM posterior variance. ``x0_hat`` and ``eps`` come from
:meth:`GaussianNoise.predict_x0` / :meth:`GaussianNoise.predict_eps`, so the step is the same for
an ε- or a v-prediction network (for v: ``x0_hat = sqrt(ᾱ_t) x_t - sqrt(1 - ᾱ_t) v``, ``eps =
sqrt(1 - ᾱ_t) x_t + sqrt(ᾱ_t) v``; at a zero-terminal-SNR start, ``x0_hat = -v`` and ``eps = x_t``).

Legend: ``alpha_bar_t`` = ᾱ_t (α_t in the DDIM paper's notation), ``sigma_t`` = σ_t(η).
"""

from __future__ import annotations

import math

import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.noise_gaussian import GaussianNoise, draw_normal
from tapecast.diffusion.registry import register_sampler
from tapecast.diffusion.scheduling_ddpm import RespacedGaussianSampler, Spacing


@register_sampler("ddim", noise_kind="gaussian")
class DDIMSampler(RespacedGaussianSampler):
    """DDIM steps over a respaced grid (no nn.Module; the caller runs the network).

    Parameters
    ----------
    noise : GaussianNoise
        The model's forward process.
    eta : float
        Stochasticity η ≥ 0 (0: deterministic).
    clip_x0 : float, optional
        Clamp ``x0_hat`` to ``[-clip_x0, clip_x0]`` (off by default).
    spacing : {"trailing", "leading"}
        How the respaced steps are chosen.
    """

    def __init__(
        self,
        noise: GaussianNoise,
        eta: float = 0.0,
        clip_x0: float | None = None,
        spacing: Spacing = "trailing",
    ) -> None:
        super().__init__(noise, spacing)
        if eta < 0:
            raise TapecastError(f"DDIM eta must be >= 0, got {eta}")
        self.eta = float(eta)
        self.clip_x0 = clip_x0

    def step(
        self,
        model_output: torch.Tensor,
        index: int,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One DDIM step (eq. 12) from ``x_t`` to ``x_prev`` given the network's ε or v
        (``t = timesteps[index]``).

        Returns
        -------
        torch.Tensor
            ``x_prev``, shape and dtype of ``x``.
        """
        alpha_bar_t, alpha_bar_prev = self._coefficients(index)
        t = self.time_at(index)
        x0_hat = self.noise.predict_x0(x, model_output, t)
        eps = self.noise.predict_eps(x, model_output, t)
        if self.clip_x0 is not None:
            x0_hat = x0_hat.clamp(-self.clip_x0, self.clip_x0)
            eps = (x - math.sqrt(alpha_bar_t) * x0_hat) / math.sqrt(1.0 - alpha_bar_t)
        posterior_var = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
        sigma_t = self.eta * math.sqrt(posterior_var * (1.0 - alpha_bar_t / alpha_bar_prev))
        direction = math.sqrt(max(1.0 - alpha_bar_prev - sigma_t**2, 0.0))
        x_prev = math.sqrt(alpha_bar_prev) * x0_hat + direction * eps
        if sigma_t > 0:
            x_prev = x_prev + sigma_t * draw_normal(x.shape, generator, x.dtype, x.device)
        return x_prev

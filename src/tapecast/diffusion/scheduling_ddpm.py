"""Ancestral DDPM sampling (Ho et al. 2020) with timestep respacing.

With ``n`` of the ``T`` training steps kept, ``τ_n > ... > τ_1``, the sub-chain is a DDPM with
``ᾱ'_i = ᾱ_{τ_i}`` and respaced betas ``β'_i = 1 - ᾱ_{τ_i} / ᾱ_{τ_{i-1}}`` (``ᾱ_{τ_0} = 1``;
Nichol & Dhariwal 2021, Sec. 4). A step samples the posterior (Ho et al. 2020, eqs. 6-7)::

    x0_hat   = (x_t - sqrt(1 - ᾱ_t) eps) / sqrt(ᾱ_t)                        (eq. 15)
    mean     = sqrt(ᾱ_prev) β'_t / (1 - ᾱ_t) x0_hat + sqrt(α'_t) (1 - ᾱ_prev) / (1 - ᾱ_t) x_t
    variance = (1 - ᾱ_prev) / (1 - ᾱ_t) β'_t  ("fixed_small", β̃)  or  β'_t  ("fixed_large")
    x_prev   = mean + sqrt(variance) z,  z ~ N(0, I)   (no noise on the last step)

which, without clipping of ``x0_hat``, equals eq. 11: ``(x_t - β'_t/sqrt(1-ᾱ_t) eps)/sqrt(α'_t)``.
``x0_hat`` comes from :meth:`GaussianNoise.predict_x0`, so ε- and v-prediction models both work.
At a zero-terminal-SNR first step (``ᾱ_t = 0``, ``β'_t = 1``) the mean is ``sqrt(ᾱ_prev) x0_hat``
with ``x0_hat = -v_hat`` and ``β̃ = 1 - ᾱ_prev``: the exact posterior given ``x0_hat``.

Legend: ``alpha_bar_t`` = ᾱ_t, ``alpha_t`` = α'_t = ᾱ_t/ᾱ_prev, ``beta_t`` = β'_t, ``eps`` = ε_θ.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.noise_gaussian import GaussianNoise, draw_normal
from tapecast.diffusion.registry import is_count, register_sampler
from tapecast.diffusion.sampler_base import GridSampler

if TYPE_CHECKING:
    from tapecast.diffusion.protocols import NoiseKind

Spacing = Literal["trailing", "leading"]
Variance = Literal["fixed_small", "fixed_large"]


def respaced_timesteps(
    n_steps: int, num_train_timesteps: int, spacing: Spacing = "trailing"
) -> torch.Tensor:
    """``n_steps`` of the training steps ``0 .. T-1``, strictly decreasing.

    ``trailing`` starts at ``T-1`` and strides ``T/n`` down (Lin et al. 2024, Table 2); ``leading``
    uses ``0, T//n, 2T//n, ...`` (Song et al. 2021's DDIM grid), reversed.

    Returns
    -------
    torch.Tensor
        int64, shape ``(n_steps,)``.
    """
    if not is_count(n_steps) or not 1 <= n_steps <= num_train_timesteps:
        raise TapecastError(
            f"number of sampling steps must be in 1..{num_train_timesteps}, got {n_steps!r}"
        )
    if spacing == "trailing":
        grid = np.round(np.arange(num_train_timesteps, 0, -num_train_timesteps / n_steps)) - 1
    elif spacing == "leading":
        grid = (np.arange(n_steps) * (num_train_timesteps // n_steps))[::-1]
    else:
        raise TapecastError(f"unknown timestep spacing {spacing!r}; expected trailing or leading")
    steps = torch.as_tensor(grid.astype(np.int64)[:n_steps].copy())
    if steps.numel() != n_steps or bool((steps[1:] >= steps[:-1]).any()):
        raise TapecastError(f"cannot space {n_steps} distinct steps over {num_train_timesteps}")
    return steps


class RespacedGaussianSampler(GridSampler[GaussianNoise]):
    """Shared bookkeeping of the Gaussian samplers: the respaced grid and previous steps."""

    noise_kind: NoiseKind = "gaussian"

    def __init__(self, noise: GaussianNoise, spacing: Spacing = "trailing") -> None:
        if not isinstance(noise, GaussianNoise):
            raise TapecastError(
                f"{type(self).__name__} needs GaussianNoise, got {type(noise).__name__}"
            )
        self.noise = noise
        self.spacing: Spacing = spacing
        self.timesteps = torch.zeros(0, dtype=torch.long)

    def set_timesteps(self, n_steps: int) -> None:
        """Choose ``n_steps`` training steps to sample with (see :func:`respaced_timesteps`)."""
        self.timesteps = respaced_timesteps(n_steps, self.noise.num_train_timesteps, self.spacing)

    def time_at(self, index: int) -> int:
        """The training step of reverse step ``index`` (a TapecastError outside the grid)."""
        return int(self.grid_time(index))

    def previous_time(self, index: int) -> torch.Tensor:
        """The step of the sample ``step`` returns at step ``index`` (``-1``: clean data).
        int64 scalar."""
        self.time_at(index)
        last = index + 1 >= self.timesteps.numel()
        return torch.tensor(-1 if last else int(self.timesteps[index + 1]), dtype=torch.long)

    def _coefficients(self, index: int) -> tuple[float, float]:
        """``(ᾱ_t, ᾱ_prev)`` of reverse step ``index`` as floats."""
        return float(self.noise.alpha_bar(self.time_at(index))), float(
            self.noise.alpha_bar(self.previous_time(index))
        )


@register_sampler("ddpm", noise_kind="gaussian")
class DDPMSampler(RespacedGaussianSampler):
    """Ancestral sampling of a respaced DDPM (no nn.Module; the caller runs the network).

    Parameters
    ----------
    noise : GaussianNoise
        The model's forward process.
    variance : {"fixed_small", "fixed_large"}
        Posterior variance β̃ or β' (Ho et al. 2020, Sec. 3.2).
    clip_x0 : float, optional
        Clamp ``x0_hat`` to ``[-clip_x0, clip_x0]`` before forming the mean (off by default).
    spacing : {"trailing", "leading"}
        How the respaced steps are chosen.
    """

    def __init__(
        self,
        noise: GaussianNoise,
        variance: Variance = "fixed_small",
        clip_x0: float | None = None,
        spacing: Spacing = "trailing",
    ) -> None:
        super().__init__(noise, spacing)
        if variance not in ("fixed_small", "fixed_large"):
            raise TapecastError(f"unknown DDPM variance {variance!r}")
        self.variance: Variance = variance
        self.clip_x0 = clip_x0

    def step(
        self,
        model_output: torch.Tensor,
        index: int,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One ancestral step from ``x_t`` to ``x_prev`` given the network's output.

        Parameters
        ----------
        model_output : torch.Tensor
            Predicted ε or v (the noise's ``prediction``), shape of ``x``.
        index : int
            Reverse step: ``timesteps[index]`` is the current training step.
        x : torch.Tensor
            ``x_t``, shape ``(B, ...)``.
        generator : torch.Generator, optional
            Source of the posterior noise.

        Returns
        -------
        torch.Tensor
            ``x_prev``, shape and dtype of ``x``.
        """
        alpha_bar_t, alpha_bar_prev = self._coefficients(index)
        beta_t = 1.0 - alpha_bar_t / alpha_bar_prev
        x0_hat = self.noise.predict_x0(x, model_output, self.time_at(index))
        if self.clip_x0 is not None:
            x0_hat = x0_hat.clamp(-self.clip_x0, self.clip_x0)
        mean = (math.sqrt(alpha_bar_prev) * beta_t / (1.0 - alpha_bar_t)) * x0_hat + (
            math.sqrt(1.0 - beta_t) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
        ) * x
        if int(self.previous_time(index)) < 0:
            return mean
        if self.variance == "fixed_small":
            variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta_t
        else:
            variance = beta_t
        return mean + math.sqrt(variance) * draw_normal(x.shape, generator, x.dtype, x.device)

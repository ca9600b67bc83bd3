"""Gaussian variance-preserving noise (DDPM) with ε-prediction.

Forward process (Ho et al. 2020, eq. 4)::

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)

The network learns ``eps`` with the unweighted "simple" MSE loss (Ho et al. 2020, eq. 14), so
:meth:`GaussianNoise.loss_weight` is 1. Any beta schedule of :mod:`tapecast.diffusion.schedules`
can be used; training times are the integer steps ``0 .. T-1``.

Legend: ``alpha_bar`` = ᾱ_t, ``eps`` = ε, ``x0`` = x_0, ``x_t`` = x_t.

This module also holds the small random-number helpers shared by the noise processes and
samplers: they draw on the generator's device and move the result, so a CPU generator also
works for tensors on an accelerator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.registry import register_noise
from tapecast.diffusion.schedules import alphas_cumprod, make_betas

if TYPE_CHECKING:
    from tapecast.diffusion.protocols import NoiseKind


def draw_normal(
    shape: Sequence[int],
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard normal draws from ``generator`` (on its device), moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=where).to(device)


def draw_uniform(
    shape: Sequence[int],
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniform(0, 1) draws of ``shape`` from ``generator`` (on its device), moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, dtype=dtype, device=where).to(device)


def expand_to(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-example ``values`` (``()`` or ``(B,)``) to broadcast against ``x`` (B, ...)."""
    if values.dim() == 0:
        return values.to(dtype=x.dtype, device=x.device)
    if values.dim() != 1 or values.shape[0] != x.shape[0]:
        raise TapecastError(
            f"diffusion times must be scalar or of shape ({x.shape[0]},), got {tuple(values.shape)}"
        )
    return values.to(dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.dim() - 1)))


@register_noise("gaussian")
class GaussianNoise:
    """Variance-preserving Gaussian forward process over a beta schedule (ε-prediction).

    Parameters
    ----------
    betas : torch.Tensor
        Schedule, shape ``(T,)``; stored as float64.
    """

    kind: NoiseKind = "gaussian"
    prediction = "epsilon"

    def __init__(self, betas: torch.Tensor) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() < 1 or bool(((betas <= 0) | (betas >= 1)).any()):
            raise TapecastError("Gaussian noise needs betas strictly between 0 and 1")
        self.betas = betas
        self.alphas_cumprod = alphas_cumprod(betas)
        self.num_train_timesteps = int(betas.numel())

    @classmethod
    def from_schedule(cls, name: str, num_train_timesteps: int, **params: float) -> GaussianNoise:
        """Build from a named schedule (see :func:`tapecast.diffusion.schedules.make_betas`)."""
        return cls(make_betas(name, num_train_timesteps, **params))

    def alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        """ᾱ at integer step(s) ``t`` (``-1``: clean data, ᾱ = 1). Float64, shape of ``t``."""
        t = torch.as_tensor(t, dtype=torch.long)
        padded = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        return padded[(t + 1).cpu()]

    def sample_timesteps(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Training steps drawn uniformly from ``0 .. T-1``. int64, shape ``(batch_size,)``."""
        where = generator.device if generator is not None else device
        steps = torch.randint(
            0, self.num_train_timesteps, (batch_size,), generator=generator, device=where
        )
        return steps.to(device)

    def noisy(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) eps`` (Ho et al. 2020, eq. 4), dtype of ``x0``."""
        abar = expand_to(self.alpha_bar(t), x0)
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * eps

    def add_noise(
        self, x0: torch.Tensor, t: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``x_t ~ q(x_t | x_0)`` and return it with the regression target ``eps``.

        Parameters
        ----------
        x0 : torch.Tensor
            Clean data, shape ``(B, ...)``.
        t : torch.Tensor
            Integer steps, shape ``(B,)`` or scalar.
        generator : torch.Generator, optional
            Source of the noise.

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            ``x_t`` and ``eps``, both of the shape and dtype of ``x0``.
        """
        eps = draw_normal(x0.shape, generator, x0.dtype, x0.device)
        return self.noisy(x0, t, eps), eps

    def model_time(self, t: torch.Tensor | int) -> torch.Tensor:
        """The network's time input: the integer step as float32 (shape of ``t``)."""
        return torch.as_tensor(t).to(torch.float32)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-example MSE weight: 1 (L_simple, Ho et al. 2020 eq. 14). Float32, shape of ``t``."""
        return torch.ones(torch.as_tensor(t).shape, dtype=torch.float32)

    def init_noise(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The terminal law N(0, I), shape ``shape``."""
        return draw_normal(shape, generator, dtype, device)

    def moment_transfer(
        self, t: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """How central moments pass through the forward process at step ``t`` (``-1`` = clean).

        ``x_t = c x_0 + n`` with ``n`` independent of ``x_0``, zero mean, uncorrelated across
        coordinates. Returns float64 ``(c, E[n^2], E[n^4])`` = ``(sqrt(ᾱ), 1 - ᾱ, 3 (1 - ᾱ)^2)``.
        """
        abar = self.alpha_bar(t)
        return abar.sqrt(), 1.0 - abar, 3.0 * (1.0 - abar) ** 2

    def predict_x0(
        self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int
    ) -> torch.Tensor:
        """Invert eq. 4 for ``x_0`` given a predicted ``eps`` (Ho et al. 2020, eq. 15)."""
        abar = expand_to(self.alpha_bar(t), x_t)
        return (x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()

"""Variance-exploding Gaussian noise (NCSN; the VE SDE) with a σ-scaled score target.

Song & Ermon 2019 (NCSN, "Generative Modeling by Estimating Gradients of the Data Distribution")
perturb data with Gaussian noise of geometrically spaced scales; Song et al. 2021 (score SDE,
arXiv 2011.13456, Sec. 3.4 and eq. 9) take the continuous limit, the VE SDE::

    dx = sqrt(d[σ²(t)]/dt) dw,   σ(t) = σ_min (σ_max/σ_min)^t,   t ∈ [0, 1]

so ``f = 0`` and ``g(t)² = dσ²/dt = 2 σ(t)² ln(σ_max/σ_min)``. Here the clean data ``x_0`` sits at
``σ = 0`` and the process at time ``t`` is ``x_t = x_0 + σ(t) z``: the marginal is
``p_t = p_data * N(0, σ(t)² I)`` at every ``t ∈ [0, 1]`` (``t = 0`` is data blurred by σ_min, the
score SDE's ``p_0``; the SDE above carries it to every later ``t`` exactly). ``log σ`` is affine in
``t``, so the probability-flow ODE (score SDE eq. 13) is defined at every ``t`` and training
times are continuous (uniform on ``[0, 1)``).

Parametrization: the network predicts ``σ(t) ∇log p_t(x_t)``; denoising score matching
(Vincent 2011) regresses it on ``σ(t) ∇log N(x_t; x_0, σ² I) = -z`` with loss weight 1, which is
NCSN's objective with ``λ(σ) = σ²`` (Song & Ermon 2019, eq. 6): the target has unit variance at
every noise level. :meth:`VENoise.score` turns the output back into ``∇log p_t``.

A time ``t < 0`` marks clean data (``σ = 0``), as step ``-1`` does for the Gaussian VP noise:
annealed Langevin's final denoising step returns it.

Legend: ``sigma_min`` = σ_min, ``sigma_max`` = σ_max, ``sigma(t)`` = σ(t), ``log_ratio`` =
ln(σ_max/σ_min), ``z`` = z ~ N(0, I).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.noise_gaussian import draw_normal, draw_uniform, expand_to
from tapecast.diffusion.registry import register_noise

if TYPE_CHECKING:
    from tapecast.diffusion.protocols import NoiseKind

TimeInput = Literal["scaled_t", "log_sigma"]


@register_noise("ve")
class VENoise:
    """Variance-exploding forward process ``x_t = x_0 + σ(t) z`` over continuous ``t ∈ [0, 1]``.

    Parameters
    ----------
    sigma_min, sigma_max : float
        The smallest and largest noise scales, ``0 < σ_min < σ_max`` (score SDE on CIFAR-10:
        0.01 and 50; Song & Ermon 2020 advise σ_max about the largest distance between two
        training examples).
    num_train_timesteps : int
        Scale of the network's time input: ``model_time(t) = N t`` with ``time_input="scaled_t"``
        (so a network built for steps ``0 .. N`` fits); training times stay continuous.
    time_input : {"scaled_t", "log_sigma"}
        What :meth:`model_time` feeds the network: ``N t`` or ``log σ(t)`` (NCSN++ style).
    """

    kind: NoiseKind = "ve"
    prediction = "scaled_score"

    def __init__(
        self,
        sigma_min: float = 0.01,
        sigma_max: float = 50.0,
        num_train_timesteps: int = 1000,
        time_input: TimeInput = "scaled_t",
    ) -> None:
        if not 0.0 < sigma_min < sigma_max or not math.isfinite(sigma_max):
            raise TapecastError(
                f"VE noise needs 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}"
            )
        if num_train_timesteps < 1:
            raise TapecastError(f"VE noise needs num_train_timesteps >= 1, got "
                                f"{num_train_timesteps}")
        if time_input not in ("scaled_t", "log_sigma"):
            raise TapecastError(f"unknown VE time input {time_input!r}; expected scaled_t or "
                                "log_sigma")
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)
        self.num_train_timesteps = int(num_train_timesteps)
        self.time_input: TimeInput = time_input

    # -- the σ curve (float64, shape of t) -------------------------------------------------------
    def sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        """``σ(t) = σ_min (σ_max/σ_min)^t`` for ``t >= 0``; 0 (clean data) for ``t < 0``."""
        t = torch.as_tensor(t, dtype=torch.float64)
        curve = self.sigma_min * torch.exp(self.log_ratio * t.clamp_min(0.0))
        return torch.where(t < 0, torch.zeros_like(curve), curve)

    def marginal_std(self, t: torch.Tensor | float) -> torch.Tensor:
        """Std of ``x_t`` given ``x_0``: ``σ(t)`` (float64, shape of ``t``)."""
        return self.sigma(t)

    def sde(
        self, x: torch.Tensor, t: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift and diffusion of the VE SDE (score SDE eq. 9): ``f = 0``, ``g = sqrt(dσ²/dt)``.

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            ``f`` (zeros of the shape and dtype of ``x``) and ``g(t) = σ(t) sqrt(2 ln(σ_max /
            σ_min))`` (float64, shape of ``t``), so ``g² = 2 σ² ln(σ_max/σ_min)``.
        """
        return torch.zeros_like(x), self.sigma(t) * math.sqrt(2.0 * self.log_ratio)

    # -- training ------------------------------------------------------------------------------
    def sample_timesteps(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Training times uniform on ``[0, 1)`` (continuous). Float64, ``(batch_size,)``."""
        return draw_uniform((batch_size,), generator, torch.float64, device)

    def _check_times(self, t: torch.Tensor) -> None:
        if bool(((t < 0) | (t > 1)).any()):
            raise TapecastError("VE noise times must lie in [0, 1]")

    def add_noise(
        self, x0: torch.Tensor, t: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``x_t = x_0 + σ(t) z`` and return it with the target ``-z = σ ∇log p(x_t|x_0)``.

        Parameters
        ----------
        x0 : torch.Tensor
            Clean data, shape ``(B, ...)``.
        t : torch.Tensor
            Times in ``[0, 1]``, shape ``(B,)`` or scalar.
        generator : torch.Generator, optional
            Source of the noise.

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            ``x_t`` and ``-z``, both of the shape and dtype of ``x0``.
        """
        t = torch.as_tensor(t, dtype=torch.float64)
        self._check_times(t)
        z = draw_normal(x0.shape, generator, x0.dtype, x0.device)
        return x0 + expand_to(self.sigma(t), x0) * z, -z

    def score(self, model_output: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """``∇log p_t(x) = model_output / σ(t)`` (the network predicts ``σ ∇log p_t``)."""
        return model_output / expand_to(self.sigma(t), model_output)

    def model_time(self, t: torch.Tensor | float) -> torch.Tensor:
        """The network's time input: ``N t`` or ``log σ(t)``, float32, shape of ``t``."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.time_input == "log_sigma":
            return torch.log(self.sigma(t)).to(torch.float32)
        return (t * self.num_train_timesteps).to(torch.float32)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-example MSE weight: 1 (NCSN's λ(σ) = σ² on the σ-scaled score). Float32."""
        return torch.ones(torch.as_tensor(t).shape, dtype=torch.float32)

    # -- the terminal law ----------------------------------------------------------------------
    def init_noise(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draws of the prior ``N(0, σ_max² I)`` (``p_1`` with the data's spread neglected)."""
        return self.sigma_max * draw_normal(shape, generator, dtype, device)

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """``log N(z; 0, σ_max² I)`` summed over all but the first dimension.

        Returns
        -------
        torch.Tensor
            Shape ``(B,)``, dtype of ``z``.
        """
        dims = math.prod(z.shape[1:])
        flat = z.reshape(z.shape[0], -1)  # (B, D)
        return (-0.5 * dims * math.log(2.0 * math.pi * self.sigma_max**2)
                - 0.5 * (flat * flat).sum(1) / self.sigma_max**2)

    def moment_transfer(
        self, t: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x_t = x_0 + n``, ``n ~ N(0, σ(t)²)`` per coordinate: float64 ``(1, σ², 3 σ⁴)``
        (``t < 0``: clean, ``(1, 0, 0)``)."""
        sigma = self.sigma(t)
        return torch.ones_like(sigma), sigma**2, 3.0 * sigma**4

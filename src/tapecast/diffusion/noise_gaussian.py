"""Gaussian variance-preserving noise (DDPM) with ε- or v-prediction.

Forward process (Ho et al. 2020, eq. 4), with ``α_t = sqrt(ᾱ_t)``, ``σ_t = sqrt(1 - ᾱ_t)``::

    q(x_t | x_0) = N(α_t x_0, σ_t² I)
    x_t = α_t x_0 + σ_t eps,   eps ~ N(0, I)

The network regresses one of two targets with the unweighted "simple" MSE loss (Ho et al. 2020,
eq. 14), so :meth:`GaussianNoise.loss_weight` is 1:

* ``prediction="epsilon"``: ``eps`` (Ho et al. 2020);
* ``prediction="v"``: ``v = α_t eps - σ_t x_0`` (Salimans & Ho 2022, "Progressive distillation
  for fast sampling of diffusion models", arXiv 2202.00512, Sec. 4 and App. D).

Either output converts to the clean-data and noise predictions (:meth:`predict_x0`,
:meth:`predict_eps`), which is all a sampler needs::

    epsilon:  x0_hat = (x_t - σ_t eps_hat) / α_t           eps_hat = output       (Ho eq. 15)
    v:        x0_hat = α_t x_t - σ_t v_hat                  eps_hat = σ_t x_t + α_t v_hat

(``α² + σ² = 1`` gives the v rows.) The v rows stay finite at ``α_t = 0``: there ``x_t = eps``
and ``x0_hat = -v_hat``. That is why a zero-terminal-SNR schedule (Lin et al. 2024, arXiv
2305.08891; :func:`tapecast.diffusion.schedules.rescale_zero_terminal_snr`) needs v-prediction:
with ``ᾱ_{T-1} = 0`` the ε target carries no information about ``x_0`` at the last step and the
ε row divides by zero.

Any beta schedule of :mod:`tapecast.diffusion.schedules` can be used; training times are the
integer steps ``0 .. T-1``.

Legend: ``alpha_bar`` = ᾱ_t, ``alpha``/``sigma`` = α_t/σ_t, ``eps`` = ε, ``v`` = v, ``x0`` = x_0.

This module also holds the small random-number helpers shared by the noise processes and
samplers: they draw on the generator's device and move the result, so a CPU generator also
works for tensors on an accelerator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, get_args

import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.registry import register_noise
from tapecast.diffusion.schedules import alphas_cumprod, make_betas, rescale_zero_terminal_snr

if TYPE_CHECKING:
    from tapecast.diffusion.protocols import NoiseKind

Prediction = Literal["epsilon", "v"]
PREDICTIONS: tuple[str, ...] = get_args(Prediction)
Scale = float | torch.Tensor


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
    """Variance-preserving Gaussian forward process over a beta schedule (ε- or v-prediction).

    Parameters
    ----------
    betas : torch.Tensor
        Schedule, shape ``(T,)``; stored as float64. Every beta lies in ``(0, 1)`` except that
        the last may be exactly 1 (zero terminal SNR, which needs ``prediction="v"``).
    prediction : {"epsilon", "v"}
        What the network predicts (and :meth:`add_noise` returns as its target).
    """

    kind: NoiseKind = "gaussian"

    def __init__(self, betas: torch.Tensor, prediction: Prediction = "epsilon") -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() < 1 or bool(((betas <= 0) | (betas > 1)).any()) or bool(
            (betas[:-1] >= 1).any()
        ):
            raise TapecastError(
                "Gaussian noise needs betas strictly between 0 and 1 (only the last may be 1)"
            )
        if prediction not in PREDICTIONS:
            raise TapecastError(
                f"unknown Gaussian prediction {prediction!r}; expected one of "
                f"{', '.join(PREDICTIONS)}"
            )
        self.betas = betas
        self.alphas_cumprod = alphas_cumprod(betas)
        self.num_train_timesteps = int(betas.numel())
        self._prediction: Prediction = prediction
        if self.zero_terminal_snr and prediction != "v":
            raise TapecastError(
                "a zero-terminal-SNR schedule (alpha_bar = 0 at the last step) needs "
                "prediction='v': the noise eps is not predictable there"
            )

    @property
    def prediction(self) -> Prediction:
        """What the network predicts: ``"epsilon"`` or ``"v"`` (saved with a model's config)."""
        return self._prediction

    @property
    def zero_terminal_snr(self) -> bool:
        """Whether the last training step keeps no signal (``ᾱ_{T-1} = 0``)."""
        return float(self.alphas_cumprod[-1]) == 0.0

    @classmethod
    def from_schedule(
        cls,
        name: str,
        num_train_timesteps: int,
        *,
        prediction: Prediction = "epsilon",
        zero_terminal_snr: bool = False,
        **params: float,
    ) -> GaussianNoise:
        """Build from a named schedule (see :func:`tapecast.diffusion.schedules.make_betas`).

        ``zero_terminal_snr=True`` rescales it with
        :func:`~tapecast.diffusion.schedules.rescale_zero_terminal_snr` (then ``prediction``
        must be ``"v"``).
        """
        betas = make_betas(name, num_train_timesteps, **params)
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        return cls(betas, prediction=prediction)

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
        """Draw ``x_t ~ q(x_t | x_0)`` and return it with the regression target (``eps`` or
        ``v = α_t eps - σ_t x_0``, by :attr:`prediction`).

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
            ``x_t`` and the target, both of the shape and dtype of ``x0``.
        """
        eps = draw_normal(x0.shape, generator, x0.dtype, x0.device)
        return self.noisy(x0, t, eps), self.target(x0, eps, t)

    def target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """The regression target for clean ``x0`` noised with ``eps`` at step(s) ``t``:
        ``eps``, or ``v = α_t eps - σ_t x0`` (Salimans & Ho 2022, Sec. 4). Shape of ``x0``."""
        if self._prediction == "epsilon":
            return eps
        alpha, sigma = self._scales(t, x0)
        return alpha * eps - sigma * x0

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

    def _scales(self, t: torch.Tensor | int, like: torch.Tensor) -> tuple[Scale, Scale]:
        """``(α_t, σ_t)``: Python floats for one step (the samplers' arithmetic, so ε results
        match the inline formulas bit for bit), else float64 roots cast to broadcast against
        ``like`` ``(B, ...)``."""
        if isinstance(t, int) or torch.as_tensor(t).dim() == 0:
            one = float(self.alpha_bar(t))
            return math.sqrt(one), math.sqrt(1.0 - one)
        alpha_bar = self.alpha_bar(t)
        return expand_to(alpha_bar.sqrt(), like), expand_to((1.0 - alpha_bar).sqrt(), like)

    def predict_x0(
        self, x_t: torch.Tensor, model_output: torch.Tensor, t: torch.Tensor | int
    ) -> torch.Tensor:
        """The clean-data prediction ``x0_hat`` from the network's output at step(s) ``t``.

        ε: ``(x_t - σ_t eps_hat) / α_t`` (Ho et al. 2020, eq. 15); v: ``α_t x_t - σ_t v_hat``
        (Salimans & Ho 2022, Sec. 4), finite at ``α_t = 0`` (``x0_hat = -v_hat``).

        Parameters
        ----------
        x_t : torch.Tensor
            Noisy sample, shape ``(B, ...)``.
        model_output : torch.Tensor
            The network's ε or v, shape of ``x_t``.
        t : int or torch.Tensor
            One step (int or 0-d) or one per example ``(B,)``.

        Returns
        -------
        torch.Tensor
            Shape and dtype of ``x_t``.
        """
        alpha, sigma = self._scales(t, x_t)
        if self._prediction == "v":
            return alpha * x_t - sigma * model_output
        return (x_t - sigma * model_output) / alpha

    def predict_eps(
        self, x_t: torch.Tensor, model_output: torch.Tensor, t: torch.Tensor | int
    ) -> torch.Tensor:
        """The noise prediction ``eps_hat`` from the network's output at step(s) ``t``.

        ε: the output itself; v: ``σ_t x_t + α_t v_hat`` (Salimans & Ho 2022, Sec. 4), which is
        ``x_t`` at ``α_t = 0``. Shape and dtype of ``x_t``.
        """
        if self._prediction == "epsilon":
            return model_output
        alpha, sigma = self._scales(t, x_t)
        return sigma * x_t + alpha * model_output

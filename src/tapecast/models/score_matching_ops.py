"""The score model's objectives, sampling loop and density, for any σ-scaled score network.

Every function takes a network ``net(x, model_time, cond) -> σ ∇log p_σ(x)`` (a
:class:`~tapecast.diffusion.protocols.ConditionalDenoiser`; :class:`tapecast.nets.score_mlp.
ScoreMLP` or an analytic score in the tests) and a :class:`~tapecast.diffusion.VENoise`, so the
same code serves a trained network and a known law.

**Objectives** (through :func:`tapecast.train.fit`). Multi-scale denoising score matching is the
core's :func:`~tapecast.diffusion.training.diffusion_loss`: with VE noise it regresses
``σ s_θ(x̃, σ)`` on ``-z``, ``x̃ = x + σ z``, which is Song & Ermon 2019, eq. 6 with
``λ(σ) = σ²``, over ``log σ`` uniform between σ_min and σ_max (the continuous form of their
geometric levels). :func:`sliced_score_loss` is sliced score matching with variance reduction
(Song et al. 2020, "Sliced score matching", eq. 8: ``½‖s‖² + vᵀ ∇ₓ(vᵀ s)``, ``v ~ N(0, I)``,
the ``(vᵀ s)²`` term replaced by its expectation ``‖s‖²``), applied to the same noisy states with
the same weight σ²::

    σ² J = ½ ‖σ s‖² + σ vᵀ ∇ₓ(vᵀ σ s)

By Stein's identity ``E[σ² J] = ½ E‖σ s + z‖² − D/2``, so we report ``2 σ² J / D + 1``: it has
the expectation of the DSM loss per coordinate and the two objectives read on one scale (the
sliced one needs no noise-conditional target, at the cost of a second backward pass).

**Sampling.** :func:`sample_states` runs the core's :class:`~tapecast.diffusion.
AnnealedLangevinSampler` (step ``ε σ_i²/σ_L²``, Tweedie's denoising step at the end). With
``known``/``known_mask`` it inpaints: before every network call the known coordinates are set to
``known + σ_i z`` (fresh ``z``, the law of the known part at that level) and at the end to
``known``, so the free coordinates follow the conditional score (Song et al. 2021, App. I.2's
"replacement" imputation; approximate: the noised known part is drawn independently of the free
part).

**Density.** :func:`state_log_density` is the core's probability-flow ODE
(:func:`~tapecast.diffusion.log_likelihood`) of the VE SDE whose score is the network, with the
terminal law ``N(m, C + σ_max² I)`` (``m``, ``C`` the training mean and covariance, or
``N(0, σ_max² I)`` without them): ``p_1`` is the data convolved with ``N(0, σ_max² I)``, and the
moment-matched Gaussian leaves only the data's higher cumulants over σ_max⁴ as error. It returns
``log p_{σ_min}(x)``, the density of the states blurred by ``N(0, σ_min² I)``.

The seed's density, a straight-line integral of the score from a reference point, is **not
offered**: a learned score is not a gradient field (nothing forces ``∂s_i/∂x_j = ∂s_j/∂x_i``), so
the integral depends on the path; ``tests/models/test_score_matching.py`` shows two paths giving
different values once a rotational part is added to an exact score.

Legend: ``out`` = σ s_θ, ``v`` = projection, ``z`` = N(0, I) draw, ``D`` = state dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from tapecast.core.errors import TapecastError
from tapecast.diffusion import VENoise, get_sampler, log_likelihood
from tapecast.diffusion.noise_gaussian import draw_normal, expand_to
from tapecast.diffusion.protocols import ConditionalDenoiser, Unconditional
from tapecast.diffusion.sampling import draw_samples
from tapecast.diffusion.scheduling_langevin import AnnealedLangevinSampler

__all__ = ["estimate_sigma_max", "sample_states", "sliced_score_loss", "state_log_density"]


def estimate_sigma_max(states: NDArray[np.floating[Any]], subsample: int, seed: int) -> float:
    """The largest pairwise Euclidean distance among ``subsample`` states drawn without
    replacement (seeded): NCSN v2's σ_1 (Song & Ermon 2020, Technique 1).

    Parameters
    ----------
    states : ndarray, float, shape (N, D)
    subsample : int
    seed : int

    Returns
    -------
    float
    """
    x = np.asarray(states, dtype=np.float64)
    if len(x) > subsample:
        x = x[np.random.default_rng([seed, 31]).choice(len(x), subsample, replace=False)]
    sq = (x * x).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * x @ x.T  # (n, n) squared distances
    return float(np.sqrt(max(float(d2.max()), 0.0)))


def sliced_score_loss(net: nn.Module, noise: VENoise, batch: Mapping[str, Tensor],
                      generator: torch.Generator, *, draws: int = 1,
                      n_projections: int = 1) -> Tensor:
    """Sliced score matching with variance reduction on VE-noised states, weight σ².

    Parameters
    ----------
    net : nn.Module
        ``net(x, model_time, cond) -> σ s_θ(x, σ)``.
    noise : VENoise
    batch : mapping
        ``target`` (B, D): clean states.
    generator : torch.Generator
        Times, noise and projections.
    draws : int
        Noise levels per state.
    n_projections : int
        Gaussian projections ``v`` per noisy state (averaged).

    Returns
    -------
    Tensor
        Scalar ``mean(2 σ² J / D) + 1`` (the DSM loss' scale, see the module docstring).
    """
    x0 = batch["target"].repeat_interleave(draws, dim=0)  # (B·d, D)
    t = noise.sample_timesteps(x0.shape[0], generator=generator, device=x0.device)
    x_t, _ = noise.add_noise(x0, t, generator=generator)
    sigma = expand_to(noise.sigma(t), x0).to(x0.dtype)  # (B·d, 1)
    with torch.enable_grad():  # the validation loop runs under no_grad
        x_t = x_t.detach().requires_grad_(True)
        out = net(x_t, noise.model_time(t).to(x0.device), Unconditional())  # (B·d, D)
        total = 0.5 * (out * out).sum(1)  # (B·d,)
        for _ in range(n_projections):
            v = draw_normal(x0.shape, generator, x0.dtype, x0.device)  # (B·d, D)
            (grad,) = torch.autograd.grad((out * v).sum(), x_t, create_graph=True)
            total = total + (sigma * grad * v).sum(1) / n_projections
    loss: Tensor = (2.0 * total / x0.shape[1]).mean() + 1.0
    return loss


def _sampler(noise: VENoise, n_levels: int, steps_per_level: int,
             epsilon: float) -> AnnealedLangevinSampler:
    sampler = get_sampler("langevin", noise, steps_per_level=steps_per_level, epsilon=epsilon)
    assert isinstance(sampler, AnnealedLangevinSampler)
    sampler.set_timesteps(n_levels)
    return sampler


@torch.no_grad()
def sample_states(net: ConditionalDenoiser, noise: VENoise, n_samples: int, dim: int, *,
                  n_levels: int, steps_per_level: int, epsilon: float, seed: int,
                  known: Tensor | None = None, known_mask: Tensor | None = None) -> Tensor:
    """Annealed Langevin draws of D-dimensional states, optionally inpainted.

    Parameters
    ----------
    net : ConditionalDenoiser
    noise : VENoise
    n_samples : int
        S, draws (per row of ``known``).
    dim : int
        D.
    n_levels, steps_per_level, epsilon
        L, T, ε of :class:`~tapecast.diffusion.AnnealedLangevinSampler`.
    seed : int
        Seed of every draw (a CPU generator: the same draws on every device).
    known : Tensor, shape (B, D), optional
        States whose ``known_mask`` coordinates condition the draw (the rest is ignored).
    known_mask : Tensor, bool, shape (B, D) or (D,), optional
        True where ``known`` holds.

    Returns
    -------
    Tensor
        (S, D) without ``known``; (B, S, D) with it; dtype of the network's parameters
        (float32 for a parameter-free network), known coordinates equal to ``known``.
    """
    sampler = _sampler(noise, n_levels, steps_per_level, epsilon)
    param = next(iter(net.parameters()), None) if isinstance(net, nn.Module) else None
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    if known is None:
        return draw_samples(net, sampler, {}, n_samples, (dim,), seed=seed, rows=1,
                            device=device)[0]  # (S, D)
    if known_mask is None:
        raise TapecastError("inpainting needs known_mask beside known")
    rows = known.shape[0]
    mask = known_mask.to(torch.bool).expand(rows, dim).repeat_interleave(n_samples, 0)
    fixed = known.to(dtype).repeat_interleave(n_samples, 0).to(device)  # (B·S, D)
    mask = mask.to(device)
    generator = torch.Generator().manual_seed(seed)
    x = sampler.init_noise((rows * n_samples, dim), generator, dtype=dtype, device=device)
    cond = Unconditional()
    for i, t in enumerate(sampler.timesteps):
        sigma = float(noise.sigma(t))
        noised = fixed + sigma * draw_normal(x.shape, generator, dtype, device)
        x = torch.where(mask, noised, x)
        out = net(x, sampler.model_time(t).to(device).expand(len(x)), cond)
        x = sampler.step(out, i, x, generator=generator)
    x = torch.where(mask, fixed, x)
    return x.reshape(rows, n_samples, dim)


def state_log_density(net: ConditionalDenoiser, noise: VENoise, x: Tensor, *, steps: int,
                      divergence: str = "exact", n_probes: int = 1, seed: int = 0,
                      prior_mean: Tensor | None = None, prior_cov: Tensor | None = None
                      ) -> Tensor:
    """``log p_{σ_min}(x)`` in nats by the probability-flow ODE of the VE SDE, float64.

    Parameters
    ----------
    net : ConditionalDenoiser
        σ-scaled score network (evaluated in its own dtype; the ODE runs in float64).
    noise : VENoise
    x : Tensor, shape (B, D)
    steps : int
        RK4 steps from t = 0 (σ_min) to t = 1 (σ_max).
    divergence : {"exact", "hutchinson", "auto"}
    n_probes : int
        Rademacher probes for Hutchinson.
    seed : int
        Seed of the probes.
    prior_mean, prior_cov : Tensor, optional
        ``m`` (D,) and ``C`` (D, D) of the terminal law ``N(m, C + σ_max² I)``; default
        ``N(0, σ_max² I)``.

    Returns
    -------
    Tensor
        (B,), float64.
    """
    cond = Unconditional()
    param = next(iter(net.parameters()), None) if isinstance(net, nn.Module) else None
    dtype = param.dtype if param is not None else torch.float64
    device = param.device if param is not None else torch.device("cpu")

    def score(y: Tensor, t: Tensor) -> Tensor:
        out = net(y.to(device, dtype), noise.model_time(t).to(device), cond)
        return noise.score(out.to(y.device, torch.float64), t)

    prior = None
    if prior_mean is not None and prior_cov is not None:
        cov = prior_cov.double() + noise.sigma_max**2 * torch.eye(x.shape[1],
                                                                  dtype=torch.float64)
        law = torch.distributions.MultivariateNormal(prior_mean.double(), covariance_matrix=cov)
        prior = law.log_prob
    generator = torch.Generator().manual_seed(seed)
    kind: Any = divergence
    return log_likelihood(score, x.double().cpu(), noise, steps=steps, divergence=kind,
                          n_probes=n_probes, generator=generator, prior_logp=prior)

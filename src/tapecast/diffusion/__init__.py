"""Model-agnostic diffusion core: noise processes, beta schedules, samplers, moment guidance.

Samplers hold no ``nn.Module`` and networks never loop over steps; see
:mod:`tapecast.diffusion.registry` for the contract and ``docs/diffusion.md`` for the equations.
"""

from tapecast.diffusion.mgd import (
    MomentGuided,
    MomentTargets,
    MomentTrajectory,
    ensemble_moments,
    trajectory_from_data,
)
from tapecast.diffusion.noise_gaussian import GaussianNoise
from tapecast.diffusion.noise_jump_laplace import JumpLaplaceNoise
from tapecast.diffusion.registry import (
    NOISE_KINDS,
    SAMPLER_NAMES,
    NoiseKind,
    NoiseProcess,
    Sampler,
    get_sampler,
    samplers_for,
)
from tapecast.diffusion.schedules import SCHEDULES, alphas_cumprod, make_betas
from tapecast.diffusion.scheduling_ddim import DDIMSampler
from tapecast.diffusion.scheduling_ddpm import DDPMSampler
from tapecast.diffusion.scheduling_jl_sde import JumpLaplaceSDESampler

__all__ = [
    "NOISE_KINDS",
    "SAMPLER_NAMES",
    "SCHEDULES",
    "DDIMSampler",
    "DDPMSampler",
    "GaussianNoise",
    "JumpLaplaceNoise",
    "JumpLaplaceSDESampler",
    "MomentGuided",
    "MomentTargets",
    "MomentTrajectory",
    "NoiseKind",
    "NoiseProcess",
    "Sampler",
    "alphas_cumprod",
    "ensemble_moments",
    "get_sampler",
    "make_betas",
    "samplers_for",
    "trajectory_from_data",
]

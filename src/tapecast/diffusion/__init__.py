"""Model-agnostic diffusion core: noise processes, beta schedules, samplers, moment guidance.

Samplers hold no ``nn.Module`` and networks never loop over steps; the contracts are in
:mod:`tapecast.diffusion.protocols`, the registry in :mod:`tapecast.diffusion.registry`, and
``docs/diffusion.md`` has the equations. Importing this package imports every noise and sampler
module, and each registers itself (a new one is a new file listed below).
"""

from tapecast.diffusion.likelihood import log_likelihood
from tapecast.diffusion.mgd import (
    MomentGuided,
    MomentTargets,
    MomentTrajectory,
    ensemble_moments,
    trajectory_from_data,
)
from tapecast.diffusion.noise_gaussian import GaussianNoise
from tapecast.diffusion.noise_jump_laplace import JumpLaplaceNoise
from tapecast.diffusion.noise_ve import VENoise
from tapecast.diffusion.protocols import (
    ConditionalDenoiser,
    Conditioning,
    NoiseKind,
    NoiseProcess,
    RowConditioning,
    Sampler,
    Unconditional,
)
from tapecast.diffusion.registry import (
    get_noise,
    get_sampler,
    noise_kinds,
    register_noise,
    register_sampler,
    sampler_names,
    samplers_for,
)
from tapecast.diffusion.sampling import draw_samples, reverse_sample
from tapecast.diffusion.schedules import SCHEDULES, alphas_cumprod, make_betas
from tapecast.diffusion.scheduling_ddim import DDIMSampler
from tapecast.diffusion.scheduling_ddpm import DDPMSampler
from tapecast.diffusion.scheduling_dpm_solver import DPMSolverPlusPlus
from tapecast.diffusion.scheduling_jl_sde import JumpLaplaceSDESampler
from tapecast.diffusion.scheduling_langevin import AnnealedLangevinSampler
from tapecast.diffusion.scheduling_sde_mgd import sde_mgd
from tapecast.diffusion.scheduling_ve_sde import VESDESampler
from tapecast.diffusion.training import denoising_loss, diffusion_loss

__all__ = [
    "SCHEDULES",
    "AnnealedLangevinSampler",
    "ConditionalDenoiser",
    "Conditioning",
    "DDIMSampler",
    "DDPMSampler",
    "DPMSolverPlusPlus",
    "GaussianNoise",
    "JumpLaplaceNoise",
    "JumpLaplaceSDESampler",
    "MomentGuided",
    "MomentTargets",
    "MomentTrajectory",
    "NoiseKind",
    "NoiseProcess",
    "RowConditioning",
    "Sampler",
    "Unconditional",
    "VENoise",
    "VESDESampler",
    "alphas_cumprod",
    "denoising_loss",
    "diffusion_loss",
    "draw_samples",
    "ensemble_moments",
    "get_noise",
    "get_sampler",
    "log_likelihood",
    "make_betas",
    "noise_kinds",
    "register_noise",
    "register_sampler",
    "reverse_sample",
    "sampler_names",
    "samplers_for",
    "sde_mgd",
    "trajectory_from_data",
]

"""``get_sampler(name, noise)``: a sampler by name, checked against the model's noise.

The contracts themselves live in :mod:`tapecast.diffusion.protocols` (re-exported here). Every
sampler follows one contract (diffusers' scheduler seam): it holds no ``nn.Module`` and the
network never loops over steps, so a model's ``sample()`` is::

    sampler = get_sampler("ddim", noise)
    sampler.set_timesteps(n_steps)
    x = sampler.init_noise(shape, generator)
    for i, t in enumerate(sampler.timesteps):
        out = net(x, sampler.model_time(t).expand(len(x)), cond)
        x = sampler.step(out, i, x, generator=generator)

A sampler fits one kind of noise: asking for one that does not fit the model's noise is a
:class:`~tapecast.core.errors.TapecastError` naming the samplers that do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, get_args

from tapecast.core.errors import TapecastError
from tapecast.diffusion.mgd import MomentGuided
from tapecast.diffusion.noise_gaussian import GaussianNoise
from tapecast.diffusion.noise_jump_laplace import JumpLaplaceNoise
from tapecast.diffusion.protocols import (
    NOISE_KINDS,
    NoiseKind,
    NoiseProcess,
    Sampler,
    SamplerName,
)
from tapecast.diffusion.scheduling_ddim import DDIMSampler
from tapecast.diffusion.scheduling_ddpm import DDPMSampler
from tapecast.diffusion.scheduling_jl_sde import JumpLaplaceSDESampler

__all__ = ["NOISE_KINDS", "SAMPLER_NAMES", "NoiseKind", "NoiseProcess", "Sampler", "SamplerName",
           "get_sampler", "samplers_for"]


def _sde_mgd(noise: Any, n_samples: int = 32, **options: Any) -> MomentGuided:
    sde_keys = {"stochasticity", "integrator", "final_step"}
    base = JumpLaplaceSDESampler(noise, **{k: v for k, v in options.items() if k in sde_keys})
    return MomentGuided(base, n_samples, **{k: v for k, v in options.items() if k not in sde_keys})


_SAMPLERS: dict[str, tuple[NoiseKind, Callable[..., Any]]] = {
    "ddpm": ("gaussian", DDPMSampler),
    "ddim": ("gaussian", DDIMSampler),
    "sde": ("jump-laplace", JumpLaplaceSDESampler),
    "sde-mgd": ("jump-laplace", _sde_mgd),
}
SAMPLER_NAMES: tuple[str, ...] = get_args(SamplerName)


def samplers_for(kind: str) -> tuple[str, ...]:
    """Names of the samplers that fit noise of ``kind``."""
    return tuple(name for name, (needs, _) in _SAMPLERS.items() if needs == kind)


def _quoted(names: Sequence[str]) -> str:
    quoted = [f"'{name}'" for name in names] or ["a sampler made for that noise"]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def get_sampler(name: str, noise: GaussianNoise | JumpLaplaceNoise, **options: Any) -> Sampler:
    """Build the named sampler for a model's noise process.

    Parameters
    ----------
    name : {"ddpm", "ddim", "sde", "sde-mgd"}
        Sampler name.
    noise : GaussianNoise or JumpLaplaceNoise
        The model's forward process.
    **options
        Sampler options (``eta`` for ddim, ``variance`` for ddpm, ``stochasticity`` for sde;
        ``n_samples``, ``targets``, ``strength``, ... for sde-mgd).

    Returns
    -------
    Sampler
        A sampler with the common contract.
    """
    if name not in _SAMPLERS:
        raise TapecastError(f"unknown sampler {name!r}; expected one of {_quoted(SAMPLER_NAMES)}")
    needs, build = _SAMPLERS[name]
    kind = getattr(noise, "kind", None)
    if kind != needs:
        raise TapecastError(
            f"sampler '{name}' needs a {needs}-noise model; this model uses {kind} noise; "
            f"use {_quoted(samplers_for(str(kind)))}"
        )
    try:
        sampler: Sampler = build(noise, **options)
    except TypeError as exc:  # an option this sampler does not take
        raise TapecastError(f"sampler '{name}': {exc}") from None
    return sampler

"""``sde-mgd``: the Jump-Laplace SDE sampler with moment-guided correction (the JL-CSDI card's).

A factory, not a class: :class:`~tapecast.diffusion.scheduling_jl_sde.JumpLaplaceSDESampler`
wrapped by :class:`~tapecast.diffusion.mgd.MomentGuided` (Lempereur et al. 2026), with the
options of each routed to it.
"""

from __future__ import annotations

from typing import Any

from tapecast.diffusion.mgd import MomentGuided
from tapecast.diffusion.registry import register_sampler
from tapecast.diffusion.scheduling_jl_sde import JumpLaplaceSDESampler

SDE_OPTIONS = frozenset({"stochasticity", "integrator", "final_step"})
"""Options that go to the SDE sampler; every other option goes to the MGD wrapper."""


@register_sampler("sde-mgd", noise_kind="jump-laplace")
def sde_mgd(noise: Any, n_samples: int = 32, **options: Any) -> MomentGuided:
    """The guided sampler for ``noise`` (a JumpLaplaceNoise) and ``n_samples`` per window."""
    base = JumpLaplaceSDESampler(noise, **{k: v for k, v in options.items() if k in SDE_OPTIONS})
    return MomentGuided(base, n_samples,
                        **{k: v for k, v in options.items() if k not in SDE_OPTIONS})

"""Denoiser networks: CSDI over the full grid and its context-cached variant.

Both share one call interface (the ``Denoiser`` protocol)::

    net = build_denoiser(denoiser_config("small"))
    cache = net.encode_context(context)          # (B, K, C), once per forecast
    cache = cache.expand(n_samples)              # rows b·n + s, window-major
    eps = net(x_noisy, t, cache)                 # (B·n, K, H) at every reverse step

A network never loops over diffusion steps; the sampler does (``../shared/STYLE.md``, Seams).
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from tapecast.nets.config import DENOISER_CONFIGS, DenoiserConfig, denoiser_config
from tapecast.nets.csdi import CSDIDenoiser, GridContext
from tapecast.nets.csdi_cached import CachedCSDIDenoiser, ContextCache
from tapecast.nets.film import FiLMConditioning, PriceDenoiser
from tapecast.nets.film_config import PriceDenoiserConfig
from tapecast.nets.score_mlp import ScoreMLP, ScoreMLPConfig
from tapecast.nets.tradefm import Decoding, KVCache, TradeFM, sample_next
from tapecast.nets.tradefm_config import (
    TRADEFM_CONFIGS,
    TradeFMConfig,
    tradefm_config,
    tradefm_parameter_count,
)


class Denoiser(Protocol):
    """What a forecaster calls: ``encode_context`` once, then ``__call__`` at every step."""

    config: DenoiserConfig

    def encode_context(self, context: Tensor, context_mask: Tensor | None = None,
                       timepoints: Tensor | None = None,
                       feature_ids: Tensor | None = None) -> GridContext | ContextCache: ...

    def __call__(self, x_noisy: Tensor, t: Tensor, cache: GridContext | ContextCache, /
                 ) -> Tensor: ...


def build_denoiser(config: DenoiserConfig) -> CSDIDenoiser | CachedCSDIDenoiser:
    """The network ``config.architecture`` names, freshly initialised."""
    if config.architecture == "context-cached":
        return CachedCSDIDenoiser(config)
    return CSDIDenoiser(config)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "DENOISER_CONFIGS",
    "TRADEFM_CONFIGS",
    "CSDIDenoiser",
    "CachedCSDIDenoiser",
    "ContextCache",
    "Decoding",
    "Denoiser",
    "DenoiserConfig",
    "FiLMConditioning",
    "GridContext",
    "KVCache",
    "PriceDenoiser",
    "PriceDenoiserConfig",
    "ScoreMLP",
    "ScoreMLPConfig",
    "TradeFM",
    "TradeFMConfig",
    "build_denoiser",
    "count_parameters",
    "denoiser_config",
    "sample_next",
    "tradefm_config",
    "tradefm_parameter_count",
]

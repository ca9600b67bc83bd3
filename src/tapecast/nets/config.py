"""Configuration of the CSDI denoiser networks: one frozen, validated dataclass and named presets.

The dataclass holds every size a denoiser needs to be built; it is saved as JSON beside the weights
(``to_dict`` / ``from_dict`` of :class:`tapecast.core.config.ConfigBase`). Runtime knobs
(samples, steps, seeds) are not here: they are arguments of the forecaster's ``sample()``.

Named presets (``denoiser_config(name)``):

``jl-csdi-esc1``
    The release architecture of the JL-CSDI ESc1 model card: 6 residual blocks, 528 channels,
    6 heads, feed-forward 2112, K = 8 channels, L = 100 + 10 = 110 windows, full grid.
``small``
    Context-cached, 64 channels, 4 blocks, 4 heads: sized to train in minutes on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError

Architecture = Literal["full-grid", "context-cached"]


@dataclass(frozen=True)
class DenoiserConfig(ConfigBase):
    """Sizes of a CSDI denoiser (Tashiro et al. 2021, arXiv 2107.03502, Sec. 4 and App. E).

    Parameters
    ----------
    n_blocks : int
        Residual blocks (CSDI: 4).
    channels : int
        Width of every block (CSDI: 64).
    heads : int
        Attention heads of the temporal and the feature transformer layer; divides ``channels``.
    ff_dim : int
        Hidden width of each transformer layer's feed-forward network.
    time_emb_dim : int
        Sinusoidal embedding of the time points, part of the side information (CSDI: 128).
    feature_emb_dim : int
        Learned embedding of the feature (channel) id, part of the side information (CSDI: 16).
    diffusion_emb_dim : int
        Sinusoidal embedding of the diffusion time and its two-layer MLP (CSDI: 128).
    n_features : int
        K, the series (order-flow channels) per time point.
    context : int
        C, the observed context windows.
    horizon : int
        H, the forecast windows; the grid has L = C + H points.
    dropout : float
        Dropout in the transformer layers; 0 by default, since dropout is very costly on CPU.
    architecture : {"full-grid", "context-cached"}
        Which network ``build_denoiser`` makes: CSDI over the whole (K, L) grid at every step, or
        a context encoded once and a denoiser over the H horizon windows only.
    diffusion_time_scale : float
        The network embeds ``t * diffusion_time_scale``; 1 suits integer step indices (0..T-1),
        a continuous time such as the Jump-Laplace ``t`` in [0, 6] wants a scale near T / T_max.
    """

    n_blocks: int = 4
    channels: int = 64
    heads: int = 8
    ff_dim: int = 64
    time_emb_dim: int = 128
    feature_emb_dim: int = 16
    diffusion_emb_dim: int = 128
    n_features: int = 8
    context: int = 100
    horizon: int = 10
    dropout: float = 0.0
    architecture: Architecture = "full-grid"
    diffusion_time_scale: float = 1.0

    def validate(self) -> None:
        """Sizes positive, embedding widths even, heads dividing channels, dropout in [0, 1)."""
        for name in ("n_blocks", "channels", "heads", "ff_dim", "time_emb_dim", "feature_emb_dim",
                     "diffusion_emb_dim", "n_features", "context", "horizon"):
            self.check_range(name, low=1)
        for name in ("time_emb_dim", "diffusion_emb_dim"):
            if getattr(self, name) % 2:
                self.fail(name, f"must be even (sine and cosine halves), got {getattr(self, name)}")
        if self.channels % self.heads:
            self.fail("heads", f"must divide channels ({self.channels}), got {self.heads}")
        self.check_range("dropout", low=0.0, high=1.0, high_inclusive=False)
        self.check_range("diffusion_time_scale", low=0.0, low_inclusive=False)

    @property
    def length(self) -> int:
        """L = C + H, the time points of the full grid."""
        return self.context + self.horizon

    @property
    def side_dim(self) -> int:
        """Channels of the side information: time embedding + feature embedding + mask."""
        return self.time_emb_dim + self.feature_emb_dim + 1


DENOISER_CONFIGS: dict[str, DenoiserConfig] = {
    # the model card's release architecture (jl-csdi-esc1-model-card.txt, "Architecture")
    "jl-csdi-esc1": DenoiserConfig(
        n_blocks=6, channels=528, heads=6, ff_dim=2112, time_emb_dim=128, feature_emb_dim=16,
        diffusion_emb_dim=128, n_features=8, context=100, horizon=10, architecture="full-grid",
    ),
    # CPU-sized: about 0.4 M parameters, context encoded once per forecast
    "small": DenoiserConfig(
        n_blocks=4, channels=64, heads=4, ff_dim=128, time_emb_dim=64, feature_emb_dim=16,
        diffusion_emb_dim=64, n_features=8, context=100, horizon=10,
        architecture="context-cached",
    ),
}


def denoiser_config(name: str) -> DenoiserConfig:
    """The named preset ``name`` (``jl-csdi-esc1`` or ``small``).

    Raises
    ------
    TapecastError
        When no preset has that name.
    """
    try:
        return DENOISER_CONFIGS[name]
    except KeyError:
        raise TapecastError(f"unknown denoiser config {name!r}; expected one of "
                            f"{', '.join(sorted(DENOISER_CONFIGS))}") from None

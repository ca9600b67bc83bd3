"""Configuration of the CSDI denoiser networks: one frozen, validated dataclass and named presets.

The dataclass holds every size a denoiser needs to be built; it is saved as JSON beside the weights
(``to_dict`` / ``from_dict``). Runtime knobs (samples, steps, seeds) are not here: they are
arguments of the forecaster's ``sample()``.

Named presets (``denoiser_config(name)``):

``jl-csdi-esc1``
    The release architecture of the JL-CSDI ESc1 model card: 6 residual blocks, 528 channels,
    6 heads, feed-forward 2112, K = 8 channels, L = 100 + 10 = 110 windows, full grid.
``small``
    Context-cached, 64 channels, 4 blocks, 4 heads: sized to train in minutes on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from tapecast.core.errors import TapecastError

Architecture = Literal["full-grid", "context-cached"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)


@dataclass(frozen=True)
class DenoiserConfig:
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

    def __post_init__(self) -> None:
        for name in ("n_blocks", "channels", "heads", "ff_dim", "feature_emb_dim", "n_features",
                     "context", "horizon"):
            _check_positive_int(name, getattr(self, name))
        for name in ("time_emb_dim", "diffusion_emb_dim"):
            value = getattr(self, name)
            _check_positive_int(name, value)
            if value % 2:
                raise TapecastError(f"denoiser config field '{name}': expected an even number "
                                    f"(sine and cosine halves), got {value}")
        if self.channels % self.heads:
            raise TapecastError(f"denoiser config field 'heads': expected a divisor of channels "
                                f"({self.channels}), got {self.heads}")
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise TapecastError(f"denoiser config field 'dropout': expected a number in [0, 1), "
                                f"got {self.dropout!r}")
        if self.architecture not in ARCHITECTURES:
            raise TapecastError(f"denoiser config field 'architecture': expected one of "
                                f"{', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        scale = self.diffusion_time_scale
        if not isinstance(scale, int | float) or isinstance(scale, bool) or not scale > 0:
            raise TapecastError(f"denoiser config field 'diffusion_time_scale': expected a "
                                f"positive number, got {scale!r}")

    @property
    def length(self) -> int:
        """L = C + H, the time points of the full grid."""
        return self.context + self.horizon

    @property
    def side_dim(self) -> int:
        """Channels of the side information: time embedding + feature embedding + mask."""
        return self.time_emb_dim + self.feature_emb_dim + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenoiserConfig:
        """Build from a dict (a ``config.json``); unknown keys are an error, missing ones default.

        Raises
        ------
        TapecastError
            On an unknown key or a value that fails validation.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TapecastError(f"denoiser config: unknown field(s) {', '.join(unknown)}; "
                                f"expected some of {', '.join(sorted(known))}")
        return cls(**data)

    def replace(self, **changes: Any) -> DenoiserConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TapecastError(f"denoiser config field '{name}': expected a positive integer, "
                            f"got {value!r}")


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

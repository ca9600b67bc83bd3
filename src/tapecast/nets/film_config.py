"""Configuration of the price denoiser (``nets/film.py``): one frozen, validated dataclass.

Every size the network needs to be built; saved as JSON beside the weights (``to_dict`` /
``from_dict`` of :class:`tapecast.core.config.ConfigBase`). Sampler, step count and sample count
are runtime arguments of the forecaster, not fields here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tapecast.core.config import ConfigBase

EncoderKind = Literal["cnn", "transformer"]


@dataclass(frozen=True)
class PriceDenoiserConfig(ConfigBase):
    """Sizes of :class:`tapecast.nets.film.PriceDenoiser`.

    Parameters
    ----------
    n_features : int
        K, the context channels (``len(context_features(grid_config))``: 10 by default).
    context : int
        C, the context seconds (60, 120 or 300 in the issue; any positive length works).
    target_dim : int
        D, the denoised target: 1 for the 30-s log return, 30 for the whole 30-step path.
    encoder : {"cnn", "transformer"}
        The condition encoder: a causal dilated 1-D CNN over time, or pre-norm transformer
        encoder layers with a learned position embedding.
    encoder_dim : int
        d, the encoder's channels and the width of the window embedding it pools to.
    encoder_layers : int
        Residual causal convolutions (dilation 1, 2, 4, ...) or transformer layers.
    kernel_size : int
        Width of each causal convolution (``cnn`` only).
    heads : int
        Attention heads (``transformer`` only); divides ``encoder_dim``.
    width : int
        W, the FiLM-MLP's hidden width.
    depth : int
        FiLM-modulated residual layers of the MLP.
    time_dim : int
        Width of the sinusoidal diffusion-time embedding (even).
    diffusion_time_scale : float
        The network embeds ``t * diffusion_time_scale``; 1 suits the Gaussian noise's integer
        step indices 0..T-1.
    zero_head : bool
        Also map the window embedding to one logit (:attr:`FiLMConditioning.zero_logit`): the
        probability that the price does not move, the atom of a lattice-valued return.
    """

    n_features: int = 10
    context: int = 120
    target_dim: int = 1
    encoder: EncoderKind = "cnn"
    encoder_dim: int = 128
    encoder_layers: int = 4
    kernel_size: int = 3
    heads: int = 4
    width: int = 256
    depth: int = 4
    time_dim: int = 128
    diffusion_time_scale: float = 1.0
    zero_head: bool = False

    def validate(self) -> None:
        """Sizes positive, the time embedding even, heads dividing the encoder width."""
        for name in ("n_features", "context", "target_dim", "encoder_dim", "encoder_layers",
                     "kernel_size", "heads", "width", "depth", "time_dim"):
            self.check_range(name, low=1)
        if self.time_dim % 2:
            self.fail("time_dim", f"must be even (sine and cosine halves), got {self.time_dim}")
        if self.encoder == "transformer" and self.encoder_dim % self.heads:
            self.fail("heads", f"must divide encoder_dim ({self.encoder_dim}), got {self.heads}")
        self.check_range("diffusion_time_scale", low=0.0, low_inclusive=False)

    @property
    def film_dim(self) -> int:
        """Width of one layer's FiLM parameters: scale and shift, 2W."""
        return 2 * self.width

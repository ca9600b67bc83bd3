"""The full-grid CSDI denoiser (Tashiro et al. 2021, arXiv 2107.03502, Sec. 4, App. E).

The network predicts the noise (or score) of the target cells of a (K, L) grid from two input
channels, the conditional observations and the noisy targets, the diffusion time ``t`` and the
side information (``embeddings.SideInfo``). It runs the whole grid at every reverse step:

1. input projection: 2 -> channels, ReLU;
2. ``n_blocks`` residual blocks, each (CSDI App. E): add the projected diffusion-time embedding;
   a transformer layer along time (per feature row); a transformer layer across features (per
   time point); a projection to 2·channels plus the projected side information; the gated
   activation sigmoid(gate) ⊙ tanh(filter) (van den Oord et al. 2016, WaveNet); a projection to
   2·channels split into a residual, returned as (x + residual) / √2, and a skip output;
3. the skip outputs summed and scaled by 1 / √n_blocks, a projection + ReLU, a projection to 1.

Symbols: B batch rows, K features, L = C + H grid columns (context + horizon), W channels,
S side-information channels. Tensors inside are channels-last, (B, K, L, W); a 1×1 convolution
of CSDI is a ``nn.Linear`` here, with the same parameters.

Both denoisers share one call interface (the forecaster picks by ``DenoiserConfig.architecture``):
``cache = net.encode_context(context)`` once per forecast, ``cache.expand(n_samples)`` to
broadcast it over samples, then ``net(x_noisy_horizon, t, cache)`` at every reverse step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tapecast.nets.config import DenoiserConfig
from tapecast.nets.embeddings import DiffusionTimeEmbedding, SideInfo


class TransformerLayer(nn.Module):
    """Post-norm transformer encoder layer with a GELU feed-forward (Vaswani et al. 2017).

    The same parameters as ``nn.TransformerEncoderLayer(W, heads, ff_dim, activation="gelu")``,
    which CSDI uses along each axis; written out so the context-cached denoiser can attend to
    keys and values computed once.
    """

    def __init__(self, width: int, heads: int, ff_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.attn_out = nn.Linear(width, width)
        self.ff_in = nn.Linear(width, ff_dim)
        self.ff_out = nn.Linear(ff_dim, width)
        self.norm_attn = nn.LayerNorm(width)
        self.norm_ff = nn.LayerNorm(width)

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values of ``x`` (..., T, W), each (..., heads, T, W / heads)."""
        *lead, length, width = x.shape
        qkv = self.qkv(x).view(*lead, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.unbind(dim=-3)  # each (..., T, heads, dh)
        return q.transpose(-2, -3), k.transpose(-2, -3), v.transpose(-2, -3)  # (..., heads, T, dh)

    def forward(self, x: Tensor) -> Tensor:
        """Self-attention over the second-to-last axis of ``x`` (..., T, W) -> (..., T, W)."""
        q, k, v = self.qkv_heads(x.reshape(-1, *x.shape[-2:]))  # (N, heads, T, dh)
        p_drop = self.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=p_drop)  # (N, heads, T, dh)
        return self.finish(x, merge_heads(attended).view(x.shape))

    def finish(self, x: Tensor, attended: Tensor) -> Tensor:
        """Output projection, residual + norm, feed-forward, residual + norm; (..., T, W)."""
        x = self.norm_attn(x + self._drop(self.attn_out(attended)))
        hidden = self._drop(F.gelu(self.ff_in(x)))
        out: Tensor = self.norm_ff(x + self._drop(self.ff_out(hidden)))
        return out

    def _drop(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.dropout, self.training) if self.dropout else x


def merge_heads(x: Tensor) -> Tensor:
    """(..., heads, T, dh) -> (..., T, heads·dh)."""
    x = x.transpose(-2, -3)  # (..., T, heads, dh)
    return x.reshape(*x.shape[:-2], -1)


def feature_mix(layer: TransformerLayer, y: Tensor) -> Tensor:
    """Apply ``layer`` across features: attention over K at each time point.

    Parameters
    ----------
    layer : TransformerLayer
    y : Tensor (..., K, T, W)

    Returns
    -------
    Tensor (..., K, T, W)
    """
    z: Tensor = layer(y.transpose(-2, -3))  # (..., T, K, W)
    return z.transpose(-2, -3)  # (..., K, T, W)


class ResidualBlock(nn.Module):
    """One CSDI residual block (Tashiro et al. 2021, App. E); parameters of both denoisers."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        width = config.channels
        self.width = width
        self.diffusion_proj = nn.Linear(config.diffusion_emb_dim, width)
        self.time_layer = TransformerLayer(width, config.heads, config.ff_dim, config.dropout)
        self.feature_layer = TransformerLayer(width, config.heads, config.ff_dim, config.dropout)
        self.side_proj = nn.Linear(config.side_dim, 2 * width)
        self.mid_proj = nn.Linear(width, 2 * width)
        self.out_proj = nn.Linear(width, 2 * width)

    def forward(self, x: Tensor, diffusion_emb: Tensor, side: Tensor) -> tuple[Tensor, Tensor]:
        """One block over the full grid.

        Parameters
        ----------
        x : Tensor (B, K, L, W)
        diffusion_emb : Tensor (B, E)
            Output of ``DiffusionTimeEmbedding``.
        side : Tensor (B, K, L, S)
            Side information.

        Returns
        -------
        (Tensor (B, K, L, W), Tensor (B, K, L, W))
            The block's output (input of the next block) and its skip output.
        """
        y = x + self.diffusion_proj(diffusion_emb)[:, None, None, :]  # (B, K, L, W)
        y = self.time_layer(y)  # attention along L, per (b, k)
        y = feature_mix(self.feature_layer, y)  # attention across K, per (b, l)
        return self.gate(x, y, self.side_proj(side))

    def gate(self, x: Tensor, y: Tensor, side_term: Tensor) -> tuple[Tensor, Tensor]:
        """Gated activation and the residual / skip split.

        ``side_term`` is ``side_proj(side)``, broadcastable to (..., 2W); returns
        ((x + residual) / √2, skip), each shaped like ``x``.
        """
        filter_gate = self.mid_proj(y) + side_term  # (..., 2W)
        gate, filt = filter_gate.chunk(2, dim=-1)
        z = torch.sigmoid(gate) * torch.tanh(filt)  # (..., W)
        residual, skip = self.out_proj(z).chunk(2, dim=-1)
        return (x + residual) / math.sqrt(2.0), skip

    def gate_residual_only(self, x: Tensor, y: Tensor, side_term: Tensor) -> Tensor:
        """``gate(...)[0]`` without computing the skip half (for context cells)."""
        filter_gate = self.mid_proj(y) + side_term  # (..., 2W)
        gate, filt = filter_gate.chunk(2, dim=-1)
        z = torch.sigmoid(gate) * torch.tanh(filt)  # (..., W)
        w = self.width
        residual = F.linear(z, self.out_proj.weight[:w], self.out_proj.bias[:w])
        return (x + residual) / math.sqrt(2.0)


class OutputHead(nn.Module):
    """Skip sum / √n_blocks -> Linear + ReLU -> Linear to one value per cell (zero-initialised)."""

    def __init__(self, width: int, n_blocks: int) -> None:
        super().__init__()
        self.scale = 1.0 / math.sqrt(n_blocks)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, 1)
        nn.init.zeros_(self.out.weight)  # CSDI starts from a zero prediction

    def forward(self, skip_sum: Tensor) -> Tensor:
        """(..., W) -> (...)."""
        h = F.relu(self.hidden(skip_sum * self.scale))
        out: Tensor = self.out(h)  # (..., 1)
        return out.squeeze(-1)


@dataclass(frozen=True)
class GridContext:
    """What the full-grid denoiser keeps of a context: the conditioning values and side info.

    Attributes
    ----------
    observed : Tensor, float32 (R, K, C)
        Context values times their mask (0 where missing).
    cond_mask : Tensor, float32 (R, K, L)
        1 on observed context cells, 0 on missing ones and on the horizon.
    side : Tensor, float32 (R, K, L, S)
        Side information of the grid.

    R is ``rows``: windows times samples after ``expand``.
    """

    observed: Tensor
    cond_mask: Tensor
    side: Tensor

    @property
    def rows(self) -> int:
        """Batch rows the denoiser's ``forward`` expects with this context."""
        return int(self.observed.shape[0])

    def expand(self, n_samples: int) -> GridContext:
        """Each window repeated ``n_samples`` times, window-major (row b·n + s).

        The full grid mixes noisy targets into every cell, so nothing can be shared over samples:
        the tensors are copied.
        """
        return GridContext(*(t.repeat_interleave(n_samples, dim=0)
                             for t in (self.observed, self.cond_mask, self.side)))


class CSDIDenoiser(nn.Module):
    """CSDI over the full (K, L) grid at every reverse step (``architecture="full-grid"``).

    Parameters
    ----------
    config : DenoiserConfig
    """

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        self.side_info = SideInfo(config.time_emb_dim, config.feature_emb_dim, config.n_features)
        self.diffusion_embedding = DiffusionTimeEmbedding(config.diffusion_emb_dim,
                                                          config.diffusion_time_scale)
        self.input_proj = nn.Linear(2, config.channels)
        self.blocks = nn.ModuleList(ResidualBlock(config) for _ in range(config.n_blocks))
        self.head = OutputHead(config.channels, config.n_blocks)

    def denoise_grid(self, grid_input: Tensor, t: Tensor, side: Tensor) -> Tensor:
        """CSDI's own call: the whole grid in, a prediction for every cell out.

        Parameters
        ----------
        grid_input : Tensor, float (B, 2, K, L)
            Channel 0: conditional observations (0 off the conditioning mask); channel 1: the
            noisy targets (0 on the conditioning mask).
        t : Tensor, float (B,)
            Diffusion time (the sampler's model time).
        side : Tensor, float (B, K, L, S)
            Side information (``self.side_info(timepoints, cond_mask)``).

        Returns
        -------
        Tensor, float (B, K, L)
            The network output at every cell; a loss uses the target cells only.
        """
        h = F.relu(self.input_proj(grid_input.permute(0, 2, 3, 1)))  # (B, K, L, W)
        emb = self.diffusion_embedding(t)  # (B, E)
        skip_sum = torch.zeros_like(h)
        for block in self.blocks:
            h, skip = block(h, emb, side)
            skip_sum = skip_sum + skip
        out: Tensor = self.head(skip_sum)  # (B, K, L)
        return out

    def condition(self, batch: Mapping[str, Tensor]) -> GridContext:
        """The diffusion core's conditioning hook: :meth:`encode_context` of the batch's
        ``context`` (B, K, C) and ``context_mask``."""
        return self.encode_context(batch["context"], batch.get("context_mask"))

    def encode_context(self, context: Tensor, context_mask: Tensor | None = None,
                       timepoints: Tensor | None = None,
                       feature_ids: Tensor | None = None) -> GridContext:
        """Keep a forecast's context: values, conditioning mask and side information.

        Parameters
        ----------
        context : Tensor, float (B, K, C)
            Observed context (normalised units).
        context_mask : Tensor, float or bool (B, K, C), optional
            1 where a context value is observed; all ones by default.
        timepoints : Tensor, float (B, L), optional
            Time point of each grid column; ``0, 1, ..., L-1`` by default.
        feature_ids : Tensor, int64 (B, K) or (K,), optional
            ``arange(K)`` by default.

        Returns
        -------
        GridContext
            With ``rows == B``; ``expand(n_samples)`` before sampling several paths per window.
        """
        observed, cond_mask, timepoints = grid_conditioning(self.config, context, context_mask,
                                                            timepoints)
        side = self.side_info(timepoints, cond_mask, feature_ids)  # (B, K, L, S)
        return GridContext(observed, cond_mask, side)

    def forward(self, x_noisy: Tensor, t: Tensor, cache: GridContext) -> Tensor:
        """One denoiser evaluation on the horizon.

        Parameters
        ----------
        x_noisy : Tensor, float (R, K, H)
            Noisy horizon values, R = ``cache.rows``.
        t : Tensor, float (R,) or scalar
            Diffusion time.
        cache : GridContext

        Returns
        -------
        Tensor, float (R, K, H)
            The prediction on the horizon cells.
        """
        check_horizon_input(self.config, x_noisy, cache.rows)
        rows, n_features, context = cache.observed.shape
        noisy = torch.cat([x_noisy.new_zeros(rows, n_features, context), x_noisy], dim=-1)
        cond = torch.cat([cache.observed, torch.zeros_like(x_noisy)], dim=-1)  # (R, K, L)
        grid_input = torch.stack([cond, noisy], dim=1)  # (R, 2, K, L)
        t = t.expand(rows) if t.ndim == 0 else t
        return self.denoise_grid(grid_input, t, cache.side)[..., context:]  # (R, K, H)


def grid_conditioning(config: DenoiserConfig, context: Tensor, context_mask: Tensor | None,
                      timepoints: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Masked context (B, K, C), grid conditioning mask (B, K, L) and time points (B, L).

    Raises
    ------
    ValueError
        When ``context`` is not (B, K, C) with the configured K and C.
    """
    expected = (config.n_features, config.context)
    if context.ndim != 3 or tuple(context.shape[1:]) != expected:
        raise ValueError(f"context: expected shape (B, {expected[0]}, {expected[1]}), "
                         f"got {tuple(context.shape)}")
    batch = context.shape[0]
    mask = torch.ones_like(context) if context_mask is None else context_mask.to(context.dtype)
    cond_mask = torch.cat([mask, mask.new_zeros(batch, config.n_features, config.horizon)], -1)
    if timepoints is None:
        timepoints = torch.arange(config.length, dtype=torch.float32, device=context.device)
        timepoints = timepoints.expand(batch, -1)  # (B, L)
    observed = torch.where(mask > 0, context, torch.zeros_like(context))  # NaN-safe
    return observed, cond_mask, timepoints


def check_horizon_input(config: DenoiserConfig, x_noisy: Tensor, rows: int) -> None:
    """Raise ``ValueError`` unless ``x_noisy`` is (rows, K, H) for this config."""
    expected = (rows, config.n_features, config.horizon)
    if tuple(x_noisy.shape) != expected:
        raise ValueError(f"x_noisy: expected shape {expected} (rows of the context cache, K, H), "
                         f"got {tuple(x_noisy.shape)}")

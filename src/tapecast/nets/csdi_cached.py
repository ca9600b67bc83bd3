"""The context-cached CSDI denoiser: context encoded once, each step runs on the horizon only.

Full-grid CSDI (``csdi.py``) re-processes all L = C + H columns at every reverse step although the
C context columns are clean observations that never change during sampling. Here the grid is
split into two streams that share every parameter of the CSDI residual blocks:

* context stream, run once per forecast by ``encode_context``: the context cells go through the
  blocks without the diffusion-time embedding (they are not noisy), attending along time among
  themselves only. Each block leaves its temporal layer's keys and values, (B, K, heads, C, dh),
  in the cache; the horizon side information, projected per block, is cached too.
* horizon stream, run at every reverse step by ``forward``: the H horizon cells go through the
  same blocks with the diffusion-time embedding; the temporal layer attends from each horizon
  position to [cached context keys/values ; horizon keys/values] of its feature row, the
  feature layer attends across K at horizon positions only.

Since nothing flows from horizon to context, the cache is a function of the context alone, and
a step costs about H / L of a full-grid step (1/11 for C = 100, H = 10). Several samples of one
window share its cache without copying it: ``cache.expand(n)`` only records n, and the attention
folds the samples into the query axis, so one (S·H) × C product per head and feature row reads
the window's context keys.

Symbols: B windows, S samples per window, R = B·S rows, K features, C context, H horizon,
W channels, heads attention heads of width dh = W / heads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tapecast.nets.config import DenoiserConfig
from tapecast.nets.csdi import (
    OutputHead,
    ResidualBlock,
    TransformerLayer,
    check_horizon_input,
    feature_mix,
    grid_conditioning,
    merge_heads,
)
from tapecast.nets.embeddings import DiffusionTimeEmbedding, SideInfo


@dataclass(frozen=True)
class ContextCache:
    """Per-block context keys/values and horizon side terms of B windows.

    Attributes
    ----------
    keys, values : tuple of Tensor (B, K, heads, C, dh)
        The temporal layer's keys and values of the context cells, one per block.
    side_terms : tuple of Tensor (B, K, H, 2W)
        Each block's projected side information of the horizon cells.
    n_samples : int
        Rows per window that ``forward`` expects (``expand`` sets it); rows are window-major.
    """

    keys: tuple[Tensor, ...]
    values: tuple[Tensor, ...]
    side_terms: tuple[Tensor, ...]
    n_samples: int = 1

    @property
    def windows(self) -> int:
        """B, the windows encoded."""
        return int(self.keys[0].shape[0])

    @property
    def rows(self) -> int:
        """Batch rows the denoiser's ``forward`` expects with this cache: B · n_samples."""
        return self.windows * self.n_samples

    def expand(self, n_samples: int) -> ContextCache:
        """The same cache for ``n_samples`` rows per window (row b·n + s); no tensor is copied."""
        if n_samples < 1:
            raise ValueError(f"n_samples: expected a positive integer, got {n_samples}")
        return dataclasses.replace(self, n_samples=self.n_samples * n_samples)


def prefix_attention(layer: TransformerLayer, y: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    """Attention from horizon cells to [context ; horizon] along time, per feature row.

    Parameters
    ----------
    layer : TransformerLayer
        Supplies the query/key/value projection and the head count.
    y : Tensor (B, S, K, H, W)
        Horizon hidden states.
    keys, values : Tensor (B, K, heads, C, dh)
        Cached context keys and values (shared by the S samples of a window).

    Returns
    -------
    Tensor (B, S, K, H, W)
        Attention output before the layer's output projection.
    """
    batch, samples, n_features, horizon, _ = y.shape
    heads, context, dh = keys.shape[2], keys.shape[3], keys.shape[4]
    q, k, v = layer.qkv_heads(y)  # each (B, S, K, heads, H, dh)
    q, k, v = (z.permute(0, 2, 3, 1, 4, 5) for z in (q, k, v))  # (B, K, heads, S, H, dh)
    q = q * dh**-0.5
    # samples folded into the query axis: one product per (b, k, head) against the shared keys
    q_rows = q.reshape(batch, n_features, heads, samples * horizon, dh)  # (B, K, heads, S·H, dh)
    scores_context = q_rows @ keys.transpose(-1, -2)  # (B, K, heads, S·H, C)
    scores_context = scores_context.view(batch, n_features, heads, samples, horizon, context)
    scores_horizon = q @ k.transpose(-1, -2)  # (B, K, heads, S, H, H)
    # softmax over [context ; horizon] keys without concatenating: shift by the joint row max
    # (a constant for the softmax, hence detached), exponentiate in place, normalise at the end
    shift = torch.maximum(scores_context.amax(dim=-1, keepdim=True),
                          scores_horizon.amax(dim=-1, keepdim=True)).detach()  # (.., S, H, 1)
    # shifted scores below -30 weigh < 1e-13 of the row's largest: clamping them changes nothing
    # within float tolerance, and torch's CPU exp is ~10x slower on very negative arguments
    w_context = scores_context.sub_(shift).clamp_min_(-30.0).exp_()  # (B, K, heads, S, H, C)
    w_horizon = scores_horizon.sub_(shift).clamp_min_(-30.0).exp_()  # (B, K, heads, S, H, H)
    total = w_context.sum(dim=-1, keepdim=True) + w_horizon.sum(dim=-1, keepdim=True)
    if layer.training and layer.dropout:
        w_context = F.dropout(w_context, layer.dropout)
        w_horizon = F.dropout(w_horizon, layer.dropout)
    w_rows = w_context.view(batch, n_features, heads, samples * horizon, context)
    out = (w_rows @ values).view(batch, n_features, heads, samples, horizon, dh)
    out = (out + w_horizon @ v) / total  # (B, K, heads, S, H, dh)
    out = out.permute(0, 3, 1, 2, 4, 5)  # (B, S, K, heads, H, dh)
    return merge_heads(out)  # (B, S, K, H, W)


class CachedBlock(ResidualBlock):
    """A CSDI residual block with a context pass (once) and a horizon pass (every step)."""

    def encode(self, h: Tensor, side: Tensor, *, last: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Context pass: keys/values of the context cells and the next block's input.

        Parameters
        ----------
        h : Tensor (B, K, C, W)
            Context hidden states (no diffusion-time embedding: the context is clean).
        side : Tensor (B, K, C, S)
            Side information of the context cells.
        last : bool
            The last block needs only keys and values; its output is then ``h`` unchanged.

        Returns
        -------
        (Tensor (B, K, heads, C, dh), Tensor (B, K, heads, C, dh), Tensor (B, K, C, W))
        """
        q, k, v = self.time_layer.qkv_heads(h)  # each (B, K, heads, C, dh)
        if last:
            return k, v, h
        batch, n_features = h.shape[:2]
        flat = (batch * n_features, *q.shape[2:])  # (B·K, heads, C, dh)
        p_drop = self.time_layer.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q.reshape(flat), k.reshape(flat),
                                                  v.reshape(flat), dropout_p=p_drop)
        y = self.time_layer.finish(h, merge_heads(attended).view(h.shape))  # (B, K, C, W)
        y = feature_mix(self.feature_layer, y)  # (B, K, C, W)
        return k, v, self.gate_residual_only(h, y, self.side_proj(side))

    def denoise(self, x: Tensor, diffusion_emb: Tensor, keys: Tensor, values: Tensor,
                side_term: Tensor) -> tuple[Tensor, Tensor]:
        """Horizon pass.

        Parameters
        ----------
        x : Tensor (B, S, K, H, W)
        diffusion_emb : Tensor (B, S, E)
        keys, values : Tensor (B, K, heads, C, dh)
        side_term : Tensor (B, K, H, 2W)

        Returns
        -------
        (Tensor (B, S, K, H, W), Tensor (B, S, K, H, W))
            The block's output and its skip output.
        """
        y = x + self.diffusion_proj(diffusion_emb)[:, :, None, None, :]  # (B, S, K, H, W)
        y = self.time_layer.finish(y, prefix_attention(self.time_layer, y, keys, values))
        y = feature_mix(self.feature_layer, y)  # attention across K, per (b, s, h)
        return self.gate(x, y, side_term.unsqueeze(1))


class CachedCSDIDenoiser(nn.Module):
    """CSDI with the context encoded once per forecast (``architecture="context-cached"``).

    It has the parameters of ``CSDIDenoiser`` with the same config, and its call interface.

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
        self.blocks = nn.ModuleList(CachedBlock(config) for _ in range(config.n_blocks))
        self.head = OutputHead(config.channels, config.n_blocks)

    @property
    def cached_blocks(self) -> list[CachedBlock]:
        """The residual blocks, typed."""
        return [cast(CachedBlock, block) for block in self.blocks]

    def condition(self, batch: Mapping[str, Tensor]) -> ContextCache:
        """The diffusion core's conditioning hook: :meth:`encode_context` of the batch's
        ``context`` (B, K, C) and ``context_mask``."""
        return self.encode_context(batch["context"], batch.get("context_mask"))

    def encode_context(self, context: Tensor, context_mask: Tensor | None = None,
                       timepoints: Tensor | None = None,
                       feature_ids: Tensor | None = None) -> ContextCache:
        """Run the context stream once.

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
        ContextCache
            With ``rows == B``; ``expand(n_samples)`` before sampling several paths per window.
        """
        observed, cond_mask, timepoints = grid_conditioning(self.config, context, context_mask,
                                                            timepoints)
        side = self.side_info(timepoints, cond_mask, feature_ids)  # (B, K, L, S)
        n_context = self.config.context
        side_context, side_horizon = side[:, :, :n_context], side[:, :, n_context:]
        cells = torch.stack([observed, torch.zeros_like(observed)], dim=-1)  # (B, K, C, 2)
        h = F.relu(self.input_proj(cells))  # (B, K, C, W)
        keys, values, side_terms = [], [], []
        for index, block in enumerate(self.cached_blocks):
            k, v, h = block.encode(h, side_context, last=index == len(self.blocks) - 1)
            keys.append(k)
            values.append(v)
            side_terms.append(block.side_proj(side_horizon))  # (B, K, H, 2W)
        return ContextCache(tuple(keys), tuple(values), tuple(side_terms))

    def forward(self, x_noisy: Tensor, t: Tensor, cache: ContextCache) -> Tensor:
        """One denoiser evaluation on the horizon.

        Parameters
        ----------
        x_noisy : Tensor, float (R, K, H)
            Noisy horizon values, R = ``cache.rows`` (window-major: row b·S + s).
        t : Tensor, float (R,) or scalar
            Diffusion time.
        cache : ContextCache

        Returns
        -------
        Tensor, float (R, K, H)
        """
        check_horizon_input(self.config, x_noisy, cache.rows)
        batch, samples = cache.windows, cache.n_samples
        rows, n_features, horizon = x_noisy.shape
        t = t.expand(rows) if t.ndim == 0 else t
        cells = torch.stack([torch.zeros_like(x_noisy), x_noisy], dim=-1)  # (R, K, H, 2)
        h = F.relu(self.input_proj(cells))  # (R, K, H, W)
        h = h.view(batch, samples, n_features, horizon, -1)  # (B, S, K, H, W)
        emb = self.diffusion_embedding(t).view(batch, samples, -1)  # (B, S, E)
        skip_sum = torch.zeros_like(h)
        for block, k, v, side_term in zip(self.cached_blocks, cache.keys, cache.values,
                                          cache.side_terms, strict=True):
            h, skip = block.denoise(h, emb, k, v, side_term)
            skip_sum = skip_sum + skip
        out: Tensor = self.head(skip_sum)  # (B, S, K, H)
        return out.view(rows, n_features, horizon)  # (R, K, H)

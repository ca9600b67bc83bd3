"""The price denoiser: a context encoder run once per window and a FiLM-MLP over the target.

It plugs into :mod:`tapecast.diffusion` through the ``ConditionalDenoiser`` protocol::

    net = PriceDenoiser(PriceDenoiserConfig())                  # K = 10, C = 120, D = 1
    cond = net.condition({"context": context})                  # (B, K, C): encoder once
    x = draw_samples(net, sampler, {"context": context}, 256, (1,), seed=0)   # (B, 256, 1)

FiLM (Perez et al. 2018, *FiLM: Visual Reasoning with a General Conditioning Layer*, arXiv
1709.07871, eq. 1-2): every hidden layer of the MLP is scaled and shifted feature-wise,
``FiLM(h) = γ ⊙ h + β``, here after a LayerNorm without its own affine (the "adaLN" of Peebles &
Xie 2023, arXiv 2212.09748), inside a pre-activation residual layer::

    h ← h + Linear_l(SiLU(LN(h) ⊙ (1 + γ_l) + β_l)),   [γ_l ; β_l] = c_l(window) + τ_l(t)

Both contributions are affine maps computed once and shared:

* ``c_l``, the condition's part, ``condition(batch)``: the encoder reads the window's context
  once, pools it to d channels, and one linear map gives every layer's (γ, β), (B, depth, 2W).
  :meth:`FiLMConditioning.expand` only records how many samples share each window; no tensor
  is copied or recomputed.
* ``τ_l``, the diffusion time's part, ``forward``: a sinusoid of ``t`` through a two-layer MLP,
  (depth, 2W). When every row of the call has the same ``t`` (always, in sampling) it is
  computed for one row and broadcast; the per-row projection would cost more than the MLP
  itself (R × W × depth·2W multiply-adds against R × depth × W²).

Inputs are the caller's: ``context`` normalized (the forecaster's normalizer) and finite where
observed; entries masked out by ``context_mask`` are never read (they may be NaN).

Symbols: B windows, n samples per window, R = B·n rows, K features, C context seconds, D target
dimension, d encoder width, W MLP width.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tapecast.core.errors import TapecastError
from tapecast.nets.embeddings import sinusoidal_embedding
from tapecast.nets.film_config import PriceDenoiserConfig

__all__ = ["CausalConvEncoder", "FiLMConditioning", "PriceDenoiser", "PriceDenoiserConfig",
           "TransformerContextEncoder"]


@dataclass(frozen=True)
class FiLMConditioning:
    """The condition's FiLM scales and shifts of B windows, shared by their samples.

    Attributes
    ----------
    film : Tensor (B, depth, 2W)
        ``[γ ; β]`` of every layer from the window's context (the time's part is added later).
    n_samples : int
        Rows per window that ``forward`` expects (``expand`` multiplies it); rows are
        window-major, row ``b·n + s``.
    zero_logit : Tensor (B,) or None
        With ``config.zero_head``: the logit of P(price unchanged | window), per window.
    """

    film: Tensor
    n_samples: int = 1
    zero_logit: Tensor | None = None

    @property
    def windows(self) -> int:
        """B, the windows encoded."""
        return int(self.film.shape[0])

    @property
    def rows(self) -> int:
        """Rows the network's ``forward`` expects: B · n_samples."""
        return self.windows * self.n_samples

    def expand(self, n: int) -> FiLMConditioning:
        """Each row repeated ``n`` times (row ``b·n + s``), without copying ``film``."""
        return FiLMConditioning(self.film, self.n_samples * n, self.zero_logit)


class CausalConvEncoder(nn.Module):
    """(B, 2K, C) -> (B, d): residual causal dilated 1-D convolutions, pooled over time.

    Layer i convolves with dilation 2^i after left-padding only, so position j reads
    positions <= j (receptive field 1 + (k - 1)(2^L - 1) seconds). The pool concatenates the
    mean over the window and the last position, then maps 2d -> d.
    """

    def __init__(self, config: PriceDenoiserConfig) -> None:
        super().__init__()
        d = config.encoder_dim
        self.inp = nn.Conv1d(2 * config.n_features, d, 1)
        self.convs = nn.ModuleList(nn.Conv1d(d, d, config.kernel_size, dilation=2**i)
                                   for i in range(config.encoder_layers))
        self.pool = nn.Linear(2 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)  # (B, d, C)
        for conv in self.convs:
            assert isinstance(conv, nn.Conv1d)
            pad = (conv.kernel_size[0] - 1) * conv.dilation[0]
            h = h + conv(F.pad(F.silu(h), (pad, 0)))  # (B, d, C), causal
        pooled = torch.cat([h.mean(dim=2), h[:, :, -1]], dim=1)  # (B, 2d)
        out: Tensor = self.pool(pooled)  # (B, d)
        return out


class TransformerContextEncoder(nn.Module):
    """(B, 2K, C) -> (B, d): pre-norm transformer encoder layers over the C seconds, with a
    learned position embedding, pooled like :class:`CausalConvEncoder` (mean ⊕ last)."""

    def __init__(self, config: PriceDenoiserConfig) -> None:
        super().__init__()
        d = config.encoder_dim
        self.inp = nn.Linear(2 * config.n_features, d)
        self.position = nn.Parameter(0.02 * torch.randn(config.context, d))
        layer = nn.TransformerEncoderLayer(d, config.heads, 2 * d, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, config.encoder_layers,
                                            enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.pool = nn.Linear(2 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x.transpose(1, 2)) + self.position  # (B, C, d)
        h = self.norm(self.layers(h))  # (B, C, d)
        pooled = torch.cat([h.mean(dim=1), h[:, -1]], dim=1)  # (B, 2d)
        out: Tensor = self.pool(pooled)  # (B, d)
        return out


class PriceDenoiser(nn.Module):
    """Conditional denoiser of a D-dimensional price target given a (K, C) context window.

    ``condition(batch)`` once per batch of windows, then ``net(x_t, t, cond)`` at every
    reverse step (a :class:`tapecast.diffusion.protocols.ConditionalDenoiser`).

    Parameters
    ----------
    config : PriceDenoiserConfig
    """

    def __init__(self, config: PriceDenoiserConfig) -> None:
        super().__init__()
        self.config = config
        w, film = config.width, config.depth * config.film_dim
        self.encoder: nn.Module = (CausalConvEncoder(config) if config.encoder == "cnn"
                                   else TransformerContextEncoder(config))
        self.cond_film = nn.Linear(config.encoder_dim, film)
        self.time_film = nn.Sequential(nn.Linear(config.time_dim, w), nn.SiLU(),
                                       nn.Linear(w, film))
        self.inp = nn.Linear(config.target_dim, w)
        self.layers = nn.ModuleList(nn.Linear(w, w) for _ in range(config.depth))
        self.out = nn.Linear(w, config.target_dim)
        self.zero: nn.Linear | None = (nn.Linear(config.encoder_dim, 1) if config.zero_head
                                       else None)

    def encode(self, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        """The window embedding, (B, d).

        Parameters
        ----------
        context : Tensor, float (B, K, C)
            Normalized context channels, oldest second first; finite where observed.
        context_mask : Tensor, bool or float (B, K, C), optional
            True (or > 0) where observed; by default wherever the context is finite. Masked
            entries are replaced by 0 (never read, so they may be NaN) and the mask is a second
            set of K channels.
        """
        cfg, dtype = self.config, self.inp.weight.dtype
        if context.dim() != 3 or tuple(context.shape[1:]) != (cfg.n_features, cfg.context):
            raise TapecastError(f"context must be (B, {cfg.n_features}, {cfg.context}) "
                                f"(B, K, C), got {tuple(context.shape)}")
        context = context.to(dtype)
        if context_mask is None:  # NaN (a quote-less day's spread) is unobserved, not read
            keep = torch.isfinite(context)
        else:
            keep = context_mask if context_mask.dtype == torch.bool else context_mask > 0
        context = torch.where(keep, context, torch.zeros((), dtype=dtype))
        observed = keep.to(dtype)
        out: Tensor = self.encoder(torch.cat([context, observed], dim=1))  # (B, 2K, C) -> (B, d)
        return out

    def condition(self, batch: Mapping[str, Tensor]) -> FiLMConditioning:
        """Encode ``batch["context"]`` (B, K, C) (and ``batch["context_mask"]`` if present)
        once; the condition's FiLM part of every layer, (B, depth, 2W), and with
        ``zero_head`` the zero-move logit (B,)."""
        embedding = self.encode(batch["context"], batch.get("context_mask"))  # (B, d)
        film = self.cond_film(F.silu(embedding))  # (B, depth·2W)
        logit = None if self.zero is None else self.zero(F.silu(embedding))[:, 0]  # (B,)
        return FiLMConditioning(film.view(-1, self.config.depth, self.config.film_dim),
                                zero_logit=logit)

    def time_conditioning(self, t: Tensor) -> Tensor:
        """The diffusion time's FiLM part: (1, depth, 2W) when all rows share ``t`` (computed
        once), else (R, depth, 2W).

        Parameters
        ----------
        t : Tensor, float (R,) or 0-d
            The noise's model time of each row (the sampler's ``model_time``).
        """
        t = t.reshape(-1)
        shared = t.numel() == 1 or t.stride(0) == 0 or bool((t == t[0]).all())
        if shared:
            t = t[:1]
        emb = sinusoidal_embedding(t * self.config.diffusion_time_scale, self.config.time_dim)
        film: Tensor = self.time_film(emb.to(self.inp.weight.dtype))  # (1|R, depth·2W)
        return film.view(-1, self.config.depth, self.config.film_dim)

    def forward(self, x_t: Tensor, t: Tensor, cond: FiLMConditioning) -> Tensor:
        """The model output (ε, v, ... as the noise process defines it) at ``x_t``.

        Parameters
        ----------
        x_t : Tensor, float (R, D)
            Noisy targets, R = ``cond.rows`` (window-major: row ``b·n + s``).
        t : Tensor, float (R,) or 0-d
            Network time of each row.
        cond : FiLMConditioning
            From :meth:`condition`, expanded to ``n`` samples per window.

        Returns
        -------
        Tensor, float (R, D)
        """
        rows, (b, n), w = x_t.shape[0], (cond.windows, cond.n_samples), self.config.width
        if x_t.dim() != 2 or rows != cond.rows or x_t.shape[1] != self.config.target_dim:
            raise TapecastError(f"x_t must be ({cond.rows}, {self.config.target_dim}) "
                                f"(windows x samples, D), got {tuple(x_t.shape)}")
        time = self.time_conditioning(t)  # (1|R, depth, 2W)
        time = time.unsqueeze(0) if time.shape[0] == 1 else time.view(b, n, *time.shape[1:])
        film = cond.film.unsqueeze(1) + time  # (B, 1|n, depth, 2W)
        h = self.inp(x_t).view(b, n, w)  # (B, n, W)
        for i, layer in enumerate(self.layers):
            scale, shift = film[:, :, i].chunk(2, dim=-1)  # 2 × (B, 1|n, W)
            u = torch.addcmul(shift, F.layer_norm(h, (w,)), 1 + scale)  # FiLM, (B, n, W)
            h = h + layer(F.silu(u))
        out: Tensor = self.out(F.layer_norm(h, (w,)))  # (B, n, D)
        return out.reshape(rows, self.config.target_dim)

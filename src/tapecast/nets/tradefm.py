"""TradeFM: a decoder-only transformer over composite order-flow tokens, with a KV cache.

Kawawa-Beaudan et al. 2026, *TradeFM*, arXiv 2602.23784. Each event is one of V = 16,384
composite tokens; three context inputs that are not predicted (liquidity tier, market/participant
flag, Δp bin) enter beside it through a tabular embedding::

    x_t = W_in [E_tok(token_t) ; E_tier(tier_t) ; E_flag(flag_t) ; E_dp(dp_t)]      (B, T, d)
    x ← x + Attn(RMSNorm(x))      grouped-query attention with RoPE, causal, sliding window W
    x ← x + SwiGLU(RMSNorm(x))    W_2 (SiLU(W_1 x) ⊙ W_3 x)
    logits = W_out RMSNorm(x)     (B, T, V)

RoPE: Su et al. 2021 (arXiv 2104.09864); grouped-query attention: Ainslie et al. 2023 (arXiv
2305.13245); SwiGLU: Shazeer 2020 (arXiv 2002.05202); RMSNorm: Zhang & Sennrich 2019 (arXiv
1910.07467).

Legend: B batch, T sequence length, V vocabulary, d model width, H query heads, H_kv key/value
heads, G = H / H_kv queries per key/value head, d_h = d / H head width, W attention window,
p absolute position.

Generation: ``prefill`` runs the prompt once and fills a rolling per-layer :class:`KVCache` of W
positions; ``step`` then feeds one token at a time and attends to the cache. Its logits equal
``forward`` over the whole sequence under the same sliding-window causal mask (tested to 1e-4
over twice the context length).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tapecast.nets.tradefm_config import TradeFMConfig

IGNORE_INDEX = -100  # target id of a padding token: no loss, no weight

# (tier, flag, dp_bin) of the next tokens, each (B, 1), from the tokens sampled so far (B, T)
ContextFn = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]


# --- rotary position embedding ---------------------------------------------------------------
def rope_angles(positions: Tensor, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    """cos and sin of RoPE's angles p·θ_i, θ_i = base^(−2i / d_h), i < d_h / 2.

    Returns
    -------
    tuple of Tensor
        float32, each (T, d_h / 2).
    """
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device,
                                      dtype=torch.float32) / head_dim)  # (d_h / 2,)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, d_h / 2)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the pairs (x_i, x_{i + d_h/2}) of ``x`` (B, heads, T, d_h) by angles (T, d_h/2)."""
    x1, x2 = x.float().chunk(2, dim=-1)  # (B, heads, T, d_h / 2) each
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return rotated.type_as(x)


def sliding_causal_mask(length: int, window: int, device: torch.device) -> Tensor:
    """bool (T, T): query i sees key j when i − W < j ≤ i."""
    i = torch.arange(length, device=device)
    gap = i[:, None] - i[None, :]  # (T, T): i − j
    return (gap >= 0) & (gap < window)


# --- KV cache --------------------------------------------------------------------------------
class KVCache:
    """One layer's keys and values of the last W positions, in a ring of W slots.

    Position p lives in slot p mod W, so writing p overwrites p − W, which the window no longer
    sees. Keys are stored rotated (RoPE at their absolute position); attention does not depend
    on the order of slots.

    Attributes
    ----------
    keys, values : Tensor
        (B, H_kv, W, d_h).
    slot_position : Tensor
        int64 (W,): the position held by each slot, −1 while empty.
    """

    def __init__(self, batch_size: int, n_kv_heads: int, window: int, head_dim: int, *,
                 dtype: torch.dtype, device: torch.device) -> None:
        shape = (batch_size, n_kv_heads, window, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.slot_position = torch.full((window,), -1, dtype=torch.long, device=device)
        self.window = window

    def update(self, positions: Tensor, k: Tensor, v: Tensor) -> None:
        """Write keys and values ``k``, ``v`` (B, H_kv, T, d_h) of ``positions`` (T,); of more
        than W positions only the last W are kept."""
        positions, k, v = positions[-self.window:], k[:, :, -self.window:], v[:, :, -self.window:]
        slots = positions % self.window  # (T',), distinct
        self.keys.index_copy_(2, slots, k.to(self.keys.dtype))
        self.values.index_copy_(2, slots, v.to(self.values.dtype))
        self.slot_position.index_copy_(0, slots, positions)

    @property
    def filled(self) -> Tensor:
        """bool (W,): the slots that hold a position."""
        return self.slot_position >= 0


@dataclass
class Decoding:
    """State of one generation: the per-layer caches and the next token's position p."""

    caches: list[KVCache]
    position: int


# --- layers ----------------------------------------------------------------------------------
class TabularEmbedding(nn.Module):
    """Four tables (token, tier, flag, Δp bin), concatenated, one linear projection to d."""

    def __init__(self, config: TradeFMConfig) -> None:
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.token_dim)
        self.tier = nn.Embedding(config.n_tiers, config.tier_dim)
        self.flag = nn.Embedding(config.n_flags + 1, config.flag_dim)  # + the simulation id
        self.dp_bin = nn.Embedding(config.n_dp_bins, config.dp_dim)
        self.project = nn.Linear(config.embedding_dim, config.d_model, bias=False)

    def forward(self, tokens: Tensor, tier: Tensor, flag: Tensor, dp_bin: Tensor) -> Tensor:
        """(B, T) int64 each → (B, T, d)."""
        parts = [self.token(tokens), self.tier(tier), self.flag(flag), self.dp_bin(dp_bin)]
        return self.project(torch.cat(parts, dim=-1))  # type: ignore[no-any-return]


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE and a sliding causal window (fused QKV)."""

    def __init__(self, config: TradeFMConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads = config.n_heads, config.n_kv_heads
        self.head_dim, self.window = config.head_dim, config.window_size
        self.dropout = config.dropout
        kv_width = config.n_kv_heads * config.head_dim
        self.qkv = nn.Linear(config.d_model, config.d_model + 2 * kv_width, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], positions: Tensor,
                cache: KVCache | None = None) -> Tensor:
        """``x`` (B, T, d) at ``positions`` (T,) → (B, T, d).

        Without a cache, or with an empty one (prefill), attends within ``x`` under the sliding
        causal mask and writes the keys and values to the cache. With a filled cache, ``x`` is
        one new token (T = 1) and attends to the cache after its own keys are written.
        """
        batch, length, _ = x.shape
        kv_width = self.n_kv_heads * self.head_dim
        q, k, v = self.qkv(x).split([self.n_heads * self.head_dim, kv_width, kv_width], dim=-1)
        q = q.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d_h)
        kv_shape = (batch, length, self.n_kv_heads, self.head_dim)
        k = k.view(kv_shape).transpose(1, 2)  # (B, H_kv, T, d_h)
        v = v.view(kv_shape).transpose(1, 2)  # (B, H_kv, T, d_h)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        decoding = cache is not None and bool(cache.filled.any())
        if cache is not None:
            cache.update(positions, k, v)
        mask: Tensor | None
        if decoding:
            assert cache is not None
            if length != 1:
                raise ValueError(f"a filled KV cache takes one token at a time, got {length}")
            k, v, mask = cache.keys, cache.values, cache.filled[None, :]  # mask (1, W)
        elif length <= self.window:
            mask = None  # plain causal: every earlier position is inside the window
        else:
            mask = sliding_causal_mask(length, self.window, x.device)  # (T, T)
        # grouped-query attention without copying K and V out to the query heads: query head
        # h reads kv head h // G (what repeat_interleave along the heads would give)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and not decoding,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.n_heads != self.n_kv_heads)  # (B, H, T, d_h)
        y = y.transpose(1, 2).reshape(batch, length, self.n_heads * self.head_dim)  # (B, T, d)
        return self.out(y)  # type: ignore[no-any-return]


class SwiGLU(nn.Module):
    """W_2 (SiLU(W_1 x) ⊙ W_3 x), W_1 and W_3 fused into one d → 2 d_ff projection."""

    def __init__(self, config: TradeFMConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.d_model, 2 * config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, d) → (B, T, d)."""
        gate, up = self.up(x).chunk(2, dim=-1)  # (B, T, d_ff) each
        return self.down(F.silu(gate) * up)  # type: ignore[no-any-return]


class RMSNorm(nn.RMSNorm):
    """:class:`torch.nn.RMSNorm` that runs in its input's dtype: under bf16 autocast the fp32
    weight is cast to bf16, so the fused kernel is used (an fp32 weight on a bf16 input falls
    back to the unfused path, with a warning). fp32 inputs are unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.to(x.dtype)
        return F.rms_norm(x, self.normalized_shape, weight, self.eps)


class DecoderLayer(nn.Module):
    """Pre-RMSNorm attention and SwiGLU, each a residual branch."""

    def __init__(self, config: TradeFMConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.attention = Attention(config)
        self.mlp_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.mlp = SwiGLU(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], positions: Tensor,
                cache: KVCache | None = None) -> Tensor:
        """(B, T, d) → (B, T, d)."""
        x = x + self.dropout(self.attention(self.attention_norm(x), rope, positions, cache))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))  # type: ignore[no-any-return]


# --- the model -------------------------------------------------------------------------------
class TradeFM(nn.Module):
    """Decoder-only transformer over composite order-flow tokens (see the module docstring).

    Parameters
    ----------
    config : TradeFMConfig
        Sizes; ``tradefm_config("tiny")`` and the other presets.
    """

    def __init__(self, config: TradeFMConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = TabularEmbedding(config)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual outputs scaled by 1/√(2N)
            if name.endswith(("attention.out.weight", "mlp.down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))
        if config.tie_embeddings:
            self.head.weight = self.embedding.token.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens: Tensor, tier: Tensor, flag: Tensor, dp_bin: Tensor) -> Tensor:
        """Next-token logits at every position, under the sliding-window causal mask.

        Parameters
        ----------
        tokens : Tensor
            int64 (B, T), ids in [0, V).
        tier, flag, dp_bin : Tensor
            int64 (B, T): liquidity tier, market/participant flag (``simulation_flag`` for
            injected orders), Δp bin of each position.

        Returns
        -------
        Tensor
            float (B, T, V): logits of the token at t + 1 given positions ≤ t.
        """
        return self._run(tokens, tier, flag, dp_bin, start=0, caches=None)

    def _run(self, tokens: Tensor, tier: Tensor, flag: Tensor, dp_bin: Tensor, *, start: int,
             caches: list[KVCache] | None, last_only: bool = False) -> Tensor:
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)  # (T,)
        rope = rope_angles(positions, self.config.head_dim, self.config.rope_base)
        x = self.dropout(self.embedding(tokens, tier, flag, dp_bin))  # (B, T, d)
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, positions, None if caches is None else caches[i])
        if last_only:
            x = x[:, -1:]  # (B, 1, d): the head's V-wide logits only where they are used
        return self.head(self.norm(x))  # type: ignore[no-any-return]

    # --- generation --------------------------------------------------------------------------
    def new_decoding(self, batch_size: int) -> Decoding:
        """Empty per-layer caches of W positions for ``batch_size`` sequences."""
        p = self.head.weight
        caches = [KVCache(batch_size, self.config.n_kv_heads, self.config.window_size,
                          self.config.head_dim, dtype=p.dtype, device=p.device)
                  for _ in self.layers]
        return Decoding(caches, position=0)

    @torch.no_grad()
    def prefill(self, tokens: Tensor, tier: Tensor, flag: Tensor, dp_bin: Tensor, *,
                last_only: bool = False) -> tuple[Tensor, Decoding]:
        """Run a prompt (B, T) once; logits (B, T, V) (``last_only``: (B, 1, V), the last
        position's) and the decoding state after it."""
        decoding = self.new_decoding(tokens.shape[0])
        logits = self._run(tokens, tier, flag, dp_bin, start=0, caches=decoding.caches,
                           last_only=last_only)
        decoding.position = tokens.shape[1]
        return logits, decoding

    @torch.no_grad()
    def step(self, decoding: Decoding, tokens: Tensor, tier: Tensor, flag: Tensor,
             dp_bin: Tensor) -> Tensor:
        """Feed one token per sequence, each input (B, 1); logits (B, V) of the next token.

        Advances ``decoding`` by one position (its caches are updated in place).
        """
        logits = self._run(tokens, tier, flag, dp_bin, start=decoding.position,
                           caches=decoding.caches)
        decoding.position += 1
        return logits[:, -1]

    @torch.no_grad()
    def generate(self, tokens: Tensor, tier: Tensor, flag: Tensor, dp_bin: Tensor,
                 n_new: int, *, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None,
                 context_fn: ContextFn | None = None) -> Tensor:
        """Sample ``n_new`` tokens after a prompt with the KV cache.

        Parameters
        ----------
        tokens, tier, flag, dp_bin : Tensor
            int64 (B, T) each: the prompt.
        n_new : int
            Tokens to sample.
        temperature, top_k, generator
            See :func:`sample_next`.
        context_fn : callable, optional
            Maps the tokens so far (B, T + i) to the next (tier, flag, dp_bin), each (B, 1):
            the hook a market simulator fills. By default the prompt's last values repeat.

        Returns
        -------
        Tensor
            int64 (B, n_new): the sampled tokens.
        """
        logits, decoding = self.prefill(tokens, tier, flag, dp_bin, last_only=True)
        context = (tier[:, -1:], flag[:, -1:], dp_bin[:, -1:])
        sequence, new = tokens, []
        for i in range(n_new):
            token = sample_next(logits[:, -1] if i == 0 else logits, temperature=temperature,
                                top_k=top_k, generator=generator)  # (B, 1)
            new.append(token)
            if i == n_new - 1:
                break
            sequence = torch.cat([sequence, token], dim=1)
            if context_fn is not None:
                context = context_fn(sequence)
            logits = self.step(decoding, token, *context)  # (B, V)
        return torch.cat(new, dim=1) if new else tokens.new_zeros((tokens.shape[0], 0))


def sample_next(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Draw one token per row from softmax(logits / temperature), optionally among the top k.

    Parameters
    ----------
    logits : Tensor
        float (B, V).
    temperature : float
        > 0; lower is greedier.
    top_k : int, optional
        Keep only the k largest logits of each row.
    generator : torch.Generator, optional
        Seeded generator on the logits' device, for reproducible draws.

    Returns
    -------
    Tensor
        int64 (B, 1).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    scaled = logits.float() / temperature  # (B, V)
    if top_k is not None:
        kth = torch.topk(scaled, min(top_k, scaled.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    # inverse-CDF draw: the first id whose cumulative probability exceeds u ~ U(0, total). u is
    # kept strictly below the total, and the cumulative sum rises only at ids of positive
    # probability, so a zero-probability id is never drawn. 40x faster than torch.multinomial
    # at batch 64 × 16,384 on a CPU (benchmarks/tradefm_speed.py)
    cdf = scaled.softmax(dim=-1).cumsum(dim=-1)  # (B, V)
    total = cdf[:, -1:]  # (B, 1)
    u = torch.rand(cdf.shape[0], 1, generator=generator, dtype=cdf.dtype,
                   device=cdf.device) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True)

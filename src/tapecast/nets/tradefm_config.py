"""Configuration of the TradeFM decoder (``nets/tradefm.py``): one frozen dataclass and presets.

TradeFM (Kawawa-Beaudan et al. 2026, arXiv 2602.23784) is a decoder-only transformer over
composite order-flow tokens. Every size the network needs is here and saved as JSON beside the
weights (``to_dict`` / ``from_dict`` of :class:`tapecast.core.config.ConfigBase`); sampling knobs
(temperature, top-k, seed) are arguments of ``TradeFM.generate``.

Named presets (``tradefm_config(name)``; parameter counts from :func:`tradefm_parameter_count`):

``tiny``
    4 layers, d 128, 4 / 2 heads, d_ff 384, context 256: about 5.0 M parameters (4.2 M of them
    the token table and the head); trains on 2 CPU cores in minutes.
``125M``
    12 layers, d 768, 12 / 4 heads, d_ff 3072: about 130 M (the seed says ~125 M).
``250M``
    24 layers, d 1024, 16 / 4 heads, d_ff 2048: about 249 M. The seed gives ~250 M but no
    d_ff; with the 4·d = 4096 of the other presets the count would be about 400 M, so the
    seed's figure is reachable only with d_ff = 2048, which is what this preset uses.
``500M``
    32 layers, d 1024, 32 / 8 heads, d_ff 4096: about 521 M (the seed: ~524 M).
"""

from __future__ import annotations

from dataclasses import dataclass

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError

TRADEFM_VOCAB = 16_384  # action 2 × side 2 × δp 16 × volume 16 × Δt 16 (paper §6.2)


@dataclass(frozen=True)
class TradeFMConfig(ConfigBase):
    """Sizes of :class:`tapecast.nets.tradefm.TradeFM`.

    Parameters
    ----------
    vocab_size : int
        V, the composite token ids predicted by the head (16,384).
    n_tiers : int
        Liquidity tiers (context input, not predicted).
    n_flags : int
        Market/participant flag values of real data; the flag table holds one more row,
        id ``n_flags`` (:attr:`simulation_flag`), reserved for orders injected by a simulation.
    n_dp_bins : int
        Bins of the session price move Δp = (p_mid − p_open) / p_open (context input).
    token_dim, tier_dim, flag_dim, dp_dim : int
        Width of each of the four embedding tables; their concatenation is projected to d.
    d_model : int
        d, the residual stream's width.
    n_layers : int
        N, decoder layers.
    n_heads : int
        H, query heads; divides ``d_model`` (head width d / H, even for RoPE).
    n_kv_heads : int
        H_kv, key/value heads of grouped-query attention; divides ``n_heads``.
    d_ff : int
        Hidden width of each SwiGLU MLP.
    context : int
        Training sequence length in tokens.
    window : int or None
        W, the sliding attention window: each position attends to itself and the W − 1 before
        it. None means ``context``. The KV cache holds W positions per layer.
    rope_base : float
        θ of RoPE's frequencies θ^(−2i / head width).
    norm_eps : float
        ε of every RMSNorm.
    dropout : float
        Dropout on the embedding, attention probabilities and residual branches (training only).
    tie_embeddings : bool
        Share the token table with the head; needs ``token_dim == d_model``.
    """

    vocab_size: int = TRADEFM_VOCAB
    n_tiers: int = 8
    n_flags: int = 2
    n_dp_bins: int = 16
    token_dim: int = 128
    tier_dim: int = 16
    flag_dim: int = 8
    dp_dim: int = 16
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    d_ff: int = 384
    context: int = 256
    window: int | None = None
    rope_base: float = 10_000.0
    norm_eps: float = 1e-5
    dropout: float = 0.0
    tie_embeddings: bool = False

    def validate(self) -> None:
        """Sizes positive, heads dividing evenly, even head width, tying only at equal width."""
        for name in ("vocab_size", "n_tiers", "n_flags", "n_dp_bins", "token_dim", "tier_dim",
                     "flag_dim", "dp_dim", "d_model", "n_layers", "n_heads", "n_kv_heads",
                     "d_ff", "context", "window"):
            self.check_range(name, low=1)
        if self.d_model % self.n_heads:
            self.fail("n_heads", f"must divide d_model ({self.d_model}), got {self.n_heads}")
        if self.head_dim % 2:
            self.fail("n_heads", f"must leave an even head width for RoPE, got d_model / "
                                 f"n_heads = {self.head_dim}")
        if self.n_heads % self.n_kv_heads:
            self.fail("n_kv_heads", f"must divide n_heads ({self.n_heads}), got "
                                    f"{self.n_kv_heads}")
        self.check_range("rope_base", low=1.0, low_inclusive=False)
        self.check_range("norm_eps", low=0.0, low_inclusive=False)
        self.check_range("dropout", low=0.0, high=1.0, high_inclusive=False)
        if self.tie_embeddings and self.token_dim != self.d_model:
            self.fail("tie_embeddings", f"needs token_dim == d_model to share the token table "
                                        f"with the head, got token_dim {self.token_dim} and "
                                        f"d_model {self.d_model}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head, d / H."""
        return self.d_model // self.n_heads

    @property
    def window_size(self) -> int:
        """W: ``window``, or ``context`` when it is None."""
        return self.context if self.window is None else self.window

    @property
    def simulation_flag(self) -> int:
        """The flag id reserved for simulation-injected orders (the flag table's last row)."""
        return self.n_flags

    @property
    def embedding_dim(self) -> int:
        """Width of the concatenated tables, before the projection to d."""
        return self.token_dim + self.tier_dim + self.flag_dim + self.dp_dim


def tradefm_parameter_count(config: TradeFMConfig) -> int:
    """Closed-form count of :class:`~tapecast.nets.tradefm.TradeFM`'s parameters (no biases).

    Tables V·e_tok + n_tiers·e_tier + (n_flags + 1)·e_flag + n_dp·e_dp; projection e·d; per
    layer two RMSNorm gains 2d, fused QKV d·(H + 2 H_kv)·d_h, output H·d_h·d, SwiGLU 3·d·d_ff;
    final norm d; head V·d unless tied.
    """
    c = config
    d, d_h = c.d_model, c.head_dim
    tables = (c.vocab_size * c.token_dim + c.n_tiers * c.tier_dim
              + (c.n_flags + 1) * c.flag_dim + c.n_dp_bins * c.dp_dim)
    attention = d * (c.n_heads + 2 * c.n_kv_heads) * d_h + c.n_heads * d_h * d
    layer = 2 * d + attention + 3 * d * c.d_ff
    head = 0 if c.tie_embeddings else c.vocab_size * d
    return tables + c.embedding_dim * d + c.n_layers * layer + d + head


def _preset(d: int, layers: int, heads: int, kv_heads: int, d_ff: int,
            context: int) -> TradeFMConfig:
    return TradeFMConfig(token_dim=d, d_model=d, n_layers=layers, n_heads=heads,
                         n_kv_heads=kv_heads, d_ff=d_ff, context=context)


TRADEFM_CONFIGS: dict[str, TradeFMConfig] = {
    "tiny": _preset(128, 4, 4, 2, 384, context=256),
    "125M": _preset(768, 12, 12, 4, 3072, context=1024),
    "250M": _preset(1024, 24, 16, 4, 2048, context=1024),  # d_ff 2048: see the module docstring
    "500M": _preset(1024, 32, 32, 8, 4096, context=1024),
}


def tradefm_config(name: str) -> TradeFMConfig:
    """The named preset ``name`` (``tiny``, ``125M``, ``250M`` or ``500M``).

    Raises
    ------
    TapecastError
        When no preset has that name.
    """
    try:
        return TRADEFM_CONFIGS[name]
    except KeyError:
        raise TapecastError(f"unknown TradeFM preset {name!r}; expected one of "
                            f"{', '.join(TRADEFM_CONFIGS)}") from None

"""A tiny decoder-only language model over 16,384 tokens, its loss and a learnable token stream.

Test fixture for :func:`tapecast.train.fit` with token-weighted losses: ``TinyLM`` (token and
position embeddings, causal pre-norm transformer blocks, an output head tied to the token
embedding), ``lm_loss`` (mean next-token NLL over the unmasked target tokens, with their count as
the weight, accuracy as a metric and perplexity derived from the NLL) and ``pattern_stream``
(a stream that walks a fixed random cycle of a few tokens, with some noise).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tapecast.train import LossOutput

VOCAB = 16_384
IGNORE = -100  # target value of a masked (padding) token


class TinyLM(nn.Module):
    """Causal transformer LM: d = 32, ``n_layers`` blocks, context up to ``max_len`` tokens."""

    def __init__(self, *, d: int = 32, n_layers: int = 1, heads: int = 2, max_len: int = 64,
                 dropout: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.tokens = nn.Embedding(VOCAB, d)
        self.positions = nn.Embedding(max_len, d)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=dropout, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB, bias=False)
        self.head.weight = self.tokens.weight  # tied, as GPT-2 does

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits (B, L, V) float of token ids ``inputs`` (B, L) int64."""
        length = inputs.shape[1]
        x = self.tokens(inputs) + self.positions(torch.arange(length, device=inputs.device))
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=inputs.device)
        x = self.blocks(x, mask=causal, is_causal=True)  # (B, L, d)
        return self.head(self.norm(x))  # type: ignore[no-any-return]


def lm_loss(model: nn.Module, batch: dict[str, torch.Tensor],
            generator: torch.Generator) -> LossOutput:
    """Mean next-token NLL over the target tokens that are not ``IGNORE``; weight = their count."""
    logits = model(batch["inputs"])  # (B, L, V)
    targets = batch["targets"]  # (B, L)
    keep = targets != IGNORE
    nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                          ignore_index=IGNORE)  # mean over kept tokens
    correct = (logits.argmax(-1) == targets) & keep
    n_tokens = keep.sum()
    accuracy = correct.sum() / n_tokens.clamp(min=1)
    return LossOutput(nll, weight=n_tokens, metrics={"accuracy": accuracy.detach()},
                      perplexity_of="loss")


def pattern_stream(n: int, *, cycle: int = 24, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    """int64 (n,): a fixed random cycle of ``cycle`` token ids walked in order; each token is
    replaced by a uniform random one with probability ``noise``."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randperm(VOCAB, generator=generator)[:cycle]
    stream = ids[torch.arange(n) % cycle]
    swap = torch.rand(n, generator=generator) < noise
    return torch.where(swap, torch.randint(0, VOCAB, (n,), generator=generator), stream)

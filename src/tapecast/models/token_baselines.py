"""Baselines of the TradeFM token stream: what a next-token model must beat (issue 14).

Each scores a held-out stream by its per-token negative log-likelihood (nats), so cross-entropy
and perplexity sit beside the transformer's on the same tokens:

- :class:`UnigramTokens` — p(x_t) = (c(x) + α) / (N + α V): the marginal token frequencies,
  α chosen on validation when given one (add-1 over 16,384 ids would hand half the mass of a
  small corpus to unseen tokens).
- :class:`FactorizedTokens` — p(x_t) = Π_f p_f(d_f(x_t)): the product of the per-field
  marginals of the composite token's mixed-radix digits (action, side, δp, volume, Δt bins;
  :mod:`tapecast.features.tokenizer`), each add-α smoothed. It ignores the dependence between
  fields that a joint model learns.
- :class:`BigramTokens` — p(x_t | x_{t−1}) = (c(x_{t−1}, x_t) + k) / (c(x_{t−1}) + k V), add-k
  smoothing (Chen & Goodman 1999, §2.1) with k chosen on the validation stream from a grid
  (:meth:`BigramTokens.fit` with ``val``); the first token of a segment falls back to the
  unigram. Counts are kept sparse (a V² table would be 268 M cells).

:func:`bootstrap_ci` gives a confidence interval of a mean per-token loss (or of a difference of
two models' losses on the same tokens) by a bootstrap over contiguous blocks of tokens, which
keeps the dependence between neighbouring events inside each block (Künsch 1989).

Written here rather than taken from a library: an n-gram toolkit (NLTK, KenLM) scores words in
sentences, not integer ids over segment-bounded streams with a composite vocabulary, and the
three models are a few lines of counting each.

Symbols: V the vocabulary (16,384), N training tokens, c(·) training counts, α and k the
smoothing constants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError

__all__ = ["BigramTokens", "FactorizedTokens", "UnigramTokens", "bootstrap_ci",
           "perplexity"]

VOCAB = 16_384
RADIX: tuple[int, ...] = (2, 2, 16, 16, 16)  # action, side, δp, v, Δt: the tokenizer's order
K_GRID: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
ALPHA_GRID: tuple[float, ...] = (1e-3, 1e-2, 0.1, 0.3, 1.0)


def _stream(tokens: ArrayLike, vocab: int, what: str) -> NDArray[np.int64]:
    x = np.asarray(tokens)
    if x.ndim != 1 or x.size == 0 or not np.issubdtype(x.dtype, np.integer):
        raise TapecastError(f"{what}: expected a non-empty 1-D integer token stream, got "
                            f"{x.dtype} {x.shape}")
    bad = (x < 0) | (x >= vocab)
    if bad.any():
        raise TapecastError(f"{what}: {int(bad.sum()):,} token id(s) outside [0, {vocab})")
    return x.astype(np.int64)


def _starts(n: int, segment_starts: ArrayLike | None) -> NDArray[np.bool_]:
    """(n,) True at the first token of each segment (position 0 always)."""
    first = np.zeros(n, dtype=bool)
    first[0] = True
    if segment_starts is not None:
        idx = np.asarray(segment_starts, dtype=np.int64)
        first[idx[(idx >= 0) & (idx < n)]] = True
    return first


@dataclass
class UnigramTokens:
    """Add-α smoothed token frequencies."""

    alpha: float = 1.0
    vocab: int = VOCAB
    log_p: NDArray[np.float64] | None = None

    def fit(self, tokens: ArrayLike, *, val: ArrayLike | None = None,
            grid: Sequence[float] = ALPHA_GRID) -> UnigramTokens:
        """Count the training tokens; with ``val``, choose α from ``grid`` by the validation
        cross-entropy."""
        x = _stream(tokens, self.vocab, "unigram")
        counts = np.bincount(x, minlength=self.vocab).astype(np.float64)

        def table(alpha: float) -> NDArray[np.float64]:
            out: NDArray[np.float64] = (np.log(counts + alpha)
                                        - np.log(x.size + alpha * self.vocab))
            return out

        if val is not None:
            v = _stream(val, self.vocab, "unigram")
            self.alpha = min(grid, key=lambda a: float(-table(a)[v].mean()))
        self.log_p = table(self.alpha)
        return self

    def nll(self, tokens: ArrayLike, segment_starts: ArrayLike | None = None
            ) -> NDArray[np.float64]:
        """Per-token negative log-likelihood, (n,) nats."""
        if self.log_p is None:
            raise TapecastError("unigram: fit it first")
        out: NDArray[np.float64] = -self.log_p[_stream(tokens, self.vocab, "unigram")]
        return out


@dataclass
class FactorizedTokens:
    """Product of the add-α smoothed marginals of the token's mixed-radix digits."""

    alpha: float = 1.0
    radix: tuple[int, ...] = RADIX
    log_p: list[NDArray[np.float64]] | None = None

    @property
    def vocab(self) -> int:
        return int(np.prod(self.radix))

    def digits(self, x: NDArray[np.int64]) -> list[NDArray[np.int64]]:
        """The digits of each id, most significant first (the tokenizer's field order)."""
        out, rest = [], x
        for base in reversed(self.radix):
            rest, digit = np.divmod(rest, base)
            out.append(digit)
        return out[::-1]

    def fit(self, tokens: ArrayLike, *, val: ArrayLike | None = None,
            grid: Sequence[float] = ALPHA_GRID) -> FactorizedTokens:
        """Count the digits of the training tokens; with ``val``, choose α from ``grid`` by the
        validation cross-entropy."""
        x = _stream(tokens, self.vocab, "factorized")
        counts = [np.bincount(d, minlength=base).astype(np.float64)
                  for d, base in zip(self.digits(x), self.radix, strict=True)]

        def tables(alpha: float) -> list[NDArray[np.float64]]:
            return [np.log(c + alpha) - np.log(x.size + alpha * c.size) for c in counts]

        if val is not None:
            def score(alpha: float) -> float:
                self.log_p = tables(alpha)
                return float(self.nll(val).mean())
            self.alpha = min(grid, key=score)
        self.log_p = tables(self.alpha)
        return self

    def nll(self, tokens: ArrayLike, segment_starts: ArrayLike | None = None
            ) -> NDArray[np.float64]:
        """Per-token negative log-likelihood, (n,) nats."""
        if self.log_p is None:
            raise TapecastError("factorized: fit it first")
        x = _stream(tokens, self.vocab, "factorized")
        total = np.zeros(x.size)
        for d, table in zip(self.digits(x), self.log_p, strict=True):
            total -= table[d]
        return total


@dataclass
class BigramTokens:
    """Add-k bigram with a unigram fallback at segment starts; k chosen on validation."""

    k: float = 0.01
    vocab: int = VOCAB
    unigram: UnigramTokens | None = None
    _pairs: NDArray[np.int64] | None = None  # sorted keys prev·V + next
    _pair_counts: NDArray[np.float64] | None = None
    _prev_counts: NDArray[np.float64] | None = None
    k_scores: dict[float, float] | None = None

    def fit(self, tokens: ArrayLike, segment_starts: ArrayLike | None = None, *,
            val: ArrayLike | None = None, val_segment_starts: ArrayLike | None = None,
            grid: Sequence[float] = K_GRID) -> BigramTokens:
        """Count the training bigrams (not across segment starts); with ``val``, choose k
        from ``grid`` by the validation cross-entropy (``k_scores`` holds each)."""
        x = _stream(tokens, self.vocab, "bigram")
        first = _starts(x.size, segment_starts)
        keep = ~first[1:]  # pairs (x_{t-1}, x_t) inside a segment
        keys = x[:-1][keep] * self.vocab + x[1:][keep]
        self._pairs, counts = np.unique(keys, return_counts=True)
        self._pair_counts = counts.astype(np.float64)
        self._prev_counts = np.bincount(x[:-1][keep], minlength=self.vocab).astype(np.float64)
        self.unigram = UnigramTokens(vocab=self.vocab).fit(x)
        if val is not None:
            scores: dict[float, float] = {}
            for k in grid:
                self.k = float(k)
                scores[float(k)] = float(self.nll(val, val_segment_starts).mean())
            self.k_scores = scores
            self.k = min(scores, key=scores.__getitem__) if scores else self.k
        return self

    def nll(self, tokens: ArrayLike, segment_starts: ArrayLike | None = None
            ) -> NDArray[np.float64]:
        """Per-token negative log-likelihood, (n,) nats; segment starts scored by the
        unigram."""
        if self.unigram is None or self._pairs is None or self._pair_counts is None \
                or self._prev_counts is None:
            raise TapecastError("bigram: fit it first")
        x = _stream(tokens, self.vocab, "bigram")
        first = _starts(x.size, segment_starts)
        out = self.unigram.nll(x)
        prev, nxt = x[:-1][~first[1:]], x[1:][~first[1:]]
        keys = prev * self.vocab + nxt
        at = np.searchsorted(self._pairs, keys)
        found = (at < self._pairs.size) & (self._pairs[np.minimum(at, self._pairs.size - 1)]
                                           == keys)
        pair = np.where(found, self._pair_counts[np.minimum(at, self._pairs.size - 1)], 0.0)
        p = (pair + self.k) / (self._prev_counts[prev] + self.k * self.vocab)
        out[1:][~first[1:]] = -np.log(p)
        return out


def perplexity(nll: ArrayLike) -> float:
    """exp of the mean per-token negative log-likelihood."""
    return float(np.exp(np.mean(np.asarray(nll, dtype=np.float64))))


def bootstrap_ci(loss: ArrayLike, *, block: int = 1000, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """Mean of a per-token loss (or a per-token difference of two losses) and its block-
    bootstrap interval.

    Parameters
    ----------
    loss : array_like, float, shape (n,)
        In stream order.
    block : int
        Tokens per block; blocks are contiguous and resampled with replacement.
    n_boot : int
    level : float
    seed : int

    Returns
    -------
    (mean, low, high)
    """
    x = np.asarray(loss, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise TapecastError("bootstrap_ci: expected a non-empty 1-D loss")
    n_blocks = max(1, x.size // block)
    size = x.size // n_blocks
    means = x[: n_blocks * size].reshape(n_blocks, size).mean(axis=1)  # (n_blocks,)
    rng = np.random.default_rng(seed)
    draws = means[rng.integers(0, n_blocks, size=(n_boot, n_blocks))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(x.mean()), float(low), float(high)

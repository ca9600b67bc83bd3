"""The unigram token sampler: TradeFM's decoder path with no model, a baseline of issue 15.

Each order is a token id drawn from the training frequencies of the composite tokens (the
add-α unigram of :class:`tapecast.models.token_baselines.UnigramTokens`, α chosen on
validation), decoded inside its bins by the same frozen tokenizer
(:meth:`tapecast.features.tokenizer.Tokenizer.decode`) and run through the same market
(:func:`tapecast.sim.session.simulate`) as TradeFM's tokens. Whatever TradeFM does better than
this sampler comes from its context, not from the token marginals or the decoding::

    sampler = UnigramTokenGenerator.from_corpus(corpus, tokenizer, instrument="AAPL")
    market = simulate(sampler, start, n_events=16_384, seed=0)
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.features.token_corpus import TokenCorpus
from tapecast.features.tokenizer import Tokenizer
from tapecast.models.token_baselines import UnigramTokens
from tapecast.sim.order_flow import BookView, OrderIntent

__all__ = ["UnigramTokenGenerator"]

CHUNK: Final = 4096  # ids drawn and decoded at a time


class UnigramTokenGenerator:
    """Token ids i.i.d. from fixed probabilities, decoded by a tokenizer into order intents.

    Parameters
    ----------
    tokenizer : Tokenizer
        The frozen tokenizer that decodes the ids.
    probabilities : array_like, shape (V,)
        Non-negative, summing to a positive total (normalized here).
    name : str
    """

    def __init__(self, tokenizer: Tokenizer, probabilities: NDArray[np.float64], *,
                 name: str = "unigram") -> None:
        p = np.asarray(probabilities, dtype=np.float64)
        if p.shape != (tokenizer.vocab_size,) or not np.isfinite(p).all() or (p < 0).any() \
                or p.sum() <= 0:
            raise TapecastError(f"unigram sampler: probabilities must be {tokenizer.vocab_size} "
                                "non-negative finite numbers with a positive sum")
        self.tokenizer = tokenizer
        self.name = name
        self._cdf = np.cumsum(p / p.sum())  # (V,)
        self._rng = np.random.default_rng(0)
        self._buffer: dict[str, NDArray[np.float64]] = {}
        self._at = CHUNK

    @classmethod
    def from_corpus(cls, corpus: TokenCorpus, tokenizer: Tokenizer, *,
                    instrument: str | None = None, name: str = "unigram"
                    ) -> UnigramTokenGenerator:
        """The add-α unigram of ``corpus``' train tokens (of ``instrument``, default all), α
        chosen on its val tokens when there are some."""
        def stream(split: str) -> NDArray[np.int64]:
            segs = [s for s in corpus.select(split)
                    if instrument is None or s.instrument == instrument]
            if not segs:
                return np.zeros(0, dtype=np.int64)
            return np.concatenate([np.asarray(corpus.arrays["tokens"][s.offset:s.offset
                                                                      + s.length],
                                              dtype=np.int64) for s in segs])

        train, val = stream("train"), stream("val")
        if train.size == 0:
            raise TapecastError(f"{corpus.path}: no train tokens"
                                + (f" of {instrument}" if instrument else "")
                                + " to count for the unigram sampler")
        fitted = UnigramTokens(vocab=corpus.vocab_size).fit(train,
                                                            val=val if val.size else None)
        assert fitted.log_p is not None
        return cls(tokenizer, np.exp(fitted.log_p), name=name)

    def reset(self, seed: int) -> None:
        """Start a new stream, seeded."""
        self._rng = np.random.default_rng([seed, 31])
        self._at = CHUNK

    def next(self, view: BookView) -> OrderIntent:
        """The next intent: a drawn id, decoded (the view is not used)."""
        if self._at >= CHUNK:
            u = self._rng.random(CHUNK)
            ids = np.minimum(np.searchsorted(self._cdf, u * self._cdf[-1], side="right"),
                             self._cdf.size - 1)
            self._buffer = self.tokenizer.decode(ids, self._rng)
            self._at = 0
        j, b = self._at, self._buffer
        self._at += 1
        return OrderIntent(float(b["dt"][j]), "cancel" if b["action"][j] == 1 else "add",
                           int(b["side"][j]), float(b["dp"][j]), max(1, round(b["size"][j])))

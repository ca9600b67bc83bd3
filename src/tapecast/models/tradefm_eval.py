"""Perplexity of TradeFM beside the token baselines, per source and per liquidity tier.

The evaluation of issue 14 (Kawawa-Beaudan et al. 2026, §8.1 report per-token cross-entropy
and perplexity): for every instrument with tokens in the scored split, the per-token negative
log-likelihood (nats) of the model (:meth:`tapecast.models.tradefm.TradeFMModel.token_nll`)
and of the baselines of :mod:`tapecast.models.token_baselines` on the same tokens — the
unigram, the factorized model and the add-k bigram, each fitted on that instrument's own train
split with its smoothing chosen on its val split (for a zero-shot test, the target source's own
baselines). Then the same numbers pooled per liquidity tier. The first token of each segment is
not scored (nothing predicts it). Differences to each baseline carry a block-bootstrap interval
(:func:`~tapecast.models.token_baselines.bootstrap_ci`)::

    scores = score_tokens(TradeFMModel.load("runs/tradefm"), corpus, split="test")
    for row in score_rows(scores):
        print(row["group"], row["model"], row["ce"], row["low"], row["high"])

``max_level=5`` scores only the tokens whose order lay inside the five best price levels of
its side before the event (the corpus' ``level`` field; the model still reads every token as
context), so a full-depth source is compared with LOBSTER files that hold only their top N
levels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.features.token_corpus import Segment, TokenCorpus
from tapecast.models.token_baselines import (
    BigramTokens,
    FactorizedTokens,
    UnigramTokens,
    bootstrap_ci,
)
from tapecast.models.tradefm import TradeFMModel, corpus_tokenizer

__all__ = ["BASELINES", "TokenScores", "score_rows", "score_tokens"]

BASELINES = ("unigram", "factorized", "bigram")
MODEL_NAME = "TradeFM"
MIN_BLOCKS = 20  # bootstrap blocks per group at least: fewer gives no usable interval


@dataclass
class TokenScores:
    """Per-token NLL of every model on one group of scored tokens.

    Attributes
    ----------
    group : str
        The instrument, or ``tier=<name>`` for a pooled tier.
    kind : {"source", "tier"}
    nll : dict of str to ndarray, float64, shape (n,)
        Model name → per-token NLL (nats), the same n tokens in stream order for every model.
    notes : dict of str to str
        Smoothing chosen per baseline (``α = 0.1``), for the table.
    """

    group: str
    kind: Literal["source", "tier"]
    nll: dict[str, NDArray[np.float64]]
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        """Scored tokens."""
        return int(next(iter(self.nll.values())).size) if self.nll else 0


def _stream(corpus: TokenCorpus, segments: Sequence[Segment]
            ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Concatenated tokens of ``segments`` (n,) and the segment start offsets in it."""
    parts = [np.asarray(corpus.arrays["tokens"][s.offset: s.offset + s.length], dtype=np.int64)
             for s in segments]
    starts = np.cumsum([0] + [p.size for p in parts[:-1]]).astype(np.int64)
    return np.concatenate(parts), starts


def _keep(corpus: TokenCorpus, segments: Sequence[Segment], max_level: int | None
          ) -> NDArray[np.bool_]:
    """Scored positions of the concatenated segments: all but each segment's first token,
    and with ``max_level`` only tokens inside the top ``max_level`` levels."""
    masks = []
    for s in segments:
        keep = np.ones(s.length, dtype=bool)
        keep[0] = False
        if max_level is not None:
            level = np.asarray(corpus.arrays["level"][s.offset: s.offset + s.length])
            keep &= level < max_level
        masks.append(keep)
    return np.concatenate(masks)


def score_tokens(model: TradeFMModel | None, corpus: TokenCorpus, split: str = "test", *,
                 baselines: bool = True, max_level: int | None = None, batch_size: int = 16,
                 model_name: str = MODEL_NAME) -> list[TokenScores]:
    """Score ``split`` of ``corpus`` per instrument, then pooled per liquidity tier.

    Parameters
    ----------
    model : TradeFMModel or None
        A fitted model whose tokenizer encoded ``corpus`` (None: baselines only).
    corpus : TokenCorpus
    split : str
        ``val`` or ``test`` (any split name of the corpus).
    baselines : bool
        Also score the unigram, factorized and bigram baselines (each instrument needs a train
        split; its val split, when present, picks the smoothing).
    max_level : int, optional
        Score only tokens with ``level < max_level`` (the corpus must hold ``level``).
    batch_size : int
        Windows per forward pass of the model.
    model_name : str
        The model's name in the scores.

    Returns
    -------
    list of TokenScores
        One per instrument (corpus order), then one per tier holding more than one instrument.

    Raises
    ------
    TapecastError
        No segment of ``split``; a corpus from another tokenizer than the model's; baselines
        asked for an instrument without train tokens; ``max_level`` on a corpus without levels.
    """
    if model is None and not baselines:
        raise TapecastError("score_tokens: nothing to score (no model and baselines=False)")
    if max_level is not None and "level" not in corpus.arrays:
        raise TapecastError(f"{corpus.path}: the corpus has no 'level' field (tokenize the "
                            "source again with this version to score by book level)")
    if model is not None:
        model.check_corpus(corpus)
    tiers = corpus_tokenizer(corpus).config.liquidity_tiers if corpus.path else ()
    instruments = list(dict.fromkeys(s.instrument for s in corpus.select(split)))
    if not instruments:
        raise TapecastError(f"{corpus.path}: no segment of split {split!r}")
    out: list[TokenScores] = []
    tier_of: dict[str, str] = {}
    for instrument in instruments:
        segments = [s for s in corpus.select(split) if s.instrument == instrument]
        keep = _keep(corpus, segments, max_level)
        scores = TokenScores(instrument, "source", {})
        if model is not None:
            nll = np.concatenate([model.token_nll(corpus, s, batch_size=batch_size)
                                  for s in segments])
            scores.nll[model_name] = nll[keep]
        if baselines:
            _score_baselines(corpus, instrument, segments, keep, scores)
        tier_id = int(np.asarray(corpus.arrays["tier"][segments[0].offset]))
        tier_of[instrument] = tiers[tier_id] if tier_id < len(tiers) else str(tier_id)
        out.append(scores)
    sources = list(out)
    for tier in dict.fromkeys(tier_of.values()):
        members = [s for s in sources if tier_of[s.group] == tier]
        if len(members) > 1:
            out.append(TokenScores(f"tier={tier}", "tier", {
                name: np.concatenate([m.nll[name] for m in members])
                for name in members[0].nll}))
    return out


def _score_baselines(corpus: TokenCorpus, instrument: str, segments: Sequence[Segment],
                     keep: NDArray[np.bool_], scores: TokenScores) -> None:
    """Fit the three baselines on ``instrument``'s train split (smoothing on its val split)
    and add their NLL of ``segments`` at ``keep`` to ``scores``."""
    train = [s for s in corpus.select("train") if s.instrument == instrument]
    if not train:
        raise TapecastError(f"{corpus.path}: {instrument} has no train tokens to fit the "
                            "baselines on (score the model alone, baselines=False / "
                            "--no-baselines)")
    val = [s for s in corpus.select("val") if s.instrument == instrument]
    tr, tr_starts = _stream(corpus, train)
    va, va_starts = _stream(corpus, val) if val else (None, None)
    te, te_starts = _stream(corpus, segments)
    unigram = UnigramTokens(vocab=corpus.vocab_size).fit(tr, val=va)
    factorized = FactorizedTokens().fit(tr, val=va)
    bigram = BigramTokens(vocab=corpus.vocab_size).fit(tr, tr_starts, val=va,
                                                      val_segment_starts=va_starts)
    for name, fitted, note in (("unigram", unigram, f"α = {unigram.alpha:g}"),
                               ("factorized", factorized, f"α = {factorized.alpha:g}"),
                               ("bigram", bigram, f"add-k, k = {bigram.k:g}")):
        scores.nll[name] = fitted.nll(te, te_starts)[keep]
        scores.notes[name] = note


def score_rows(scores: Sequence[TokenScores], *, reference: str = MODEL_NAME,
               block: int = 500, n_boot: int = 2000) -> list[dict[str, Any]]:
    """One row per (group, model): tokens, CE (nats), perplexity, and the mean per-token
    difference ``reference − model`` with its 95 % block-bootstrap interval (None for the
    reference itself or when the reference is absent). Blocks hold ``block`` tokens, fewer
    where a group has under ``MIN_BLOCKS`` blocks of that size (a small source).

    Returns
    -------
    list of dict
        Keys ``group``, ``kind``, ``model``, ``note``, ``tokens``, ``ce``, ``perplexity``,
        ``diff``, ``low``, ``high``.
    """
    rows = []
    for s in scores:
        ours = s.nll.get(reference)
        for name, values in s.nll.items():
            ce = float(np.mean(values)) if values.size else math.nan
            row: dict[str, Any] = {"group": s.group, "kind": s.kind, "model": name,
                                   "note": s.notes.get(name, ""), "tokens": int(values.size),
                                   "ce": ce, "perplexity": math.exp(ce) if values.size else
                                   math.nan, "diff": None, "low": None, "high": None}
            if ours is not None and name != reference and values.size:
                row["diff"], row["low"], row["high"] = bootstrap_ci(
                    ours - values, block=max(1, min(block, values.size // MIN_BLOCKS)),
                    n_boot=n_boot)
            rows.append(row)
    return rows

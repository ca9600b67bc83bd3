"""Token-stream baselines: unigram, factorized, add-k bigram, block-bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.models.token_baselines import (
    BigramTokens,
    FactorizedTokens,
    UnigramTokens,
    bootstrap_ci,
    perplexity,
)


def _markov(n: int, seed: int) -> np.ndarray:
    """A stream where the next token is the previous + 1 (mod 64) with probability 0.8."""
    rng = np.random.default_rng(seed)
    x = np.empty(n, dtype=np.int64)
    x[0] = 0
    jumps = rng.random(n) < 0.8
    noise = rng.integers(0, 64, n)
    for t in range(1, n):
        x[t] = (x[t - 1] + 1) % 64 if jumps[t] else noise[t]
    return x


def test_unigram_when_scored_on_iid_data_gives_the_entropy() -> None:
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.25, 0.125, 0.125])
    train, test = rng.choice(4, 200_000, p=p), rng.choice(4, 50_000, p=p)
    nll = UnigramTokens(alpha=1.0, vocab=4).fit(train).nll(test)
    assert abs(nll.mean() - (-(p * np.log(p)).sum())) < 0.01


def test_factorized_when_fields_independent_matches_the_joint_unigram() -> None:
    rng = np.random.default_rng(1)
    radix = (2, 2, 16, 16, 16)
    digits = [rng.integers(0, b, 300_000) for b in radix]
    ids = np.zeros(300_000, dtype=np.int64)
    for d, b in zip(digits, radix, strict=True):
        ids = ids * b + d
    fact = FactorizedTokens(alpha=1.0).fit(ids[:250_000]).nll(ids[250_000:])
    assert abs(fact.mean() - np.log(16_384)) < 0.01  # uniform digits: log V
    assert FactorizedTokens().digits(np.array([16_383]))[0][0] == 1  # most significant first


def test_bigram_when_stream_is_markov_beats_unigram_and_picks_k_on_validation() -> None:
    x = _markov(60_000, 2)
    train, val, test = x[:40_000], x[40_000:50_000], x[50_000:]
    bigram = BigramTokens(vocab=64).fit(train, val=val)
    assert bigram.k_scores is not None and bigram.k == min(bigram.k_scores,
                                                           key=bigram.k_scores.__getitem__)
    uni = UnigramTokens(vocab=64).fit(train)
    # true conditional entropy: 0.8 + 0.2/64 on the successor, 0.2/64 elsewhere
    p_next, p_other = 0.8 + 0.2 / 64, 0.2 / 64
    h = -(p_next * np.log(p_next) + 63 * p_other * np.log(p_other))
    assert abs(bigram.nll(test).mean() - h) < 0.05
    assert perplexity(bigram.nll(test)) < perplexity(uni.nll(test)) / 5


def test_bigram_when_segments_given_never_pairs_across_a_start() -> None:
    x = np.array([1, 2, 1, 2, 3, 4, 3, 4])
    model = BigramTokens(k=1e-6, vocab=8).fit(x, segment_starts=[4])
    assert model._pairs is not None and (2 * 8 + 3) not in model._pairs.tolist()  # 2 -> 3
    nll = model.nll(x, segment_starts=[4])
    assert nll[4] == pytest.approx(model.unigram.nll(np.array([3]))[0])  # type: ignore[union-attr]


def test_bootstrap_ci_when_loss_is_iid_covers_the_mean() -> None:
    rng = np.random.default_rng(3)
    mean, low, high = bootstrap_ci(rng.normal(1.0, 1.0, 50_000), block=500)
    assert low < 1.0 < high and high - low < 0.05 and low < mean < high


def test_baselines_when_ids_are_outside_the_vocabulary_refuse() -> None:
    with pytest.raises(TapecastError, match=r"1 token id\(s\) outside \[0, 16384\)"):
        UnigramTokens().fit(np.array([0, 16_384]))
    with pytest.raises(TapecastError, match="fit it first"):
        BigramTokens().nll(np.array([1]))


def test_unigram_and_factorized_when_val_given_choose_alpha_on_it() -> None:
    rng = np.random.default_rng(4)
    train, val = rng.integers(0, 50, 5_000), rng.integers(0, 50, 2_000)  # 50 of 16,384 ids
    tuned = UnigramTokens().fit(train, val=val)
    assert tuned.alpha < 1.0
    assert tuned.nll(val).mean() < UnigramTokens(alpha=1.0).fit(train).nll(val).mean()
    fact = FactorizedTokens().fit(train, val=val)
    assert fact.alpha in (1e-3, 1e-2, 0.1, 0.3, 1.0)

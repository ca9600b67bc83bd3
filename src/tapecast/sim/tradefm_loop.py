"""Closed-loop TradeFM generation: token → order → matching engine → trades → mid → context.

The loop of Kawawa-Beaudan et al. (2026, arXiv 2602.23784, §7.3): each sampled token is decoded
into an order (values drawn inside its bins, :meth:`tapecast.features.tokenizer.Tokenizer.decode`),
priced against the current mid estimate, sent to the matching engine
(:class:`tapecast.sim.matching.MatchingEngine`), whose trades update the mid estimator; the
session's Δp bin under the new mid is the context fed back with the token::

    start = start_from_tables(read("esh4.mbo.dbn.zst"), model.tokenizer, context=256)
    out = generate(model, start, n_events=4096, batch=4, seed=0)
    out.tokens          # (B, n) the sampled ids
    out.markets[0].events()   # canonical events of rollout 0: the starting book, then the flow

**One mid rule.** The mid estimator is the token extraction's own
(:func:`tapecast.features.events_kernel.mid_estimate` and ``record_print``): the EW-VWAP of the
simulated prints while its last print is fresh, else the book mid, else the stale VWAP; its
state at the start is the extraction's after the real events before the start
(:meth:`tapecast.features.events.StreamingEventFeatures.snapshot`), and the book the engine
starts from is the same replayed book. So a rollout's events, read back through
:func:`tapecast.features.events.event_features`, give the p_mid the loop used.

**Orders.** price = p_mid · (1 + δp) rounded to the venue's tick; size = max(1, round(e^v − 1));
time += Δt. An add that crosses executes (a marketable limit order); a cancel carries no order
id, so the engine cancels the newest order at the level nearest the decoded price on its side
(:meth:`MatchingEngine.cancel_near`); a cancel that finds no order is counted (the issue's aim:
at most 5 % of cancels).

Legend: B rollouts (batch), L the prompt (context) length, n new events per rollout; prices of
the book in units of 1e-9 (:data:`tapecast.features.events_kernel.PRICE_SCALE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.features.tokenizer import Tokenizer
from tapecast.nets.tradefm import sample_next
from tapecast.sim.session import RolloutStart, SimulatedMarket

__all__ = ["Rollouts", "generate"]


@dataclass
class Rollouts:
    """What :func:`generate` produced.

    Attributes
    ----------
    tokens : ndarray, int64, shape (B, n)
    p_mid : ndarray, float64, shape (B, n)
        The mid each order was priced against.
    dp_bin : ndarray, int64, shape (B, n)
        The context Δp bin fed back with each token.
    t_ns : ndarray, int64, shape (B, n)
        The clock of each order (ns since the epoch).
    visible : ndarray, bool, shape (B, n)
        Whether each order shows in the feed as an add or cancel event
        (:attr:`SimulatedMarket.visible`).
    markets : list of SimulatedMarket
        The B markets after the rollouts: engines (books, trades), counters, ``events()``.
    book_hash : ndarray, uint64, shape (B,)
        :meth:`MatchingEngine.content_hash` of each final book.
    """

    tokens: NDArray[np.int64]
    p_mid: NDArray[np.float64]
    dp_bin: NDArray[np.int64]
    t_ns: NDArray[np.int64]
    visible: NDArray[np.bool_]
    markets: list[SimulatedMarket]
    book_hash: NDArray[np.uint64]

    @property
    def counters(self) -> list[dict[str, int]]:
        """Each rollout's :attr:`SimulatedMarket.counters`."""
        return [m.counters for m in self.markets]

    @property
    def cancel_miss_share(self) -> float:
        """Share of generated cancels that found no order, over all rollouts."""
        cancels = sum(c["cancels"] for c in self.counters)
        return sum(c["cancels_missed"] for c in self.counters) / max(cancels, 1)


def _check_generate(n_events: int, batch: int, start: RolloutStart, net: Any,
                    tokenizer: Tokenizer | None, start_tokenizer: Tokenizer | None) -> None:
    if n_events < 1:
        raise TapecastError(f"rollout length must be at least 1 event, got {n_events}")
    if batch < 1:
        raise TapecastError(f"batch must be at least 1 rollout, got {batch}")
    if start.tokens.size < 1:
        raise TapecastError("the rollout start holds no prompt token")
    if start.tokens.size > net.config.context:
        raise TapecastError(f"the prompt has {start.tokens.size} tokens, more than the model's "
                            f"context {net.config.context}")
    if tokenizer is None:
        raise TapecastError("the model has no tokenizer (load a trained TradeFM folder)")
    if start_tokenizer is not None and not start_tokenizer.equals(tokenizer):
        raise TapecastError("the rollout start was tokenized by another tokenizer than the "
                            "model's")


@torch.no_grad()
def generate(model: Any, start: RolloutStart, n_events: int, *, batch: int = 1,
             temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
             start_tokenizer: Tokenizer | None = None) -> Rollouts:
    """Sample ``batch`` independent closed-loop rollouts of ``n_events`` orders each.

    Parameters
    ----------
    model : TradeFMModel
        A fitted model (network and tokenizer).
    start : RolloutStart
        From :func:`start_from_tables`.
    n_events : int
        n, orders per rollout (≥ 1).
    batch : int
        B, independent rollouts from the same start, sampled together.
    temperature, top_k
        See :func:`tapecast.nets.tradefm.sample_next`.
    seed : int
        Seeds token sampling and in-bin decoding: the same seed gives the same tokens and books.
    start_tokenizer : Tokenizer, optional
        The tokenizer the start was encoded with, checked against the model's.

    Returns
    -------
    Rollouts
    """
    net, tokenizer = model.net, model.tokenizer
    if net is None:
        raise TapecastError("the TradeFM model is not fitted")
    _check_generate(n_events, batch, start, net, tokenizer, start_tokenizer)
    assert tokenizer is not None
    device = next(net.parameters()).device
    net.eval()
    def rows(x: NDArray[np.int64]) -> torch.Tensor:
        return torch.as_tensor(np.broadcast_to(x, (batch, x.size)).copy(), device=device)

    logits, decoding = net.prefill(rows(start.tokens), rows(start.tier), rows(start.flag),
                                   rows(start.dp_bin), last_only=True)
    logits = logits[:, -1]  # (B, V)
    tier = torch.full((batch, 1), int(start.tier[-1]), device=device)
    flag = torch.full((batch, 1), int(start.flag[-1]), device=device)
    markets = [SimulatedMarket(start) for _ in range(batch)]
    tokens = np.empty((batch, n_events), dtype=np.int64)
    p_mids = np.empty((batch, n_events))
    clocks = np.empty((batch, n_events), dtype=np.int64)
    visible = np.empty((batch, n_events), dtype=bool)
    dp_bins = np.empty((batch, n_events), dtype=np.int64)
    gen = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng([seed, 7])
    for i in range(n_events):
        token = sample_next(logits, temperature=temperature, top_k=top_k, generator=gen)
        ids = token[:, 0].cpu().numpy()
        order = tokenizer.decode(ids, rng)  # values inside each token's bins, (B,) each
        drift = np.empty(batch)
        for b, market in enumerate(markets):
            p_mid = market.apply(float(order["dt"][b]), int(order["action"][b]),
                                 int(order["side"][b]), float(order["dp"][b]),
                                 float(order["size"][b]))
            p_mids[b, i], clocks[b, i], visible[b, i] = p_mid, market.t_ns, market.visible
            drift[b] = market.drift(p_mid)
        tokens[:, i] = ids
        dp_bins[:, i] = tokenizer.encode_context_dp(drift)
        if i == n_events - 1:
            break
        dp = torch.as_tensor(dp_bins[:, i:i + 1], device=device)
        logits = net.step(decoding, token, tier, flag, dp)  # (B, V)
    return Rollouts(tokens, p_mids, dp_bins, clocks, visible, markets,
                    np.array([m.engine.content_hash() for m in markets], dtype=np.uint64))

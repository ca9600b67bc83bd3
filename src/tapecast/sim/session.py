"""A simulated market session: a matching engine, the mid estimator and a clock, started from a
real session, through which every generator's orders run.

One rollout is one :class:`SimulatedMarket`. It starts from a :class:`RolloutStart` — a real
session replayed up to a point (:func:`start_from_tables`): the book there, the mid estimator's
state there, the clock, and the last L tokens as a prompt — and applies orders one at a time
(:meth:`SimulatedMarket.apply`): an order's price is p_mid · (1 + δp) rounded to the venue's
tick, with p_mid the token extraction's own estimate
(:func:`tapecast.features.events_kernel.mid_estimate`: the EW-VWAP of the simulated prints while
fresh, else the book mid, else the stale VWAP); adds match in the engine
(:class:`tapecast.sim.matching.MatchingEngine`) and rest their remainder, and each fill is a
print into the estimator (``record_print``); cancels carry no order id and go to the newest
order at the level nearest their price (:meth:`MatchingEngine.cancel_near`), or, for a rank
cancel (:class:`tapecast.sim.order_flow.OrderIntent`), to the resting order of that rank.
:meth:`SimulatedMarket.events` is the session as canonical events — the starting book, then
the flow — which :func:`tapecast.data.writers.write_mbo_csv` writes as a Databento MBO CSV that
every command reads like real data.

:func:`simulate` runs any :class:`tapecast.sim.order_flow.OrderFlowGenerator` (Hawkes,
zero-intelligence, the unigram token sampler) through a market; TradeFM's closed loop
(:mod:`tapecast.sim.tradefm_loop`) runs B markets side by side.

Prices inside the market are integers in units of 1e-9
(:data:`tapecast.features.events_kernel.PRICE_SCALE`), multiples of the venue's tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.data import book_state as bs
from tapecast.data.book import source_depth
from tapecast.data.book_state import ASK, BID, BookState
from tapecast.data.tables import Tables
from tapecast.features import events_kernel as k
from tapecast.features.events import (
    EventFeatureConfig,
    StreamingEventFeatures,
    event_records,
)
from tapecast.features.tokenizer import Tokenizer
from tapecast.sim.matching import MatchingEngine
from tapecast.sim.order_flow import BookView, OrderFlowGenerator, OrderIntent

__all__ = ["ADD", "CANCEL", "MARKET", "RolloutStart", "SimulatedMarket", "event_config_of",
           "simulate", "start_from_tables", "venue_tick"]

_NS: Final = 1_000_000_000
ADD, CANCEL, MARKET = 0, 1, 2  # order codes of :meth:`SimulatedMarket.apply` (token action 0/1)
_CODES: Final = {"add": ADD, "cancel": CANCEL, "market": MARKET}


@dataclass(frozen=True, eq=False)
class RolloutStart:
    """Where rollouts begin: a real prompt, book and mid-estimator state.

    Attributes
    ----------
    instrument : str
    tokens, tier, flag, dp_bin : ndarray, int64, shape (L,)
        The last L real tokens before the start and their context inputs.
    book : BookState
        The replayed book at the start (prices in 1e-9 units).
    fs, fi : ndarray
        The mid estimator's float and integer state (:mod:`tapecast.features.events_kernel`).
    t_ns : int
        Clock (ns since the epoch) of the last real event.
    tick : int
        The venue's tick in 1e-9 units (ES 0.25 → 250,000,000).
    config : EventFeatureConfig
        The event-feature settings of the tokenizer (half-life, staleness).
    next_order_id : int
        Above every order id of the real session.
    events_fed : int
        Real events of the instrument replayed before the start.
    """

    instrument: str
    tokens: NDArray[np.int64]
    tier: NDArray[np.int64]
    flag: NDArray[np.int64]
    dp_bin: NDArray[np.int64]
    book: BookState
    fs: NDArray[np.float64]
    fi: NDArray[np.int64]
    t_ns: int
    tick: int
    config: EventFeatureConfig
    next_order_id: int
    events_fed: int = 0


def venue_tick(events: pl.DataFrame) -> int:
    """The venue's price tick in 1e-9 units: the greatest common divisor of the order prices
    (in 1e-9 units) of the events' adds, at least 1."""
    prices = events.filter(pl.col("action") == "add")["price"].drop_nulls().to_numpy()
    if prices.size == 0:
        raise TapecastError("venue tick: the events hold no priced add")
    units = np.unique(np.round(prices * k.PRICE_SCALE).astype(np.int64))
    return max(1, int(np.gcd.reduce(units)))


def event_config_of(tokenizer: Tokenizer) -> EventFeatureConfig:
    """The event-feature settings stored with ``tokenizer`` (the defaults for a tokenizer
    written before they were recorded)."""
    stored = tokenizer.provenance.get("event_features")
    return EventFeatureConfig.from_dict(stored) if isinstance(stored, dict) else \
        EventFeatureConfig()


def start_from_tables(tables: Tables, tokenizer: Tokenizer | None = None, *, context: int = 0,
                      upto: int | None = None, instrument: str | None = None,
                      tier: str = "medium", tick: int | None = None,
                      advance: int = 0) -> RolloutStart:
    """Replay a real source up to a point and take the prompt, book and mid state there.

    Parameters
    ----------
    tables : Tables
        A reader's result with an ``events`` table (and, for LOBSTER, its book seed).
    tokenizer : Tokenizer, optional
        The model's frozen tokenizer (its event-feature settings are used); None for a
        generator without tokens (Hawkes, zero-intelligence): no prompt, default settings.
    context : int
        L, prompt tokens (the model's context; 0 without a tokenizer).
    upto : int, optional
        Events of the instrument fed before the start (default: all of them).
    instrument : str, optional
        Default: the first instrument of the events.
    tier : str
        Liquidity tier of the prompt and the rollouts.
    tick : int, optional
        The venue's tick in 1e-9 units (default :func:`venue_tick`).
    advance : int
        When the book at ``upto`` is one-sided or crossed (a depth-limited LOBSTER book can be,
        for a few events), feed up to this many more events until it is not (0: refuse).

    Raises
    ------
    TapecastError
        No events table; fewer than ``context`` tokens before the start; an empty or crossed
        book at the start.
    """
    if tables.events is None:
        raise TapecastError(f"{tables.source}: no events table to start a rollout from")
    events = tables.events
    name = instrument or str(events["instrument"][0])
    all_events = events.filter(pl.col("instrument") == name)
    if tokenizer is None and context:
        raise TapecastError("a prompt of tokens needs the model's tokenizer")
    cfg = event_config_of(tokenizer) if tokenizer is not None else EventFeatureConfig()
    seeds = {name: tables.book_seed} if tables.book_seed is not None else None
    stream = StreamingEventFeatures(cfg, seeds=seeds, depth_window=source_depth(tables),
                                    source=tables.source)
    records = list(event_records(all_events))
    fed = len(records) if upto is None else min(upto, len(records))
    rows = [row for e in records[:fed] for row in stream.update(e)]
    if len(rows) < context:
        raise TapecastError(f"{tables.source}: {len(rows):,} tokens before the start, fewer "
                            f"than the prompt of {context} (start later, --upto)")
    book, fs, fi = stream.snapshot(name)
    prices, sizes = np.zeros((2, 1), np.int64), np.zeros((2, 1), np.int64)
    bs.top_n(book, 1, prices, sizes)
    while advance and fed < len(records) and fed - (upto or 0) < advance and (
            sizes[BID, 0] == 0 or sizes[ASK, 0] == 0 or prices[BID, 0] >= prices[ASK, 0]):
        rows.extend(stream.update(records[fed]))  # a depth-limited book: step to two sides
        fed += 1
        book, fs, fi = stream.snapshot(name)
        bs.top_n(book, 1, prices, sizes)
    events = all_events.head(fed)
    if sizes[BID, 0] == 0 or sizes[ASK, 0] == 0:
        raise TapecastError(f"{tables.source}: the book is one-sided or empty at the start; "
                            "a rollout needs a two-sided book")
    if prices[BID, 0] >= prices[ASK, 0]:
        raise TapecastError(f"{tables.source}: the book is crossed at the start (bid "
                            f"{prices[BID, 0] / k.PRICE_SCALE} >= ask "
                            f"{prices[ASK, 0] / k.PRICE_SCALE}); start elsewhere (--upto)")
    if tokenizer is not None and context:
        frame = StreamingEventFeatures.frame(rows[-context:])
        ids = tokenizer.encode((frame["action"] == "cancel").cast(pl.Int64).to_numpy(),
                               (frame["side"] == "ask").cast(pl.Int64).to_numpy(),
                               frame["delta_p"].to_numpy(), frame["log_size"].to_numpy(),
                               frame["dt"].to_numpy()).astype(np.int64)
        tier_id, flag_id = tokenizer.tier_id(tier), tokenizer.flag_id("market")
        dp_bin = tokenizer.encode_context_dp(frame["drift"].to_numpy()).astype(np.int64)
    else:
        ids = dp_bin = np.zeros(0, dtype=np.int64)
        tier_id = flag_id = 0
    clock = events.select(pl.coalesce("ts_recv", "ts_event").dt.epoch("ns")).to_series()
    order_ids = events["order_id"].drop_nulls()
    return RolloutStart(
        instrument=name, tokens=ids, tier=np.full(ids.size, tier_id, dtype=np.int64),
        flag=np.full(ids.size, flag_id, dtype=np.int64), dp_bin=dp_bin,
        book=book, fs=fs, fi=fi, t_ns=int(clock[-1]), tick=tick or venue_tick(events),
        config=cfg,
        next_order_id=int(order_ids.cast(pl.Int64).max() or 0) + 1,  # type: ignore[arg-type]
        events_fed=fed)


COUNTERS: Final = ("events", "adds", "cancels", "market_orders", "cancels_missed", "trades",
                   "no_mid")


class SimulatedMarket:
    """One rollout's market: engine, mid estimator and clock, from ``start``.

    The starting book's anonymous size (LOBSTER's seed levels) becomes named orders at the
    back of their levels, so the rollout's feed is self-contained.

    Attributes
    ----------
    engine : MatchingEngine
        Prices in 1e-9 units.
    t_ns : int
        The clock (ns since the epoch) of the last order.
    counters : dict of str to int
        ``events``, ``adds``, ``cancels``, ``market_orders``, ``cancels_missed`` (a cancel that
        found no order), ``trades`` (fills), ``no_mid`` (orders priced with the previous mid
        because the estimator had none).
    visible : bool
        Whether the last order shows in the feed as an add or a cancel event (a token when the
        feed is tokenized again): an add that rested some size, a cancel that found an order.
        An add filled at once shows only as trades, as in a Databento feed.
    """

    def __init__(self, start: RolloutStart) -> None:
        self.start = start
        first = max(start.next_order_id, _max_order_id(start.book) + 1)
        book, first = _named_book(start.book, first)
        self.engine = MatchingEngine.from_book(book, next_order_id=first)
        self.fs, self.fi = start.fs.copy(), start.fi.copy()
        self.t_ns = start.t_ns
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._half_life_ns = start.config.half_life_s * _NS
        self._stale_ns = round(start.config.staleness_s * _NS)
        self._last_mid = float("nan")
        self._n_trades = 0
        self.visible = False  # whether the last order shows in the feed as an add or a cancel

    def mid(self, t_ns: int | None = None) -> tuple[float, int]:
        """``(p_mid, source)`` at ``t_ns`` (default now): the extraction's rule
        (:func:`~tapecast.features.events_kernel.mid_estimate`); source ``MID_NONE`` and NaN
        without a print or a two-sided book."""
        bid, ask = self.engine.best(BID), self.engine.best(ASK)
        p_mid, source = k.mid_estimate(self.t_ns if t_ns is None else t_ns,
                                       bid[0] if bid else 0, ask[0] if ask else 0,
                                       bid[1] if bid else 0, ask[1] if ask else 0, self.fs,
                                       self.fi, self._stale_ns)
        return float(p_mid), int(source)

    def drift(self, p_mid: float) -> float:
        """Δp = (p_mid − p_open) / p_open, p_open the session's first print (before it, its
        first p_mid), as the extraction's ``drift``."""
        p_open, _ = k.session_open(p_mid, self.fs, self.fi)
        return float((p_mid - p_open) / p_open)

    def view(self) -> BookView:
        """What an order-flow generator sees now (prices in the venue's units)."""
        p_mid, source = self.mid()
        bid, ask = self.engine.best(BID), self.engine.best(ASK)
        st = self.engine.state
        resting = tuple(int(st.levels[st.ladder[s, :int(st.meta[bs.M_DEPTH + s])],
                                      bs.L_COUNT].sum()) for s in (BID, ASK))
        return BookView(self.t_ns / _NS, None if source == k.MID_NONE else p_mid,
                        None if bid is None else bid[0] / k.PRICE_SCALE,
                        None if ask is None else ask[0] / k.PRICE_SCALE,
                        self.start.tick / k.PRICE_SCALE, (resting[0], resting[1]))

    def apply(self, dt_s: float, action: int, side: int, delta_p: float, size: float, *,
              order_rank: int | None = None) -> float:
        """Advance the clock by ``dt_s`` seconds and apply one order; returns the p_mid it was
        priced against.

        Parameters
        ----------
        dt_s : float
            Seconds since the previous order (≥ 0).
        action : int
            ``ADD`` (a limit order; it executes while it crosses), ``CANCEL`` or ``MARKET``.
        side : int
            0 bid, 1 ask (for a market order the aggressor's: 0 buys).
        delta_p : float
            (price − p_mid) / p_mid (ignored by market orders and rank cancels).
        size : float
            Rounded to an integer ≥ 1.
        order_rank : int, optional
            A cancel of the whole resting order of this rank on ``side`` (best price first,
            then time) instead of the nearest-level rule.
        """
        self.t_ns += round(dt_s * _NS)
        t = self.t_ns
        p_mid, source = self.mid(t)
        if source == k.MID_NONE:
            self.counters["no_mid"] += 1
            p_mid = self._last_mid
        self._last_mid = p_mid
        tick = self.start.tick
        size_q = max(1, round(size))
        self.counters["events"] += 1
        self.visible = False
        if action == CANCEL:
            self.counters["cancels"] += 1
            if order_rank is not None:
                oid = _order_at_rank(self.engine.state, side, order_rank)
                got = 0 if oid is None else self.engine.cancel(oid, ts=t)
            else:
                price = max(tick, round(p_mid * (1.0 + delta_p) * k.PRICE_SCALE / tick) * tick)
                got = self.engine.cancel_near(side, price, size_q, ts=t)
            if got == 0:
                self.counters["cancels_missed"] += 1
            self.visible = got > 0
            return p_mid
        if action == MARKET:
            self.counters["market_orders"] += 1
            self.engine.market(side, size_q, ts=t)
        else:
            self.counters["adds"] += 1
            price = max(tick, round(p_mid * (1.0 + delta_p) * k.PRICE_SCALE / tick) * tick)
            self.visible = self.engine.add(side, price, size_q, ts=t).rested > 0
        n = self.engine.n_trades
        if n > self._n_trades:
            fills = self.engine.trades(since=self._n_trades)
            for px, q in zip(fills["price"].tolist(), fills["size"].tolist(), strict=True):
                k.record_print(px / k.PRICE_SCALE, q, t, self.fs, self.fi, self._half_life_ns)
            self.counters["trades"] += n - self._n_trades
            self._n_trades = n
        return p_mid

    def events(self, instrument: str | None = None) -> pl.DataFrame:
        """The session as canonical events: the starting book (a ``clear`` and its orders as
        snapshot adds, flag 0x20, at the start's clock), then every simulated event;
        ``ts_recv`` = ``ts_event``."""
        name = instrument or self.start.instrument
        scale = 1.0 / k.PRICE_SCALE
        flow = self.engine.events(scale, name, initial=False)
        everything = self.engine.events(scale, name)
        initial = everything.head(everything.height - flow.height)
        start = pl.lit(self.start.t_ns).cast(pl.Datetime("ns", "UTC"))
        initial = initial.with_columns(ts_event=start, flags=pl.col("flags").fill_null(0) | 0x20)
        frame = pl.concat([initial, flow]).with_columns(
            pl.col("price").round(9), sequence=pl.int_range(pl.len(), dtype=pl.Int64))
        return frame.with_columns(ts_recv=pl.col("ts_event"))


def _named_book(book: BookState, next_id: int) -> tuple[BookState, int]:
    """A copy of ``book`` whose anonymous (seeded) size is turned into named orders, one per
    level, at the back of its level's queue with ids from ``next_id``; and the next free id.
    A LOBSTER start keeps some of its seed levels; as named orders they appear in the
    rollout's feed, which then replays without a seed."""
    st = BookState(*(np.array(a, copy=True) for a in book))
    for side in (BID, ASK):
        depth = int(st.meta[bs.M_DEPTH + side])
        levels = [int(st.ladder[side, depth - 1 - r]) for r in range(depth)]
        found = [(int(st.levels[lvl, bs.L_PRICE]), int(st.levels[lvl, bs.L_ANON]))
                 for lvl in levels if st.levels[lvl, bs.L_ANON] > 0]
        for price, size in found:
            bs.take_anonymous(st, side, price, size)
            if not bs.has_room(st):
                st = bs.grow(st)
            bs.add_order(st, next_id, side, price, size)
            next_id += 1
    return st, next_id


def _max_order_id(book: BookState) -> int:
    used = book.orders[: int(book.meta[bs.M_ORDER_HWM]), bs.O_ID]
    return int(used.max(initial=0))


def _order_at_rank(state: BookState, side: int, rank: int) -> int | None:
    """The id of ``side``'s resting order of priority ``rank`` (0: best price, first in time),
    or None when the side holds fewer orders."""
    depth = int(state.meta[bs.M_DEPTH + side])
    for r in range(depth):
        lvl = state.ladder[side, depth - 1 - r]
        count = int(state.levels[lvl, bs.L_COUNT])
        if rank < count:
            ids, _ = bs.level_queue(state, lvl)
            return int(ids[rank])
        rank -= count
    return None


def simulate(generator: OrderFlowGenerator, start: RolloutStart, n_events: int, *,
             seed: int = 0) -> SimulatedMarket:
    """Run ``n_events`` intents of ``generator`` (reset with ``seed``) through a market from
    ``start``; returns the market (its events, trades and counters).

    Raises
    ------
    TapecastError
        ``n_events`` < 1.
    """
    if n_events < 1:
        raise TapecastError(f"rollout length must be at least 1 event, got {n_events}")
    market = SimulatedMarket(start)
    generator.reset(seed)
    for _ in range(n_events):
        intent: OrderIntent = generator.next(market.view())
        market.apply(intent.dt, _CODES[intent.action], intent.side,
                     0.0 if intent.action == "market" or intent.order_rank is not None
                     else intent.delta_p, intent.size, order_rank=intent.order_rank)
    return market

"""The built-in synthetic market's L3 event stream: adds, cancels and executions on a book.

Each session starts from a fresh book at 09:30 New York (``book_levels`` price levels per side,
``orders_per_level`` orders each, one tick spread) and runs ``events_per_session`` orders of a
classical order-flow generator through the same market that TradeFM's closed loop uses
(:class:`tapecast.sim.session.SimulatedMarket`: the matching engine, the token extraction's own
mid estimator and a clock):

* ``generator="zi"``: zero-intelligence Poisson flow (Farmer, Patelli & Zovko 2005;
  :class:`tapecast.sim.zero_intelligence.ZeroIntelligenceGenerator`) with the given rates μ
  (market orders /s per side), α (limit orders /s per side per tick of distance, d in 1..L from
  the opposite best) and δ (cancels /s per resting order);
* ``generator="hawkes"``: a 4-type exponential Hawkes process (add/cancel × side;
  :class:`tapecast.sim.hawkes.HawkesGenerator`) with baseline rates μ, jumps α (``self`` on the
  diagonal, ``cross`` elsewhere) and one decay β; its marks (δp, size) come from simple tables:
  δp = ∓(j + ½)·tick/price for j uniform in 0..L-1 (a share ``hawkes_marketable`` of the adds
  priced 1.5 ticks through the mid instead, so they trade), sizes geometric in lots.

Order sizes are whole lots, geometric with mean ``mean_lots`` (``market_mean_lots`` for market
orders). The next session opens at the previous one's last mid. The output is what the
Databento MBO reader gives for the same feed written as a CSV
(:func:`tapecast.data.writers.write_mbo_csv`): canonical ``events`` (per session a ``clear``,
the starting book as snapshot adds, flag 0x20, then the flow) and the ``trades`` derived from
them by :func:`tapecast.data.readers.databento_common.to_tables` itself.

Usage::

    from tapecast.sim import SyntheticL3Config, generate_l3_market
    tables = generate_l3_market(SyntheticL3Config(n_sessions=1), seed=0)
    tables.events, tables.trades
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError
from tapecast.data.book_state import ASK, BID
from tapecast.data.readers.databento_common import ACTION_NAMES, SIDE_NAMES, to_tables
from tapecast.data.tables import Tables
from tapecast.data.validate import ROW
from tapecast.features import events_kernel as k
from tapecast.features.events import EventFeatureConfig
from tapecast.sim.clock import session_bounds_ns, session_dates
from tapecast.sim.hawkes import D, HawkesFit, HawkesGenerator, HawkesParams
from tapecast.sim.matching import MatchingEngine
from tapecast.sim.order_flow import OrderFlowGenerator
from tapecast.sim.session import RolloutStart, SimulatedMarket, simulate
from tapecast.sim.zero_intelligence import ZeroIntelligenceGenerator, ZICalibration

__all__ = ["FORMAT", "SyntheticL3Config", "generate_l3_market"]

FORMAT: Final = "synthetic"
_TABLE: Final = 1000  # entries of a deterministic mark/size table (uniform draws from it)
_ACTION_CODES: Final = {name: code for code, name in ACTION_NAMES.items() if name}
_SIDE_CODES: Final = {name: code for code, name in SIDE_NAMES.items()}


@dataclass(frozen=True)
class SyntheticL3Config(ConfigBase):
    """A seeded L3 feed of a liquid name (module docstring for the model).

    Parameters
    ----------
    instrument : str, default "SYN"
    tick_size : float, default 0.01
    start_price : float, default 100.0
        The first session's best bid; the best ask is one tick above.
    start_date : datetime.date, default 2024-01-08
        First session's date; sessions are business days from there, opening 09:30 New York.
    n_sessions : int, default 2
    events_per_session : int, default 20_000
        Generator orders per session (adds, cancels, market orders; about 8 minutes of the
        default ZI flow).
    book_levels : int, default 10
        Starting price levels per side, one tick apart.
    orders_per_level : int, default 3
        Starting orders per level (the ZI steady state holds about α/δ ≈ 3.3 per level).
    lot : int, default 100
        Shares per lot; every size is whole lots.
    mean_lots : float, default 2.0
        Mean of the geometric number of lots of a limit order (and of a starting order).
    market_mean_lots : float, default 3.0
        Mean of the geometric number of lots of a market order (ZI).
    generator : {"zi", "hawkes"}, default "zi"
    zi_mu : float, default 0.5
        μ, market orders per second per side.
    zi_alpha : float, default 1.0
        α, limit orders per second per side per tick of distance.
    zi_delta : float, default 0.3
        δ, cancels per second per resting order.
    zi_max_ticks : int, default 10
        L, the farthest tick distance from the opposite best.
    hawkes_mu : tuple of 4 float, default (5.0, 5.0, 4.5, 4.5)
        Baseline rates /s of add-bid, add-ask, cancel-bid, cancel-ask.
    hawkes_self, hawkes_cross : float, default 8.0 and 2.0
        α_ii and α_ij (i ≠ j), per second: branching 0.4 and 0.1 with β = 20, so the spectral
        radius is 0.7 (stationary) and the mean rates (I - G)^-1 μ are about 3.3 μ.
    hawkes_beta : float, default 20.0
        β, decay per second (a 50 ms memory).
    hawkes_max_ticks : int, default 10
        L of the Hawkes δp marks (levels 1..L from the mid).
    hawkes_marketable : float, default 0.05
        Share of the Hawkes adds priced 1.5 ticks through the mid (they trade).
    """

    instrument: str = "SYN"
    tick_size: float = 0.01
    start_price: float = 100.0
    start_date: dt.date = dt.date(2024, 1, 8)
    n_sessions: int = 2
    events_per_session: int = 20_000
    book_levels: int = 10
    orders_per_level: int = 3
    lot: int = 100
    mean_lots: float = 2.0
    market_mean_lots: float = 3.0
    generator: Literal["zi", "hawkes"] = "zi"
    zi_mu: float = 0.5
    zi_alpha: float = 1.0
    zi_delta: float = 0.3
    zi_max_ticks: int = 10
    hawkes_mu: tuple[float, ...] = (5.0, 5.0, 4.5, 4.5)
    hawkes_self: float = 8.0
    hawkes_cross: float = 2.0
    hawkes_beta: float = 20.0
    hawkes_max_ticks: int = 10
    hawkes_marketable: float = 0.05

    def validate(self) -> None:
        if not self.instrument.strip():
            self.fail("instrument", f"must be a non-empty string, got {self.instrument!r}")
        self.check_range("tick_size", low=0.0, low_inclusive=False)
        self.check_range("start_price", low=0.0, low_inclusive=False)
        if self.start_price <= self.book_levels * self.tick_size:
            self.fail("start_price", f"must be above book_levels ticks "
                      f"({self.book_levels * self.tick_size:g}), got {self.start_price}")
        self.check_range("n_sessions", low=1, high=2_000)
        self.check_range("events_per_session", low=1)
        self.check_range("book_levels", low=1, high=1_000)
        self.check_range("orders_per_level", low=1, high=1_000)
        self.check_range("lot", low=1)
        self.check_range("mean_lots", low=1.0)
        self.check_range("market_mean_lots", low=1.0)
        self.check_range("zi_mu", low=0.0)
        self.check_range("zi_alpha", low=0.0, low_inclusive=False)
        self.check_range("zi_delta", low=0.0)
        self.check_range("zi_max_ticks", low=1)
        if len(self.hawkes_mu) != D or min(self.hawkes_mu) <= 0:
            self.fail("hawkes_mu", f"must be {D} rates > 0, got {self.hawkes_mu}")
        self.check_range("hawkes_self", low=0.0)
        self.check_range("hawkes_cross", low=0.0)
        self.check_range("hawkes_beta", low=0.0, low_inclusive=False)
        self.check_range("hawkes_max_ticks", low=1)
        self.check_range("hawkes_marketable", low=0.0, high=1.0, high_inclusive=False)
        radius = (self.hawkes_self + (D - 1) * self.hawkes_cross) / self.hawkes_beta
        if self.generator == "hawkes" and radius >= 1.0:
            self.fail("hawkes_self", f"(self + 3 cross) / beta must be below 1 for a stationary "
                      f"process, got {radius:.3g}")

    @property
    def hawkes_params(self) -> HawkesParams:
        """μ, α (``hawkes_self`` on the diagonal, ``hawkes_cross`` elsewhere), β."""
        alpha = np.full((D, D), self.hawkes_cross)  # (d, d)
        np.fill_diagonal(alpha, self.hawkes_self)
        return HawkesParams(np.asarray(self.hawkes_mu, dtype=np.float64), alpha,
                            np.full(D, self.hawkes_beta))


def _lots_table(mean_lots: float, lot: int) -> NDArray[np.int64]:
    """Geometric lot counts (mean ``mean_lots``) at the quantiles (i + ½)/N, times ``lot``,
    shape (N,): a uniform draw from it is a geometric draw up to the table's resolution."""
    u = (np.arange(_TABLE) + 0.5) / _TABLE  # (N,)
    if mean_lots <= 1.0:
        return np.full(_TABLE, lot, dtype=np.int64)
    n_lots = np.ceil(np.log1p(-u) / np.log1p(-1.0 / mean_lots))  # inverse CDF, support 1, 2, ...
    return np.asarray(np.maximum(n_lots, 1) * lot, dtype=np.int64)


def _zi_generator(config: SyntheticL3Config) -> ZeroIntelligenceGenerator:
    big_l = config.zi_max_ticks
    calibration = ZICalibration(mu=config.zi_mu, alpha=config.zi_alpha, delta=config.zi_delta,
                                max_ticks=big_l, profile=(1.0 / big_l,) * big_l,
                                tick=config.tick_size)
    limit = _lots_table(config.mean_lots, config.lot)
    return ZeroIntelligenceGenerator(calibration, limit,
                                     _lots_table(config.market_mean_lots, config.lot), limit,
                                     name="zero_intelligence")


def _hawkes_generator(config: SyntheticL3Config, rng: np.random.Generator) -> HawkesGenerator:
    """Hawkes with table marks: δp of a bid −(j + ½)·tick/price (asks mirrored), a share of the
    adds +1.5 ticks through the mid; sizes shuffled against δp so the two are independent."""
    rel_tick = config.tick_size / config.start_price
    levels = (np.arange(_TABLE) * config.hawkes_max_ticks // _TABLE + 0.5) * rel_tick  # (N,)
    through = np.full(round(config.hawkes_marketable * _TABLE), -1.5 * rel_tick)
    add = np.concatenate([through, levels[: _TABLE - through.size]])  # (N,) distance below mid
    sizes = _lots_table(config.mean_lots, config.lot)
    marks_dp: list[NDArray[np.float64]] = []
    marks_size: list[NDArray[np.int64]] = []
    for i in range(D):  # add_bid, add_ask, cancel_bid, cancel_ask
        away = add if i < 2 else levels
        marks_dp.append(np.asarray(-away if i % 2 == 0 else away, dtype=np.float64))
        marks_size.append(rng.permutation(sizes))
    fit = HawkesFit(config.hawkes_params, None, 0.0, 0, 0, 0.0, True, "given, not fitted")
    return HawkesGenerator(fit, marks_dp, marks_size, name="hawkes")


def _starting_book(config: SyntheticL3Config, best_bid: int, tick: int,
                   rng: np.random.Generator, next_order_id: int) -> MatchingEngine:
    """``book_levels`` levels per side from ``best_bid`` (ask one tick above), prices in 1e-9
    units, ``orders_per_level`` orders of table sizes each."""
    engine = MatchingEngine(next_order_id=next_order_id)
    sizes = _lots_table(config.mean_lots, config.lot)
    draws = sizes[rng.integers(sizes.shape[0], size=(2, config.book_levels,
                                                     config.orders_per_level))]  # (2, N, K)
    for level in range(config.book_levels):
        for side, price in ((BID, best_bid - level * tick), (ASK, best_bid + (level + 1) * tick)):
            for size in draws[side, level]:
                engine.add(side, price, int(size))
    return engine


def _start(config: SyntheticL3Config, engine: MatchingEngine, t_ns: int, tick: int
           ) -> RolloutStart:
    """A rollout start with no real data: the book, a fresh mid estimator, no prompt."""
    fs, fi = k.new_session_state()
    empty = np.zeros(0, dtype=np.int64)
    return RolloutStart(instrument=config.instrument, tokens=empty, tier=empty, flag=empty,
                        dp_bin=empty, book=engine.state, fs=fs, fi=fi, t_ns=t_ns, tick=tick,
                        config=EventFeatureConfig(), next_order_id=engine.next_order_id)


def _generator(config: SyntheticL3Config, rng: np.random.Generator) -> OrderFlowGenerator:
    return _zi_generator(config) if config.generator == "zi" else _hawkes_generator(config, rng)


def _last_best_bid(market: SimulatedMarket, tick: int) -> int:
    """The next session's best bid (1e-9 units): the tick below the last mid, at least
    ``book_levels`` ticks above zero."""
    p_mid, _ = market.mid()
    if not np.isfinite(p_mid):
        raise TapecastError("synthetic L3 market: the session ended with no mid (no book and "
                            "no print); raise book_levels or lower zi_mu")
    return int(np.floor(p_mid * k.PRICE_SCALE / tick)) * tick


def generate_l3_market(config: SyntheticL3Config | None = None, *, seed: int = 0) -> Tables:
    """Generate a synthetic L3 feed: canonical ``events`` and the ``trades`` printed in them.

    Parameters
    ----------
    config : SyntheticL3Config, optional
        Default ``SyntheticL3Config()`` (2 sessions × 20,000 zero-intelligence orders).
    seed : int, default 0
        Same seed and config give identical tables.

    Returns
    -------
    Tables
        ``source`` ``"synthetic-l3:<instrument>:seed=<seed>"``, ``format="synthetic"``;
        ``events`` (schema :data:`tapecast.data.schemas.EVENTS`; ``ts_recv`` = ``ts_event``;
        ``sequence`` the row number) and ``trades`` exactly as the Databento MBO reader derives
        them (one per ``trade`` record, the aggressor's side). ``counters``: the reader's
        (``records``, ``snapshot_records``, ``clears``) and the markets' summed over sessions
        (``events``, ``adds``, ``cancels``, ``market_orders``, ``cancels_missed``,
        ``trades``, ``no_mid``).

    Raises
    ------
    TapecastError
        A negative seed; a session that ends with no mid.
    """
    config = config or SyntheticL3Config()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TapecastError(f"synthetic L3 market: seed must be a non-negative integer, "
                            f"got {seed!r}")
    tick = round(config.tick_size * k.PRICE_SCALE)
    best_bid = round(config.start_price / config.tick_size) * tick
    frames, counters, next_id = [], dict.fromkeys(
        ("events", "adds", "cancels", "market_orders", "cancels_missed", "trades", "no_mid"), 0), 1
    days = session_dates(config.start_date, config.n_sessions)
    for day, child in zip(days, np.random.SeedSequence(seed).spawn(config.n_sessions),
                          strict=True):
        rng = np.random.default_rng(child)
        engine = _starting_book(config, best_bid, tick, rng, next_id)
        start = _start(config, engine, session_bounds_ns(day)[0], tick)
        market = simulate(_generator(config, rng), start, config.events_per_session,
                          seed=int(rng.integers(2**31)))
        frames.append(market.events(config.instrument))
        for name in counters:
            counters[name] += market.counters[name]
        next_id = market.engine.next_order_id
        best_bid = _last_best_bid(market, tick)
        if best_bid < config.book_levels * tick:
            raise TapecastError(f"synthetic L3 market: the price walked to "
                                f"{best_bid / k.PRICE_SCALE:g}; raise start_price")
    events = pl.concat(frames).with_columns(sequence=pl.int_range(pl.len(), dtype=pl.Int64))
    source = f"synthetic-l3:{config.instrument}:seed={seed}"
    tables = to_tables(_raw_frame(events), "mbo", source, FORMAT)
    tables.counters.update(counters)
    return tables


def _raw_frame(events: pl.DataFrame) -> pl.DataFrame:
    """Canonical events as the Databento readers' raw frame (one-letter codes, ``_row``)."""
    return events.select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW), "ts_recv", "ts_event",
        "instrument",
        pl.col("action").cast(pl.String).replace_strict(_ACTION_CODES),
        pl.col("side").cast(pl.String).replace_strict(_SIDE_CODES),
        "price", "size", "order_id", "flags", "sequence")

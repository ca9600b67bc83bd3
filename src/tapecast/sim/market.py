"""The built-in synthetic market: a seeded tape in the canonical ``trades`` and ``quotes`` tables.

The model (``docs/synthetic-market.md``), one module per part:

- signs: concurrent power-law metaorders (Lillo, Mike & Farmer 2005), :mod:`tapecast.sim.orders`;
- sizes: whole lots with a Pareto tail, :mod:`tapecast.sim.orders`;
- prices: propagator mid with square-root impact, noise and clustered volatility (Bouchaud, Gefen,
  Potters & Wyart 2004), quotes 1-2 ticks wide, buys at the ask, sells at the bid,
  :mod:`tapecast.sim.prices`;
- times: U-shaped intraday intensity inside 09:30-16:00 New York, :mod:`tapecast.sim.clock`.

Usage::

    from tapecast.sim import SyntheticMarketConfig, generate_market
    tables = generate_market(SyntheticMarketConfig(n_sessions=2), seed=0)
    tables.trades, tables.quotes   # canonical frames (tapecast.data.schemas)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.data.schemas import TRADES
from tapecast.data.tables import Tables
from tapecast.data.validate import finalize
from tapecast.sim.clock import session_dates, session_times
from tapecast.sim.config import SyntheticMarketConfig
from tapecast.sim.orders import metaorder_signs, trade_sizes
from tapecast.sim.prices import log_ar1, mid_path, quotes_around, volatility_factor

FORMAT = "synthetic"
SIDE_SOURCE = "synthetic"  # the generator's own aggressor label: known, like a venue's flag
BURST_HALF_LIFE = 150.0  # trades; the liquidity factor behind the burst probability
BURN_IN = 5_000  # trades generated and dropped so the metaorders start in their steady state


@dataclass(frozen=True)
class _Flow:
    """The trade-time series of the whole tape (all sessions back to back), each shape (n,)."""

    signs: NDArray[np.int8]
    is_burst: NDArray[np.bool_]
    sizes: NDArray[np.float64]
    sigma: NDArray[np.float64]
    n_metaorders: int


def _session_counts(rng: np.random.Generator, config: SyntheticMarketConfig) -> NDArray[np.int64]:
    """Trades per session: ``trades_per_session`` times a mean-1 log-normal activity factor."""
    sd = config.session_activity_sd
    factor = np.exp(rng.normal(-0.5 * sd * sd, sd, config.n_sessions))  # (S,)
    return np.maximum(100, np.round(config.trades_per_session * factor)).astype(np.int64)


def _flow(rng: np.random.Generator, config: SyntheticMarketConfig, n: int) -> _Flow:
    sigma = volatility_factor(rng, n, config.vol_sd)
    # the share of single-print orders, 1 - b_t = (1 - b) exp(g_t - Var g / 2), moves with a
    # fast liquidity factor g_t: the bid-ask bounce (a window's realized variance) clusters
    g = log_ar1(rng, n, config.burst_sd, BURST_HALF_LIFE) - 0.5 * config.burst_sd**2  # (n,)
    single = (1.0 - config.burst_prob) * np.exp(g)  # (n,)
    burst = np.concatenate([np.full(BURN_IN, config.burst_prob),
                            np.clip(1.0 - single, 0.0, 0.98)])  # (BURN_IN + n,)
    signs, is_burst, n_meta = metaorder_signs(
        rng, n + BURN_IN, n_active=config.n_metaorders, alpha=config.metaorder_alpha,
        max_length=config.max_metaorder_length, noise=config.noise_fraction, burst=burst)
    scale = config.size_scale * sigma**config.size_vol_coupling  # (n,) Pareto scale in lots
    sizes = trade_sizes(rng, n, lot=config.size_lot, tail_index=config.size_tail_index,
                        scale=scale)
    return _Flow(signs[BURN_IN:], is_burst[BURN_IN:], sizes, sigma, n_meta)


def _mid_ticks(rng: np.random.Generator, config: SyntheticMarketConfig, flow: _Flow,
               starts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Mid price in ticks before each trade; an overnight jump at each session's first trade."""
    n = int(flow.signs.shape[0])
    noise = rng.normal(0.0, config.noise_ticks, size=n)  # (n,) η_t
    overnight = rng.normal(0.0, config.overnight_gap_ticks, size=len(starts))  # (S,)
    noise[np.maximum(starts[1:] - 1, 0)] += overnight[1:] / flow.sigma[starts[1:] - 1]
    mid = mid_path(flow.signs, flow.sizes, flow.sigma, noise, impact=config.impact_ticks,
                   l0=config.propagator_l0, beta=config.propagator_beta,
                   size_exponent=config.impact_size_exponent)
    return config.start_price / config.tick_size + mid


def _spreads(rng: np.random.Generator, config: SyntheticMarketConfig, sigma: NDArray[np.float64]
             ) -> NDArray[np.int64]:
    wide = rng.random(sigma.shape[0]) < np.minimum(0.9, config.wide_spread_prob * sigma)  # (n,)
    return np.where(wide, 2, 1).astype(np.int64)


def _times(rng: np.random.Generator, config: SyntheticMarketConfig, flow: _Flow,
           counts: NDArray[np.int64]) -> NDArray[np.int64]:
    activity = flow.sigma ** config.activity_coupling  # (n,)
    parts, start = [], 0
    for day, count in zip(session_dates(config.start_date, config.n_sessions), counts,
                          strict=True):
        stop = start + int(count)
        parts.append(session_times(rng, day, activity[start:stop], flow.is_burst[start:stop],
                                   open_boost=config.open_boost, close_boost=config.close_boost,
                                   decay=config.profile_decay))
        start = stop
    return np.concatenate(parts)


def _lots(rng: np.random.Generator, n: int, lot: int) -> NDArray[np.float64]:
    """Displayed quote sizes: 1 + Geometric(0.15) lots."""
    return (rng.geometric(0.15, n) * lot).astype(np.float64)


def _tables(config: SyntheticMarketConfig, ts: NDArray[np.int64], signs: NDArray[np.int8],
            sizes: NDArray[np.float64], bid: NDArray[np.int64], ask: NDArray[np.int64],
            rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame]:
    tick, n = config.tick_size, ts.shape[0]
    digits = max(0, -math.floor(math.log10(tick))) + 6
    price = np.round(np.where(signs > 0, ask, bid) * tick, digits)  # (n,) buys at the ask
    stamp = pl.Series("ts", ts).cast(pl.Datetime("ns", "UTC"))
    trades = pl.DataFrame({"ts": stamp, "price": price, "size": sizes, "side": signs,
                           "suspicious": np.zeros(n, dtype=bool)}).with_columns(
        pl.lit(config.instrument, dtype=pl.String).alias("instrument"),
        pl.lit(SIDE_SOURCE, dtype=TRADES["side_source"]).alias("side_source"))
    quotes = pl.DataFrame({
        "ts": (pl.Series("ts", ts - 1)).cast(pl.Datetime("ns", "UTC")),  # 1 ns before the trade
        "instrument": trades["instrument"], "bid_px": np.round(bid * tick, digits),
        "bid_sz": _lots(rng, n, config.size_lot), "ask_px": np.round(ask * tick, digits),
        "ask_sz": _lots(rng, n, config.size_lot),
    })
    return trades, quotes


def generate_market(config: SyntheticMarketConfig | None = None, *, seed: int = 0,
                    progress: bool = False) -> Tables:
    """Generate a synthetic tape: canonical ``trades`` and ``quotes`` (one quote before each trade).

    Parameters
    ----------
    config : SyntheticMarketConfig, optional
        Model parameters; default ``SyntheticMarketConfig()`` (5 sessions x ~150k trades).
    seed : int, default 0
        Same seed and config give identical tables.
    progress : bool, default False
        Show a Rich progress bar of the generation steps (on stderr).

    Returns
    -------
    Tables
        ``format="synthetic"``; ``trades`` (schema :data:`tapecast.data.schemas.TRADES`, sorted by
        ts, ``side`` the true aggressor sign with ``side_source="synthetic"``: the generator's own
        label, known exactly like a venue's flag) and ``quotes`` (schema ``QUOTES``: the best
        bid/ask 1 ns before each trade; a buy prints at that ask, a sell at that bid).
        ``counters``: rows, rows_rejected (0), metaorders, sessions.
    """
    config = config or SyntheticMarketConfig()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TapecastError(f"synthetic market: seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    with _steps(progress) as step:
        counts = _session_counts(rng, config)
        n = int(counts.sum())
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)  # (S,)
        step("order flow")
        flow = _flow(rng, config, n)
        step("prices")
        bid, ask = quotes_around(_mid_ticks(rng, config, flow, starts),
                                 _spreads(rng, config, flow.sigma))
        if bid.min() < 1:
            raise TapecastError(
                f"synthetic market: the price walked to {bid.min() * config.tick_size:g}; raise "
                "field 'start_price' or lower 'impact_ticks' / 'overnight_gap_ticks'")
        step("timestamps")
        ts = _times(rng, config, flow, counts)
        step("tables")
        trades, quotes = _tables(config, ts, flow.signs, flow.sizes, bid, ask, rng)
        source = f"synthetic:{config.instrument}:seed={seed}"
        tables = Tables(
            source=source, format=FORMAT,
            trades=finalize(trades, "trades", source, ordered_by="ts"),
            quotes=finalize(quotes, "quotes", source, ordered_by="ts"),
            counters={"rows": n, "rows_rejected": 0, "metaorders": flow.n_metaorders,
                      "sessions": config.n_sessions})
        step("done")
    return tables


def _steps(progress: bool) -> AbstractContextManager[Callable[[str], None]]:
    """A context whose value advances a 4-step Rich progress bar (or does nothing)."""
    if not progress:
        return nullcontext(lambda _label: None)
    return _RichSteps()


class _RichSteps:
    def __enter__(self) -> Callable[[str], None]:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("synthetic market: {task.description}"), BarColumn(),
                             TimeElapsedColumn(), transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("sessions", total=4)
        self._done = -1

        def step(label: str) -> None:
            self._done += 1
            self._bar.update(self._task, description=label, completed=self._done)

        return step

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)


"""Zero-intelligence Poisson order flow (Farmer, Patelli & Zovko 2005, PNAS 102(6):2254).

The variant built here (symmetric in the two sides; rates per second, one order per event):

* market orders arrive at rate ``mu`` per side (aggressor side 0 buys, 1 sells);
* limit orders arrive at rate ``alpha`` per tick of price per side, at an integer tick distance
  d in 1..L from the *opposite* best quote (a buy at ``best_ask - d * tick``, a sell at
  ``best_bid + d * tick``), d uniform (the paper's flat density; ``placement="empirical"`` draws d
  from the calibrated distance profile instead), so ``alpha * L`` limit orders per second per
  side; none crosses the spread;
* each resting order is cancelled at rate ``delta``: ``delta * n_s`` per second on side s with
  n_s resting orders; the cancelled order is uniform among them, sent as a rank cancel
  (:attr:`~tapecast.sim.order_flow.OrderIntent.order_rank`);
* sizes: a uniform draw from the empirical sizes (limit orders: token adds; market orders: trade
  prints grouped by timestamp and side; cancels: token cancels, informative).

Given the book, the next event is the first of these competing exponential clocks: a wait
``Exp(R)`` with ``R = 2 mu + 2 alpha L + delta (n_bid + n_ask)``, then the event with probability
proportional to its rate.

Calibration (maximum likelihood of each Poisson rate given the data's exposure; legend: T the
token span in seconds, the sum of ``dt``)::

    mu_hat    = M / (2 T)                 M market orders (prints grouped by ts and side)
    alpha_hat = A * s_in / (2 L T)        A token adds, s_in the share with 1 <= d <= L
    delta_hat = C / (2 T n_bar)           C token cancels, n_bar mean resting orders per side

with d from the best quotes before each add when given (:func:`book_context`), else from the
token's ``p_mid`` assuming ``half_spread_ticks`` (d = (p_mid - price) / tick + h for a bid), L
the 95 % quantile of d >= 1 unless given, and n_bar from :func:`mean_resting_orders` (Little's
law over order lifetimes) or given.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.io import atomic_write_text
from tapecast.data.book import replay_tables, source_depth, top_of_book
from tapecast.data.tables import Tables
from tapecast.sim.order_flow import BookView, OrderFlowError, OrderIntent

__all__ = ["ZICalibration", "ZeroIntelligenceGenerator", "book_context",
           "mean_resting_orders"]

FORMAT: Final = "tapecast.zero_intelligence/1"
Placement = Literal["uniform", "empirical"]


@dataclass(frozen=True)
class ZICalibration:
    """Zero-intelligence parameters and what their estimate rests on.

    Attributes
    ----------
    mu : float
        Market orders per second per side.
    alpha : float
        Limit orders per second per side per tick of distance (d in 1..L).
    delta : float
        Cancellations per second per resting order.
    max_ticks : int
        L.
    profile : tuple of float, length L
        Observed share of adds at d = 1..L (sums to 1).
    tick : float
    placement : {"uniform", "empirical"}
        How the generator draws d.
    duration : float
        T, seconds.
    n_market, n_adds, n_cancels : int
        M, A, C.
    n_adds_marketable, n_adds_beyond, n_adds_unplaced : int
        Adds with d < 1, with d > L, and with no distance (no quote on the opposite side).
    mean_resting : float
        n_bar.
    """

    mu: float
    alpha: float
    delta: float
    max_ticks: int
    profile: tuple[float, ...]
    tick: float
    placement: Placement = "uniform"
    duration: float = 0.0
    n_market: int = 0
    n_adds: int = 0
    n_cancels: int = 0
    n_adds_marketable: int = 0
    n_adds_beyond: int = 0
    n_adds_unplaced: int = 0
    mean_resting: float = 0.0

    def __post_init__(self) -> None:
        if not (self.mu >= 0 and self.alpha > 0 and self.delta >= 0 and self.tick > 0):
            raise OrderFlowError(f"zero-intelligence parameters: expected mu >= 0, alpha > 0, "
                                 f"delta >= 0, tick > 0, got {self.mu}, {self.alpha}, "
                                 f"{self.delta}, {self.tick}")
        if self.max_ticks < 1 or len(self.profile) != self.max_ticks:
            raise OrderFlowError(f"zero-intelligence parameters: expected L >= 1 and a profile "
                                 f"of L shares, got L={self.max_ticks}, {len(self.profile)}")
        if self.placement not in ("uniform", "empirical"):
            raise OrderFlowError(f"zero-intelligence field 'placement': expected uniform or "
                                 f"empirical, got {self.placement!r}")


def mean_resting_orders(events: pl.DataFrame, start: float, end: float,
                        open_orders: Literal["rest", "drop"] = "rest") -> tuple[float, float]:
    """Time-average resting orders per side on [start, end] by Little's law over lifetimes.

    An order lives from its first event (its add; the window start when its first event is a
    cancel, modify or fill) to its last event if that is a cancel or a fill; otherwise to ``end``
    (``open_orders="rest"``, right for a full-depth feed) or to its last event (``"drop"``, for a
    depth-limited feed such as LOBSTER level N, whose orders may leave the file's window without
    a message: "rest" keeps such orders to the end, "drop" ends them at their last message, so
    the truth lies between). The mean count is the sum of lifetimes clipped to the window over
    its length. Orders resting at the start that never show up (LOBSTER's seeded depth) are
    missed.

    Parameters
    ----------
    events : pl.DataFrame
        Canonical ``events`` (ts_event, action, side, order_id).
    start, end : float
        Window, seconds since the epoch (UTC).

    Returns
    -------
    tuple of float
        (bid, ask) mean resting orders.
    """
    if end <= start:
        raise OrderFlowError(f"events: expected a window longer than 0 s, got [{start}, {end}]")
    live = events.filter(pl.col("action").is_in(["add", "cancel", "modify", "fill"])
                         & pl.col("side").is_in(["bid", "ask"])
                         & pl.col("order_id").is_not_null() & (pl.col("order_id") > 0))
    t = (pl.col("ts_event").dt.epoch("ns").cast(pl.Float64) / 1e9)
    life = live.group_by("order_id", "side").agg(
        pl.when(pl.col("action").first() == "add").then(t.first()).otherwise(start).alias("a"),
        pl.when(pl.col("action").last().is_in(["cancel", "fill"])).then(t.last())
        .otherwise(end if open_orders == "rest" else t.last()).alias("b"))
    span = life.with_columns((pl.min_horizontal("b", pl.lit(end))
                              - pl.max_horizontal("a", pl.lit(start))).clip(0).alias("life"))
    sums = dict(span.group_by("side").agg(pl.col("life").sum()).iter_rows())
    span_s = end - start
    return float(sums.get("bid", 0.0)) / span_s, float(sums.get("ask", 0.0)) / span_s


def book_context(tables: Tables, tokens: pl.DataFrame) -> tuple[pl.DataFrame, tuple[float, float]]:
    """Best quotes before each token and the mean resting orders, from a reader's events.

    Parameters
    ----------
    tables : Tables
        The reader's result the tokens were made from (``event_features_from_tables``).
    tokens : pl.DataFrame
        Its tokens (``event_row`` indexes ``tables.events``).

    Returns
    -------
    quotes : pl.DataFrame
        ``best_bid``, ``best_ask`` (null: empty side), one row per token, the book before it.
    mean_resting : tuple of float
        :func:`mean_resting_orders` over the tokens' span (``open_orders="drop"`` for a
        depth-limited source).

    The quotes come from the source's own levels file where it has one row per event
    (LOBSTER), else from a replay of the events (:func:`tapecast.data.book.replay_tables`).
    """
    if tables.events is None:
        raise OrderFlowError(f"{tables.source}: expected an events table, got none")
    depth = source_depth(tables)
    if depth is not None and tables.levels is not None \
            and tables.levels.height == tables.events.height:
        after = tables.levels  # LOBSTER: the vendor's own book after each message
        first = tables.book_seed
    else:
        after, first = replay_tables(tables, 1).levels, None
    top = top_of_book(after)  # (E, ...) the book after each event
    before = top.select(pl.col("bid_px").shift(1).alias("best_bid"),
                        pl.col("ask_px").shift(1).alias("best_ask"))
    if first is not None and first.height:
        before[0, "best_bid"] = first["bid_px_1"][0]
        before[0, "best_ask"] = first["ask_px_1"][0]
    quotes = before[tokens["event_row"].cast(pl.Int64).to_numpy()]
    ts = tokens["ts"].dt.epoch("ns").cast(pl.Float64) / 1e9
    resting = mean_resting_orders(tables.events, float(ts.min()), float(ts.max()),  # type: ignore[arg-type]
                                  "rest" if depth is None else "drop")
    return quotes, resting


def _distances(tokens: pl.DataFrame, quotes: pl.DataFrame | None, tick: float,
               half_spread_ticks: float) -> NDArray[np.float64]:
    """Tick distance d of each add from the opposite best, shape (A,); NaN where unknown."""
    adds = tokens.with_row_index("_k").filter(pl.col("action") == "add")
    price = adds["price"].to_numpy()
    is_bid = (adds["side"].cast(pl.String) == "bid").to_numpy()
    if quotes is not None:
        rows = adds["_k"].to_numpy()
        bid = quotes["best_bid"].cast(pl.Float64).to_numpy()[rows]
        ask = quotes["best_ask"].cast(pl.Float64).to_numpy()[rows]
        raw = np.where(is_bid, ask - price, price - bid) / tick
    else:
        p_mid = adds["p_mid"].to_numpy()
        raw = np.where(is_bid, p_mid - price, price - p_mid) / tick + half_spread_ticks
    return np.asarray(np.round(raw), dtype=np.float64)


def _market_orders(trades: pl.DataFrame | None) -> NDArray[np.int64]:
    """Sizes of market orders: prints grouped by (ts, side), shape (M,)."""
    if trades is None or trades.height == 0:
        return np.empty(0, dtype=np.int64)
    grouped = trades.group_by("ts", "side", maintain_order=True).agg(pl.col("size").sum())
    return np.asarray(np.maximum(np.round(grouped["size"].to_numpy()), 1), dtype=np.int64)


def _tick_of(prices: NDArray[np.float64]) -> float:
    """Smallest positive gap between distinct prices (rounded to 1e-9)."""
    gaps = np.diff(np.unique(np.round(prices, 9)))
    gaps = gaps[gaps > 1e-12]
    if gaps.size == 0:
        raise OrderFlowError("tokens: field 'price': cannot infer the tick from one price; pass "
                             "tick=")
    return float(np.round(gaps.min(), 9))


def _subsample(values: NDArray[np.int64], k: int, rng: np.random.Generator) -> NDArray[np.int64]:
    if values.shape[0] <= k:
        return values
    return values[np.sort(rng.choice(values.shape[0], k, replace=False))]


@dataclass
class ZeroIntelligenceGenerator:
    """Zero-intelligence order flow as :class:`~tapecast.sim.order_flow.OrderIntent`.

    Attributes
    ----------
    calibration : ZICalibration
    limit_sizes, market_sizes, cancel_sizes : ndarray, shape (K,), int64
        Empirical sizes, each drawn uniformly.
    name : str
    """

    calibration: ZICalibration
    limit_sizes: NDArray[np.int64]
    market_sizes: NDArray[np.int64]
    cancel_sizes: NDArray[np.int64]
    name: str = "zero_intelligence"
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0),
                                      init=False, repr=False)

    def __post_init__(self) -> None:
        for label, sizes in (("limit", self.limit_sizes), ("market", self.market_sizes),
                             ("cancel", self.cancel_sizes)):
            if sizes.shape[0] == 0 or np.any(sizes <= 0):
                raise OrderFlowError(f"zero-intelligence {label} sizes: expected one or more "
                                     f"sizes > 0, got {sizes.shape[0]}")

    @classmethod
    def calibrate(cls, tokens: pl.DataFrame, *, trades: pl.DataFrame | None = None,
                  quotes: pl.DataFrame | None = None,
                  mean_resting: tuple[float, float] | None = None, tick: float | None = None,
                  max_ticks: int | None = None, half_spread_ticks: float = 0.5,
                  placement: Placement = "uniform", max_marks: int = 20_000, seed: int = 0,
                  name: str = "zero_intelligence",
                  source: str = "tokens") -> ZeroIntelligenceGenerator:
        """Calibrate on one source's token table (estimators in the module docstring).

        Parameters
        ----------
        tokens : pl.DataFrame
            ``event_features(...).tokens`` (action, side, price, size, dt, p_mid).
        trades : pl.DataFrame or None
            Trade prints (ts, side, size) of the same span; None: mu = 0.
        quotes : pl.DataFrame or None
            ``best_bid``, ``best_ask`` before each token (:func:`book_context`); None: distances
            from ``p_mid`` and ``half_spread_ticks``.
        mean_resting : tuple of float or None
            (bid, ask) time-average resting orders; required (:func:`book_context` gives it).
        tick : float or None
            Price tick; None: the smallest gap between distinct token prices.
        max_ticks : int or None
            L; None: the 95 % quantile of the observed d >= 1.
        max_marks : int
            Sizes kept per kind (seeded subsample).

        Raises
        ------
        OrderFlowError
            Missing columns, no tokens, no adds, no resting-order count, one distinct price.
        """
        need = {"action", "side", "price", "size", "dt", "p_mid"}
        missing = sorted(need - set(tokens.columns))
        if missing:
            raise OrderFlowError(f"{source}: expected token columns {sorted(need)}, "
                                 f"missing {missing}")
        if tokens.height == 0:
            raise OrderFlowError(f"{source}: expected token events, got none")
        if quotes is not None and quotes.height != tokens.height:
            raise OrderFlowError(f"{source}: expected one quotes row per token, got "
                                 f"{quotes.height} for {tokens.height}")
        if mean_resting is None or min(mean_resting) <= 0:
            raise OrderFlowError(f"{source}: expected mean resting orders per side > 0 "
                                 f"(mean_resting=, see book_context), got {mean_resting}")
        action = tokens["action"].cast(pl.String)
        adds, cancels = tokens.filter(action == "add"), tokens.filter(action == "cancel")
        if adds.height == 0:
            raise OrderFlowError(f"{source}: field 'action': expected add tokens, got none")
        duration = float(tokens["dt"].sum())
        if not duration > 0:
            raise OrderFlowError(f"{source}: field 'dt': expected a span > 0 s, got {duration}")
        tick = tick or _tick_of(tokens["price"].to_numpy())
        d = _distances(tokens, quotes, tick, half_spread_ticks)
        placed = d[np.isfinite(d)]
        if max_ticks is None:
            inside = placed[placed >= 1]
            max_ticks = int(np.quantile(inside, 0.95, method="inverted_cdf")) if inside.size else 1
        in_range = (placed >= 1) & (placed <= max_ticks)
        share_in = float(in_range.mean()) if placed.size else 0.0
        profile = np.bincount(placed[in_range].astype(np.int64), minlength=max_ticks + 1)[1:]
        n_bar = 0.5 * (mean_resting[0] + mean_resting[1])
        market = _market_orders(trades)
        calibration = ZICalibration(
            mu=market.shape[0] / (2 * duration),
            alpha=adds.height * share_in / (2 * max_ticks * duration),
            delta=cancels.height / (2 * duration * n_bar), max_ticks=max_ticks,
            profile=tuple(float(x) for x in profile / max(profile.sum(), 1)), tick=tick,
            placement=placement, duration=duration, n_market=int(market.shape[0]),
            n_adds=adds.height, n_cancels=cancels.height,
            n_adds_marketable=int(np.sum(placed < 1)),
            n_adds_beyond=int(np.sum(placed > max_ticks)),
            n_adds_unplaced=int(d.shape[0] - placed.shape[0]), mean_resting=n_bar)
        rng = np.random.default_rng(seed)
        limit = adds["size"].cast(pl.Int64).to_numpy()
        cancel = cancels["size"].cast(pl.Int64).to_numpy() if cancels.height else limit
        return cls(calibration, _subsample(limit, max_marks, rng),
                   _subsample(market if market.size else limit, max_marks, rng),
                   _subsample(cancel, max_marks, rng), name)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def next(self, view: BookView) -> OrderIntent:
        """The next intent given the book (module docstring for the rule).

        Raises
        ------
        OrderFlowError
            ``view.mid`` is None (a price needs a mid).
        """
        p, rng = self.calibration, self._rng
        if view.mid is None or not view.mid > 0:
            raise OrderFlowError(f"zero-intelligence: expected a book view with a mid price > 0, "
                                 f"got {view.mid} at t={view.t}")
        n_bid, n_ask = view.resting
        rates = np.array([p.mu, p.mu, p.alpha * p.max_ticks, p.alpha * p.max_ticks,
                          p.delta * n_bid, p.delta * n_ask])  # market b/s, limit b/a, cancel b/a
        total = float(rates.sum())
        dt = float(rng.exponential(1.0 / total))
        kind = int(np.searchsorted(np.cumsum(rates), rng.random() * total, side="right"))
        kind = min(kind, 5)
        if kind < 2:
            size = int(self.market_sizes[rng.integers(self.market_sizes.shape[0])])
            return OrderIntent(dt, "market", kind, math.nan, size)
        if kind >= 4:
            side = kind - 4
            size = int(self.cancel_sizes[rng.integers(self.cancel_sizes.shape[0])])
            rank = int(rng.integers(view.resting[side]))
            return OrderIntent(dt, "cancel", side, math.nan, size, order_rank=rank)
        side = kind - 2
        d = (int(rng.integers(1, p.max_ticks + 1)) if p.placement == "uniform"
             else int(rng.choice(p.max_ticks, p=np.asarray(p.profile))) + 1)
        if side == 0:
            opposite = view.best_ask if view.best_ask is not None else view.mid + view.tick / 2
            price = opposite - d * view.tick
        else:
            opposite = view.best_bid if view.best_bid is not None else view.mid - view.tick / 2
            price = opposite + d * view.tick
        size = int(self.limit_sizes[rng.integers(self.limit_sizes.shape[0])])
        return OrderIntent(dt, "add", side, (price - view.mid) / view.mid, size)

    def save(self, path: str | Path) -> None:
        """Calibration and sizes as JSON (atomic write)."""
        data = {"format": FORMAT, "name": self.name, "calibration": asdict(self.calibration),
                "limit_sizes": self.limit_sizes.tolist(),
                "market_sizes": self.market_sizes.tolist(),
                "cancel_sizes": self.cancel_sizes.tolist()}
        atomic_write_text(path, json.dumps(data))

    @classmethod
    def load(cls, path: str | Path) -> ZeroIntelligenceGenerator:
        """Read :meth:`save`'s JSON.

        Raises
        ------
        OrderFlowError
            Not such a file.
        """
        try:
            data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise KeyError("format")
            cal = dict(data["calibration"])
            cal["profile"] = tuple(cal["profile"])
            limit, market, cancel = (np.asarray(data[k], dtype=np.int64)
                                     for k in ("limit_sizes", "market_sizes", "cancel_sizes"))
            return cls(ZICalibration(**cal), limit, market, cancel, str(data["name"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OrderFlowError(f"{path}: expected a {FORMAT} JSON file ({exc})") from None

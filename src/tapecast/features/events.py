"""Token events and their features from the canonical ``events`` table (TradeFM, section 6).

One row per **token event** (an add or a cancel a participant decided), with the causal features
of each (instrument, session), a session being one local calendar day of ``config.time_zone``:

* ``delta_p`` = (p_order - p_mid) / p_mid, p_mid an exponentially weighted VWAP of execution
  prints (weights 2^(-age / half-life)); when the last print is older than ``staleness_s`` or the
  session has none yet, the book mid before the event (same book code as
  :func:`tapecast.data.book.replay_book`); a stale VWAP when the book is one-sided; otherwise the
  event is dropped and counted.
* ``log_size`` = v = log(1 + size).
* ``dt`` = seconds since the previous token of the session on ``ts_recv`` (``ts_event`` where
  ``ts_recv`` is null); 0 for the session's first token and between the two legs of a modify.
* ``drift`` = (p_mid - p_open) / p_open, p_open the session's first print; before it, the
  session's first p_mid (counted in ``before_first_trade``).

Rules (each counted, see :data:`~tapecast.features.events_kernel.COUNTER_NAMES`): snapshot
records (flags & 0x20) seed the book and are no tokens; a modify becomes a cancel of the old size
at the old price plus an add (an unknown order's modify only the add); a cancel or modify whose
order's previous event is a fill within ``outcome_window_s`` is a matching outcome, no token;
trades and fills are no tokens. Each execution enters the VWAP once: a ``trade`` record is a print;
a ``fill`` at the same ``ts_event`` and price as the last trade record, within that trade's size,
is one of its resting-side legs (Databento) and skipped; any other fill is a print (LOBSTER type
4). LOBSTER's reader already maps 1 -> add, 2/3 -> cancel, 4 -> fill, 5/6 -> trade.

>>> from tapecast.data.detect import read
>>> result = event_features_from_tables(read("esh4.mbo.dbn.zst"))  # doctest: +SKIP
>>> result.tokens.columns[:4]  # doctest: +SKIP
['instrument', 'session_date', 'ts', 'ts_recv']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.data import book_core as core
from tapecast.data import book_state as bs
from tapecast.data.book import _columns, seeded, source_depth
from tapecast.data.book_state import ASK, BID, BookState, new_state
from tapecast.data.schemas import TS, Action, BookSide
from tapecast.data.tables import Tables
from tapecast.features import events_kernel as k
from tapecast.features.events_config import EventFeatureConfig

__all__ = ["EventFeatureConfig", "EventFeatureError", "EventFeatures", "EventRecord",
           "StreamingEventFeatures", "event_features", "event_features_from_tables",
           "event_records"]

TOKEN_ACTIONS: Final = ("add", "cancel")
SIDES: Final = ("bid", "ask", "none")
TOKEN_SCHEMA: Final = pl.Schema({
    "instrument": pl.String(), "session_date": pl.Date(), "ts": TS, "ts_recv": TS,
    "event_row": pl.Int64(), "action": pl.Enum(list(TOKEN_ACTIONS)), "side": BookSide,
    "price": pl.Float64(), "size": pl.Int64(), "delta_p": pl.Float64(),
    "log_size": pl.Float64(), "dt": pl.Float64(), "drift": pl.Float64(),
    "book_mid": pl.Boolean(), "p_mid": pl.Float64(), "level": pl.UInt8(),
})
LEVELS: Final = 5
"""Book levels read before each event for a token's ``level``: the count of non-empty price
levels strictly better than the order's price on its side, capped at ``LEVELS`` (so
``level < 5`` means inside the five best levels, as a LOBSTER level-5 file holds them)."""
O_LEVEL: Final = k.N_OUT  # the level column appended to the kernel's rows
_NS: Final = 1_000_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class EventFeatureError(TapecastError):
    """Events that give no token or no mid-price estimate (one-line message)."""


class EventRecord(NamedTuple):
    """One canonical event for the streaming class; timestamps in UTC nanoseconds."""

    ts_event: int
    ts_recv: int | None
    instrument: str
    action: str
    side: str
    price: float | None
    size: int | None
    order_id: int | None
    flags: int | None


@dataclass
class EventFeatures:
    """The token rows and what the rules counted.

    Attributes
    ----------
    tokens : pl.DataFrame
        :data:`TOKEN_SCHEMA` rows, in event order (a modify's cancel before its add).
    counters : dict of (instrument, session date) to dict of str to int
        :data:`~tapecast.features.events_kernel.COUNTER_NAMES` per session.
    """

    tokens: pl.DataFrame
    counters: dict[tuple[str, date], dict[str, int]] = field(default_factory=dict)

    def summary(self) -> pl.DataFrame:
        """Per (instrument, session): every counter, tokens per action/side, book-mid share."""
        by = self.tokens.group_by("instrument", "session_date").agg(
            *[((pl.col("action") == a) & (pl.col("side") == s)).sum().alias(f"{a}_{s}")
              for a in TOKEN_ACTIONS for s in ("bid", "ask")],
            pl.col("book_mid").mean().alias("book_mid_share"))
        rows = [{"instrument": i, "session_date": d, **c} for (i, d), c in self.counters.items()]
        frame = pl.DataFrame(rows, schema_overrides={"session_date": pl.Date()})
        return frame.join(by, on=["instrument", "session_date"], how="left").sort(
            "instrument", "session_date")


def event_features_from_tables(tables: Tables,
                               config: EventFeatureConfig | None = None) -> EventFeatures:
    """:func:`event_features` of a reader's result (its book seed and LOBSTER depth window)."""
    if tables.events is None:
        raise EventFeatureError(f"{tables.source}: expected an events table, this "
                                f"{tables.format} source has none")
    return event_features(tables.events, config, seed=tables.book_seed,
                          depth_window=source_depth(tables), source=tables.source)


def event_features(events: pl.DataFrame, config: EventFeatureConfig | None = None, *,
                   seed: pl.DataFrame | None = None, depth_window: int | None = None,
                   source: str = "events") -> EventFeatures:
    """Token events with their features, per (instrument, session), causally.

    Parameters
    ----------
    events : pl.DataFrame
        Canonical ``events`` (:data:`tapecast.data.schemas.EVENTS`), in venue order.
    config : EventFeatureConfig or None
        Defaults to ``EventFeatureConfig()``.
    seed, depth_window
        The book seed (one instrument) and LOBSTER's depth, as in
        :func:`tapecast.data.book.replay_book`.
    source : str
        Name used in error messages.

    Returns
    -------
    EventFeatures
        ``tokens`` (T rows, :data:`TOKEN_SCHEMA`) and per-session counters.

    Raises
    ------
    EventFeatureError
        No add, cancel or modify outside snapshots; or no mid estimate for any of them.
    """
    cfg = config or EventFeatureConfig()
    _check_has_orders(events, source)
    indexed = events.with_row_index("_row")
    parts: list[NDArray[np.float64]] = []
    counters: dict[tuple[str, date], dict[str, int]] = {}
    for (instrument,), group in indexed.group_by("instrument", maintain_order=True):
        rows, group_counts = _instrument(group, str(instrument), cfg, seed, depth_window, source)
        parts.append(rows)
        counters.update(group_counts)
    out = np.concatenate(parts) if parts else np.empty((0, k.N_OUT + 1))
    out = out[np.argsort(out[:, k.O_ROW], kind="stable")]  # (T, N_OUT + 1)
    _check_has_mid(out, counters, source)
    return EventFeatures(_token_frame(events, out, cfg), counters)


def _check_has_orders(events: pl.DataFrame, source: str) -> None:
    """Raise when no add/cancel/modify lies outside the snapshot records."""
    live = events.filter(pl.col("action").is_in(["add", "cancel", "modify"])
                         & ((pl.col("flags").fill_null(0) & core.F_SNAPSHOT) == 0))
    if live.height == 0:
        raise EventFeatureError(f"{source}: field 'action': expected add, cancel or modify events "
                                f"outside the book snapshot, got none in {events.height} rows")


def _check_has_mid(out: NDArray[np.float64], counters: dict[tuple[str, date], dict[str, int]],
                   source: str) -> None:
    dropped = sum(c["no_mid_dropped"] for c in counters.values())
    if out.shape[0] == 0 and dropped > 0:
        raise EventFeatureError(f"{source}: no mid-price estimate (no trades and never a "
                                f"two-sided book): all {dropped} add/cancel events would be "
                                "dropped")


def _book_config(cols: core.EventColumns, n: int, depth_window: int | None,
                 source: str, flags_null: bool) -> core.LoopConfig:
    """Full-state and fills-reduce decisions as :func:`replay_book` makes them."""
    full_state = n > 0 and (cols.action[0] == core.CLEAR or bool(cols.flags[0] & core.F_SNAPSHOT))
    return core.LoopConfig(LEVELS, full_state, flags_null, source, depth_window, "recall", True)


def _top_levels(state: BookState) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Prices (ticks) and sizes of each side's ``LEVELS`` best levels, both (2, LEVELS),
    best first (size 0: an empty level)."""
    prices = np.zeros((2, LEVELS), dtype=np.int64)
    sizes = np.zeros((2, LEVELS), dtype=np.int64)
    bs.top_n(state, LEVELS, prices, sizes)
    return prices, sizes


def _levels(side: NDArray[np.float64], price: NDArray[np.float64], prices: NDArray[np.int64],
            sizes: NDArray[np.int64]) -> NDArray[np.float64]:
    """Each token's ``level`` (see :data:`LEVELS`) from the book before its event.

    Parameters
    ----------
    side, price : ndarray, shape (T,)
        Token side code (0 bid, 1 ask) and order price.
    prices, sizes : ndarray, int64, shape (2, LEVELS, T)
        The book's best levels before each token's event.
    """
    ticks = np.round(price * k.PRICE_SCALE)  # (T,)
    better_bid = ((prices[BID] > ticks) & (sizes[BID] > 0)).sum(axis=0)  # (T,)
    better_ask = ((prices[ASK] < ticks) & (sizes[ASK] > 0)).sum(axis=0)
    level: NDArray[np.float64] = np.where(side == BID, better_bid, better_ask).astype(np.float64)
    return level


def _instrument(group: pl.DataFrame, instrument: str, cfg: EventFeatureConfig,
                seed: pl.DataFrame | None, depth_window: int | None, source: str,
                ) -> tuple[NDArray[np.float64], dict[tuple[str, date], dict[str, int]]]:
    """Replay one instrument's book, then run the kernel; event rows refer to ``_row``."""
    events = group.drop("_row")
    cols = _columns(events)
    state = new_state(order_capacity=min(max(events.height, 1), 1 << 16))
    if seed is not None:
        state = seeded(state, seed)
    first_px, first_sz = _top_levels(state)
    loop = core.run_loop(cols, state, _book_config(
        cols, events.height, depth_window, source, events["flags"].null_count() == events.height))
    # the best levels *before* each event: the seed's, then the loop's after the previous one
    px = np.concatenate([first_px[:, :, None], loop.prices[:, :, :-1]], axis=2)  # (2, LEVELS, E)
    sz = np.concatenate([first_sz[:, :, None], loop.sizes[:, :, :-1]], axis=2)
    before = np.stack([px[BID, 0], px[ASK, 0], sz[BID, 0], sz[ASK, 0]])  # (4, E)
    dates = _session_dates(events["ts_event"], cfg.time_zone)
    session = np.concatenate([[0], np.cumsum(dates[1:] != dates[:-1])]).astype(np.int64)
    counts = np.zeros((int(session[-1]) + 1 if events.height else 0, len(k.COUNTER_NAMES)),
                      dtype=np.int64)
    t_event = events["ts_event"].dt.epoch("ns").to_numpy().astype(np.int64)
    t_clock = events.select(pl.coalesce("ts_recv", "ts_event").dt.epoch("ns")).to_series()
    out = k.run(cols.action, cols.side, events["price"].fill_null(np.nan).to_numpy(),
                cols.size, cols.order_id, cols.flags, t_event, t_clock.to_numpy().astype(np.int64),
                session, before[0], before[1], before[2], before[3], k.new_orders(), counts,
                _half_life_ns(cfg), _stale_ns(cfg), _window_ns(cfg))
    local = out[:, k.O_ROW].astype(np.int64)  # (T,) event of each token in this group
    level = _levels(out[:, k.O_SIDE], out[:, k.O_PRICE], px[:, :, local], sz[:, :, local])
    out = np.concatenate([out, level[:, None]], axis=1)  # (T, N_OUT + 1)
    out[:, k.O_ROW] = group["_row"].to_numpy()[local]
    starts = np.flatnonzero(np.concatenate([[True], session[1:] != session[:-1]]))
    found = {(instrument, dates[s].item()): dict(zip(k.COUNTER_NAMES, map(int, counts[j]),
                                                     strict=True))
             for j, s in enumerate(starts)}
    return out, found


def _session_dates(ts: pl.Series, time_zone: str) -> NDArray[np.datetime64]:
    """Local calendar date of each timestamp, shape (E,), datetime64[D]."""
    local = ts.dt.convert_time_zone(time_zone).dt.date()
    return local.to_numpy().astype("datetime64[D]")


def _half_life_ns(cfg: EventFeatureConfig) -> float:
    return cfg.half_life_s * _NS


def _stale_ns(cfg: EventFeatureConfig) -> int:
    return round(cfg.staleness_s * _NS)


def _window_ns(cfg: EventFeatureConfig) -> int:
    return -1 if cfg.outcome_window_s is None else round(cfg.outcome_window_s * _NS)


def _token_frame(events: pl.DataFrame, out: NDArray[np.float64],
                 cfg: EventFeatureConfig) -> pl.DataFrame:
    """Assemble :data:`TOKEN_SCHEMA` from the kernel rows (T, N_OUT) and the source events."""
    rows = out[:, k.O_ROW].astype(np.int64)
    src = events[rows] if rows.size else events.clear()
    frame = pl.DataFrame({
        "instrument": src["instrument"],
        "session_date": src["ts_event"].dt.convert_time_zone(cfg.time_zone).dt.date(),
        "ts": src["ts_event"], "ts_recv": src["ts_recv"], "event_row": rows,
        "action": pl.Series(out[:, k.O_ACTION].astype(np.uint8)).cast(pl.UInt32)
        .replace_strict(list(range(2)), list(TOKEN_ACTIONS)),
        "side": pl.Series(out[:, k.O_SIDE].astype(np.uint8)).cast(pl.UInt32)
        .replace_strict(list(range(3)), list(SIDES)),
        "price": out[:, k.O_PRICE], "size": out[:, k.O_SIZE].astype(np.int64),
        "delta_p": out[:, k.O_DELTA_P], "log_size": out[:, k.O_LOG_SIZE],
        "dt": out[:, k.O_DT], "drift": out[:, k.O_DRIFT],
        "book_mid": out[:, k.O_BOOK_MID] == 1.0, "p_mid": out[:, k.O_MID],
        "level": out[:, O_LEVEL].astype(np.uint8),
    })
    return frame.cast(dict(TOKEN_SCHEMA))  # type: ignore[arg-type]


def event_records(events: pl.DataFrame) -> Iterator[EventRecord]:
    """The rows of a canonical ``events`` frame as :class:`EventRecord` (nanosecond clocks)."""
    frame = events.select(
        pl.col("ts_event").dt.epoch("ns"), pl.col("ts_recv").dt.epoch("ns"), "instrument",
        pl.col("action").cast(pl.String), pl.col("side").cast(pl.String), "price", "size",
        "order_id", "flags")
    for row in frame.iter_rows():
        yield EventRecord(*row)


class _InstrumentState:
    """The book, order map and estimator state of one instrument in the streaming class."""

    def __init__(self, first: EventRecord, seed: pl.DataFrame | None, depth_window: int | None,
                 source: str) -> None:
        self.state = new_state()
        if seed is not None:
            self.state = seeded(self.state, seed)
        self.prices, self.sizes = _top_levels(self.state)  # (2, LEVELS) each, before the event
        self.orders = k.new_orders()
        self.fs, self.fi = k.new_session_state()
        self.session: date | None = None
        self.counts = np.zeros(len(k.COUNTER_NAMES), dtype=np.int64)
        one = _record_columns(first)
        self.book_cfg = _book_config(one, 1, depth_window, source, first.flags is None)


def _record_columns(event: EventRecord) -> core.EventColumns:
    """The loop's integer columns of one event (as :func:`tapecast.data.book._columns`)."""
    frame = pl.DataFrame({
        "action": pl.Series([event.action], dtype=Action),
        "side": pl.Series([event.side], dtype=BookSide),
        "price": pl.Series([event.price], dtype=pl.Float64),
        "size": pl.Series([event.size], dtype=pl.Int64),
        "order_id": pl.Series([event.order_id], dtype=pl.UInt64),
        "flags": pl.Series([event.flags], dtype=pl.UInt8),
    })
    return _columns(frame)


class StreamingEventFeatures:
    """Token rows one event at a time, equal bit for bit to :func:`event_features`.

    Parameters
    ----------
    config : EventFeatureConfig or None
        As for :func:`event_features`.
    seeds : dict of str to pl.DataFrame or None
        A book seed per instrument.
    depth_window : int or None
        LOBSTER's depth, as for :func:`event_features`.

    Notes
    -----
    The book's full-state and fills-reduce decisions are taken from each instrument's first
    event (the batch function looks at the whole table; they agree on every reader's output,
    whose flags are all null or all set).
    """

    def __init__(self, config: EventFeatureConfig | None = None, *,
                 seeds: dict[str, pl.DataFrame] | None = None, depth_window: int | None = None,
                 source: str = "stream") -> None:
        self.config = config or EventFeatureConfig()
        self._seeds = seeds or {}
        self._depth_window = depth_window
        self._source = source
        self._zone = ZoneInfo(self.config.time_zone)
        self._instruments: dict[str, _InstrumentState] = {}
        self._row = 0
        self._buf = np.empty((2, k.N_OUT), dtype=np.float64)
        self.counters: dict[tuple[str, date], dict[str, int]] = {}

    def update(self, event: EventRecord) -> list[dict[str, Any]]:
        """Feed one event; returns its token rows (0, 1 or 2 dicts of :data:`TOKEN_SCHEMA`)."""
        st = self._instruments.get(event.instrument)
        if st is None:
            st = _InstrumentState(event, self._seeds.get(event.instrument),
                                  self._depth_window, self._source)
            self._instruments[event.instrument] = st
        day = datetime.fromtimestamp(event.ts_event // _NS, tz=self._zone).date()
        if day != st.session:
            st.fs, st.fi = k.new_session_state()
            st.session = day
            st.counts = np.zeros(len(k.COUNTER_NAMES), dtype=np.int64)
        cols = _record_columns(event)
        price = np.nan if event.price is None else float(event.price)
        clock = event.ts_event if event.ts_recv is None else event.ts_recv
        bid_px, ask_px = int(st.prices[BID, 0]), int(st.prices[ASK, 0])
        bid_sz, ask_sz = int(st.sizes[BID, 0]), int(st.sizes[ASK, 0])
        n = k.step(self._row, cols.action[0], cols.side[0], price, cols.size[0],
                   cols.order_id[0], cols.flags[0], event.ts_event, clock, bid_px, ask_px,
                   bid_sz, ask_sz, st.orders, st.fs, st.fi, st.counts,
                   _half_life_ns(self.config), _stale_ns(self.config), _window_ns(self.config),
                   self._buf)
        level = _levels(self._buf[:n, k.O_SIDE], self._buf[:n, k.O_PRICE],
                        np.repeat(st.prices[:, :, None], n, axis=2),
                        np.repeat(st.sizes[:, :, None], n, axis=2))  # (n,)
        loop = core.run_loop(cols, st.state, st.book_cfg)
        st.state = loop.state
        st.prices, st.sizes = loop.prices[:, :, 0].copy(), loop.sizes[:, :, 0].copy()
        self.counters[(event.instrument, day)] = dict(
            zip(k.COUNTER_NAMES, map(int, st.counts), strict=True))
        self._row += 1
        return [self._row_dict(event, day, self._buf[j], int(level[j])) for j in range(n)]

    def _row_dict(self, event: EventRecord, day: date, row: NDArray[np.float64],
                  level: int) -> dict[str, Any]:
        return {
            "instrument": event.instrument, "session_date": day,
            "ts": event.ts_event, "ts_recv": event.ts_recv, "event_row": int(row[k.O_ROW]),
            "action": TOKEN_ACTIONS[int(row[k.O_ACTION])], "side": SIDES[int(row[k.O_SIDE])],
            "price": float(row[k.O_PRICE]), "size": int(row[k.O_SIZE]),
            "delta_p": float(row[k.O_DELTA_P]), "log_size": float(row[k.O_LOG_SIZE]),
            "dt": float(row[k.O_DT]), "drift": float(row[k.O_DRIFT]),
            "book_mid": bool(row[k.O_BOOK_MID] == 1.0), "p_mid": float(row[k.O_MID]),
            "level": level,
        }

    def snapshot(self, instrument: str
                 ) -> tuple[BookState, NDArray[np.float64], NDArray[np.int64]]:
        """Copies of ``instrument``'s book state and mid-estimator state (float, int arrays of
        :mod:`~tapecast.features.events_kernel`) after the events fed so far: where a
        closed-loop simulation continues from a real session.

        Raises
        ------
        TapecastError
            When no event of ``instrument`` was fed.
        """
        st = self._instruments.get(instrument)
        if st is None:
            raise TapecastError(f"streaming event features: no event of {instrument!r} yet")
        book = BookState(*(np.array(a, copy=True) for a in st.state))
        return book, st.fs.copy(), st.fi.copy()

    @staticmethod
    def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
        """Collect streamed rows into a :data:`TOKEN_SCHEMA` frame (ns clocks -> datetimes)."""
        frame = pl.DataFrame(rows, schema_overrides={"ts": pl.Int64, "ts_recv": pl.Int64},
                             infer_schema_length=None)
        if frame.height == 0:
            return pl.DataFrame(schema=TOKEN_SCHEMA)
        frame = frame.with_columns(pl.col("ts", "ts_recv").cast(pl.Datetime("ns", "UTC")))
        return frame.cast(dict(TOKEN_SCHEMA))  # type: ignore[arg-type]

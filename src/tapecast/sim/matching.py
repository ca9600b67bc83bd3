"""A deterministic matching engine on the data layer's book state (issue 15, "Matching engine").

:class:`MatchingEngine` holds one :class:`~tapecast.data.book_state.BookState` and matches orders
on it with the compiled kernels of :mod:`tapecast.sim.matching_core` (rules there and in
``docs/matching.md``): integer ticks, price-time priority, partial fills, marketable limit
orders, market orders, cancels by id or by the newest order near a price (generated cancels carry
no id). It starts empty, from a book (:meth:`MatchingEngine.from_book`) or from venue events
replayed as reported (:meth:`MatchingEngine.from_events`, which *is*
:func:`tapecast.data.book_core.run_loop`, the loop behind ``tapecast book``), and the matching
continues from that very state.

>>> eng = MatchingEngine()
>>> eng.add("ask", 101, 5).rested
5
>>> r = eng.add("bid", 102, 7)          # crosses: 5 traded at 101, 2 rest at 102
>>> (r.filled, r.rested, eng.best("bid"))
(5, 2, (102, 2))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.data import book_core as core
from tapecast.data import book_state as bs
from tapecast.data.book import seeded
from tapecast.data.book_orders import BookError, OrderBook, _check_size, _integer
from tapecast.data.book_state import ASK, BID, BookState
from tapecast.data.schemas import EVENTS, levels_schema
from tapecast.sim import matching_core as mc

Side = Literal["bid", "ask"] | int  # or the codes BID = 0, ASK = 1
_SIDE_NAMES = ("bid", "ask", "none")
_ACTION_NAMES = ("add", "cancel", "modify", "trade", "fill", "clear")
TRADE_COLUMNS = ("ts", "price", "size", "aggressor_side", "resting_id", "aggressor_id")


@dataclass(frozen=True)
class AddResult:
    """What one add did: its ``order_id``, the size ``filled`` on arrival and the size
    ``rested`` in the book (a market order rests nothing), in ``n_trades`` fills."""

    order_id: int
    filled: int
    rested: int
    n_trades: int


@dataclass(frozen=True)
class StreamResult:
    """Per operation of :meth:`MatchingEngine.run`: ``order_ids`` (the id an add or market
    order got, the id a cancel hit: 0 anonymous size, -1 none) and ``sizes`` (filled or
    cancelled), (E,) int64 each."""

    order_ids: NDArray[np.int64]
    sizes: NDArray[np.int64]


class MatchingEngine:
    """Price-time priority matching on one instrument's book.

    Parameters
    ----------
    order_capacity : int
        Initial room for resting orders (the book and the buffers grow when needed).
    next_order_id : int
        The id of the first new order (ids increase by one per add or market order).
    """

    def __init__(self, order_capacity: int = 1024, *, next_order_id: int = 1) -> None:
        self._start(bs.new_state(order_capacity), next_order_id)

    def _start(self, state: BookState, next_order_id: int) -> None:
        self._state = state
        self._trades = np.zeros((256, mc.TRADE_FIELDS), dtype=np.int64)
        self._log = np.zeros((1024, mc.LOG_FIELDS), dtype=np.int64)
        self._counts = np.zeros(len(mc.COUNTER_NAMES), dtype=np.int64)
        self._counts[mc.C_NEXT_ID] = _integer(next_order_id, "next_order_id", low=1)
        self._counts[mc.C_SUBMITTED] = self._resting()
        self._initial = _snapshot(state)
        self._initial_anon = _anonymous_levels(state)

    # ------------------------------------------------------------ construction

    @classmethod
    def from_book(cls, book: OrderBook | BookState, *, next_order_id: int | None = None
                  ) -> MatchingEngine:
        """An engine on a copy of ``book`` (named orders and anonymous size); new ids start
        above every id in it unless ``next_order_id`` is given (it must be above them)."""
        state = book.state if isinstance(book, OrderBook) else book
        state = BookState(*(a.copy() for a in state))
        top = _max_id(state)
        if next_order_id is not None and next_order_id <= top:
            raise BookError(f"matching engine, field 'next_order_id': expected an id above the "
                            f"book's largest order id {top}, got {next_order_id!r}")
        eng = cls.__new__(cls)
        eng._start(state, top + 1 if next_order_id is None else next_order_id)
        return eng

    @classmethod
    def from_events(cls, events: pl.DataFrame, tick_size: float, *, n_levels: int = 10,
                    seed: pl.DataFrame | None = None, full_state: bool | None = None,
                    depth_window: int | None = None, source: str = "events",
                    ) -> tuple[MatchingEngine, core.LoopResult]:
        """Replay venue ``events`` (one instrument) as reported, with no matching, then match on.

        The replay is :func:`tapecast.data.book_core.run_loop` with the settings
        :func:`tapecast.data.book.replay_book` picks (fills reduce only without Databento flags;
        forgotten orders recalled; uncrossed under a depth window), on prices in ticks of
        ``tick_size`` instead of 1e-9: so its top-N equals ``replay_book``'s at every event.

        Returns
        -------
        engine : MatchingEngine
            On the book after the last event; new ids above every id seen.
        loop : LoopResult
            ``prices, sizes`` (2, n_levels, E) int64 (prices in ticks of ``tick_size``) and the
            replay's counters.

        Raises
        ------
        TapecastError
            When the events hold several instruments.
        ReplayError
            In a full-state replay, on an impossible event (as ``replay_book``).
        """
        if events.height and events["instrument"].n_unique() > 1:
            raise TapecastError(f"{source}: the matching engine holds one instrument's book, "
                                "and the events hold several; split them by instrument first")
        cols = _event_columns(events, tick_size)
        if full_state is None:
            full_state = len(cols.action) > 0 and (
                cols.action[0] == core.CLEAR or bool(cols.flags[0] & core.F_SNAPSHOT))
        fills_reduce = events.height == 0 or events["flags"].null_count() == events.height
        state = bs.new_state(order_capacity=max(16, min(events.height, 1 << 16)))
        if seed is not None:
            state = seeded(state, seed, tick_size=tick_size)
        cfg = core.LoopConfig(n_levels, full_state, fills_reduce, source, depth_window)
        loop = core.run_loop(cols, state, cfg)
        top = max(_max_id(loop.state), int(cols.order_id.max(initial=0)))
        eng = cls.__new__(cls)
        eng._start(loop.state, top + 1)
        return eng, loop

    # ------------------------------------------------------------ operations

    def add(self, side: Side, price: int, size: int, ts: int = 0, order_id: int | None = None
            ) -> AddResult:
        """A limit order: executes against the opposite side while it crosses ``price``, the
        remainder rests at ``price``. Its id is ``order_id`` (> 0, not resting; later new ids
        go above it) or else the next new id."""
        code = _side(side)
        tick = _integer(price, "price", low=-(2**63 - 1))
        before = int(self._counts[mc.C_N_TRADES])
        oid, filled = self._apply(mc.OP_LIMIT, code, tick, _check_size(size, "size"),
                                  self._new_id(order_id), ts)
        return AddResult(oid, filled, int(size) - filled,
                         int(self._counts[mc.C_N_TRADES]) - before)

    def market(self, side: Side, size: int, ts: int = 0) -> int:
        """A market order on ``side``; returns the size filled (the rest is dropped, counted
        in ``dropped_market``)."""
        return self._apply(mc.OP_MARKET, _side(side), 0, _check_size(size, "size"), 0,
                           ts)[1]

    def cancel_near(self, side: Side, price: int, size: int | None = None, ts: int = 0) -> int:
        """Cancel the newest order at the level of ``side`` nearest ``price`` (ties toward the
        touch), all of it or ``size`` of it; anonymous size where the level has no order.
        Returns the size cancelled (0: the side is empty, counted in ``dropped_cancels``)."""
        qty = 0 if size is None else _check_size(size, "size")
        tick = _integer(price, "price", low=-(2**63 - 1))
        return self._apply(mc.OP_CANCEL_NEAR, _side(side), tick, qty, 0, ts)[1]

    def cancel(self, order_id: int, size: int | None = None, ts: int = 0) -> int:
        """Cancel ``size`` (all when None or more than it has) of order ``order_id``; returns
        the size cancelled (0: no such resting order, counted in ``dropped_cancels``)."""
        qty = 0 if size is None else _check_size(size, "size")
        return self._apply(mc.OP_CANCEL, BID, 0, qty, _integer(order_id, "order_id"), ts)[1]

    def run(self, ops: NDArray[np.int64], sides: NDArray[np.int64], prices: NDArray[np.int64],
            sizes: NDArray[np.int64], ts: NDArray[np.int64] | None = None,
            order_ids: NDArray[np.int64] | None = None) -> StreamResult:
        """Apply a stream of operations in one compiled loop (:func:`match_orders`).

        Parameters
        ----------
        ops, sides, prices, sizes : ndarray, int64, shape (E,)
            ``matching_core.OP_*`` codes, ``BID``/``ASK``, prices in ticks (ignored by market
            orders), sizes (> 0 for orders; a cancel's ``<= 0`` means all). Not checked.
        ts, order_ids : ndarray, int64, shape (E,), optional
            Timestamps (default 0) and the ids ``OP_CANCEL`` cancels.
        """
        n = len(ops)
        ts = np.zeros(n, np.int64) if ts is None else np.ascontiguousarray(ts, np.int64)
        ids = np.zeros(n, np.int64) if order_ids is None else np.ascontiguousarray(order_ids,
                                                                                   np.int64)
        out_ids, out_sizes = np.empty(n, np.int64), np.empty(n, np.int64)
        arrays = [np.ascontiguousarray(a, np.int64) for a in (ops, sides, prices, sizes)]
        self._state, self._trades, self._log = match_orders(
            self._state, *arrays, ids, ts, self._trades, self._log, self._counts,
            out_ids, out_sizes)
        return StreamResult(out_ids, out_sizes)

    def _new_id(self, order_id: int | None) -> int:
        """0 (the next new id) or a checked caller-given id."""
        if order_id is None:
            return 0
        oid = _integer(order_id, "order_id", low=1)
        if bs.find_order(self._state, oid) >= 0:
            raise BookError(f"matching engine, field 'order_id': expected an order id not "
                            f"already resting, got {order_id!r}")
        return oid

    def _apply(self, op: int, side: int, price: int, size: int, order_id: int, ts: int
               ) -> tuple[int, int]:
        st = bs.reserve(self._state)
        self._state = st
        bound = int(mc.fills_bound(st, side))
        self._trades = mc._grown_rows(self._trades, int(self._counts[mc.C_N_TRADES]) + bound)
        self._log = mc._grown_rows(self._log, int(self._counts[mc.C_N_LOG]) + 3 * bound + 1)
        oid, q = mc.apply_op(st, op, side, price, size, order_id, _integer(ts, "ts"),
                             self._trades, self._log, self._counts)
        return int(oid), int(q)

    # ------------------------------------------------------------ views

    @property
    def state(self) -> BookState:
        """The book's arrays (replaced when they grow)."""
        return self._state

    def best(self, side: Side) -> tuple[int, int] | None:
        """``(price, size)`` of ``side``'s best level, or None when it is empty."""
        lvl = int(bs.best_level(self._state, _side(side)))
        if lvl < 0:
            return None
        return int(self._state.levels[lvl, bs.L_PRICE]), int(self._state.levels[lvl, bs.L_SIZE])

    def mid(self) -> float | None:
        """The mid price in ticks, or None when a side is empty."""
        bid, ask = self.best("bid"), self.best("ask")
        return None if bid is None or ask is None else (bid[0] + ask[0]) / 2

    def top_n(self, n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Prices and sizes, (2, n) int64 each: row 0 bids, row 1 asks, best first; an empty
        level has price 0 and size 0."""
        prices = np.zeros((2, n), dtype=np.int64)
        sizes = np.zeros((2, n), dtype=np.int64)
        bs.top_n(self._state, n, prices, sizes)
        return prices, sizes

    def queue(self, side: Side, price: int) -> list[tuple[int, int]]:
        """``(order_id, size)`` at ``price`` in time priority (anonymous size not included)."""
        lvl = bs.find_level(self._state, _side(side), price)
        if lvl < 0:
            return []
        ids, sizes = bs.level_queue(self._state, lvl)
        return list(zip(ids.tolist(), sizes.tolist(), strict=True))

    def anonymous(self, side: Side, price: int) -> int:
        """The anonymous (seeded) size at ``price``."""
        lvl = bs.find_level(self._state, _side(side), price)
        return 0 if lvl < 0 else int(self._state.levels[lvl, bs.L_ANON])

    def content_hash(self) -> int:
        """:func:`tapecast.data.book_state.content_hash` of the book."""
        return int(bs.content_hash(self._state))

    @property
    def counters(self) -> dict[str, int]:
        """``submitted`` (initial resting size + every order's size), ``traded`` (volume, each
        fill once), ``cancelled``, ``dropped_market`` (market remainders), ``dropped_cancels``
        (cancels that found nothing: a count), ``resting`` (the book's size), ``n_trades``.
        Conservation: ``resting + 2 * traded + cancelled + dropped_market == submitted``."""
        c = self._counts
        return {"submitted": int(c[mc.C_SUBMITTED]), "traded": int(c[mc.C_TRADED]),
                "cancelled": int(c[mc.C_CANCELLED]),
                "dropped_cancels": int(c[mc.C_DROPPED_CANCELS]),
                "dropped_market": int(c[mc.C_DROPPED_MARKET]), "resting": self._resting(),
                "n_trades": int(c[mc.C_N_TRADES])}

    @property
    def n_trades(self) -> int:
        """How many fills so far (the ``since`` of :meth:`trades` for the next ones)."""
        return int(self._counts[mc.C_N_TRADES])

    @property
    def next_order_id(self) -> int:
        """The id the next add or market order gets."""
        return int(self._counts[mc.C_NEXT_ID])

    def trades(self, since: int = 0) -> dict[str, NDArray[np.int64]]:
        """Every fill from trade ``since`` on: ``ts, price, size, aggressor_side (0 bid, 1 ask),
        resting_id (0: anonymous size), aggressor_id``, (T,) int64 each."""
        rows = self._trades[since:int(self._counts[mc.C_N_TRADES])]  # (T, 6)
        return {name: rows[:, j].copy() for j, name in enumerate(TRADE_COLUMNS)}

    def events(self, tick_size: float, instrument: str, *, initial: bool = True
               ) -> pl.DataFrame:
        """The canonical ``events`` table (:data:`tapecast.data.schemas.EVENTS`) of the book.

        ``initial``: first the starting book's named orders as adds in time priority (after a
        ``clear`` when it has no anonymous size, so the table replays as a full state), then every
        event the engine produced, as Databento MBO reports them: per fill a ``trade`` on the
        aggressor side (its order id), a ``fill`` and a ``cancel`` of the resting order; an
        ``add`` for a rested remainder; a ``cancel`` per cancel (order id 0: anonymous size).
        ``flags`` F_LAST (0x80) ends each operation. ``ts_event`` = the ``ts`` given (ns; the
        starting book's rows take the first operation's);
        ``sequence`` the row number. A starting book with anonymous size replays with
        ``seed=eng.seed(...)`` and ``full_state=False``.
        """
        rows = self._log[:int(self._counts[mc.C_N_LOG])]  # (K, 7)
        if initial:
            start = self._initial.copy()
            start[:, mc.E_TS] = rows[0, mc.E_TS] if len(rows) else 0
            rows = np.concatenate([start, rows])
        return _events_frame(rows, tick_size, instrument)

    def seed(self, tick_size: float, instrument: str) -> pl.DataFrame:
        """The starting book's anonymous size as a one-row ``levels`` frame (a replay seed)."""
        anon = self._initial_anon
        n = max(1, *(sum(1 for a in anon if a[0] == s) for s in (BID, ASK)))
        row: dict[str, Any] = {"ts": None, "instrument": instrument}
        for side, name in ((ASK, "ask"), (BID, "bid")):
            mine = [a for a in anon if a[0] == side]
            for i in range(n):
                px = mine[i][1] * tick_size if i < len(mine) else None
                row[f"{name}_px_{i + 1}"] = px
                row[f"{name}_sz_{i + 1}"] = mine[i][2] if i < len(mine) else None
        return pl.DataFrame([row], schema=levels_schema(n))

    def _resting(self) -> int:
        st = self._state
        total = 0
        for side in (BID, ASK):
            d = int(st.meta[bs.M_DEPTH + side])
            total += int(st.levels[st.ladder[side, :d], bs.L_SIZE].sum())
        return total


def match_orders(*args: Any) -> tuple[BookState, NDArray[np.int64], NDArray[np.int64]]:
    """:func:`tapecast.sim.matching_core.match_orders` (the compiled stream loop)."""
    st, trades, log = mc.match_orders(*args)
    return BookState(*st), trades, log


# ---------------------------------------------------------------- helpers


def _side(side: object) -> int:
    """``"bid"``/``"ask"`` or ``BID``/``ASK`` (0/1, numpy integers too) as the code."""
    if isinstance(side, str) and side in _SIDE_NAMES[:2]:
        return _SIDE_NAMES.index(side)
    if isinstance(side, int | np.integer) and not isinstance(side, bool) and side in (BID, ASK):
        return int(side)
    raise BookError(f"matching engine, field 'side': expected 'bid', 'ask', 0 or 1, "
                    f"got {side!r}")


def _max_id(state: BookState) -> int:
    """The largest order id in the book's id table (0 when none)."""
    slots = state.table[state.table >= 0]
    return int(state.orders[slots, bs.O_ID].max(initial=0))


def _anonymous_levels(state: BookState) -> list[tuple[int, int, int]]:
    """``(side, price, anonymous size)`` of every level holding some, best first per side."""
    out = []
    for side in (BID, ASK):
        d = int(state.meta[bs.M_DEPTH + side])
        for r in range(d):
            lvl = int(state.ladder[side, d - 1 - r])
            if state.levels[lvl, bs.L_ANON] > 0:
                out.append((side, int(state.levels[lvl, bs.L_PRICE]),
                            int(state.levels[lvl, bs.L_ANON])))
    return out


def _snapshot(state: BookState) -> NDArray[np.int64]:
    """The book's named orders as log rows (a clear first when there is no anonymous size)."""
    rows: list[list[int]] = []
    anon = False
    for side in (BID, ASK):
        d = int(state.meta[bs.M_DEPTH + side])
        for r in range(d):
            lvl = int(state.ladder[side, d - 1 - r])
            anon |= bool(state.levels[lvl, bs.L_ANON] > 0)
            price = int(state.levels[lvl, bs.L_PRICE])
            ids, sizes = bs.level_queue(state, lvl)
            rows += [[0, core.ADD, side, price, int(q), int(o), 0]
                     for o, q in zip(ids, sizes, strict=True)]
    if not anon:
        rows.insert(0, [0, core.CLEAR, core.NONE, 0, 0, 0, 0])
    if rows:
        rows[-1][mc.E_FLAGS] = core.F_LAST
    return np.array(rows, dtype=np.int64).reshape(-1, mc.LOG_FIELDS)


def _events_frame(rows: NDArray[np.int64], tick_size: float, instrument: str) -> pl.DataFrame:
    """Log rows (K, 7) -> the canonical events frame."""
    action = rows[:, mc.E_ACTION]
    is_clear = action == core.CLEAR
    price = pl.Series(rows[:, mc.E_PRICE] * tick_size).set(pl.Series(is_clear), None)
    ts = pl.Series(rows[:, mc.E_TS]).cast(pl.Datetime("ns", "UTC"))
    frame = pl.DataFrame({
        "ts_event": ts,
        "ts_recv": pl.Series([None] * len(rows), dtype=pl.Datetime("ns", "UTC")),
        "instrument": [instrument] * len(rows),
        "action": pl.Series(np.take(_ACTION_NAMES, action)),
        "side": pl.Series(np.take(_SIDE_NAMES, rows[:, mc.E_SIDE])),
        "price": price,
        "size": rows[:, mc.E_SIZE],
        "order_id": rows[:, mc.E_ID].astype(np.uint64),
        "flags": rows[:, mc.E_FLAGS].astype(np.uint8),
        "sequence": np.arange(len(rows), dtype=np.int64),
    })
    return frame.select([pl.col(c).cast(t) for c, t in EVENTS.items()])


def _event_columns(events: pl.DataFrame, tick_size: float) -> core.EventColumns:
    """The loop's integer columns of ``events``, prices in ticks of ``tick_size``."""
    def ints(name: str, null: int) -> NDArray[np.int64]:
        col = events[name]
        if isinstance(col.dtype, pl.Enum):
            col = col.to_physical()
        return col.cast(pl.Int64).fill_null(null).to_numpy().astype(np.int64, copy=False)

    ticks = (events["price"].cast(pl.Float64) / tick_size).round().cast(pl.Int64).fill_null(0)
    return core.EventColumns(
        action=ints("action", core.TRADE), side=ints("side", core.NONE),
        price=ticks.to_numpy().astype(np.int64, copy=False), size=ints("size", 0),
        order_id=ints("order_id", 0), flags=ints("flags", core.F_LAST))



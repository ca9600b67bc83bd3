"""One L3 order book, one operation per call: the book-state kernels from Python, with checks.

:class:`OrderBook` wraps a :class:`~tapecast.data.book_state.BookState` and the same numba
kernels the replay loop runs (:mod:`tapecast.data.book_core`), so a matching engine or a test
drives exactly the state code the replay uses. Every call checks its arguments and raises
:class:`BookError` (a one-line :class:`~tapecast.core.errors.TapecastError`) instead of
corrupting the book; the compiled loops call the kernels directly and skip the checks.

Prices are integer ticks, sizes positive integers; ``side`` is ``"bid"`` or ``"ask"``.
Priority is price, then time: each level is a FIFO queue; an order that changes price or grows
goes to the back, one that shrinks keeps its place (Databento's and CME's rule).

>>> book = OrderBook()
>>> book.add(1, "bid", 100, 5)
>>> book.add(2, "bid", 100, 3)
>>> book.queue("bid", 100)
[(1, 5), (2, 3)]
>>> book.execute(1, 2)
3
>>> book.best("bid")
(100, 6)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.data import book_state as bs
from tapecast.data.book_state import ASK, BID, L_COUNT, L_PRICE, L_SIZE, M_DEPTH, M_ORDERS

Side = Literal["bid", "ask"]
_SIDE_CODES: dict[str, int] = {"bid": BID, "ask": ASK}
_SIDE_NAMES: dict[int, Side] = {BID: "bid", ASK: "ask"}


class BookError(TapecastError):
    """An operation the book cannot apply: an unknown or live order id, a bad side or size."""


@dataclass(frozen=True)
class RestingOrder:
    """One resting order: ``price`` in ticks, ``size`` > 0."""

    order_id: int
    side: Side
    price: int
    size: int


@dataclass(frozen=True)
class Level:
    """One price level: total ``size`` and the number of orders queued at ``price``."""

    price: int
    size: int
    count: int


class OrderBook:
    """An L3 book with add / cancel / modify / execute / clear, top-N and a content hash.

    Parameters
    ----------
    order_capacity, level_capacity : int
        Initial room; the arrays double when full.
    """

    def __init__(self, order_capacity: int = 1024, level_capacity: int = 256) -> None:
        self._state = bs.new_state(order_capacity, level_capacity)

    @property
    def state(self) -> bs.BookState:
        """The underlying arrays (for compiled code; replaced when the book grows)."""
        return self._state

    def __len__(self) -> int:
        return int(self._state.meta[M_ORDERS])

    def __contains__(self, order_id: object) -> bool:
        return isinstance(order_id, int) and bs.find_order(self._state, order_id) >= 0

    # ------------------------------------------------------------ operations

    def add(self, order_id: int, side: Side, price: int, size: int) -> None:
        """Rest a new order at the back of its price level's queue."""
        code = _side_code(side)
        _check_size(size, "size")
        if bs.find_order(self._state, order_id) >= 0:
            raise BookError(f"order book, field 'order_id': expected an order id not already "
                            f"resting, got {order_id!r}")
        self._state = bs.reserve(self._state)
        bs.add_order(self._state, order_id, code, int(price), size)

    def cancel(self, order_id: int, size: int | None = None) -> int:
        """Take ``size`` off the order (all of it when None); returns the size left (0: gone).
        A partial cancel keeps the order's place in its queue."""
        slot = self._slot(order_id)
        have = int(self._state.orders[slot, bs.O_SIZE])
        if size is None:
            size = have
        _check_size(size, "size", at_most=have)
        bs.cancel_order(self._state, slot, size)
        return have - size

    def execute(self, order_id: int, size: int) -> int:
        """Fill ``size`` (<= the resting size) of the order; returns the size left (0: gone)."""
        slot = self._slot(order_id)
        have = int(self._state.orders[slot, bs.O_SIZE])
        _check_size(size, "size", at_most=have)
        return have - int(bs.execute_order(self._state, slot, size))

    def modify(self, order_id: int, price: int, size: int) -> None:
        """Give the order a new price and size (same side). It keeps its place when only its
        size shrinks; otherwise it goes to the back of its (new) level."""
        slot = self._slot(order_id)
        _check_size(size, "size")
        self._state = bs.reserve(self._state)
        side = self._state.orders[slot, bs.O_SIDE]
        bs.modify_order(self._state, slot, side, int(price), size)

    def clear(self) -> None:
        """Remove every order."""
        bs.clear(self._state)

    # ------------------------------------------------------------ views

    def order(self, order_id: int) -> RestingOrder | None:
        """The resting order ``order_id``, or None."""
        slot = bs.find_order(self._state, order_id)
        if slot < 0:
            return None
        row = self._state.orders[slot]
        return RestingOrder(order_id, _SIDE_NAMES[int(row[bs.O_SIDE])], int(row[bs.O_PRICE]),
                            int(row[bs.O_SIZE]))

    def depth(self, side: Side) -> int:
        """How many price levels ``side`` has."""
        return int(self._state.meta[M_DEPTH + _side_code(side)])

    def levels(self, side: Side, n: int | None = None) -> list[Level]:
        """``side``'s best ``n`` levels (all when None), best first."""
        code = _side_code(side)
        st = self._state
        d = int(st.meta[M_DEPTH + code])
        out = []
        for r in range(d if n is None else min(n, d)):
            lvl = st.ladder[code, d - 1 - r]
            out.append(Level(int(st.levels[lvl, L_PRICE]), int(st.levels[lvl, L_SIZE]),
                             int(st.levels[lvl, L_COUNT])))
        return out

    def best(self, side: Side) -> tuple[int, int] | None:
        """``(price, size)`` of ``side``'s best level, or None when the side is empty."""
        top = self.levels(side, 1)
        return (top[0].price, top[0].size) if top else None

    def top_n(self, n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Prices and sizes of each side's best ``n`` levels.

        Returns
        -------
        prices, sizes : ndarray, int64, shape (2, n)
            Row 0 bids, row 1 asks, best first; an empty level has size 0 and price 0.
        """
        prices = np.zeros((2, n), dtype=np.int64)
        sizes = np.zeros((2, n), dtype=np.int64)
        bs.top_n(self._state, n, prices, sizes)
        return prices, sizes

    def queue(self, side: Side, price: int) -> list[tuple[int, int]]:
        """``(order_id, size)`` of the orders at ``price``, in time priority (first to fill
        first); empty when there is no level there."""
        lvl = bs.find_level(self._state, _side_code(side), int(price))
        if lvl < 0:
            return []
        ids, sizes = bs.level_queue(self._state, lvl)
        return list(zip(ids.tolist(), sizes.tolist(), strict=True))

    def content_hash(self) -> int:
        """64-bit hash of the book's content (levels and their queues): equal books hash equal,
        however they were built."""
        return int(bs.content_hash(self._state))

    def _slot(self, order_id: int) -> int:
        slot = int(bs.find_order(self._state, order_id))
        if slot < 0:
            raise BookError(f"order book, field 'order_id': expected a resting order, "
                            f"got {order_id!r}")
        return slot


def _side_code(side: str) -> int:
    if side not in _SIDE_CODES:
        raise BookError(f"order book, field 'side': expected 'bid' or 'ask', got {side!r}")
    return _SIDE_CODES[side]


def _check_size(size: int, field: str, at_most: int | None = None) -> None:
    if not isinstance(size, int | np.integer) or size <= 0:
        raise BookError(f"order book, field '{field}': expected a positive integer size, "
                        f"got {size!r}")
    if at_most is not None and size > at_most:
        raise BookError(f"order book, field '{field}': expected at most the resting size "
                        f"{at_most}, got {size!r}")

"""One L3 order book, one operation per call: the book-state kernels from Python, with checks.

:class:`OrderBook` wraps a :class:`~tapecast.data.book_state.BookState` and the same numba
kernels the replay loop runs (:mod:`tapecast.data.book_core`), so a matching engine or a test
drives exactly the state code the replay uses. Every call checks its arguments and raises
:class:`BookError` (a one-line :class:`~tapecast.core.errors.TapecastError`) instead of
corrupting the book; the compiled loops call the kernels directly and skip the checks.

Order ids and prices (integer ticks) are integers that fit in int64, sizes positive integers;
``int``, numpy integers and whole floats (``100.0``) are taken, anything else (``99.7``, a bool,
a string, ``2**63``) is a :class:`BookError`. ``side`` is ``"bid"`` or ``"ask"``.
Priority is price, then time: each level is a FIFO queue; an order that changes price or grows
goes to the back, one that shrinks or keeps its size at the same price keeps its place
(Databento's and CME's rule).

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
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.data import book_state as bs
from tapecast.data.book_state import ASK, BID, L_COUNT, L_PRICE, L_SIZE, M_DEPTH, M_ORDERS

Side = Literal["bid", "ask"]
Integer = int | np.integer[Any]  # what the checks take (a whole float too, at run time)
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
        """Whether ``order_id`` rests in the book (False for a value that is no order id)."""
        try:
            oid = _integer(order_id, "order_id")
        except BookError:
            return False
        return bool(bs.find_order(self._state, oid) >= 0)

    # ------------------------------------------------------------ operations

    def add(self, order_id: Integer, side: Side, price: Integer, size: Integer) -> None:
        """Rest a new order at the back of its price level's queue."""
        oid = _integer(order_id, "order_id")
        code = _side_code(side)
        tick = _integer(price, "price", low=_PRICE_MIN)
        qty = _check_size(size, "size")
        if bs.find_order(self._state, oid) >= 0:
            raise BookError(f"order book, field 'order_id': expected an order id not already "
                            f"resting, got {order_id!r}")
        self._state = bs.reserve(self._state)
        bs.add_order(self._state, oid, code, tick, qty)

    def cancel(self, order_id: Integer, size: Integer | None = None) -> int:
        """Take ``size`` off the order (all of it when None); returns the size left (0: gone).
        A partial cancel keeps the order's place in its queue."""
        slot = self._slot(order_id)
        have = int(self._state.orders[slot, bs.O_SIZE])
        qty = have if size is None else _check_size(size, "size", at_most=have)
        bs.cancel_order(self._state, slot, qty)
        return have - qty

    def execute(self, order_id: Integer, size: Integer) -> int:
        """Fill ``size`` (<= the resting size) of the order; returns the size left (0: gone)."""
        slot = self._slot(order_id)
        have = int(self._state.orders[slot, bs.O_SIZE])
        qty = _check_size(size, "size", at_most=have)
        return have - int(bs.execute_order(self._state, slot, qty))

    def modify(self, order_id: Integer, price: Integer, size: Integer) -> None:
        """Give the order a new price and size (same side). At the same price with a smaller or
        the same size it keeps its place in the queue; a new price or a larger size sends it to
        the back of its (new) level."""
        slot = self._slot(order_id)
        tick = _integer(price, "price", low=_PRICE_MIN)
        qty = _check_size(size, "size")
        self._state = bs.reserve(self._state)
        side = self._state.orders[slot, bs.O_SIDE]
        bs.modify_order(self._state, slot, side, tick, qty)

    def clear(self) -> None:
        """Remove every order."""
        bs.clear(self._state)

    # ------------------------------------------------------------ views

    def order(self, order_id: Integer) -> RestingOrder | None:
        """The resting order ``order_id``, or None."""
        oid = _integer(order_id, "order_id")
        slot = bs.find_order(self._state, oid)
        if slot < 0:
            return None
        row = self._state.orders[slot]
        return RestingOrder(oid, _SIDE_NAMES[int(row[bs.O_SIDE])], int(row[bs.O_PRICE]),
                            int(row[bs.O_SIZE]))

    def depth(self, side: Side) -> int:
        """How many price levels ``side`` has."""
        return int(self._state.meta[M_DEPTH + _side_code(side)])

    def levels(self, side: Side, n: Integer | None = None) -> list[Level]:
        """``side``'s best ``n`` levels (all when None), best first."""
        code = _side_code(side)
        count = None if n is None else _integer(n, "n", low=0)
        st = self._state
        d = int(st.meta[M_DEPTH + code])
        out = []
        for r in range(d if count is None else min(count, d)):
            lvl = st.ladder[code, d - 1 - r]
            out.append(Level(int(st.levels[lvl, L_PRICE]), int(st.levels[lvl, L_SIZE]),
                             int(st.levels[lvl, L_COUNT])))
        return out

    def best(self, side: Side) -> tuple[int, int] | None:
        """``(price, size)`` of ``side``'s best level, or None when the side is empty."""
        top = self.levels(side, 1)
        return (top[0].price, top[0].size) if top else None

    def top_n(self, n: Integer) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Prices and sizes of each side's best ``n`` levels.

        Returns
        -------
        prices, sizes : ndarray, int64, shape (2, n)
            Row 0 bids, row 1 asks, best first; an empty level has size 0 and price 0.
        """
        count = _integer(n, "n", low=0)
        prices = np.zeros((2, count), dtype=np.int64)
        sizes = np.zeros((2, count), dtype=np.int64)
        bs.top_n(self._state, count, prices, sizes)
        return prices, sizes

    def queue(self, side: Side, price: Integer) -> list[tuple[int, int]]:
        """``(order_id, size)`` of the orders at ``price``, in time priority (first to fill
        first); empty when there is no level there."""
        code = _side_code(side)
        lvl = bs.find_level(self._state, code, _integer(price, "price", low=_PRICE_MIN))
        if lvl < 0:
            return []
        ids, sizes = bs.level_queue(self._state, lvl)
        return list(zip(ids.tolist(), sizes.tolist(), strict=True))

    def content_hash(self) -> int:
        """64-bit hash of the book's content (levels and their queues): equal books hash equal,
        however they were built."""
        return int(bs.content_hash(self._state))

    def _slot(self, order_id: Integer) -> int:
        slot = int(bs.find_order(self._state, _integer(order_id, "order_id")))
        if slot < 0:
            raise BookError(f"order book, field 'order_id': expected a resting order, "
                            f"got {order_id!r}")
        return slot


def _side_code(side: str) -> int:
    if side not in _SIDE_CODES:
        raise BookError(f"order book, field 'side': expected 'bid' or 'ask', got {side!r}")
    return _SIDE_CODES[side]


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_PRICE_MIN = -_INT64_MAX  # the ask side's ladder key is -price, which must fit in int64 too
_WHAT = {"order_id": "an integer order id that fits in int64",
         "price": "an integer price in ticks that fits in int64 (> -2**63)",
         "size": "a positive integer size that fits in int64",
         "n": "a non-negative integer that fits in int64"}


def _integer(value: object, field: str, *, low: int = _INT64_MIN, high: int = _INT64_MAX) -> int:
    """``value`` as a Python int in ``[low, high]``: an ``int``, a numpy integer or a whole
    float; anything else (a bool, ``99.7``, a string, ``2**63``) is a one-line BookError."""
    number: int | None = None
    if isinstance(value, bool | np.bool_):
        pass
    elif isinstance(value, int | np.integer):
        number = int(value)
    elif isinstance(value, float | np.floating) and float(value).is_integer():  # not inf, nan
        number = int(value)
    if number is None or not low <= number <= high:
        raise BookError(f"order book, field '{field}': expected "
                        f"{_WHAT.get(field, 'an integer that fits in int64')}, got {value!r}")
    return number


def _check_size(size: object, field: str, at_most: int | None = None) -> int:
    """``size`` as a positive Python int (at most ``at_most``), or a one-line BookError."""
    qty = _integer(size, field, low=1)
    if at_most is not None and qty > at_most:
        raise BookError(f"order book, field '{field}': expected at most the resting size "
                        f"{at_most}, got {size!r}")
    return qty

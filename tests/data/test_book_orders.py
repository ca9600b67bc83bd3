"""Tests of the order-at-a-time book (tapecast.data.book_orders) and, through it, the state kernels.

A hypothesis test runs random operation sequences against a tiny pure-Python reference book.
"""

from __future__ import annotations

import doctest
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapecast.data import book_orders
from tapecast.data.book_orders import BookError, Level, OrderBook, RestingOrder

Side = Literal["bid", "ask"]


def test_module_doctest_when_run_passes() -> None:
    assert doctest.testmod(book_orders).failed == 0


def test_add_when_orders_at_one_price_queue_in_time_order() -> None:
    book = OrderBook()
    book.add(7, "bid", 100, 5)
    book.add(3, "bid", 100, 2)
    book.add(9, "bid", 99, 1)
    book.add(4, "ask", 101, 4)
    assert book.queue("bid", 100) == [(7, 5), (3, 2)]
    assert book.levels("bid") == [Level(100, 7, 2), Level(99, 1, 1)]
    assert book.levels("ask") == [Level(101, 4, 1)]
    assert book.order(3) == RestingOrder(3, "bid", 100, 2)
    assert len(book) == 4 and 9 in book and 5 not in book


def test_top_n_when_fewer_levels_than_n_pads_with_zero_size() -> None:
    book = OrderBook()
    book.add(1, "ask", 105, 1)
    book.add(2, "ask", 103, 2)
    book.add(3, "bid", 101, 3)
    prices, sizes = book.top_n(3)
    assert prices.tolist() == [[101, 0, 0], [103, 105, 0]]
    assert sizes.tolist() == [[3, 0, 0], [2, 1, 0]]
    assert book.best("ask") == (103, 2) and book.best("bid") == (101, 3)


def test_cancel_when_partial_keeps_place_and_full_removes() -> None:
    book = OrderBook()
    for oid in (1, 2, 3):
        book.add(oid, "ask", 50, 4)
    assert book.cancel(1, 3) == 1
    assert book.queue("ask", 50) == [(1, 1), (2, 4), (3, 4)]
    assert book.cancel(2) == 0
    assert book.queue("ask", 50) == [(1, 1), (3, 4)]
    assert book.cancel(1) == 0 and book.cancel(3) == 0
    assert book.depth("ask") == 0 and book.best("ask") is None and len(book) == 0


def test_execute_when_partial_then_full_reduces_then_removes() -> None:
    book = OrderBook()
    book.add(1, "bid", 10, 5)
    book.add(2, "bid", 10, 5)
    assert book.execute(1, 2) == 3
    assert book.queue("bid", 10) == [(1, 3), (2, 5)]
    assert book.execute(1, 3) == 0
    assert book.queue("bid", 10) == [(2, 5)]


def test_modify_when_size_shrinks_keeps_priority_else_goes_to_back() -> None:
    book = OrderBook()
    for oid in (1, 2, 3):
        book.add(oid, "bid", 10, 5)
    book.modify(1, 10, 4)  # shrinks: stays first
    assert book.queue("bid", 10) == [(1, 4), (2, 5), (3, 5)]
    book.modify(1, 10, 6)  # grows: to the back
    assert book.queue("bid", 10) == [(2, 5), (3, 5), (1, 6)]
    book.modify(2, 11, 5)  # new price: a new level
    assert book.levels("bid") == [Level(11, 5, 1), Level(10, 11, 2)]
    book.modify(2, 10, 5)  # back again: behind the others
    assert book.queue("bid", 10) == [(3, 5), (1, 6), (2, 5)]
    assert book.order(2) == RestingOrder(2, "bid", 10, 5)


def test_clear_when_book_has_orders_empties_it_and_ids_are_free_again() -> None:
    book = OrderBook()
    book.add(1, "bid", 10, 5)
    book.add(2, "ask", 11, 5)
    book.clear()
    assert len(book) == 0 and book.depth("bid") == book.depth("ask") == 0
    assert book.content_hash() == OrderBook().content_hash()
    book.add(1, "ask", 12, 1)
    assert book.levels("ask") == [Level(12, 1, 1)]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: b.add(1, "bid", 10, 1), "order_id"),  # live id
        (lambda b: b.add(2, "up", 10, 1), "side"),
        (lambda b: b.add(2, "bid", 10, 0), "size"),
        (lambda b: b.cancel(99), "order_id"),
        (lambda b: b.cancel(1, 6), "size"),  # more than resting
        (lambda b: b.execute(1, 0), "size"),
        (lambda b: b.modify(99, 10, 1), "order_id"),
        (lambda b: b.modify(1, 10, -1), "size"),
    ],
)
def test_operations_when_arguments_impossible_raise_book_error_naming_field(
    call: object, field: str
) -> None:
    book = OrderBook()
    book.add(1, "bid", 10, 5)
    before = book.content_hash()
    with pytest.raises(BookError, match=f"field '{field}'"):
        call(book)  # type: ignore[operator]
    assert book.content_hash() == before  # nothing applied


@pytest.mark.parametrize(
    ("call", "field", "got"),
    [
        (lambda b: b.add(2, "bid", 99.7, 1), "price", "99.7"),  # was truncated to 99
        (lambda b: b.add(12.5, "bid", 10, 1), "order_id", "12.5"),  # was rested as 12
        (lambda b: b.add("7", "bid", 10, 1), "order_id", "'7'"),  # was a numba TypingError
        (lambda b: b.add(2**63, "bid", 10, 1), "order_id", "9223372036854775808"),  # Overflow
        (lambda b: b.add(-(2**63) - 1, "bid", 10, 1), "order_id", "-9223372036854775809"),
        (lambda b: b.add(True, "bid", 10, 1), "order_id", "True"),
        (lambda b: b.add(np.bool_(True), "bid", 10, 1), "order_id", "np.True_"),
        (lambda b: b.add(2, "bid", 2**63, 1), "price", "9223372036854775808"),
        (lambda b: b.add(2, "ask", -(2**63), 1), "price", "-9223372036854775808"),
        (lambda b: b.add(2, "bid", float("nan"), 1), "price", "nan"),
        (lambda b: b.add(2, "bid", float("inf"), 1), "price", "inf"),
        (lambda b: b.add(2, "bid", "10", 1), "price", "'10'"),
        (lambda b: b.add(2, "bid", 10, 1.5), "size", "1.5"),
        (lambda b: b.add(2, "bid", 10, 2**63), "size", "9223372036854775808"),
        (lambda b: b.add(2, "bid", 10, True), "size", "True"),
        (lambda b: b.cancel(1.5), "order_id", "1.5"),
        (lambda b: b.cancel(1, 2.5), "size", "2.5"),
        (lambda b: b.execute("1", 1), "order_id", "'1'"),
        (lambda b: b.execute(1, np.float64(0.5)), "size", r"np.float64\(0.5\)"),
        (lambda b: b.modify(1, 10.25, 1), "price", "10.25"),
        (lambda b: b.modify(2**64, 10, 1), "order_id", "18446744073709551616"),
        (lambda b: b.modify(1, 10, None), "size", "None"),
        (lambda b: b.order("1"), "order_id", "'1'"),
        (lambda b: b.order(2**63), "order_id", "9223372036854775808"),
        (lambda b: b.queue("bid", 10.5), "price", "10.5"),
        (lambda b: b.top_n(-1), "n", "-1"),
        (lambda b: b.top_n(2.5), "n", "2.5"),
        (lambda b: b.top_n(2**63), "n", "9223372036854775808"),
        (lambda b: b.levels("bid", -1), "n", "-1"),
        (lambda b: b.levels("bid", "2"), "n", "'2'"),
    ],
)
def test_operations_when_values_not_int64_integers_raise_one_line_book_error(
    call: object, field: str, got: str
) -> None:
    book = OrderBook()
    book.add(1, "bid", 10, 5)
    before = book.content_hash()
    with pytest.raises(BookError, match=f"^order book, field '{field}': expected [^\\n]*, "
                                        f"got {got}$"):
        call(book)  # type: ignore[operator]
    assert book.content_hash() == before  # nothing applied
    assert book.order(1) == RestingOrder(1, "bid", 10, 5)


def test_operations_when_numpy_integers_or_whole_floats_take_them_as_int() -> None:
    book = OrderBook()
    book.add(np.int64(1), "bid", np.int32(10), np.uint8(5))
    whole: Any = [2.0, 11.0, np.float64(3.0), 1.0]  # whole floats are taken as ints
    book.add(whole[0], "ask", whole[1], whole[2])
    book.add(2**63 - 1, "ask", -(2**63) + 1, 1)  # the int64 limits
    assert book.order(np.int64(1)) == RestingOrder(1, "bid", 10, 5)
    assert book.order(2) == RestingOrder(2, "ask", 11, 3)
    assert type(book.order(np.int16(2)).order_id) is int  # type: ignore[union-attr]
    assert book.best("ask") == (-(2**63) + 1, 1)
    assert book.queue("bid", np.int64(10)) == [(1, 5)]
    assert book.cancel(np.int64(1), np.int64(2)) == 3
    assert book.execute(np.uint32(1), whole[3]) == 2
    book.modify(np.int64(2), np.int64(12), np.int64(4))
    assert book.order(2) == RestingOrder(2, "ask", 12, 4)
    prices, _ = book.top_n(np.int64(1))
    assert prices.shape == (2, 1) and book.top_n(0)[0].shape == (2, 0)
    assert book.levels("bid", np.int8(1)) == [Level(10, 2, 1)] and book.levels("bid", 0) == []


def test_contains_when_numpy_integer_or_not_an_id_answers_without_error() -> None:
    book = OrderBook()
    book.add(1, "bid", 10, 5)
    assert np.int64(1) in book and np.uint8(1) in book and 1 in book and 1.0 in book
    assert np.int64(2) not in book
    for value in ("1", True, np.bool_(True), 1.5, 2**63, None, (1,)):
        assert value not in book


def test_modify_when_same_price_and_same_size_keeps_place() -> None:
    book = OrderBook()
    for oid in (1, 2):
        book.add(oid, "ask", 20, 5)
    book.modify(1, 20, 5)  # nothing changes: stays first
    assert book.queue("ask", 20) == [(1, 5), (2, 5)]
    assert "same size" in (OrderBook.modify.__doc__ or "")


def test_content_hash_when_same_book_built_differently_is_equal() -> None:
    a = OrderBook(order_capacity=4, level_capacity=2)  # grows and reuses slots
    for oid in range(20):
        a.add(oid, "bid", 90 + oid % 3, 1 + oid)
    for oid in range(0, 20, 2):
        a.cancel(oid)
    a.add(100, "ask", 95, 7)
    b = OrderBook()
    b.add(100, "ask", 95, 7)
    for oid in range(1, 20, 2):  # the survivors, in their time order
        b.add(oid, "bid", 90 + oid % 3, 1 + oid)
    assert a.content_hash() == b.content_hash()


def test_content_hash_when_anything_differs_differs() -> None:
    def book(*orders: tuple[int, Side, int, int]) -> int:
        b = OrderBook()
        for order in orders:
            b.add(*order)
        return b.content_hash()

    base = book((1, "bid", 10, 5), (2, "bid", 10, 3), (3, "ask", 11, 2))
    variants = [
        book((1, "bid", 10, 5), (2, "bid", 10, 3)),  # an order less
        book((1, "bid", 10, 5), (2, "bid", 10, 4), (3, "ask", 11, 2)),  # a size
        book((1, "bid", 10, 5), (2, "bid", 9, 3), (3, "ask", 11, 2)),  # a price
        book((2, "bid", 10, 3), (1, "bid", 10, 5), (3, "ask", 11, 2)),  # the queue order
        book((1, "bid", 10, 5), (4, "bid", 10, 3), (3, "ask", 11, 2)),  # an order id
        book((1, "bid", 10, 5), (2, "bid", 10, 3), (3, "bid", 11, 2)),  # a side
    ]
    assert len({base, *variants}) == len(variants) + 1


# ---------------------------------------------------------------- property test


class ReferenceBook:
    """The simplest correct book: per side a dict price -> FIFO list of [order_id, size]."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[int, list[list[int]]]] = {"bid": {}, "ask": {}}
        self.where: dict[int, tuple[str, int]] = {}

    def add(self, oid: int, side: str, price: int, size: int) -> None:
        self.sides[side].setdefault(price, []).append([oid, size])
        self.where[oid] = (side, price)

    def _entry(self, oid: int) -> tuple[list[list[int]], int]:
        side, price = self.where[oid]
        queue = self.sides[side][price]
        return queue, next(k for k, e in enumerate(queue) if e[0] == oid)

    def reduce(self, oid: int, size: int) -> None:
        queue, k = self._entry(oid)
        queue[k][1] -= size
        if queue[k][1] == 0:
            self.remove(oid)

    def remove(self, oid: int) -> None:
        queue, k = self._entry(oid)
        del queue[k]
        side, price = self.where.pop(oid)
        if not queue:
            del self.sides[side][price]

    def modify(self, oid: int, price: int, size: int) -> None:
        queue, k = self._entry(oid)
        side, old_price = self.where[oid]
        if price == old_price and size <= queue[k][1]:
            queue[k][1] = size
            return
        self.remove(oid)
        self.add(oid, side, price, size)

    def levels(self, side: str) -> list[Level]:
        prices = sorted(self.sides[side], reverse=side == "bid")
        return [Level(p, sum(e[1] for e in self.sides[side][p]), len(self.sides[side][p]))
                for p in prices]


OPS = st.lists(
    st.tuples(st.sampled_from(["add", "add", "add", "cancel", "cancel_part", "execute",
                               "modify", "resize", "clear"]),
              st.integers(0, 7), st.sampled_from(["bid", "ask"]), st.integers(98, 102),
              st.integers(1, 9)),
    min_size=10, max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_order_book_when_random_operations_matches_reference_book(
    ops: list[tuple[str, int, Side, int, int]]
) -> None:
    book, ref = OrderBook(order_capacity=2, level_capacity=1), ReferenceBook()
    for op, oid, side, price, size in ops:
        live = oid in ref.where
        if op == "clear":
            book.clear()
            ref = ReferenceBook()
        elif op == "add":
            if live:
                with pytest.raises(BookError):
                    book.add(oid, side, price, size)
            else:
                book.add(oid, side, price, size)
                ref.add(oid, side, price, size)
        elif not live:
            with pytest.raises(BookError):
                book.cancel(oid)
        elif op == "cancel":
            book.cancel(oid)
            ref.remove(oid)
        elif op in ("cancel_part", "execute"):
            have = book.order(oid).size  # type: ignore[union-attr]
            q = min(size, have)
            left = book.cancel(oid, q) if op == "cancel_part" else book.execute(oid, q)
            ref.reduce(oid, q)
            assert left == have - q
        else:  # modify; resize: a modify at the order's own price
            if op == "resize":
                price = ref.where[oid][1]
            book.modify(oid, price, size)
            ref.modify(oid, price, size)
        for s in ("bid", "ask"):
            assert book.levels(s) == ref.levels(s)
            for level in ref.levels(s):
                assert book.queue(s, level.price) == [tuple(e) for e in ref.sides[s][level.price]]
        assert len(book) == len(ref.where)
    # the same content rebuilt afresh, order by order in time priority, hashes the same
    fresh = OrderBook()
    sides: tuple[Side, Side] = ("bid", "ask")
    for s in sides:
        for price, queue in ref.sides[s].items():
            for oid, size in queue:
                fresh.add(oid, s, price, size)
    assert fresh.content_hash() == book.content_hash()

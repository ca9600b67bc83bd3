"""Tests of the book-state kernels (tapecast.data.book_state) the replay uses beyond OrderBook:
growth, seeded (anonymous) size, depth-window forgetting and size-0 orders."""

from __future__ import annotations

import numpy as np

from tapecast.data import book_state as bs
from tapecast.data.book_orders import OrderBook
from tapecast.data.book_state import ASK, BID, FORGOTTEN, O_LEVEL


def _add(state: bs.BookState, order_id: int, side: int, price: int, size: int) -> bs.BookState:
    state = bs.reserve(state)
    bs.add_order(state, order_id, side, price, size)
    return state


def _top(state: bs.BookState, n: int) -> tuple[list[list[int]], list[list[int]]]:
    prices = np.zeros((2, n), dtype=np.int64)
    sizes = np.zeros((2, n), dtype=np.int64)
    bs.top_n(state, n, prices, sizes)
    return prices.tolist(), sizes.tolist()


def test_grow_when_full_keeps_every_order_and_level() -> None:
    state = bs.new_state(order_capacity=2, level_capacity=1)
    for oid in range(100):
        state = _add(state, 10**12 + oid * 7919, oid % 2, 1000 + oid % 13, 1)
    assert state.orders.shape[0] >= 100 and state.levels.shape[0] >= 26
    assert all(bs.find_order(state, 10**12 + oid * 7919) >= 0 for oid in range(100))
    assert bs.find_order(state, 5) == -1
    prices, sizes = _top(state, 2)
    assert prices == [[1012, 1011], [1000, 1001]]
    assert sizes == [[4, 3], [4, 4]]  # even ids 12, 38, 64, 90 at 1012; 24, 50, 76 at 1011


def test_take_anonymous_when_seeded_level_takes_at_most_the_seeded_size() -> None:
    state = bs.reserve(bs.new_state())
    bs.seed_level(state, ASK, 50, 10)
    state = _add(state, 1, ASK, 50, 2)
    assert bs.take_anonymous(state, ASK, 50, 4) == 4
    assert bs.take_anonymous(state, ASK, 50, 9) == 6  # only 6 seeded left; order 1 untouched
    assert bs.take_anonymous(state, ASK, 51, 1) == 0
    assert _top(state, 1) == ([[0], [50]], [[0], [2]])


def test_forget_beyond_when_levels_past_depth_marks_their_orders_forgotten() -> None:
    state = bs.new_state()
    for oid, price in enumerate((100, 99, 98, 97)):
        state = _add(state, oid, BID, price, 1)
    state = _add(state, 9, ASK, 101, 1)
    assert bs.forget_beyond(state, 2) == 1  # bids only
    assert _top(state, 4)[0][0] == [100, 99, 0, 0]
    assert state.orders[bs.find_order(state, 3), O_LEVEL] == FORGOTTEN  # kept, in no level
    assert bs.forget_beyond(state, 2) == 0


def test_forget_crossed_when_bid_crosses_drops_asks_at_or_through_it() -> None:
    state = bs.new_state()
    for oid, price in enumerate((101, 102, 103)):
        state = _add(state, oid, ASK, price, 1)
    state = _add(state, 9, BID, 102, 1)
    assert bs.forget_crossed(state, BID) == 2  # asks lost levels
    assert _top(state, 2)[0] == [[102, 0], [103, 0]]
    assert bs.forget_crossed(state, BID) == 0


def test_add_order_when_size_zero_rests_in_no_level_and_hash_ignores_it() -> None:
    book = OrderBook()
    empty = book.content_hash()
    bs.add_order(book.state, 5, BID, 10, 0)
    assert 5 in book and book.depth("bid") == 0 and book.content_hash() == empty
    bs.modify_order(book.state, bs.find_order(book.state, 5), BID, 10, 3)
    assert book.queue("bid", 10) == [(5, 3)]

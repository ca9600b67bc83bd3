"""The seam between order-flow generators and the matching driver (issue 15, baselines).

A generator emits one :class:`OrderIntent` at a time: how long after the previous one it comes,
what it does (add, cancel, market order), on which side, where (as TradeFM's relative price
``delta_p``) and how big. The driver owns the book and the clock: it passes a :class:`BookView`
to :meth:`OrderFlowGenerator.next`, turns the intent into an order at an integer tick, runs it
through the matching engine and asks for the next one. Generators in this package:
:class:`tapecast.sim.hawkes.HawkesGenerator` and
:class:`tapecast.sim.zero_intelligence.ZeroIntelligenceGenerator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

from tapecast.core.errors import TapecastError

__all__ = ["ACTIONS", "BookView", "OrderFlowError", "OrderFlowGenerator", "OrderIntent"]

Action = Literal["add", "cancel", "market"]
ACTIONS: Final = ("add", "cancel", "market")


class OrderFlowError(TapecastError):
    """Bad input to a generator's fit, calibration, load or step (one-line message)."""


@dataclass(frozen=True)
class OrderIntent:
    """One order a generator wants to send.

    Attributes
    ----------
    dt : float
        Seconds since the previous intent of this generator (>= 0).
    action : {"add", "cancel", "market"}
    side : int
        0 bid, 1 ask (:data:`tapecast.data.book_state.BID`/``ASK``); for ``"market"`` the
        aggressor's side: 0 buys (lifting asks), 1 sells (hitting bids).
    delta_p : float
        (price - mid) / mid for add and cancel, as TradeFM's token ``delta_p``; NaN for market
        orders and for rank cancels (see ``order_rank``).
    size : int
        Shares or contracts, > 0.
    order_rank : int or None
        Only for cancels that name an order rather than a price: cancel the whole resting order
        of rank ``order_rank`` on ``side``, ranks counted from 0 over that side's resting orders
        in priority order (best price first, then time). ``size`` is then the generator's size
        draw, informative only. None (the default) means "cancel ``size`` at the level nearest
        ``delta_p``", the driver's own rule.
    """

    dt: float
    action: Action
    side: int
    delta_p: float
    size: int
    order_rank: int | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise OrderFlowError(f"intent field 'action': expected one of {ACTIONS}, "
                                 f"got {self.action!r}")
        if self.side not in (0, 1):
            raise OrderFlowError(f"intent field 'side': expected 0 or 1, got {self.side!r}")
        if not self.dt >= 0.0:
            raise OrderFlowError(f"intent field 'dt': expected >= 0 seconds, got {self.dt!r}")
        if self.size <= 0:
            raise OrderFlowError(f"intent field 'size': expected > 0, got {self.size!r}")
        if self.action == "add" and not math.isfinite(self.delta_p):
            raise OrderFlowError(f"intent field 'delta_p': expected a finite value for an add, "
                                 f"got {self.delta_p!r}")


@dataclass(frozen=True)
class BookView:
    """What a generator may see of the driver's book before it draws the next intent.

    Attributes
    ----------
    t : float
        The driver's clock, seconds.
    mid : float or None
        The driver's mid price (TradeFM's p_mid rule: EW-VWAP of prints, book mid fallback).
    best_bid, best_ask : float or None
        Best quotes; None for an empty side.
    tick : float
        Price tick.
    resting : tuple of (int, int)
        Resting orders on (bid, ask).
    """

    t: float
    mid: float | None
    best_bid: float | None
    best_ask: float | None
    tick: float
    resting: tuple[int, int]


@runtime_checkable
class OrderFlowGenerator(Protocol):
    """A seeded source of :class:`OrderIntent`; ``reset(seed)`` makes its stream reproducible."""

    name: str

    def reset(self, seed: int) -> None:
        """Start a new stream, seeded."""
        ...

    def next(self, view: BookView) -> OrderIntent:
        """The next intent, given the book as it stands now."""
        ...

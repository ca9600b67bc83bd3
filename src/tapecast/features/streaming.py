"""Order-flow windows one trade at a time, equal bit for bit to the batch pipeline.

:class:`StreamingOrderFlow` is the causal twin of
:func:`tapecast.features.orderflow.orderflow_windows` for one instrument: fed the same (already
filtered) trades in time order, it emits the same window rows with the same float bits. It
performs the operations of :mod:`tapecast.features.kernels` in the same order — the running sums
Σ ε v^a, Σ v^a (v^0.25 = sqrt(sqrt(v)), v^0.75 = sqrt(v)·sqrt(sqrt(v))), Σ r², Σ v, then the
channel formulas with ``math.log``/``math.log1p`` (the libm calls numba makes too) — so no
tolerance is needed. Sessions come from :class:`tapecast.features.sessions.SessionClock`, with
the boundaries the batch path uses.

What the caller does: drop suspicious and non-market prints before ``update`` (the print filters
judge a whole column's encoding), and pass the tick size (inferring it needs the whole tape).
``min_trades`` cannot be applied causally and is refused; ``regular_hours_only`` is applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from tapecast.core.errors import TapecastError
from tapecast.features.orderflow import CHANNELS, OrderFlowConfig
from tapecast.features.sessions import SessionClock


@dataclass(frozen=True)
class WindowRow:
    """One completed window: the fields of a row of the batch windows table.

    Timestamps are UTC nanoseconds; ``channels`` follows :data:`CHANNELS` (None where
    undefined, as null in the batch table).
    """

    instrument: str
    session_date: date
    window: int
    window_start_ts: int
    window_end_ts: int
    n_trades: int
    n_unsigned: int
    n_signed: int
    first_price: float
    last_price: float
    tick_size: float
    channels: tuple[float | None, ...]

    def as_dict(self) -> dict[str, Any]:
        """Flat mapping with the batch table's column names."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        del fields["channels"]
        return {**fields, **dict(zip(CHANNELS, self.channels, strict=True))}


class _Window:
    """Running sums of the window being filled (the kernel's locals)."""

    __slots__ = ("den", "end", "first", "last", "n", "num", "ssr", "start", "tot", "unsigned")

    def __init__(self, ts_ns: int, price: float) -> None:
        self.n = 0
        self.unsigned = 0
        self.first = price
        self.last = price
        self.start = ts_ns
        self.end = ts_ns
        self.ssr = 0.0
        self.tot = 0.0
        self.num = [0.0, 0.0, 0.0, 0.0, 0.0]
        self.den = [0.0, 0.0, 0.0, 0.0, 0.0]

    def add(self, ts_ns: int, price: float, size: float, side: int) -> None:
        """One trade, with the kernel's operations in the kernel's order."""
        if self.n > 0 and price != self.last:
            r = math.log(price / self.last)
            self.ssr += r * r
        self.n += 1
        self.last = price
        self.end = ts_ns
        self.tot += size
        if side == 0:
            self.unsigned += 1
            return
        v50 = math.sqrt(size)
        v25 = math.sqrt(v50)
        v75 = v50 * v25
        num, den = self.num, self.den
        num[0] += side * 1.0
        num[1] += side * v25
        num[2] += side * v50
        num[3] += side * v75
        num[4] += side * size
        den[0] += 1.0
        den[1] += v25
        den[2] += v50
        den[3] += v75
        den[4] += size

    def channels(self, previous_last: float | None, tick: float) -> tuple[float | None, ...]:
        """The 8 channels (formulas in :mod:`tapecast.features.orderflow`)."""
        signed = self.n - self.unsigned
        imbalances = [self.num[k] / self.den[k] if signed > 0 and self.den[k] > 0.0 else None
                      for k in range(5)]
        reference = self.first if previous_last is None else previous_last
        log_ret = math.log(self.last / reference)
        step = math.log1p(tick / self.last)
        log_rv = math.log(max(self.ssr, step * step))
        log_vol = math.log(self.tot) if self.tot > 0.0 else None
        return (*imbalances, log_ret, log_rv, log_vol)


class StreamingOrderFlow:
    """Causal order-flow windows of one instrument, fed one trade at a time.

    Parameters
    ----------
    config : OrderFlowConfig
        Window size, session rule, ``regular_hours_only``; ``min_trades`` must be 0.
    instrument : str
        Name written into the rows.
    tick_size : float, optional
        Tick for the realized-variance floor; defaults to ``config.tick_size`` (one is needed).
    first_window : int
        Id of the first window emitted (ids are consecutive across sessions).

    Examples
    --------
    >>> flow = StreamingOrderFlow(OrderFlowConfig(window_trades=3), "X", tick_size=0.01)
    >>> rows = [row for t in trades for row in flow.update(*t)]  # doctest: +SKIP
    """

    def __init__(self, config: OrderFlowConfig, instrument: str = "",
                 tick_size: float | None = None, first_window: int = 0) -> None:
        tick = config.tick_size if tick_size is None else tick_size
        if tick is None or not (math.isfinite(tick) and tick > 0):
            raise TapecastError(f"streaming order flow needs a positive tick size (give "
                                f"tick_size= or config.tick_size), got {tick!r}")
        if config.min_trades > 0:
            raise TapecastError("streaming order flow cannot apply min_trades (it needs the "
                                "whole session); use min_trades=0")
        self.config = config
        self.instrument = instrument
        self.tick_size = float(tick)
        self.next_window = first_window
        self.dropped_prints = {"outside_regular_hours": 0, "outside_session": 0}
        self.dropped_partial_windows = 0
        self.partial_window_trades = 0
        self._clock = SessionClock(config.session, config.time_zone)
        self._rth = SessionClock("us-equity-rth") if config.regular_hours_only else None
        self._session: tuple[int, int, date] | None = None
        self._window: _Window | None = None
        self._previous_last: float | None = None  # last price of the session's previous window

    def update(self, ts_ns: int, price: float, size: float, side: int) -> list[WindowRow]:
        """Feed one trade; the windows it completes (zero or one).

        Parameters
        ----------
        ts_ns : int
            UTC nanoseconds, not before the previous trade's.
        price, size : float
        side : int
            +1 buyer-initiated, -1 seller-initiated, 0 unknown.

        Returns
        -------
        list of WindowRow
        """
        if self._rth is not None and self._rth.session(ts_ns) is None:
            self.dropped_prints["outside_regular_hours"] += 1
            return []
        session = self._clock.session(ts_ns)
        if session is None:
            self.dropped_prints["outside_session"] += 1
            return []
        if session != self._session:
            self.end_session()
            self._session = session
        if self._window is None:
            self._window = _Window(ts_ns, price)
        window = self._window
        window.add(ts_ns, price, size, side)
        if not self._complete(window):
            return []
        self._window = None
        return [self._emit(window)]

    def end_session(self) -> None:
        """Close the current session: its partial window is dropped (and counted)."""
        if self._window is not None and self._window.n > 0:
            self.dropped_partial_windows += 1
            self.partial_window_trades += self._window.n
        self._window = None
        self._session = None
        self._previous_last = None

    def _complete(self, window: _Window) -> bool:
        if self.config.window_trades is not None:
            return window.n == self.config.window_trades
        return window.tot >= float(self.config.window_volume or math.inf)

    def _emit(self, window: _Window) -> WindowRow:
        assert self._session is not None
        channels = window.channels(self._previous_last, self.tick_size)
        self._previous_last = window.last
        row = WindowRow(
            self.instrument, self._session[2], self.next_window, window.start, window.end,
            window.n, window.unsigned, window.n - window.unsigned, window.first, window.last,
            self.tick_size, channels)
        self.next_window += 1
        return row

"""The price grid one bar at a time, equal bit for bit to the batch grid (``price_grid``).

:class:`StreamingPriceGrid` is the causal twin of the batch grid for one instrument: fed its trade
bars and quote bars in time order (the two tables interleaved by ``ts``), it emits each grid row
once every bar that can land on it has been seen — row j, stamped ``open + (j + 1) s``, when a bar
of a later second arrives, when :meth:`StreamingPriceGrid.advance` says the clock passed its stamp,
or at :meth:`StreamingPriceGrid.finish`. It performs the batch path's floating-point operations in
the same order (the mid (bid + ask) / 2, spread / mid * 1e4, the realized variance summed newest
first) and takes logarithms with NumPy's ``np.log`` (whose results can differ from
``math.log`` in the last bit), so no tolerance is needed.

What it cannot check causally, and the batch path does: an instrument-day with bars but none
inside a session. With ``price="mid"``, a session with trade bars and no quote bars is an error
when the session ends.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from tapecast.core.errors import TapecastError
from tapecast.features.price import (
    NS,
    PriceGridConfig,
    rv_name,
    session_window,
    session_zone,
)
from tapecast.features.sessions import local_date

_NAN = math.nan


@dataclass(frozen=True)
class GridRow:
    """One grid row: the fields of a row of the batch grid (``ts`` in UTC nanoseconds, None where
    the batch grid holds null, ``realized`` in ``config.realized_spans`` order)."""

    instrument: str
    session_date: date
    ts: int
    second: int
    price: float | None
    price_source: str | None
    staleness_s: int | None
    close: float | None
    volume: float | None
    has_trade_bar: bool
    has_quote_bar: bool
    bid: float | None
    ask: float | None
    bid_size: float | None
    ask_size: float | None
    spread: float | None
    spread_bps: float | None
    imbalance: float | None
    log_ret: float | None
    realized: tuple[float | None, ...]
    time_of_day: float

    def as_dict(self, config: PriceGridConfig) -> dict[str, Any]:
        """Flat mapping with the batch grid's column names."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        realized = fields.pop("realized")
        tod = fields.pop("time_of_day")
        return {**fields, **{rv_name(m): v for m, v in zip(config.realized_spans, realized,
                                                          strict=True)},
                "time_of_day": tod}


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


@dataclass
class _Session:
    open: int
    close: int
    day: date

    @property
    def length(self) -> int:
        return (self.close - self.open) // NS


class _State:
    """What the grid carries from row to row inside a session (the batch path's forward fills)."""

    def __init__(self, max_span: int) -> None:
        self.close = _NAN
        self.trade_row = -1
        self.quote_row = -1
        self.bid = self.ask = self.bid_size = self.ask_size = _NAN
        self.prev_price = _NAN
        self.prev_source: str | None = None
        self.squares: deque[float] = deque(maxlen=max_span)
        self.any_trade = self.any_quote = False


class StreamingPriceGrid:
    """Causal 1-second price grid of one instrument, fed one bar at a time.

    Parameters
    ----------
    config : PriceGridConfig
    instrument : str
        Name written into the rows.

    Examples
    --------
    >>> grid = StreamingPriceGrid(PriceGridConfig(), "SPY")
    >>> rows = grid.update_bar(ts_ns, close=170.1, volume=300.0)  # doctest: +SKIP
    >>> rows += grid.finish()  # doctest: +SKIP
    """

    def __init__(self, config: PriceGridConfig, instrument: str = "") -> None:
        self.config = config
        self.instrument = instrument
        self.zone = session_zone(config.session, config.time_zone)
        self.outside = {"bars": 0, "quote_bars": 0}
        self._last_ts = {"bars": -(2**62), "quote_bars": -(2**62)}
        self._session: _Session | None = None
        self._next = 0  # next row to emit
        self._closed_until = -(2**62)  # close of the last session finished (no bar may reopen it)
        self._trade: tuple[float, float] | None = None  # the pending row's bar: close, volume
        self._quote: tuple[float, float, float, float] | None = None
        self._state = _State(config.realized_spans[-1])

    # --- input ----------------------------------------------------------------------------------
    def update_bar(self, ts_ns: int, close: float | None, volume: float | None) -> list[GridRow]:
        """Feed one 1-second trade bar (``ts_ns`` its start); the grid rows it completes."""
        self._check_price("bars", ts_ns, close=close)
        out, row = self._arrive("bars", ts_ns)
        if row is not None:
            if self._trade is not None:
                self._fail("bars", ts_ns, "two trade bars in one second (duplicated timestamps)")
            self._trade = (_f(close), _f(volume))
        return out

    def update_quote_bar(self, ts_ns: int, bid_close: float | None, bid_size: float | None,
                         ask_close: float | None, ask_size: float | None) -> list[GridRow]:
        """Feed one 1-second quote bar (an empty side is None); the grid rows it completes."""
        self._check_price("quote_bars", ts_ns, bid_close=bid_close, ask_close=ask_close)
        out, row = self._arrive("quote_bars", ts_ns)
        if row is not None:
            if self._quote is not None:
                self._fail("quote_bars", ts_ns,
                           "two quote bars in one second (duplicated timestamps)")
            self._quote = (_f(bid_close), _f(bid_size), _f(ask_close), _f(ask_size))
        return out

    def advance(self, now_ns: int) -> list[GridRow]:
        """The clock reached ``now_ns``: emit the rows stamped at or before it."""
        session = self._session
        if session is None:
            return []
        if now_ns >= session.close:
            return self.finish()
        return self._emit_until((now_ns - session.open) // NS)

    def finish(self) -> list[GridRow]:
        """Close the current session: emit its remaining rows (to the close)."""
        session = self._session
        if session is None:
            return []
        out = self._emit_until(session.length)
        state = self._state
        if self.config.price == "mid" and state.any_trade and not state.any_quote:
            raise TapecastError(
                f"price='mid': {self.instrument} {session.day} has trade bars but no quote bars; "
                f"give its quote bars or use price='auto'")
        self._closed_until = max(self._closed_until, session.close)
        self._session = None
        self._state = _State(self.config.realized_spans[-1])
        return out

    def _arrive(self, table: str, ts_ns: int) -> tuple[list[GridRow], int | None]:
        """Check order, find the bar's session and row, emit the rows before it."""
        if ts_ns <= self._last_ts[table]:
            what = "duplicated" if ts_ns == self._last_ts[table] else "earlier than the bar before"
            self._fail(table, ts_ns, f"a timestamp {what}")
        self._last_ts[table] = ts_ns
        session = self._locate(ts_ns)
        if session is None:
            self.outside[table] += 1
            return [], None
        out: list[GridRow] = []
        if session != self._session:
            if session.open < self._closed_until:
                self._fail(table, ts_ns, "a bar for a session already closed (late or unsorted)")
            out += self.finish()
            self._session, self._next = session, 0
        row = -((session.open - ts_ns) // NS)  # first row stamped at or after ts + 1 s
        if row < self._next:
            self._fail(table, ts_ns, "a bar for a second already emitted (late or unsorted)")
        out += self._emit_until(row)
        return out, row

    def _check_price(self, table: str, ts_ns: int, **prices: float | None) -> None:
        """A price must be > 0 (as :func:`~tapecast.features.price.price_grid` refuses)."""
        for name, value in prices.items():
            if value is not None and value <= 0:
                raise TapecastError(f"{table}: {self.instrument} on "
                                    f"{local_date(ts_ns, self.zone)}: non-positive {name} "
                                    f"{value} (ts {np.datetime64(ts_ns, 'ns')} UTC); a price "
                                    "must be > 0")

    def _locate(self, ts_ns: int) -> _Session | None:
        current = self._session
        if current is not None and current.open <= ts_ns and ts_ns + NS <= current.close:
            return current
        day = local_date(ts_ns, self.zone)
        for candidate in (day - timedelta(days=1), day, day + timedelta(days=1)):
            bounds = session_window(self.config.session, self.zone, candidate)
            if bounds is not None and bounds[0] <= ts_ns and ts_ns + NS <= bounds[1]:
                return _Session(bounds[0], bounds[1], candidate)
        return None

    def _fail(self, table: str, ts_ns: int, what: str) -> None:
        raise TapecastError(f"{table}: {self.instrument} on {local_date(ts_ns, self.zone)}: {what} "
                            f"(ts {np.datetime64(ts_ns, 'ns')} UTC); feed bars in time order")

    # --- output ---------------------------------------------------------------------------------
    def _emit_until(self, stop: int) -> list[GridRow]:
        """Emit rows ``next .. stop - 1``."""
        out = []
        while self._next < stop:
            out.append(self._row(self._next))
            self._next += 1
            self._trade = self._quote = None
        return out

    def _row(self, j: int) -> GridRow:
        assert self._session is not None
        session, st = self._session, self._state
        volume = 0.0
        if self._trade is not None:
            st.close, volume = self._trade
            st.trade_row, st.any_trade = j, True
        if self._quote is not None:
            bid, bid_size, ask, ask_size = self._quote
            st.quote_row, st.any_quote = j, True
            if math.isfinite(bid):
                st.bid, st.bid_size = bid, bid_size
            if math.isfinite(ask):
                st.ask, st.ask_size = ask, ask_size
        mid = (st.bid + st.ask) / 2.0
        spread = st.ask - st.bid
        den = st.bid_size + st.ask_size
        imbalance = _NAN if den == 0.0 else (st.bid_size - st.ask_size) / den
        source, price, last = self._price(mid)
        log_ret = _NAN
        if j > 0 and source == st.prev_source:
            log_ret = float(np.log(price / st.prev_price))
        st.prev_price, st.prev_source = price, source
        st.squares.append(log_ret * log_ret)
        return GridRow(
            self.instrument, session.day, session.open + (j + 1) * NS, j + 1, _opt(price),
            source, None if last < 0 else j - last, _opt(st.close), _opt(volume),
            self._trade is not None, self._quote is not None, _opt(st.bid), _opt(st.ask),
            _opt(st.bid_size), _opt(st.ask_size), _opt(spread), _opt(spread / mid * 1e4),
            _opt(imbalance), _opt(log_ret), self._realized(), (j + 1) / session.length)

    def _price(self, mid: float) -> tuple[str | None, float, int]:
        """Source, price and the row of the source's last bar (-1: none), as the batch chooses."""
        st, choice = self._state, self.config.price
        if math.isfinite(mid) and choice != "trade":
            return "mid", mid, st.quote_row
        if math.isfinite(st.close) and choice != "mid":
            return "trade", st.close, st.trade_row
        return None, _NAN, -1

    def _realized(self) -> tuple[float | None, ...]:
        squares, spans = self._state.squares, self.config.realized_spans
        acc, out = 0.0, []
        for i in range(spans[-1]):
            acc = acc + (squares[-1 - i] if i < len(squares) else _NAN)
            if i + 1 in spans:
                out.append(_opt(acc))
        return tuple(out)


def _f(x: float | None) -> float:
    return _NAN if x is None else float(x)

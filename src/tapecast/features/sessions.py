"""Trading sessions: which session (if any) each trade belongs to.

A session is a half-open interval ``[start, end)`` of UTC nanoseconds, dated by a calendar day.
Three rules are built in:

``calendar``
    The calendar day in a given IANA time zone (default UTC): ``[00:00 d, 00:00 d+1)``; every day.
``us-equity-rth``
    US equities' regular trading hours, ``[09:30, 16:00)`` America/New_York, Monday to Friday.
``cme-globex``
    CME Globex, ``[17:00 CT of the previous day, 16:00 CT)`` America/Chicago, dated by the day it
    ends, Monday to Friday: Sunday-evening trades belong to Monday's session, and the 16:00–17:00
    CT maintenance break lies outside every session.

Boundaries are built per calendar date from wall-clock times with :mod:`zoneinfo`, so they follow
daylight-saving changes; assignment is then one ``np.searchsorted`` over the int64 timestamps.
Exchange holidays and early closes are not modelled: a holiday simply has no trades, and an early
close (13:00) leaves the session's tail empty. The streaming calculator uses the same boundary
function (:func:`session_bounds`), so batch and streaming agree on every trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError

SessionRule = Literal["calendar", "us-equity-rth", "cme-globex"]
SESSION_RULES: Final[tuple[SessionRule, ...]] = get_args(SessionRule)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_US: Final = 1_000
_NY: Final = "America/New_York"
_CHICAGO: Final = "America/Chicago"


@dataclass(frozen=True, eq=False)
class Sessions:
    """Session boundaries, sorted and non-overlapping.

    Parameters
    ----------
    starts, ends : ndarray, int64, shape (S,)
        Session ``[start, end)`` in UTC nanoseconds since the epoch.
    dates : ndarray, datetime64[D], shape (S,)
        The date each session is named by.
    """

    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    dates: NDArray[np.datetime64]

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def assign(self, ts_ns: NDArray[np.int64]) -> NDArray[np.int64]:
        """Index of the session holding each timestamp, -1 outside every session.

        Parameters
        ----------
        ts_ns : ndarray, int64, shape (N,)
            UTC nanoseconds (any order).

        Returns
        -------
        ndarray, int64, shape (N,)
            Session index into ``starts``/``ends``/``dates``, or -1.
        """
        k = np.searchsorted(self.starts, ts_ns, side="right").astype(np.int64) - 1
        safe = np.maximum(k, 0)
        inside = (k >= 0) & (ts_ns < self.ends[safe])
        return np.where(inside, k, np.int64(-1))

    def assign_sorted(self, ts_ns: NDArray[np.int64]) -> NDArray[np.int64]:
        """:meth:`assign` for non-decreasing timestamps: the boundaries are searched in the
        trades (S binary searches) instead of every trade in the boundaries.

        Parameters
        ----------
        ts_ns : ndarray, int64, shape (N,)
            Non-decreasing UTC nanoseconds.

        Returns
        -------
        ndarray, int64, shape (N,)
            Session index, or -1 outside every session.
        """
        index = np.empty(ts_ns.shape[0], dtype=np.int64)
        first = np.searchsorted(ts_ns, self.starts, side="left")
        stop = np.searchsorted(ts_ns, self.ends, side="left")
        done = 0  # rows [0, done) are written; sessions are sorted and disjoint
        for k in np.flatnonzero(stop > first):
            index[done:first[k]] = -1
            index[first[k]:stop[k]] = k
            done = stop[k]
        index[done:] = -1
        return index


def check_rule(rule: str, time_zone: str) -> ZoneInfo:
    """Validate a session rule and its time zone; the zone the rule's clock runs in.

    Raises
    ------
    TapecastError
        Unknown rule, or a time zone zoneinfo does not know.
    """
    if rule not in SESSION_RULES:
        raise TapecastError(f"unknown session rule {rule!r}; expected one of {SESSION_RULES}")
    name = {"calendar": time_zone, "us-equity-rth": _NY, "cme-globex": _CHICAGO}[rule]
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TapecastError(f"unknown time zone {name!r} (expected an IANA name such as "
                            f"'America/New_York')") from exc


def to_ns(moment: datetime) -> int:
    """UTC nanoseconds since the epoch of an aware datetime (exact integer arithmetic)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * _NS_PER_US


def local_date(ts_ns: int, zone: ZoneInfo) -> date:
    """The calendar date in ``zone`` of a UTC nanosecond timestamp."""
    moment = _EPOCH + timedelta(microseconds=ts_ns // _NS_PER_US)
    return moment.astimezone(zone).date()


def session_of_date(rule: SessionRule, zone: ZoneInfo, day: date) -> tuple[int, int] | None:
    """``(start_ns, end_ns)`` of the session named ``day``, or None where there is none.

    Parameters
    ----------
    rule : {"calendar", "us-equity-rth", "cme-globex"}
    zone : ZoneInfo
        The rule's clock (from :func:`check_rule`).
    day : date
        The session's date (for cme-globex the day it ends).
    """
    if rule == "calendar":
        start = datetime.combine(day, time(0, 0), zone)
        end = datetime.combine(day + timedelta(days=1), time(0, 0), zone)
    elif day.weekday() >= 5:  # exchange rules: Monday to Friday only
        return None
    elif rule == "us-equity-rth":
        start = datetime.combine(day, time(9, 30), zone)
        end = datetime.combine(day, time(16, 0), zone)
    else:  # cme-globex: 17:00 CT the day before to 16:00 CT
        start = datetime.combine(day - timedelta(days=1), time(17, 0), zone)
        end = datetime.combine(day, time(16, 0), zone)
    return to_ns(start), to_ns(end)


def session_bounds(rule: SessionRule, time_zone: str, first_ns: int, last_ns: int) -> Sessions:
    """All sessions of ``rule`` that can hold a timestamp in ``[first_ns, last_ns]``.

    Parameters
    ----------
    rule : {"calendar", "us-equity-rth", "cme-globex"}
    time_zone : str
        IANA zone of the ``calendar`` rule (the exchange rules have their own zone).
    first_ns, last_ns : int
        The data's time span, UTC nanoseconds.

    Returns
    -------
    Sessions
        Boundaries for every date from the day before the first local date to the day after the
        last (a margin for sessions that start the previous evening).
    """
    zone = check_rule(rule, time_zone)
    day = local_date(first_ns, zone) - timedelta(days=1)
    stop = local_date(last_ns, zone) + timedelta(days=1)
    starts: list[int] = []
    ends: list[int] = []
    dates: list[date] = []
    while day <= stop:
        bounds = session_of_date(rule, zone, day)
        if bounds is not None:
            starts.append(bounds[0])
            ends.append(bounds[1])
            dates.append(day)
        day += timedelta(days=1)
    return Sessions(np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64),
                    np.asarray(dates, dtype="datetime64[D]"))


def assign_sessions(
    ts_ns: NDArray[np.int64], rule: SessionRule, time_zone: str = "UTC"
) -> tuple[NDArray[np.int64], Sessions]:
    """The session of every trade.

    Parameters
    ----------
    ts_ns : ndarray, int64, shape (N,)
        Trade times, UTC nanoseconds.
    rule : {"calendar", "us-equity-rth", "cme-globex"}
    time_zone : str
        IANA zone of the ``calendar`` rule.

    Returns
    -------
    index : ndarray, int64, shape (N,)
        Index into the returned sessions (ordered in time), -1 for a trade outside every session.
    sessions : Sessions
        The boundaries the index points into.
    """
    if ts_ns.shape[0] == 0:
        check_rule(rule, time_zone)
        empty = np.zeros(0, dtype=np.int64)
        return empty, Sessions(empty, empty.copy(), np.zeros(0, dtype="datetime64[D]"))
    sessions = session_bounds(rule, time_zone, int(ts_ns.min()), int(ts_ns.max()))
    return sessions.assign(ts_ns), sessions


class SessionClock:
    """Session lookup for one timestamp at a time (the streaming calculator's clock).

    Keeps the last session found, so a trade inside it costs two comparisons; otherwise it asks
    :func:`session_of_date` for the dates around the trade, exactly as :func:`session_bounds`
    builds them for the batch path.
    """

    def __init__(self, rule: SessionRule, time_zone: str = "UTC") -> None:
        self.rule: SessionRule = rule
        self.zone = check_rule(rule, time_zone)
        self._current: tuple[int, int, date] | None = None

    def session(self, ts_ns: int) -> tuple[int, int, date] | None:
        """``(start_ns, end_ns, date)`` of the session holding ``ts_ns``, or None."""
        current = self._current
        if current is not None and current[0] <= ts_ns < current[1]:
            return current
        day = local_date(ts_ns, self.zone)
        for candidate in (day - timedelta(days=1), day, day + timedelta(days=1)):
            bounds = session_of_date(self.rule, self.zone, candidate)
            if bounds is not None and bounds[0] <= ts_ns < bounds[1]:
                self._current = (bounds[0], bounds[1], candidate)
                return self._current
        return None

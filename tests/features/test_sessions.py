"""Tests of session rules and assignment (features/sessions.py)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.features.sessions import (
    SessionClock,
    assign_sessions,
    session_bounds,
    to_ns,
)

NY = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
UTC = ZoneInfo("UTC")


def ns(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0,
       zone: ZoneInfo = UTC, micro: int = 0) -> int:
    return to_ns(datetime(year, month, day, hour, minute, second, micro, tzinfo=zone))


def session_dates(ts: list[int], rule: str, time_zone: str = "UTC") -> list[date | None]:
    index, sessions = assign_sessions(np.array(ts, dtype=np.int64), rule,  # type: ignore[arg-type]
                                      time_zone)
    return [None if k < 0 else sessions.dates[k].astype(date) for k in index]


def test_assign_sessions_when_calendar_utc_then_midnight_splits_days() -> None:
    ts = [ns(2024, 3, 8, 23, 59, 59), ns(2024, 3, 9, 0, 0, 0), ns(2024, 3, 9, 12)]
    assert session_dates(ts, "calendar") == [date(2024, 3, 8), date(2024, 3, 9), date(2024, 3, 9)]


def test_assign_sessions_when_calendar_in_new_york_then_dated_by_local_day() -> None:
    # 03:00 UTC on the 9th is still the 8th in New York (EST, UTC-5)
    ts = [ns(2024, 3, 9, 3), ns(2024, 3, 9, 5, 0, 0)]
    assert session_dates(ts, "calendar", "America/New_York") == [date(2024, 3, 8),
                                                                 date(2024, 3, 9)]


@pytest.mark.parametrize("day", [8, 11])  # Friday in EST, Monday in EDT (DST began Sunday 10th)
def test_assign_sessions_when_us_equity_rth_then_0930_to_1600_new_york(day: int) -> None:
    ts = [ns(2024, 3, day, 9, 29, 59, NY, 999_999), ns(2024, 3, day, 9, 30, 0, NY),
          ns(2024, 3, day, 15, 59, 59, NY), ns(2024, 3, day, 16, 0, 0, NY)]
    expected = date(2024, 3, day)
    assert session_dates(ts, "us-equity-rth") == [None, expected, expected, None]


def test_session_bounds_when_dst_begins_then_rth_open_moves_one_hour_in_utc() -> None:
    sessions = session_bounds("us-equity-rth", "UTC", ns(2024, 3, 8, 12), ns(2024, 3, 11, 20))
    starts = dict(zip(sessions.dates.astype(date), sessions.starts, strict=True))
    assert starts[date(2024, 3, 8)] == ns(2024, 3, 8, 14, 30)  # EST: UTC-5
    assert starts[date(2024, 3, 11)] == ns(2024, 3, 11, 13, 30)  # EDT: UTC-4
    assert date(2024, 3, 9) not in starts and date(2024, 3, 10) not in starts  # weekend


def test_assign_sessions_when_cme_globex_sunday_evening_then_monday_session() -> None:
    ts = [ns(2024, 3, 10, 16, 59, 59, CHICAGO), ns(2024, 3, 10, 17, 0, 0, CHICAGO),
          ns(2024, 3, 11, 15, 59, 59, CHICAGO), ns(2024, 3, 11, 16, 30, 0, CHICAGO),
          ns(2024, 3, 11, 17, 0, 0, CHICAGO)]
    assert session_dates(ts, "cme-globex") == [
        None, date(2024, 3, 11), date(2024, 3, 11), None, date(2024, 3, 12)]


def test_session_bounds_when_cme_globex_across_dst_then_open_follows_chicago_clock() -> None:
    sessions = session_bounds("cme-globex", "UTC", ns(2024, 3, 4, 0), ns(2024, 3, 12, 0))
    starts = dict(zip(sessions.dates.astype(date), sessions.starts, strict=True))
    assert starts[date(2024, 3, 4)] == ns(2024, 3, 3, 23)  # Sunday 17:00 CST = 23:00 UTC
    assert starts[date(2024, 3, 11)] == ns(2024, 3, 10, 22)  # Sunday 17:00 CDT = 22:00 UTC
    assert date(2024, 3, 9) not in starts  # no Saturday session (Friday evening is closed)


def test_sessions_assign_sorted_when_sorted_then_equals_searchsorted_assign() -> None:
    rng = np.random.default_rng(5)
    ts = np.sort(rng.integers(ns(2024, 3, 1, 0), ns(2024, 3, 20, 0), size=5000))
    for rule in ("calendar", "us-equity-rth", "cme-globex"):
        sessions = session_bounds(rule, "UTC", int(ts[0]), int(ts[-1]))  # type: ignore[arg-type]
        np.testing.assert_array_equal(sessions.assign_sorted(ts), sessions.assign(ts))
        assert (sessions.assign(ts) >= 0).any() and (rule == "calendar") == (
            sessions.assign(ts) >= 0).all()


@pytest.mark.parametrize("rule", ["calendar", "us-equity-rth", "cme-globex"])
def test_session_clock_when_fed_one_by_one_then_agrees_with_batch(rule: str) -> None:
    rng = np.random.default_rng(6)
    ts = np.sort(rng.integers(ns(2024, 3, 1, 0), ns(2024, 3, 20, 0), size=3000))
    index, sessions = assign_sessions(ts, rule, "Europe/London")  # type: ignore[arg-type]
    clock = SessionClock(rule, "Europe/London")  # type: ignore[arg-type]
    for t, k in zip(ts.tolist(), index.tolist(), strict=True):
        found = clock.session(t)
        if k < 0:
            assert found is None
        else:
            assert found == (sessions.starts[k], sessions.ends[k], sessions.dates[k].astype(date))


def test_assign_sessions_when_unknown_rule_or_zone_then_tapecast_error() -> None:
    ts = np.array([ns(2024, 3, 1, 0)], dtype=np.int64)
    with pytest.raises(TapecastError, match="unknown session rule"):
        assign_sessions(ts, "lunar")  # type: ignore[arg-type]
    with pytest.raises(TapecastError, match="unknown time zone"):
        assign_sessions(ts, "calendar", "Mars/Olympus")


def test_assign_sessions_when_empty_then_empty() -> None:
    index, sessions = assign_sessions(np.zeros(0, dtype=np.int64), "us-equity-rth")
    assert index.shape == (0,) and len(sessions) == 0

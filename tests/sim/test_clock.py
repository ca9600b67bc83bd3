"""Tests of tapecast.sim.clock: session dates, New York bounds, timestamps."""

from __future__ import annotations

import datetime as dt

import numpy as np

from tapecast.sim.clock import session_bounds_ns, session_dates, session_times

HOUR_NS = 3_600 * 10**9


def test_session_dates_when_start_on_saturday_then_weekdays_only() -> None:
    days = session_dates(dt.date(2024, 1, 6), 6)
    assert days[0] == dt.date(2024, 1, 8)
    assert all(d.weekday() < 5 for d in days)
    assert days[-1] == dt.date(2024, 1, 15)


def test_session_bounds_ns_when_summer_then_open_at_13_30_utc() -> None:
    start, end = session_bounds_ns(dt.date(2024, 7, 1))  # EDT: UTC-4
    midnight = int(np.datetime64("2024-07-01T00:00", "ns").astype(np.int64))
    assert start - midnight == 13 * HOUR_NS + HOUR_NS // 2
    assert end - start == 6 * HOUR_NS + HOUR_NS // 2


def test_session_times_when_bursts_then_strictly_increasing_inside_session() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    is_burst = rng.random(n) < 0.7
    ts = session_times(rng, dt.date(2024, 1, 8), np.ones(n), is_burst, open_boost=2.0,
                       close_boost=2.0, decay=0.05)
    start, end = session_bounds_ns(dt.date(2024, 1, 8))
    assert np.all(np.diff(ts) >= 2)
    assert ts[0] > start and ts[-1] < end
    gaps = np.diff(ts)[is_burst[1:]]  # (bursts,) a burst print follows within 50 µs
    assert np.median(gaps) < 50_000

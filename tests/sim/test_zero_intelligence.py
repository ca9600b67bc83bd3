"""Zero-intelligence order flow: a reference book run, calibration recovery, JSON, bad input."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.sim.order_flow import BookView, OrderFlowGenerator
from tapecast.sim.zero_intelligence import (
    ZeroIntelligenceGenerator,
    ZICalibration,
    mean_resting_orders,
)

TICK = 0.01
L = 10
TRUE = ZICalibration(mu=0.5, alpha=0.4, delta=0.05, max_ticks=L, profile=(1 / L,) * L, tick=TICK)
SIZES = np.arange(1, 11, dtype=np.int64)
T0_NS = 1_704_186_000 * 1_000_000_000  # 2024-01-02 09:00 UTC


@dataclass
class _Run:
    """What a reference book run records: token, trade and event rows, exact mean resting."""

    tokens: list[dict[str, object]] = field(default_factory=list)
    quotes: list[tuple[float | None, float | None]] = field(default_factory=list)
    trades: list[tuple[int, int, float]] = field(default_factory=list)
    events: list[tuple[int, str, str, int]] = field(default_factory=list)
    exposure: list[float] = field(default_factory=lambda: [0.0, 0.0])


def _run_book(gen: ZeroIntelligenceGenerator, n: int, seed: int) -> tuple[_Run, float]:
    """Run ``gen`` through a plain price-time book in integer ticks, n intents."""
    gen.reset(seed)
    book: list[list[list[int]]] = [[], []]  # per side [key, seq, price, size, id], best first
    run, t, t_token, seq, mid = _Run(), 0.0, 0.0, 0, 100.0
    names = ("bid", "ask")
    for k in range(1, 31):  # a seeded book at t=0: 30 orders per side within 10 ticks of 100
        for side, price in ((0, 10_000 - k % 10 - 1), (1, 10_000 + k % 10 + 1)):
            seq += 1
            bisect.insort(book[side], [-price if side == 0 else price, seq, price, 5, seq])
            run.events.append((0, "add", names[side], seq))
    for _ in range(n):
        bid = book[0][0][2] * TICK if book[0] else None
        ask = book[1][0][2] * TICK if book[1] else None
        mid = (bid + ask) / 2 if bid is not None and ask is not None else mid
        view = BookView(t, mid, bid, ask, TICK, (len(book[0]), len(book[1])))
        intent = gen.next(view)
        for side in (0, 1):
            run.exposure[side] += len(book[side]) * intent.dt
        t += intent.dt
        ns = T0_NS + round(t * 1e9)
        if intent.action == "market":
            opposite, left = book[1 - intent.side], intent.size
            while left and opposite:
                take = min(left, opposite[0][3])
                left -= take
                opposite[0][3] -= take
                if opposite[0][3] == 0:
                    run.events.append((ns, "fill", names[1 - intent.side], opposite[0][4]))
                    opposite.pop(0)
            run.trades.append((ns, 1 if intent.side == 0 else -1, float(intent.size - left)))
            continue
        if intent.action == "add":
            price = round(mid * (1 + intent.delta_p) / TICK)
            seq += 1
            order = [-price if intent.side == 0 else price, seq, price, intent.size, seq]
            bisect.insort(book[intent.side], order)
        else:
            assert intent.order_rank is not None
            order = book[intent.side].pop(intent.order_rank)
        run.events.append((ns, intent.action, names[intent.side], order[4]))
        run.quotes.append((bid, ask))
        run.tokens.append({"action": intent.action, "side": names[intent.side],
                           "price": order[2] * TICK, "size": order[3], "dt": t - t_token,
                           "p_mid": mid, "delta_p": order[2] * TICK / mid - 1})
        t_token = t
    return run, t


def _frames(run: _Run) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    tokens = pl.DataFrame(run.tokens)
    quotes = pl.DataFrame(run.quotes, schema=["best_bid", "best_ask"], orient="row")
    utc = pl.Datetime("ns", "UTC")
    trades = pl.DataFrame(run.trades, schema=["ts", "side", "size"], orient="row").with_columns(
        pl.col("ts").cast(utc))
    events = pl.DataFrame(run.events, schema=["ts_event", "action", "side", "order_id"],
                          orient="row").with_columns(pl.col("ts_event").cast(utc))
    return tokens, quotes, trades, events


@pytest.fixture(scope="module")
def true_run() -> tuple[_Run, float]:
    gen = ZeroIntelligenceGenerator(TRUE, SIZES, SIZES, SIZES)
    return _run_book(gen, 30_000, seed=11)


def test_calibrate_when_data_simulated_from_known_parameters_recovers_them(
        true_run: tuple[_Run, float]) -> None:
    run, t_end = true_run
    tokens, quotes, trades, _ = _frames(run)
    n_bar = (run.exposure[0] / t_end, run.exposure[1] / t_end)
    cal = ZeroIntelligenceGenerator.calibrate(tokens, trades=trades, quotes=quotes,
                                              mean_resting=n_bar).calibration
    assert cal.max_ticks == L and cal.tick == pytest.approx(TICK)
    assert cal.n_adds_marketable == 0 and cal.n_adds_beyond == 0
    for name, count in (("mu", cal.n_market), ("alpha", cal.n_adds), ("delta", cal.n_cancels)):
        est, true = getattr(cal, name), getattr(TRUE, name)
        assert abs(est - true) < 4 * true / math.sqrt(count), (name, est, true)  # Poisson s.e.
        assert est == pytest.approx(true, rel=0.1)
    np.testing.assert_allclose(cal.profile, TRUE.profile, atol=0.02)


def test_mean_resting_orders_when_every_order_is_seen_equals_the_time_average(
        true_run: tuple[_Run, float]) -> None:
    run, t_end = true_run
    events = _frames(run)[3]
    start, end = T0_NS / 1e9, T0_NS / 1e9 + t_end
    estimate = mean_resting_orders(events, start, end)
    np.testing.assert_allclose(estimate, [x / t_end for x in run.exposure], rtol=0.01)


def test_generator_is_reproducible_never_crosses_and_round_trips_json(tmp_path: Path) -> None:
    gen = ZeroIntelligenceGenerator(TRUE, SIZES, SIZES, SIZES)
    assert isinstance(gen, OrderFlowGenerator)
    view = BookView(0.0, 100.0, 99.99, 100.01, TICK, (20, 30))
    gen.reset(3)
    first = [gen.next(view) for _ in range(3_000)]
    gen.save(tmp_path / "zi.json")
    loaded = ZeroIntelligenceGenerator.load(tmp_path / "zi.json")
    loaded.reset(3)
    again = [loaded.next(view) for _ in range(3_000)]
    assert [(i.dt, i.action, i.side, i.size, i.order_rank) for i in again] == [
        (i.dt, i.action, i.side, i.size, i.order_rank) for i in first]
    for i in first:
        if i.action == "add":
            price = 100.0 * (1 + i.delta_p)
            assert (price < 100.01 - 1e-9) if i.side == 0 else (price > 99.99 + 1e-9)
            assert 1 <= round(abs((100.01 if i.side == 0 else 99.99) - price) / TICK) <= L
        elif i.action == "cancel":
            assert i.order_rank is not None and 0 <= i.order_rank < view.resting[i.side]
        else:
            assert math.isnan(i.delta_p)
    shares = {a: sum(i.action == a for i in first) / 3_000 for a in ("add", "cancel", "market")}
    total = 2 * 0.5 + 2 * 4.0 + 0.05 * 50  # market, limit, cancel rates at this view
    assert shares["add"] == pytest.approx(8.0 / total, abs=0.03)
    assert shares["cancel"] == pytest.approx(2.5 / total, abs=0.03)


def test_calibrate_and_next_when_input_is_bad_raise_one_line(
        true_run: tuple[_Run, float], tmp_path: Path) -> None:
    tokens = _frames(true_run[0])[0]
    with pytest.raises(TapecastError, match="expected mean resting orders per side > 0"):
        ZeroIntelligenceGenerator.calibrate(tokens)
    with pytest.raises(TapecastError, match="expected token events, got none"):
        ZeroIntelligenceGenerator.calibrate(tokens.head(0), mean_resting=(1.0, 1.0))
    with pytest.raises(TapecastError, match="missing \\['p_mid'\\]"):
        ZeroIntelligenceGenerator.calibrate(tokens.drop("p_mid"), mean_resting=(1.0, 1.0))
    gen = ZeroIntelligenceGenerator(TRUE, SIZES, SIZES, SIZES)
    with pytest.raises(TapecastError, match="expected a book view with a mid price") as info:
        gen.next(BookView(0.0, None, None, None, TICK, (0, 0)))
    assert "\n" not in str(info.value)
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(TapecastError, match="zero_intelligence/1 JSON"):
        ZeroIntelligenceGenerator.load(tmp_path / "bad.json")


AAPL = Path(__file__).parents[2] / "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"


@pytest.mark.skipif(not AAPL.exists(), reason="shared LOBSTER sample absent")
def test_calibrate_when_tokens_are_real_lobster_places_every_add() -> None:
    from tapecast.data.detect import read
    from tapecast.features.events import event_features_from_tables
    from tapecast.sim.zero_intelligence import book_context

    tables = read(AAPL)
    tokens = event_features_from_tables(tables).tokens
    quotes, resting = book_context(tables, tokens)
    assert quotes.height == tokens.height and min(resting) > 0
    cal = ZeroIntelligenceGenerator.calibrate(tokens, trades=tables.trades, quotes=quotes,
                                              mean_resting=resting).calibration
    assert cal.tick == pytest.approx(0.01) and cal.n_adds_unplaced == 0
    assert cal.mu > 0 and cal.alpha > 0 and cal.delta > 0 and 1 <= cal.max_ticks <= 100
    assert cal.n_adds_marketable + cal.n_adds_beyond < 0.1 * cal.n_adds

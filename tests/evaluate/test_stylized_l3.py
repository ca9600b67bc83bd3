"""Stylized facts of an L3 feed: a feed against itself, two seeds of one generator, doubled
inter-arrival times, a quoted mid path with known returns, i.i.d. and mixture returns, and the
ES session when the shared data is present."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats  # type: ignore[import-untyped]

from tapecast.data.detect import read
from tapecast.data.schemas import EVENTS
from tapecast.evaluate.stylized_l3 import (
    DISTRIBUTION_FEATURES,
    FeedFacts,
    FeedFactsError,
    compare_feeds,
    feed_facts,
    grid_returns,
    plot_comparison,
)
from tests.conftest import shared_file
from tests.sim.l3_feed import l3_csv

ES = "nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
ES_OPEN = datetime(2023, 12, 25, 23, 0, tzinfo=UTC)
T0_NS = 1_700_000_000 * 1_000_000_000
NS = 1_000_000_000


@pytest.fixture(scope="module")
def l3_events(tmp_path_factory: pytest.TempPathFactory) -> dict[int, pl.DataFrame]:
    folder = tmp_path_factory.mktemp("l3")
    return {seed: read(l3_csv(folder / f"feed{seed}.csv", seed, n=4000)).events
            for seed in (0, 1, 2)}


def _stretched(events: pl.DataFrame, factor: int) -> pl.DataFrame:
    """The same feed with every time offset from the first event multiplied by ``factor``."""
    first = events["ts_event"].min()
    return events.with_columns(
        (pl.lit(first) + (pl.col(c) - pl.lit(first)) * factor).alias(c)
        for c in ("ts_event", "ts_recv") if events[c].null_count() < events.height)


def _quote_feed(ticks: np.ndarray, tick: float = 0.01, step_s: float = 1.0) -> pl.DataFrame:
    """A one-tick-wide quote at ``ticks[k]`` (bid) moved every ``step_s``: cancel both orders,
    add both anew, F_LAST on the last of each packet. The mid is (ticks[k] + 0.5) * tick."""
    rows = []
    for k, bid in enumerate(ticks):
        ts = T0_NS + round(k * step_s * NS)
        ops = [] if k == 0 else [("cancel", "bid", ticks[k - 1], 2 * k - 1),
                                 ("cancel", "ask", ticks[k - 1] + 1, 2 * k)]
        ops += [("add", "bid", bid, 2 * k + 1), ("add", "ask", bid + 1, 2 * k + 2)]
        for j, (action, side, price, oid) in enumerate(ops):
            rows.append({"ts_event": ts, "ts_recv": ts, "instrument": "Q", "action": action,
                         "side": side, "price": round(float(price) * tick, 10), "size": 5,
                         "order_id": oid, "flags": 0x80 if j == len(ops) - 1 else 0,
                         "sequence": len(rows)})
    frame = pl.DataFrame(rows)
    return frame.with_columns(pl.col("ts_event", "ts_recv").cast(pl.Datetime("ns", "UTC"))
                              ).cast(dict(EVENTS)).select(EVENTS.names())


def _returns_facts(returns: dict[float, np.ndarray]) -> FeedFacts:
    empty = np.empty(0)
    return FeedFacts(dt=empty, delta_p=empty, size=empty, spread=empty, returns=returns,
                     tick=1.0, duration_s=0.0)


def _mixture(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gaussian scale mixture: sd 1 with probability 0.95, sd 8 otherwise (heavy tails)."""
    return rng.standard_normal(n) * np.where(rng.random(n) < 0.05, 8.0, 1.0)


# --- facts of a feed --------------------------------------------------------------------------

def test_grid_returns_when_mid_known_are_log_changes_of_last_mid() -> None:
    ts = np.array([0, 0.4, 1.0, 1.7, 2.5, 3.2]) * NS
    mid = np.array([100.0, 101.0, 102.0, np.nan, 104.0, 105.0])
    r, dropped = grid_returns(ts.astype(np.int64), mid, 1.0)
    # grid 0, 1, 2, 3 s: last states 100, 102, NaN (t=1.7), 104 -> one defined return
    np.testing.assert_allclose(r, [math.log(102 / 100)])
    assert dropped == 2


def test_feed_facts_when_quote_path_known_returns_equal_tick_path() -> None:
    rng = np.random.default_rng(3)
    ticks = 10_000 + np.cumsum(rng.integers(-3, 4, size=400))
    facts = feed_facts(_quote_feed(ticks))
    expected = np.diff(np.log((ticks + 0.5) * 0.01))
    np.testing.assert_allclose(facts.returns[1.0], expected, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(facts.returns[10.0], np.diff(np.log((ticks[::10] + 0.5) * 0.01)),
                               rtol=1e-9, atol=1e-15)
    assert facts.tick == pytest.approx(0.01)
    assert set(np.unique(facts.spread)) == {1.0}
    assert facts.counts["one_sided"] == facts.counts["crossed"] == 0
    assert facts.duration_s == pytest.approx(399.0)


def test_feed_facts_when_l3_feed_gives_positive_dt_prices_and_ticks(
        l3_events: dict[int, pl.DataFrame]) -> None:
    facts = feed_facts(l3_events[0])
    assert facts.tick == pytest.approx(0.01)
    assert facts.dt.size == facts.counts["tokens"] > 3000 * 0.8
    assert (facts.dt >= 0).all() and (facts.size >= 1).all()
    assert (facts.spread >= 1).all() and np.allclose(facts.spread, np.round(facts.spread))
    assert abs(np.median(facts.delta_p)) < 0.002  # orders within 20 cents of 100


def test_feed_facts_when_two_instruments_or_bad_interval_raises(
        l3_events: dict[int, pl.DataFrame]) -> None:
    events = l3_events[0]
    two = pl.concat([events, events.with_columns(instrument=pl.lit("OTHER"))])
    with pytest.raises(FeedFactsError, match="one instrument"):
        feed_facts(two)
    with pytest.raises(FeedFactsError, match="> 0 s"):
        feed_facts(events, intervals=(0.0,))


# --- distances ----------------------------------------------------------------------------------

def test_compare_feeds_when_feed_against_itself_every_distance_is_zero(
        l3_events: dict[int, pl.DataFrame]) -> None:
    facts = feed_facts(l3_events[0], intervals=(1.0,))
    out = compare_feeds(facts, [facts, facts], intervals=(1.0,), n_boot=50)
    for name in (*DISTRIBUTION_FEATURES, "return_1s"):
        entry = out["distributions"][name]
        for stat in ("ks", "w1", "w1_normalized"):
            assert entry[stat]["value"] == pytest.approx(0.0, abs=1e-12), (name, stat)
            assert entry[stat]["high"] == pytest.approx(0.0, abs=1e-12), (name, stat)
    assert out["kurtosis"]["error_1s"]["value"] == pytest.approx(0.0, abs=1e-9)
    json.dumps(out)  # JSON-ready: no NaN, no numpy scalars


def test_compare_feeds_when_two_seeds_of_one_generator_distances_are_small(
        l3_events: dict[int, pl.DataFrame]) -> None:
    real = feed_facts(l3_events[0])
    same = compare_feeds(real, [feed_facts(l3_events[s]) for s in (1, 2)], n_boot=200)
    slow = compare_feeds(real, [feed_facts(_stretched(l3_events[s], 2)) for s in (1, 2)],
                         n_boot=200)
    for name in ("dt", "delta_p", "size"):
        assert same["distributions"][name]["ks"]["value"] < 0.04, name
    assert same["distributions"]["spread"]["ks"]["value"] < 0.15  # spreads persist: few
    assert slow["distributions"]["dt"]["ks"]["value"] > 0.15  # 10 % of gaps are 0 in both
    same_dt, slow_dt = same["distributions"]["dt"], slow["distributions"]["dt"]
    assert slow_dt["w1_normalized"]["value"] > 5 * same_dt["w1_normalized"]["value"]
    ci = same_dt["ks"]
    assert ci["low"] <= ci["value"] <= ci["high"]


def test_compare_feeds_when_dt_doubled_w1_of_dt_is_the_real_mean(
        l3_events: dict[int, pl.DataFrame]) -> None:
    real = feed_facts(l3_events[0])
    doubled = feed_facts(_stretched(l3_events[0], 2))
    np.testing.assert_allclose(np.sort(doubled.dt), 2 * np.sort(real.dt), rtol=1e-9)
    entry = compare_feeds(real, [doubled], n_boot=20)["distributions"]["dt"]
    assert entry["w1"]["value"] == pytest.approx(real.dt.mean(), rel=1e-9)
    assert entry["w1_normalized"]["value"] == pytest.approx(real.dt.mean() / real.dt.std(),
                                                            rel=1e-9)
    assert entry["ks"]["value"] == pytest.approx(stats.ks_2samp(doubled.dt, real.dt).statistic)


def test_compare_feeds_when_shifted_normal_w1_is_shift_and_ci_covers_it() -> None:
    rng = np.random.default_rng(5)
    real = _returns_facts({1.0: rng.standard_normal(20_000)})
    parts = [_returns_facts({1.0: rng.standard_normal(5000) + 0.5}) for _ in range(8)]
    entry = compare_feeds(real, parts, intervals=(1.0,), n_boot=300)["distributions"]
    w1 = entry["return_1s"]["w1"]
    assert w1["value"] == pytest.approx(0.5, abs=0.03)
    assert w1["low"] < 0.5 < w1["high"] or abs(w1["value"] - 0.5) < 0.03
    assert w1["high"] - w1["low"] < 0.1
    assert entry["return_1s"]["w1_normalized"]["value"] == pytest.approx(
        w1["value"] / real.returns[1.0].std())


def test_compare_feeds_when_one_rollout_ci_collapses_to_exact_value() -> None:
    """R = 1: every resample is the rollout itself, so the grid replicates (4096 points for
    50,000 distinct values), shifted by (exact - grid), equal the exact statistic."""
    rng = np.random.default_rng(6)
    real = _returns_facts({1.0: rng.standard_t(3, 50_000)})
    gen = _returns_facts({1.0: rng.standard_t(4, 50_000)})
    ks = compare_feeds(real, [gen], intervals=(1.0,), n_boot=10)["distributions"]["return_1s"]
    for stat in ("ks", "w1"):
        assert ks[stat]["low"] == pytest.approx(ks[stat]["value"], rel=1e-9)
        assert ks[stat]["high"] == pytest.approx(ks[stat]["value"], rel=1e-9)


def test_compare_feeds_when_real_has_too_few_returns_skips_interval() -> None:
    rng = np.random.default_rng(7)
    real = _returns_facts({1.0: rng.standard_normal(500), 60.0: rng.standard_normal(12)})
    gen = _returns_facts({1.0: rng.standard_normal(500), 60.0: rng.standard_normal(40)})
    out = compare_feeds(real, [gen], intervals=(1.0, 60.0), n_boot=10)["distributions"]
    assert out["return_60s"] == {"skipped": "fewer than 30 returns", "n_real": 12,
                                 "n_generated": 40}
    assert out["return_1s"]["ks"]["value"] is not None


# --- kurtosis and ACF ---------------------------------------------------------------------------

def test_compare_feeds_when_iid_returns_acf_is_near_zero_with_ci_covering_it() -> None:
    rng = np.random.default_rng(8)
    real = _returns_facts({1.0: rng.standard_normal(4000)})
    gens = [_returns_facts({1.0: rng.standard_normal(2000)}) for _ in range(16)]
    out = compare_feeds(real, gens, intervals=(1.0,), n_boot=500)
    for key in ("acf", "abs_acf"):
        block = out[key]
        assert abs(block["acf1"]["real"]) < 3 * block["band"]
        value = np.array(block["generated"]["value"])
        assert np.abs(value).max() < 0.03  # mean of 16 ACFs of 2,000 i.i.d. values
        low, high = np.array(block["generated"]["low"]), np.array(block["generated"]["high"])
        assert np.mean((low <= 0) & (0 <= high)) > 0.85
        assert len(value) == 50 and block["mae"] < 0.05


def test_compare_feeds_when_volatility_clusters_abs_acf1_is_positive() -> None:
    rng = np.random.default_rng(9)
    regime = np.repeat(rng.choice([1.0, 6.0], size=200), 20)  # sd constant over 20-s blocks
    gens = [_returns_facts({1.0: rng.standard_normal(4000) * regime}) for _ in range(4)]
    real = _returns_facts({1.0: rng.standard_normal(4000)})
    acf1 = compare_feeds(real, gens, intervals=(1.0,), n_boot=200)["abs_acf"]["acf1"]
    assert acf1["generated"]["low"] > 0.2 > abs(acf1["real"])


def test_compare_feeds_when_mixture_returns_kurtosis_falls_with_interval() -> None:
    """i.i.d. increments summed over m seconds: excess kurtosis κ_1 / m (a mixture has
    κ_1 = 3 (0.95 + 0.05·8⁴) / (0.95 + 0.05·8²)² - 3 ≈ 31)."""
    rng = np.random.default_rng(10)
    intervals = (1.0, 5.0, 20.0)

    def facts(n: int) -> FeedFacts:
        x = _mixture(rng, n)
        return _returns_facts({i: x[: n // int(i) * int(i)].reshape(-1, int(i)).sum(axis=1)
                               for i in intervals})

    real = facts(400_000)
    gens = [facts(50_000) for _ in range(8)]
    curve = compare_feeds(real, gens, intervals=(1.0,), kurtosis_intervals=intervals,
                          n_boot=200)["kurtosis"]
    kappa_1 = 3 * (0.95 + 0.05 * 8**4) / (0.95 + 0.05 * 8**2) ** 2 - 3
    real_k = np.array(curve["real"])
    gen_k = np.array([g["value"] for g in curve["generated"]])
    assert np.all(np.diff(real_k) < 0) and np.all(np.diff(gen_k) < 0)
    np.testing.assert_allclose(real_k, kappa_1 / np.array(intervals), rtol=0.25)
    assert curve["error_1s"]["value"] < 0.2
    assert curve["n_generated"] == [400_000, 80_000, 20_000]


def test_compare_feeds_when_gaussian_vs_mixture_kurtosis_error_is_large() -> None:
    rng = np.random.default_rng(11)
    real = _returns_facts({1.0: _mixture(rng, 100_000)})
    gens = [_returns_facts({1.0: rng.standard_normal(10_000)}) for _ in range(4)]
    err = compare_feeds(real, gens, intervals=(1.0,), kurtosis_intervals=(1.0,),
                        n_boot=100)["kurtosis"]["error_1s"]
    kappa_1 = 3 * (0.95 + 0.05 * 8**4) / (0.95 + 0.05 * 8**2) ** 2
    assert err["value"] == pytest.approx(math.log(kappa_1 / 3), abs=0.3)
    assert err["low"] > 1.5


# --- figure -------------------------------------------------------------------------------------

def test_plot_comparison_when_two_generators_writes_png(
        l3_events: dict[int, pl.DataFrame], tmp_path: Path) -> None:
    real = feed_facts(l3_events[0])
    gens = {"seed1": [feed_facts(l3_events[1])], "slow": [feed_facts(_stretched(
        l3_events[2], 2))]}
    path = plot_comparison(real, gens, tmp_path / "facts" / "stylized.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["stylized.png"]  # no temporary left


# --- real data ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def es_events() -> pl.DataFrame:
    events = read(shared_file(ES)).events
    assert events is not None
    return events


def test_feed_facts_when_es_session_spread_in_ticks_and_preopen_crossed(
        es_events: pl.DataFrame) -> None:
    whole = feed_facts(es_events)
    assert whole.tick == pytest.approx(0.25)
    assert whole.counts["crossed"] == 891  # the pre-open's crossed packet ends, docs/book.md
    facts = feed_facts(es_events, start=ES_OPEN)
    assert facts.counts["crossed"] == facts.counts["one_sided"] == 0
    assert np.median(facts.spread) == 1.0 and facts.spread.min() >= 1.0
    assert facts.returns[1.0].size == int(facts.duration_s)  # the hour, one return a second
    assert facts.returns[60.0].size >= 30
    assert np.allclose(facts.returns[1.0] / np.log1p(0.25 / 4800), np.round(
        facts.returns[1.0] / np.log1p(0.25 / 4800) * 2) / 2, atol=0.05)  # half-tick moves


def test_compare_feeds_when_es_against_itself_zero_and_against_l3_feed_far(
        es_events: pl.DataFrame, l3_events: dict[int, pl.DataFrame]) -> None:
    real = feed_facts(es_events, start=ES_OPEN)
    self_out = compare_feeds(real, [real], n_boot=20)
    assert all(entry["ks"]["value"] == 0.0 and entry["w1"]["value"] == 0.0
               for entry in self_out["distributions"].values())
    gens = [feed_facts(e) for e in l3_events.values()]
    out = compare_feeds(real, gens, n_boot=200)
    # the toy feed's orders are 1-49 lots 0-20 cents away; ES's are mostly 1-3 lots at the touch
    assert out["distributions"]["size"]["ks"]["value"] > 0.5
    assert out["distributions"]["return_60s"]["n_real"] == 59
    assert out["acf"]["acf1"]["real"] == pytest.approx(
        np.corrcoef(real.returns[1.0][:-1], real.returns[1.0][1:])[0, 1], abs=0.01)
    replaced = replace(real, size=real.size * 2)
    assert compare_feeds(real, [replaced], n_boot=0)["distributions"]["size"]["w1"][
        "value"] == pytest.approx(real.size.mean())

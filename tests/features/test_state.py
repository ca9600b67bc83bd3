"""Market-state vectors (features/state*.py): hand values, the seed's own code, causality,
streaming == batch, the train normalizer, the split and the embedded S&P 500."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tests.conftest import shared_file

from tapecast.core.errors import TapecastError
from tapecast.data.readers.embedded import SP500_INSTRUMENT, sp500_daily_bars
from tapecast.data.schemas import BARS
from tapecast.features.state import state_features
from tapecast.features.state_config import STATE_FEATURES, StateConfig
from tapecast.features.state_featureset import StateFeatureSet, state_splits
from tapecast.features.state_normalize import StateNormalizer
from tapecast.features.state_streaming import StreamingState

TINY = StateConfig(return_spans=(1, 2), lookback=3, short_vol=2, rsi_span=2)  # warm-up 3


def make_bars(close: list[float], volume: list[float] | None = None, instrument: str = "X",
              spread: float = 1.0, start: datetime | None = None) -> pl.DataFrame:
    """Hourly canonical bars with high = close + spread, low = close - spread."""
    t0 = start or datetime(2024, 1, 2, tzinfo=UTC)
    n = len(close)
    return pl.DataFrame({
        "ts": [t0 + timedelta(hours=i) for i in range(n)], "instrument": [instrument] * n,
        "open": close, "high": [c + spread for c in close], "low": [c - spread for c in close],
        "close": close, "volume": volume or [float(i + 1) for i in range(n)],
        "amount": [None] * n, "vwap": [None] * n, "n_trades": [None] * n,
        "bar_length": [timedelta(hours=1)] * n}).cast(BARS)


def random_bars(n: int, seed: int, instrument: str = "X") -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return make_bars(close.tolist(), rng.uniform(1, 10, n).tolist(), instrument)


def test_state_features_when_tiny_table_matches_hand_values() -> None:
    bars = make_bars([100.0, 110.0, 99.0, 99.0, 108.9])  # r = -, .1, -.1, 0, .1
    table, summary = state_features(bars, TINY)
    assert table["row"].to_list() == [3, 4]
    assert summary["X"] == {"bars": 5, "rows": 2, "warmup_dropped": 3,
                            "first_ts": "2024-01-02 03:00:00+00:00",
                            "last_ts": "2024-01-02 04:00:00+00:00"}
    row3, row4 = table.row(0, named=True), table.row(1, named=True)
    hand3 = {"return_1": 0.0, "return_2": -0.1, "volatility": 0.1,
             "volatility_ratio": 1 / math.sqrt(2), "momentum": 99 / 110 - 1,
             "volume_ratio": 4 / 3, "price_position": 1 / (13 + 1e-8), "rsi": 0.0}
    hand4 = {"return_1": 0.1, "return_2": 0.1, "volatility": 0.1,
             "volatility_ratio": 1 / math.sqrt(2), "momentum": 0.1, "volume_ratio": 5 / 4,
             "price_position": 10.9 / (11.9 + 1e-8), "rsi": 0.05 / (0.05 + 1e-8)}
    for row, hand in ((row3, hand3), (row4, hand4)):
        for name, value in hand.items():
            assert row[name] == pytest.approx(value, abs=1e-12), name
    assert row3["known_at"] - row3["ts"] == timedelta(hours=1)


def _seed_market_state(df: Any, lookback: int = 20) -> np.ndarray:
    """``compute_market_state`` of ../shared/seeds/score-matching-trading.txt, verbatim."""
    features = {}
    returns = df["close"].pct_change()
    for period in [1, 5, 10, 20]:
        features[f"return_{period}"] = returns.rolling(period).sum().iloc[-1]
    features["volatility"] = returns.rolling(lookback).std().iloc[-1]
    features["volatility_ratio"] = (returns.rolling(5).std().iloc[-1]
                                    / returns.rolling(20).std().iloc[-1])
    features["momentum"] = df["close"].iloc[-1] / df["close"].iloc[-lookback] - 1
    volume_ma = df["volume"].rolling(lookback).mean()
    features["volume_ratio"] = df["volume"].iloc[-1] / volume_ma.iloc[-1]
    high_20 = df["high"].rolling(lookback).max().iloc[-1]
    low_20 = df["low"].rolling(lookback).min().iloc[-1]
    features["price_position"] = (df["close"].iloc[-1] - low_20) / (high_20 - low_20 + 1e-8)
    gains = returns.clip(lower=0).rolling(14).mean().iloc[-1]
    losses = (-returns.clip(upper=0)).rolling(14).mean().iloc[-1]
    features["rsi"] = gains / (gains + losses + 1e-8)
    return np.array(list(features.values()))


def test_state_features_when_default_config_matches_the_seed_code() -> None:
    pd = pytest.importorskip("pandas")
    bars = random_bars(60, seed=1)
    table, _ = state_features(bars)
    frame = pd.DataFrame(bars.select("high", "low", "close", "volume").to_dict(as_series=False))
    for k, t in enumerate(range(20, 60, 7)):
        seed = _seed_market_state(frame.iloc[: t + 1])
        ours = np.array([table.row(t - 20, named=True)[f] for f in STATE_FEATURES])
        np.testing.assert_allclose(ours, seed, rtol=1e-10, atol=1e-14, err_msg=f"row {t} ({k})")


def test_state_features_when_a_future_bar_changes_earlier_rows_do_not() -> None:
    bars = random_bars(80, seed=2)
    changed = bars.with_columns(pl.when(pl.int_range(pl.len()) == 50).then(pl.col(c) * 1.3)
                                .otherwise(pl.col(c)).alias(c)
                                for c in ("high", "low", "close", "volume"))
    before, _ = state_features(bars)
    after, _ = state_features(changed)
    assert before.filter(pl.col("row") < 50).equals(after.filter(pl.col("row") < 50))
    assert not before.filter(pl.col("row") == 50).equals(after.filter(pl.col("row") == 50))


def test_state_features_when_instruments_interleave_each_uses_its_own_bars() -> None:
    a, b = random_bars(40, 3, "A"), random_bars(30, 4, "B")
    both, summary = state_features(pl.concat([b, a]).sort("ts"))
    alone, _ = state_features(a)
    assert summary["A"]["rows"] == 20 and summary["B"]["rows"] == 10
    assert both.filter(pl.col("instrument") == "A").equals(alone)


def test_state_features_when_too_few_bars_raises_one_line() -> None:
    with pytest.raises(TapecastError, match=r"X: 20 bar\(s\), fewer than the 21"):
        state_features(random_bars(20, seed=5))


def test_state_features_when_flat_volume_after_warmup_names_row_and_field() -> None:
    volume = [1.0] * 25 + [0.0] * 20 + [1.0] * 5
    bars = make_bars(np.linspace(100, 110, 50).tolist(), volume)
    with pytest.raises(TapecastError, match=r"X bar 44 .* 'volume_ratio' is nan"):
        state_features(bars)


def test_state_features_when_duplicate_or_bad_close_raises() -> None:
    bars = random_bars(30, seed=6)
    with pytest.raises(TapecastError, match="duplicated timestamp"):
        state_features(pl.concat([bars, bars.slice(3, 1)]))
    with pytest.raises(TapecastError, match=r"close\(s\) not > 0"):
        state_features(bars.with_columns(close=pl.col("close") * 0))


def test_state_config_when_features_chosen_selects_columns_and_rejects_unknown() -> None:
    table, _ = state_features(random_bars(30, 7), StateConfig(features=("rsi", "momentum")))
    assert table.columns[-2:] == ["rsi", "momentum"] and "volatility" not in table.columns
    with pytest.raises(TapecastError, match="unknown"):
        StateConfig(features=("nope",))
    assert StateConfig.from_dict(TINY.to_dict()) == TINY


def _streamed(bars: pl.DataFrame, config: StateConfig) -> pl.DataFrame:
    state = StreamingState(config, str(bars["instrument"][0]))
    rows = [r for b in bars.iter_rows(named=True) if (r := state.update(b)) is not None]
    return pl.DataFrame(rows)


def _assert_stream_equals_batch(bars: pl.DataFrame, config: StateConfig) -> None:
    batch, _ = state_features(bars, config)
    stream = _streamed(bars, config)
    assert stream["row"].to_list() == batch["row"].to_list()
    for name in config.names:
        np.testing.assert_allclose(stream[name].to_numpy(), batch[name].to_numpy(),
                                   rtol=0, atol=1e-12, err_msg=name)


def test_streaming_state_when_fed_real_hourly_bars_equals_batch() -> None:
    from tapecast.data.readers.lean import read_lean

    bars = read_lean(shared_file("lean/equity/usa/hour/spy.zip")).bars
    assert bars is not None
    _assert_stream_equals_batch(bars.slice(0, 5000), StateConfig())


def test_streaming_state_when_fed_the_sp500_or_tiny_config_equals_batch() -> None:
    _assert_stream_equals_batch(sp500_daily_bars(), StateConfig())
    _assert_stream_equals_batch(random_bars(50, 8), TINY)


def test_streaming_state_when_bars_out_of_order_raises() -> None:
    state = StreamingState(TINY, "X")
    bars = random_bars(5, 9).to_dicts()
    state.update(bars[1])
    with pytest.raises(TapecastError, match="not after the previous"):
        state.update(bars[0])


def test_state_normalizer_when_fitted_on_train_ignores_later_rows_and_clips(
        tmp_path: Path) -> None:
    fs = StateFeatureSet.build(random_bars(400, 10), StateConfig())
    train = fs.table.filter(pl.col("split") == "train")
    x = train.select(fs.config.names).to_numpy()
    np.testing.assert_allclose(fs.normalizer.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fs.normalizer.std, x.std(axis=0), rtol=1e-12)
    later = fs.table.with_columns(pl.when(pl.col("split") != "train")
                                  .then(pl.col("rsi") * 100).otherwise(pl.col("rsi")))
    refit = StateNormalizer.fit(later.filter(pl.col("split") == "train"), fs.config.names)
    assert refit == fs.normalizer
    z = fs.normalizer.transform(np.asarray(fs.normalizer.mean)[None, :]
                                + 99 * np.asarray(fs.normalizer.std)[None, :])
    assert (z == 5.0).all()
    fs.normalizer.save(tmp_path / "n.json")
    assert StateNormalizer.load(tmp_path / "n.json") == fs.normalizer


def test_state_splits_when_default_are_time_ordered_with_embargo() -> None:
    table, _ = state_features(pl.concat([random_bars(200, 11, "A"), random_bars(200, 12, "B")]))
    labels, spec = state_splits(table, embargo=5)
    labelled = table.with_columns(labels)
    last = labelled.group_by("split").agg(pl.col("known_at").min().alias("lo"),
                                          pl.col("known_at").max().alias("hi"))
    span = {s: (lo, hi) for s, lo, hi in last.iter_rows()}
    assert span["train"][1] < span["val"][0] and span["val"][1] < span["test"][0]
    assert spec["rows_per_split"]["embargo"] == 2 * 2 * 5  # 2 instruments x val, test
    with pytest.raises(TapecastError, match="no row in"):
        state_splits(table.slice(0, 3), embargo=5)


def test_state_feature_set_when_saved_and_opened_round_trips(tmp_path: Path) -> None:
    fs = StateFeatureSet.build(sp500_daily_bars(), StateConfig(), source="sp500")
    saved = fs.save(tmp_path / "st")
    opened = StateFeatureSet.open(tmp_path / "st")
    assert opened.table.equals(fs.table) and opened.normalizer == fs.normalizer
    assert opened.split == saved.split and opened.config == fs.config
    test = opened.matrix("test")
    assert test.shape == (fs.split["rows_per_split"]["test"], 10)
    assert np.abs(test).max() <= 5.0
    (tmp_path / "st" / "state.parquet").write_bytes(b"x")
    with pytest.raises(TapecastError, match="changed since it was written"):
        StateFeatureSet.open(tmp_path / "st")


def test_sp500_daily_bars_when_loaded_matches_arch() -> None:
    bars = sp500_daily_bars()
    assert bars.schema == BARS and bars.height == 5031
    assert bars["instrument"].unique().to_list() == [SP500_INSTRUMENT]
    local = bars["ts"].dt.convert_time_zone("America/New_York")
    assert local.dt.hour().unique().to_list() == [9]
    sp500 = pytest.importorskip("arch.data.sp500")
    ref = sp500.load()
    np.testing.assert_array_equal(bars["close"].to_numpy(), ref["Close"].to_numpy())
    np.testing.assert_array_equal(local.dt.date().to_numpy(), ref.index.date)

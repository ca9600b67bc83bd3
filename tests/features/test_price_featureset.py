"""The price features folder (features/price_featureset.py) and its session splits
(features/price_splits.py)."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from tests.features.test_price import NS, _canonical, synthetic_bars

from tapecast.core.errors import TapecastError
from tapecast.data.schemas import BARS
from tapecast.features.featureset import META_FILE, FeatureSet
from tapecast.features.price import PriceGridConfig
from tapecast.features.price_featureset import GRID_FILE, WINDOWS_FILE, PriceFeatureSet
from tapecast.features.price_splits import (
    assign_price_splits,
    check_price_split,
    default_embargo_s,
    price_split_spec,
)
from tapecast.features.splits import SplitSpec

CONFIG = PriceGridConfig(context_s=60, realized_spans=(10, 30, 60))
DAYS = ("2024-01-08", "2024-01-09", "2024-01-10", "2024-01-11")


@pytest.fixture(scope="module")
def bars() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Four sessions of one instrument; day 1 has trade bars only."""
    trades, quotes = synthetic_bars(days=4, quote_days=(0, 2, 3))
    return trades, quotes


@pytest.fixture(scope="module")
def built(bars: tuple[pl.DataFrame, pl.DataFrame]) -> PriceFeatureSet:
    return PriceFeatureSet.build(*bars, CONFIG, price_split_spec(CONFIG), source="synthetic")


def _sessions(labels: pl.Series, windows: pl.DataFrame, split: str) -> list[str]:
    days = windows.filter(labels == split)["session_date"].unique().sort()
    return [d.isoformat() for d in days.to_list()]


def _round_the_clock(hours: int = 8, start: str = "2024-01-08T20:00") -> tuple[pl.DataFrame,
                                                                                  None]:
    """A trade bar every second from ``start`` (UTC) for ``hours``: sessions of the calendar rule
    that abut at midnight."""
    rng = np.random.default_rng(5)
    n = hours * 3600
    ts = np.datetime64(start, "ns").astype(np.int64) + np.arange(n, dtype=np.int64) * NS
    close = (10_000 + np.cumsum(rng.choice([-1, 0, 1], n))) * 0.01
    frame = pl.DataFrame({"ts": ts, "instrument": "X", "open": close, "high": close,
                          "low": close, "close": close, "volume": 100.0})
    return _canonical(frame, BARS), None


def test_build_when_last_split_labels_whole_sessions_and_records_the_embargo(
        built: PriceFeatureSet) -> None:
    labels = built.windows["split"]
    assert _sessions(labels, built.windows, "train") == list(DAYS[:2])
    assert _sessions(labels, built.windows, "val") == [DAYS[2]]
    assert _sessions(labels, built.windows, "test") == [DAYS[3]]
    splits = built.summary["splits"]
    assert splits["embargo_s"] == default_embargo_s(CONFIG) == 60 + 59 + 30
    assert splits["min_embargo_s"] == 90 and splits["windows_per_split"]["embargo"] == 0
    assert splits["closest_gap_s"] >= 17 * 3600  # the overnight gap between sessions
    assert built.summary["grid"]["sessions_without_quote_bars"] == [["X", DAYS[1]]]


def test_save_when_opened_again_gives_the_same_set_and_batches(
        built: PriceFeatureSet, tmp_path: Path) -> None:
    saved = built.save(tmp_path / "feat")
    assert saved.path == tmp_path / "feat" and built.path is None
    opened = PriceFeatureSet.open(tmp_path / "feat")
    assert_frame_equal(opened.grid, built.grid)
    assert_frame_equal(opened.windows, built.windows)
    assert opened.config == CONFIG and opened.split_spec == built.split_spec
    assert opened.summary == json.loads(json.dumps(built.summary, default=str))
    assert opened.source["grid_sha256"] == saved.source["grid_sha256"]
    for split in ("train", "val", "test"):
        a, b = built.dataset(split).batch(slice(0, 7)), opened.dataset(split).batch(slice(0, 7))
        np.testing.assert_array_equal(a.context, b.context)
        np.testing.assert_array_equal(a.target, b.target)
    path = opened.dataset("test", target="path").batch(slice(0, 2))
    assert path.target.shape == (2, 1, CONFIG.horizon_s)
    meta = json.loads((tmp_path / "feat" / META_FILE).read_text(encoding="utf-8"))
    assert meta["kind"] == "price" and meta["context_s"] == 60 and meta["horizon_s"] == 30


def test_build_when_files_given_records_their_sha256(
        bars: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path) -> None:
    raw = tmp_path / "20240108_trade.zip"
    raw.write_bytes(b"not really a zip")
    fs = PriceFeatureSet.build(*bars, CONFIG, price_split_spec(CONFIG), source="files",
                               files=[raw])
    (entry,) = fs.source["files"]
    assert entry["bytes"] == 16 and entry["path"] == str(raw)
    assert entry["sha256"] == hashlib.sha256(b"not really a zip").hexdigest()


def test_open_when_a_parquet_file_changed_refuses(built: PriceFeatureSet, tmp_path: Path) -> None:
    built.save(tmp_path / "feat")
    built.windows.head(10).write_parquet(tmp_path / "feat" / WINDOWS_FILE)
    with pytest.raises(TapecastError, match="changed since it was written"):
        PriceFeatureSet.open(tmp_path / "feat")
    (tmp_path / "feat" / GRID_FILE).unlink()
    with pytest.raises(TapecastError, match=r"without grid\.parquet"):
        PriceFeatureSet.open(tmp_path / "feat", verify=False)


def test_open_when_folder_is_an_orderflow_one_names_its_kind(tmp_path: Path) -> None:
    (tmp_path / "of").mkdir()
    (tmp_path / "of" / META_FILE).write_text('{"format_version": 1, "kind": "orderflow"}')
    with pytest.raises(TapecastError, match="'orderflow' features folder, not a price one"):
        PriceFeatureSet.open(tmp_path / "of")


def test_orderflow_open_when_folder_is_a_price_one_names_its_kind(
        built: PriceFeatureSet, tmp_path: Path) -> None:
    built.save(tmp_path / "feat")
    with pytest.raises(TapecastError, match="a 'price' features folder, not an order-flow one"):
        FeatureSet.open(tmp_path / "feat")


def test_price_split_spec_when_embargo_below_context_plus_horizon_refuses() -> None:
    with pytest.raises(TapecastError, match=r"embargo of 89 s is shorter than context \+ "
                                            r"horizon \(60 \+ 30 = 90 s\)") as info:
        price_split_spec(CONFIG, embargo_s=89)
    assert "\n" not in str(info.value)
    assert price_split_spec(CONFIG, embargo_s=90).embargo == 90


def test_build_when_spec_is_in_other_units_refuses(
        bars: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    orderflow_spec = SplitSpec()  # context 100, horizon 10 windows
    with pytest.raises(TapecastError, match="differ from the grid config's"):
        PriceFeatureSet.build(*bars, CONFIG, orderflow_spec)
    short = SplitSpec(context=60, horizon=30, embargo=30)
    with pytest.raises(TapecastError, match="shorter than context"):
        check_price_split(short, CONFIG)


def test_splits_when_sessions_abut_keep_at_least_the_embargo_between_them() -> None:
    trades, _ = _round_the_clock()
    config = CONFIG.replace(session="calendar")
    dates = {"train_dates": (date(2024, 1, 8), date(2024, 1, 8)),
             "test_dates": (date(2024, 1, 9), date(2024, 1, 9))}
    fs = PriceFeatureSet.build(trades, None, config,
                               price_split_spec(config, "dates", **dates))  # type: ignore[arg-type]
    splits = fs.summary["splits"]
    # windows never cross a session: the last origin before midnight is H s before it, the first
    # after it warmup + 1 s after it, so the default embargo never has to drop a window
    assert splits["closest_gap_s"] == config.horizon_s + config.warmup_s + 1
    assert splits["windows_per_split"]["embargo"] == 0
    longer = PriceFeatureSet.build(trades, None, config, price_split_spec(
        config, "dates", embargo_s=600, **dates))  # type: ignore[arg-type]
    splits = longer.summary["splits"]
    assert splits["closest_gap_s"] == 600  # the train tail within 600 s of the test is dropped
    assert splits["windows_per_split"]["embargo"] == 600 - (config.horizon_s + config.warmup_s + 1)
    embargoed = longer.windows.filter(pl.col("split") == "embargo")
    assert embargoed["session_date"].unique().to_list() == [date(2024, 1, 8)]


def test_folds_when_walk_forward_train_on_earlier_sessions_and_test_the_next(
        bars: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    spec = price_split_spec(CONFIG, "walk-forward", min_train_sessions=2, val_sessions=1)
    fs = PriceFeatureSet.build(*bars, CONFIG, spec)
    folds = fs.folds()
    assert [f.test_session.isoformat() for f in folds] == list(DAYS[2:])
    last = folds[-1]
    assert [d.isoformat() for d in last.train_sessions] == list(DAYS[:2])
    assert [d.isoformat() for d in last.val_sessions] == [DAYS[2]]
    labels = fs.split_labels(last.index)
    for split, days in (("train", DAYS[:2]), ("val", DAYS[2:3]), ("test", DAYS[3:])):
        assert _sessions(labels, fs.windows, split) == list(days)
        assert len(fs.dataset(split, fold=last.index)) == int((labels == split).sum())
    stored = fs.windows["split"]  # fold 0's train/val, every later session test
    assert _sessions(stored, fs.windows, "test") == list(DAYS[2:])
    with pytest.raises(TapecastError, match="fold 5 does not exist"):
        fs.dataset("test", fold=5)


def test_folds_when_spec_is_not_walk_forward_refuses(built: PriceFeatureSet) -> None:
    with pytest.raises(TapecastError, match="need a 'walk-forward' split spec"):
        built.folds()


def test_dataset_when_split_unknown_or_empty_refuses(
        bars: tuple[pl.DataFrame, pl.DataFrame], built: PriceFeatureSet) -> None:
    with pytest.raises(TapecastError, match="split must be one of"):
        built.dataset("embargo")
    no_val = PriceFeatureSet.build(*bars, CONFIG, price_split_spec(CONFIG, val_sessions=0))
    with pytest.raises(TapecastError, match="split 'val' holds no window"):
        no_val.dataset("val")


def test_build_when_split_needs_more_sessions_or_dates_hold_none_refuses(
        bars: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    two = synthetic_bars(days=2)
    with pytest.raises(TapecastError, match="needs at least 3 sessions"):
        PriceFeatureSet.build(*two, CONFIG, price_split_spec(CONFIG))
    spec = price_split_spec(CONFIG, "dates", train_dates=(date(2024, 1, 8), date(2024, 1, 9)),
                            test_dates=(date(2024, 2, 1), date(2024, 2, 2)))
    with pytest.raises(TapecastError, match=r"the test dates 2024-02-01\.\.2024-02-02 hold no"):
        PriceFeatureSet.build(*bars, CONFIG, spec)


def test_assign_price_splits_when_two_instruments_give_one_label_per_date(
        bars: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    other, other_quotes = synthetic_bars(days=3, seed=9, instrument="Y")
    trades = pl.concat([bars[0], other])
    quotes = pl.concat([bars[1], other_quotes])
    fs = PriceFeatureSet.build(trades, quotes, CONFIG, price_split_spec(CONFIG))
    per_date = fs.windows.group_by("session_date").agg(pl.col("split").n_unique())
    assert per_date["split"].to_list() == [1] * 4
    assert set(fs.windows.filter(pl.col("split") == "test")["instrument"]) == {"X"}
    again = assign_price_splits(fs.windows.reverse(), fs.split_spec)
    assert again.reverse().to_list() == fs.windows["split"].to_list()

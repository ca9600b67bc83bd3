from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.demo import inputs
from tapecast.demo.inputs import FeatureOptions, build_features
from tapecast.sim import SyntheticMarketConfig, generate_market


def _trades(n_sessions: int, per_session: int) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    tables = generate_market(SyntheticMarketConfig(n_sessions=n_sessions,
                                                   trades_per_session=per_session), seed=1)
    assert tables.trades is not None
    return tables.trades, tables.quotes


def test_build_features_when_windows_too_large_shrinks_them_and_says_so(tmp_path: Path) -> None:
    trades, quotes = _trades(3, 4_000)
    opts = FeatureOptions(window_trades=200, context=8, horizon=2, min_train=20, min_test=4)
    info = build_features(trades, quotes, tmp_path / "f", opts, "tiny")
    assert info["window_trades"] < 200 and "instead" in info["notes"][0]
    assert info["samples_per_split"]["test"] >= 4 and info["samples_per_split"]["train"] >= 20
    assert f"using {info['window_trades']}-trade windows" in info["notes"][-1]


def test_build_features_when_tape_is_far_too_small_raises_with_the_counts(
        tmp_path: Path) -> None:
    trades, quotes = _trades(3, 1_000)
    opts = FeatureOptions(window_trades=500, context=100, horizon=10)
    with pytest.raises(TapecastError, match="too small for the demo") as info:
        build_features(trades, quotes, tmp_path / "f", opts, "tiny")
    assert "trades" in str(info.value) and "\n" not in str(info.value)


def test_build_features_when_every_shrink_still_falls_short_raises_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trades, quotes = _trades(3, 4_000)
    monkeypatch.setattr(inputs, "_shrink_factor", lambda *args: 1.2)  # never enough
    opts = FeatureOptions(window_trades=200, context=8, horizon=2, min_train=20, min_test=4)
    with pytest.raises(TapecastError, match="4 window sizes down to") as info:
        build_features(trades, quotes, tmp_path / "f", opts, "tiny")
    assert f"{trades.height:,} trades" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "f").exists()


def test_feature_options_when_a_count_is_below_one_names_the_field() -> None:
    with pytest.raises(TapecastError, match=r"FeatureOptions\.horizon: must be >= 1"):
        FeatureOptions(horizon=0)


def test_source_key_when_a_data_file_changes_size_or_mtime_changes(tmp_path: Path) -> None:
    import os

    from tapecast.demo.inputs import source_key

    data = tmp_path / "trades.csv"
    data.write_text("ts,price,size\n")
    first = source_key(tmp_path)
    assert source_key(tmp_path) == first
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = source_key(tmp_path)
    data.write_text("ts,price,size\n1,2,3\n")
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same mtime, new size
    assert len({first, touched, source_key(tmp_path)}) == 3

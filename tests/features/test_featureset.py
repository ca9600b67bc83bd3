"""Tests of the features folder: build, atomic write, open, datasets (features/featureset.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.features.windows_fixture import make_windows

from tapecast.core.errors import TapecastError
from tapecast.features.channels import CHANNELS
from tapecast.features.dataset import ForecastDataset, fit_regime_thresholds
from tapecast.features.featureset import (
    FeatureSet,
    build_feature_set,
    file_sha256,
    write_feature_set,
)
from tapecast.features.normalize import OrderFlowNormalizer
from tapecast.features.splits import SplitSpec

SPEC = SplitSpec(context=8, horizon=4)


@pytest.fixture
def windows() -> pl.DataFrame:
    return make_windows((30, 30, 30, 30), instruments=("AAA", "BBB"), seed=9)


@pytest.fixture
def folder(tmp_path: Path, windows: pl.DataFrame) -> Path:
    labelled, meta = build_feature_set(windows, SPEC, config={"window_trades": 500},
                                       summary={"dropped_partial_windows": 3},
                                       source="/data/store")
    return write_feature_set(tmp_path / "features", labelled, meta)


def test_open_when_written_then_windows_meta_and_split_round_trip(
        folder: Path, windows: pl.DataFrame) -> None:
    fs = FeatureSet.open(folder)
    assert fs.split_spec == SPEC and fs.meta.channels == CHANNELS
    assert fs.windows.drop("split").equals(windows.sort("instrument", "window"))
    assert set(fs.windows["split"].unique()) == {"train", "val", "test", "embargo"}
    assert fs.meta.source == "/data/store" and fs.meta.window_trades == 500
    assert fs.meta.windows_sha256 == file_sha256(folder / "windows.parquet")
    assert fs.meta.summary["dropped_partial_windows"] == 3
    assert not list(folder.parent.glob(".features*"))  # no staging folder left behind


def test_open_when_a_swap_stopped_between_its_renames_recovers_the_old_folder(
        folder: Path) -> None:
    """atomic_dir falls back to two renames where the file system has no atomic exchange; a
    crash between them leaves only ``.features.<pid>.old``, which open renames back."""
    expected = FeatureSet.open(folder).windows
    folder.rename(folder.with_name(f".{folder.name}.4242.old"))
    assert FeatureSet.open(folder).windows.equals(expected) and folder.is_dir()


def test_features_json_when_written_then_holds_every_documented_field(folder: Path) -> None:
    data = json.loads((folder / "features.json").read_text())
    assert data["format_version"] == 1 and data["kind"] == "orderflow"
    assert data["channels"] == list(CHANNELS)
    assert data["context"] == 8 and data["horizon"] == 4
    assert data["split_spec"]["kind"] == "last" and data["split_spec"]["embargo"] == 4
    assert len(data["regime_thresholds"]) == 2
    assert data["source"]["store"] == "/data/store"
    splits = data["summary"]["splits"]
    assert splits["windows_per_split"]["test"] == 60
    assert splits["samples_per_split"]["test"] == 2 * ((30 - 12) // 4 + 1)


def test_dataset_when_opened_twice_then_same_test_windows_and_thresholds(
        folder: Path) -> None:
    a, b = FeatureSet.open(folder).dataset("test"), FeatureSet.open(folder).dataset("test")
    assert a.origins.equals(b.origins) and a.stride == 4
    np.testing.assert_array_equal(a.batch(slice(None)).target, b.batch(slice(None)).target)
    assert set(a.origins["regime"].unique()) <= {"low", "mid", "high"}


def test_build_when_fitted_then_thresholds_come_from_train_samples(
        folder: Path, windows: pl.DataFrame) -> None:
    fs = FeatureSet.open(folder)
    expected = fit_regime_thresholds(ForecastDataset(fs.windows, "train", 8, 4))
    assert fs.regime_thresholds == expected
    shocked = windows.with_columns(
        pl.when(pl.col("session_date") == pl.col("session_date").max())
        .then(pl.col("log_realized_var") + 5).otherwise(pl.col("log_realized_var")))
    assert build_feature_set(shocked, SPEC)[1].regime_thresholds == expected


def test_fit_normalizer_when_opened_then_train_windows_only(folder: Path) -> None:
    fs = FeatureSet.open(folder)
    norm = fs.fit_normalizer()
    train = fs.windows.filter(pl.col("split") == "train")
    assert norm.n_fit_windows == train.height
    assert norm.to_dict() == OrderFlowNormalizer.fit(train).to_dict()


def test_dataset_when_walk_forward_fold_then_labels_recomputed_from_spec(
        tmp_path: Path) -> None:
    windows = make_windows((20,) * 5, seed=2)
    spec = SplitSpec(kind="walk-forward", min_train_sessions=2, val_sessions=0, context=4,
                     horizon=2)
    labelled, meta = build_feature_set(windows, spec)
    fs = FeatureSet.open(write_feature_set(tmp_path / "wf", labelled, meta))
    fold1 = fs.dataset("test", fold=1)
    assert fold1.origins["session_date"].unique().to_list() == \
        [sorted(windows["session_date"].unique())[3]]
    # the default view pools every fold's test session (contexts may cross between them)
    pooled = fs.dataset("test", stride=1).origins
    for k in range(3):
        fold = fs.dataset("test", stride=1, fold=k).origins
        assert fold.height > 0 and fold.join(pooled, on=fold.columns, how="anti").height == 0
    assert pooled.height > sum(len(fs.dataset("test", stride=1, fold=k)) for k in range(3))


def test_build_when_sessions_too_short_then_one_error_for_every_split_and_a_size(
        windows: pl.DataFrame) -> None:
    with pytest.raises(TapecastError) as err:
        build_feature_set(windows, SplitSpec(context=28, horizon=4),
                          config={"window_trades": 500})
    message = str(err.value)
    assert ("no sample in 'val' (longest run of its windows 26), 'test' (longest run of its "
            "windows 30)") in message
    assert "AAA 2024-01-05: 30" in message
    assert "about 406 trades per window (now 500" in message  # 500 * 26 / 32 (val is shortest)


def test_open_when_folder_missing_or_invalid_then_clear_error(tmp_path: Path,
                                                              folder: Path) -> None:
    with pytest.raises(TapecastError, match="no such features folder"):
        FeatureSet.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TapecastError, match="not a features folder"):
        FeatureSet.open(tmp_path / "empty")
    (folder / "features.json").write_text("{not json")
    with pytest.raises(TapecastError, match="not valid JSON"):
        FeatureSet.open(folder)


def test_open_when_windows_file_changed_then_error(folder: Path) -> None:
    fs = FeatureSet.open(folder)
    fs.windows.head(10).write_parquet(folder / "windows.parquet")
    with pytest.raises(TapecastError, match="changed since it was written"):
        FeatureSet.open(folder)
    assert FeatureSet.open(folder, verify=False).windows.height == 10


def test_open_when_format_version_unknown_then_error(folder: Path) -> None:
    data = json.loads((folder / "features.json").read_text())
    data["format_version"] = 99
    (folder / "features.json").write_text(json.dumps(data))
    with pytest.raises(TapecastError, match="features format 99 is not supported"):
        FeatureSet.open(folder)


def test_write_when_rewritten_then_replaced_atomically(folder: Path,
                                                       windows: pl.DataFrame) -> None:
    labelled, meta = build_feature_set(windows, SplitSpec(context=6, horizon=3))
    write_feature_set(folder, labelled, meta)
    assert FeatureSet.open(folder).split_spec.context == 6
    with pytest.raises(TapecastError, match="lack column"):
        write_feature_set(folder, windows, meta)
    assert FeatureSet.open(folder).split_spec.context == 6

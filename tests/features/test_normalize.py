"""Tests of the fitted order-flow normalization (features/normalize.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.features.windows_fixture import make_windows

from tapecast.core.errors import TapecastError
from tapecast.features.channels import CHANNELS
from tapecast.features.normalize import MAD_SCALE, OrderFlowNormalizer


@pytest.fixture
def windows() -> pl.DataFrame:
    return make_windows((40, 40, 40), instruments=("AAA", "BBB"), seed=3)


@pytest.fixture
def normalizer(windows: pl.DataFrame) -> OrderFlowNormalizer:
    return OrderFlowNormalizer.fit(windows)


def test_transform_when_round_trip_on_random_windows_then_exact(
        normalizer: OrderFlowNormalizer) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6, 20, 8)) * np.array([0.1] * 5 + [1e-3, 1.0, 0.5]) \
        + np.array([0.0] * 6 + [-12.0, 10.0])  # (B, L, K)
    n_signed = rng.integers(1, 600, size=(6, 20))
    n_trades = n_signed + rng.integers(0, 50, size=(6, 20))
    z = normalizer.transform(x, n_signed, n_trades)
    back = normalizer.inverse(z, n_signed, n_trades)
    assert z.shape == x.shape
    np.testing.assert_allclose(back, x, rtol=1e-12, atol=1e-12)
    assert not np.allclose(z, x)


def test_transform_when_samples_shaped_with_channel_axis_2_then_round_trip(
        normalizer: OrderFlowNormalizer) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 16, 8, 10)) + np.array([0.0] * 6 + [-12.0, 10.0])[:, None]
    t = rng.integers(1, 500, size=(3, 1, 10))  # (B, 1, H) broadcasts over samples
    z = normalizer.transform(x, t, t + 7, axis=2)
    np.testing.assert_allclose(normalizer.inverse(z, t, t + 7, axis=2), x, rtol=1e-12,
                               atol=1e-12)
    # the same values laid out (B, S, H, K) give the same numbers
    z_last = normalizer.transform(np.moveaxis(x, 2, -1), t, t + 7, axis=-1)
    np.testing.assert_allclose(np.moveaxis(z_last, -1, 2), z, rtol=0, atol=0)


def test_transform_when_formulas_then_match_hand_computation(
        windows: pl.DataFrame, normalizer: OrderFlowNormalizer) -> None:
    ret = windows["log_ret"].to_numpy()
    n = windows["n_trades"].to_numpy().astype(float)
    lrv = windows["log_realized_var"].to_numpy()
    med = np.median(lrv)
    mad = np.median(np.abs(lrv - med))
    u = (lrv - med) / (MAD_SCALE * mad)
    x = np.array([[0.1, 0.2, -0.3, 0.05, 0.0, 2e-3, -11.0, 9.5]])
    z = normalizer.transform(x, [400], [450])[0]
    np.testing.assert_allclose(z[:5], x[0, :5] * np.sqrt(400.0), rtol=1e-14)
    np.testing.assert_allclose(z[5], 2e-3 / (ret.std() * np.sqrt(450.0 / n.mean())), rtol=1e-12)
    expected_lrv = ((-11.0 - med) / (MAD_SCALE * mad) - u.mean()) / u.std()
    np.testing.assert_allclose(z[6], expected_lrv, rtol=1e-12)


def test_transform_when_value_undefined_or_no_signed_trade_then_nan(
        normalizer: OrderFlowNormalizer) -> None:
    x = np.zeros((2, 8))
    x[0, 6] = np.nan
    z = normalizer.transform(x, [0, 100], [100, 100])
    assert np.isnan(z[0, :5]).all() and np.isnan(z[0, 6])
    assert np.isfinite(z[0, 5]) and np.isfinite(z[1]).all()
    assert np.isnan(normalizer.inverse(z, [0, 100], [100, 100])[0, :5]).all()


def test_to_dict_when_fitted_then_json_holds_order_schemes_and_every_scalar(
        tmp_path: Path, windows: pl.DataFrame, normalizer: OrderFlowNormalizer) -> None:
    path = tmp_path / "normalization.json"
    normalizer.save(path)
    data = json.loads(path.read_text())
    assert data["format_version"] == 1
    assert data["channels"] == list(CHANNELS)
    schemes = {c: data["params"][c]["scheme"] for c in CHANNELS}
    assert schemes == {**dict.fromkeys(CHANNELS[:5], "t_scaled"),
                       "log_ret": "sqrt_t_delta_std", "log_realized_var": "mad_zscore",
                       "log_tot_vol": "mad_zscore"}
    assert data["params"]["log_ret"]["sigma"] == windows["log_ret"].to_numpy().std()
    assert data["params"]["log_ret"]["mean_count"] == 500.0
    vol = data["params"]["log_tot_vol"]
    assert set(vol) == {"scheme", "median", "mad", "mad_scale", "mean_u", "std_u"}
    assert vol["median"] == float(windows["log_tot_vol"].median())  # type: ignore[arg-type]
    assert data["fit"]["n_windows"] == windows.height


def test_load_when_saved_then_identical_transform(
        tmp_path: Path, normalizer: OrderFlowNormalizer) -> None:
    normalizer.save(tmp_path / "n.json")
    loaded = OrderFlowNormalizer.load(tmp_path / "n.json")
    x = np.random.default_rng(0).normal(size=(4, 8))
    np.testing.assert_array_equal(loaded.transform(x, 300, 320), normalizer.transform(x, 300, 320))
    assert loaded.schemes == normalizer.schemes


def test_fit_when_only_test_windows_change_then_params_unchanged(windows: pl.DataFrame) -> None:
    split = pl.when(pl.col("session_date") == pl.col("session_date").max()) \
        .then(pl.lit("test")).otherwise(pl.lit("train"))
    labelled = windows.with_columns(split.alias("split"))
    shocked = labelled.with_columns(
        pl.when(pl.col("split") == "test").then(pl.col(c) * 50 + 3).otherwise(pl.col(c))
        for c in CHANNELS)
    a = OrderFlowNormalizer.fit(labelled.filter(pl.col("split") == "train"))
    b = OrderFlowNormalizer.fit(shocked.filter(pl.col("split") == "train"))
    c = OrderFlowNormalizer.fit(shocked)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()


def test_fit_when_no_training_window_then_error(windows: pl.DataFrame) -> None:
    with pytest.raises(TapecastError, match="no training window"):
        OrderFlowNormalizer.fit(windows.head(0))


def test_fit_when_channel_constant_then_error_names_channel(windows: pl.DataFrame) -> None:
    with pytest.raises(TapecastError, match=r"'log_tot_vol'.*MAD is 0\.0"):
        OrderFlowNormalizer.fit(windows.with_columns(pl.lit(10.0).alias("log_tot_vol")))
    with pytest.raises(TapecastError, match=r"'log_ret'.*std is 0\.0"):
        OrderFlowNormalizer.fit(windows.with_columns(pl.lit(0.0).alias("log_ret")))


def test_transform_when_wrong_channel_count_or_counts_shape_then_error(
        normalizer: OrderFlowNormalizer) -> None:
    with pytest.raises(TapecastError, match="expected 8"):
        normalizer.transform(np.zeros((3, 7)), 1, 1)
    with pytest.raises(TapecastError, match="do not broadcast"):
        normalizer.transform(np.zeros((3, 8)), np.ones(4), np.ones(4))


def test_load_when_scheme_unknown_or_file_missing_then_error(
        tmp_path: Path, normalizer: OrderFlowNormalizer) -> None:
    data = normalizer.to_dict()
    data["params"]["log_ret"]["scheme"] = "minmax"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(TapecastError, match="unknown normalization scheme 'minmax'"):
        OrderFlowNormalizer.load(tmp_path / "bad.json")
    with pytest.raises(TapecastError, match="not found"):
        OrderFlowNormalizer.load(tmp_path / "absent.json")

"""Tests of forecasting samples, strides, regimes and the card inputs (features/dataset.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from tests.features.windows_fixture import make_windows

from tapecast.core.errors import TapecastError
from tapecast.features.channels import CHANNELS
from tapecast.features.dataset import ForecastDataset, card_inputs, fit_regime_thresholds
from tapecast.features.normalize import OrderFlowNormalizer
from tapecast.features.splits import SplitSpec, assign_splits

C, H = 6, 3


def _labelled(counts: tuple[int, ...], seed: int = 0, **spec: int) -> pl.DataFrame:
    windows = make_windows(counts, instruments=("AAA", "BBB"), seed=seed,
                           per_instrument={"BBB": tuple(max(c - 4, 0) for c in counts)})
    return windows.with_columns(assign_splits(windows, SplitSpec(context=C, horizon=H, **spec)))


def _brute_force_starts(windows: pl.DataFrame, split: str) -> list[tuple[str, int]]:
    """(instrument, first window) of every valid sample, by direct enumeration."""
    out = []
    for (inst,), part in windows.sort("instrument", "window").group_by("instrument",
                                                                       maintain_order=True):
        w, lab, ses = (part[c].to_list() for c in ("window", "split", "session_date"))
        for r in range(len(w) - C - H + 1):
            span = range(r, r + C + H)
            if all(lab[i] == split for i in span) and w[r + C + H - 1] - w[r] == C + H - 1 \
                    and len({ses[i] for i in range(r + C, r + C + H)}) == 1:
                out.append((str(inst), w[r]))
    return out


@pytest.fixture
def windows() -> pl.DataFrame:
    return _labelled((25, 14, 30, 22, 26), seed=1)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_origins_when_stride_one_then_exactly_the_brute_force_valid_samples(
        windows: pl.DataFrame, split: str) -> None:
    ds = ForecastDataset(windows, split, C, H, stride=1)
    got = list(zip(ds.origins["instrument"], ds.origins["first_window"], strict=True))
    assert got == _brute_force_starts(windows, split)
    assert len(got) > 0


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_batch_when_every_origin_then_one_instrument_one_label_horizon_in_one_session(
        windows: pl.DataFrame, split: str) -> None:
    ds = ForecastDataset(windows, split, C, H, stride=1)
    lookup = {(i, w): (s, d) for i, w, s, d in windows.select(
        "instrument", "window", "split", "session_date").iter_rows()}
    b = ds.batch(np.arange(len(ds)))
    assert (np.diff(b.window_ids, axis=1) == 1).all()
    for inst, ids in zip(b.instruments, b.window_ids, strict=True):
        labels = {lookup[(inst, int(w))][0] for w in ids}
        horizon_sessions = {lookup[(inst, int(w))][1] for w in ids[C:]}
        assert labels == {split} and len(horizon_sessions) == 1
    assert (ds.origins["origin"].to_numpy() == b.window_ids[:, C - 1]).all()


def test_origins_when_context_crosses_overnight_then_allowed_within_split(
        windows: pl.DataFrame) -> None:
    ds = ForecastDataset(windows, "train", C, H)
    first_session = ds.windows.filter(pl.col("instrument") == "AAA")["session_date"].min()
    crossing = ds.origins.filter((pl.col("instrument") == "AAA")
                                 & (pl.col("first_window") < 25) & (pl.col("last_window") >= 25))
    assert crossing.height > 0  # contexts starting in session 1, horizons in session 2
    assert (crossing["session_date"] > first_session).all()


def test_stride_when_default_then_one_for_train_and_horizon_for_evaluation(
        windows: pl.DataFrame) -> None:
    assert ForecastDataset(windows, "train", C, H).stride == 1
    test = ForecastDataset(windows, "test", C, H)
    assert test.stride == H and ForecastDataset(windows, "val", C, H).stride == H
    full = ForecastDataset(windows, "test", C, H, stride=1).origins
    for inst in ("AAA", "BBB"):
        firsts = test.origins.filter(pl.col("instrument") == inst)["first_window"].to_numpy()
        assert (np.diff(firsts) >= H).all()  # scored horizons never overlap
        every = full.filter(pl.col("instrument") == inst)["first_window"].to_numpy()
        assert firsts[0] == every[0] and set(firsts) <= set(every)
        np.testing.assert_array_equal(firsts, every[::H])  # one run per test session here


def test_stride_when_run_broken_by_session_then_restarts_at_next_run() -> None:
    windows = _labelled((12, 12, 30, 30, 20, 15), seed=2, val_sessions=1, test_sessions=2)
    ds = ForecastDataset(windows, "test", C, H, stride=4)
    full = ForecastDataset(windows, "test", C, H, stride=1)
    for inst in ("AAA", "BBB"):
        every = full.origins.filter(pl.col("instrument") == inst)["first_window"].to_numpy()
        runs = np.split(every, np.flatnonzero(np.diff(every) != 1) + 1)
        expected = np.concatenate([run[::4] for run in runs])
        got = ds.origins.filter(pl.col("instrument") == inst)["first_window"].to_numpy()
        assert len(runs) == 2
        np.testing.assert_array_equal(got, expected)


def test_batch_when_sample_taken_then_raw_values_match_windows(windows: pl.DataFrame) -> None:
    ds = ForecastDataset(windows, "val", C, H)
    b = ds.batch(1)
    inst, first = ds.origins.row(1)[0], ds.origins.row(1)[2]
    rows = windows.filter((pl.col("instrument") == inst) & (pl.col("window") >= first)) \
        .sort("window").head(C + H)
    raw = rows.select(CHANNELS).to_numpy().T  # (K, L)
    np.testing.assert_array_equal(b.context[0], raw[:, :C])
    np.testing.assert_array_equal(b.target[0], raw[:, C:])
    np.testing.assert_array_equal(b.extra("n_signed")[0], rows["n_signed"].to_numpy())
    assert b.timestamps.dtype == np.dtype("datetime64[ns]") and b.instruments[0] == inst


def test_card_inputs_when_batch_then_shapes_masks_and_normalized_values(
        windows: pl.DataFrame) -> None:
    train = windows.filter(pl.col("split") == "train")
    norm = OrderFlowNormalizer.fit(train)
    ds = ForecastDataset(windows, "test", C, H)
    b = ds.batch(np.arange(4))
    inputs = ds.card_inputs(b, norm)
    L, K = C + H, len(CHANNELS)
    assert {k: v.shape for k, v in inputs.items()} == {
        "observed_data": (4, L, K), "observed_mask": (4, L, K), "gt_mask": (4, L, K),
        "timepoints": (4, L), "feature_id": (4, K)}
    assert all(v.dtype == np.float32 for v in inputs.values())
    np.testing.assert_array_equal(inputs["timepoints"][2], np.arange(L))
    np.testing.assert_array_equal(inputs["feature_id"][3], np.arange(K))
    raw = np.concatenate([b.context, b.target], axis=2).transpose(0, 2, 1)  # (B, L, K)
    z = norm.transform(raw, b.extra("n_signed"), b.extra("n_trades"))
    np.testing.assert_allclose(inputs["observed_data"], np.nan_to_num(z), rtol=1e-6)
    np.testing.assert_array_equal(inputs["observed_mask"], np.isfinite(z))
    assert (inputs["gt_mask"][:, C:] == 0).all()
    np.testing.assert_array_equal(inputs["gt_mask"][:, :C], inputs["observed_mask"][:, :C])


def test_card_inputs_when_value_undefined_then_zero_data_and_zero_masks() -> None:
    windows = make_windows((40, 40, 40), zero_signed_share=0.3, seed=5)
    windows = windows.with_columns(assign_splits(windows, SplitSpec(context=C, horizon=H)))
    norm = OrderFlowNormalizer.fit(windows.filter(pl.col("split") == "train"))
    ds = ForecastDataset(windows, "train", C, H)
    inputs = card_inputs(ds.batch(slice(None)), norm)
    undefined = inputs["observed_mask"] == 0
    assert undefined[..., :5].any() and not undefined[..., 5:].any()
    assert (inputs["observed_data"][undefined] == 0).all()
    assert (inputs["gt_mask"][undefined] == 0).all()


def test_fit_regime_thresholds_when_train_then_terciles_of_context_means(
        windows: pl.DataFrame) -> None:
    train = ForecastDataset(windows, "train", C, H)
    lo, hi = fit_regime_thresholds(train)
    b = train.batch(slice(None))
    means = b.context[:, CHANNELS.index("log_realized_var")].mean(axis=1)
    np.testing.assert_allclose([lo, hi], np.quantile(means, [1 / 3, 2 / 3]), rtol=1e-12)
    shocked = windows.with_columns(
        pl.when(pl.col("split") == "test").then(pl.col("log_realized_var") + 9)
        .otherwise(pl.col("log_realized_var")))
    assert fit_regime_thresholds(ForecastDataset(shocked, "train", C, H)) == (lo, hi)
    with pytest.raises(TapecastError, match="fitted on training samples"):
        fit_regime_thresholds(ForecastDataset(windows, "test", C, H))


def test_regimes_when_thresholds_given_then_low_mid_high_by_context_mean(
        windows: pl.DataFrame) -> None:
    thresholds = fit_regime_thresholds(ForecastDataset(windows, "train", C, H))
    ds = ForecastDataset(windows, "train", C, H, regime_thresholds=thresholds)
    counts = ds.origins["regime"].value_counts().sort("regime")
    assert counts["regime"].to_list() == ["high", "low", "mid"]
    assert (abs(counts["count"].to_numpy() - len(ds) / 3) <= 1).all()
    values, regimes = ds.origins["regime_value"].to_numpy(), ds.origins["regime"].to_numpy()
    assert (values[regimes == "low"] < thresholds[0]).all()
    assert (values[regimes == "high"] >= thresholds[1]).all()
    np.testing.assert_array_equal(ds.batch(np.arange(len(ds))).regimes, regimes)


def test_dataset_when_too_few_windows_then_error_with_sessions_samples_and_size() -> None:
    windows = _labelled((40, 40, 40, 40))
    with pytest.raises(TapecastError) as err:
        ForecastDataset(windows, "test", context=60, horizon=10, window_trades=500)
    message = str(err.value)
    assert "0 sample(s) of 70 windows" in message
    assert "AAA 2024-01-05: 40" in message and "BBB 2024-01-05: 36" in message
    assert "about 285 trades per window (now 500" in message  # 500 * 40 / 70
    with pytest.raises(TapecastError, match=r"windows about 1\.8x smaller"):
        ForecastDataset(windows, "test", context=60, horizon=10)


def test_dataset_when_min_samples_not_reached_then_error() -> None:
    windows = _labelled((40, 40, 40, 40))
    n = len(ForecastDataset(windows, "test", C, H))
    with pytest.raises(TapecastError, match=f"{n} sample"):
        ForecastDataset(windows, "test", C, H, min_samples=n + 1)


def test_dataset_when_no_split_column_then_error_names_remedy() -> None:
    with pytest.raises(TapecastError, match="assign splits first"):
        ForecastDataset(make_windows((20, 20)), "train", C, H)
    assert len(ForecastDataset(make_windows((20, 20)), None, C, H)) > 0
    with pytest.raises(TapecastError, match="unknown split 'testing'"):
        ForecastDataset(make_windows((20, 20)), "testing", C, H)


def test_batches_when_shuffled_with_seed_then_every_sample_once(windows: pl.DataFrame) -> None:
    ds = ForecastDataset(windows, "train", C, H)
    seen = np.concatenate([b.window_ids[:, 0] + 10_000 * (b.instruments == "BBB")
                           for b in ds.batches(16, shuffle=True, seed=3)])
    expected = ds.origins["first_window"].to_numpy() \
        + 10_000 * (ds.origins["instrument"].to_numpy() == "BBB")
    assert sorted(seen.tolist()) == sorted(expected.tolist())
    assert seen.tolist() != expected.tolist()


def test_origins_when_rows_shuffled_then_same_as_sorted(windows: pl.DataFrame) -> None:
    shuffled = windows.sample(fraction=1.0, shuffle=True, seed=11)
    a = ForecastDataset(windows, "train", C, H)
    b = ForecastDataset(shuffled, "train", C, H)
    assert a.origins.equals(b.origins)
    np.testing.assert_array_equal(a.batch(slice(None)).context, b.batch(slice(None)).context)

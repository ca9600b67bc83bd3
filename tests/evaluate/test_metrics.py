"""Aggregation of scores into metrics.json: groups, regimes, nulls, DM comparisons, provenance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Forecast, Samples
from tapecast.evaluate import metrics
from tapecast.evaluate.scores import crps_ensemble

CHANNELS = ("imb_a0", "imb_a025", "imb_a05", "imb_a075", "imb_a1", "log_ret",
            "log_realized_var", "log_tot_vol")
REGIME_SCALE = {"low": 0.5, "mid": 1.0, "high": 2.0}


def _draw(scale: np.ndarray, n: int, rng: np.random.Generator, noise: float = 1.0) -> np.ndarray:
    """Order-flow-like draws given each window's volatility scale: (B, n, K, H) with H = 10.

    Imbalances share a factor (correlated about 0.9), log_ret scales with the regime,
    log_realized_var moves with it, log_tot_vol loads on the same factor.
    """
    b, h = scale.size, 10
    f = rng.normal(size=(b, n, 1, h))
    e = rng.normal(size=(b, n, len(CHANNELS), h)) * noise
    s = scale[:, None, None, None]
    imb = np.tanh(0.8 * f * noise + 0.25 * e[:, :, :5])
    log_ret = 1e-4 * s * e[:, :, 5:6]
    log_rv = -18 + 2 * np.log(s) + 0.3 * e[:, :, 6:7]
    log_vol = 8 + 0.3 * f * noise + 0.5 * e[:, :, 7:8]
    return np.concatenate([imb, log_ret, log_rv, log_vol], axis=2)


def synthetic_forecasts(n_windows: int = 240, n_samples: int = 32, seed: int = 0,
                        context: int = 40) -> list[Forecast]:
    """Four forecasters of the same windows: calibrated model, climatology, overconfident, naive.

    Regimes are drawn 10 % low, 60 % mid, 30 % high, so with 240 windows ``low`` has fewer than
    30 windows.
    """
    rng = np.random.default_rng(seed)
    regimes = rng.choice(list(REGIME_SCALE), size=n_windows, p=[0.1, 0.6, 0.3])
    scale = np.array([REGIME_SCALE[r] for r in regimes])
    realized = _draw(scale, 1, rng)[:, 0]  # (B, K, H)
    ctx = np.concatenate([_draw(scale, 1, rng)[:, 0] for _ in range(-(-context // 10))],
                         axis=2)[:, :, :context]  # (B, K, C)
    ids = np.arange(n_windows)[:, None] * 10 + np.arange(10)  # (B, H)
    ts = np.datetime64("2024-03-04T14:30", "ns") + ids * np.timedelta64(20, "s")
    pool = realized[rng.integers(0, n_windows, (n_windows, n_samples))]  # (B, S, K, H)
    draws = {"model": _draw(scale, n_samples, rng), "climatology": pool,
             "overconfident": _draw(scale, n_samples, rng, noise=0.4),
             "persistence": np.repeat(ctx[:, None, :, -1:], n_samples, axis=1).repeat(10, -1)}
    out = []
    for i, (name, values) in enumerate(draws.items()):
        samples = Samples(values, CHANNELS, ids, ts, np.full(n_windows, "SPY"), regimes)
        out.append(Forecast(name, samples, realized, context=ctx,
                            provenance={"features_sha256": "abc123", "seed": 7, "wall_s": 0.5 + i,
                                        "split": {"kind": "last", "test_sessions": 1}}))
    return out


@pytest.fixture(scope="module")
def forecasts() -> list[Forecast]:
    return synthetic_forecasts()


@pytest.fixture(scope="module")
def model_metrics(forecasts: list[Forecast]) -> dict:
    return metrics.evaluate_forecast(forecasts[0])


def test_to_jsonable_when_nested_nan_inf_and_numpy_maps_to_plain_json() -> None:
    value = {"a": np.float32(1.5), "b": [np.nan, np.inf, -np.inf], 3: (np.int64(2), None),
             "c": np.array([[1.0, np.nan]]), "d": np.bool_(True)}
    out = metrics.to_jsonable(value)
    assert out == {"a": 1.5, "b": [None, None, None], "3": [2, None], "c": [[1.0, None]],
                   "d": True}
    json.dumps(out, allow_nan=False)


def test_evaluate_forecast_when_scored_has_every_key_and_no_nan(model_metrics: dict) -> None:
    for key in ("crps", "energy_score", "variogram_score", "coverage", "coverage_quantile",
                "interval_width", "cov_rel_error", "corr_frobenius_rel_error",
                "diversity_ratio", "pit", "n_windows", "n_per_regime"):
        assert key in model_metrics
    json.dumps(model_metrics, allow_nan=False)
    assert set(model_metrics["coverage"]) == {"50", "80", "90", "95"}
    assert set(model_metrics["coverage"]["90"]) == {*CHANNELS, "imbalance", "all_channels"}
    assert len(model_metrics["crps"]["log_ret"]["by_step"]) == 10


def test_evaluate_forecast_when_regime_small_reports_null_with_count(model_metrics: dict) -> None:
    counts = model_metrics["n_per_regime"]
    assert counts["low"] < 30 <= counts["mid"] and counts["all"] == 240
    assert sum(counts[r] for r in ("low", "mid", "high")) == 240
    row = model_metrics["coverage"]["90"]["imbalance"]
    assert row["low"] is None and row["mid"] is not None and row["all"] is not None
    assert model_metrics["energy_score"]["by_regime"]["low"] is None


def test_evaluate_forecast_when_calibrated_rank_coverage_near_nominal(model_metrics: dict) -> None:
    # 240 windows x 8 channels x 10 steps, strongly dependent within a window: loose band
    for level in ("50", "80", "90", "95"):
        observed = model_metrics["coverage"][level]["all_channels"]["all"]
        assert abs(observed - int(level) / 100) < 0.05, (level, observed)


def test_evaluate_forecast_when_overconfident_coverage_and_width_shrink(
        forecasts: list[Forecast], model_metrics: dict) -> None:
    over = metrics.evaluate_forecast(forecasts[2])
    assert over["coverage"]["90"]["log_ret"]["all"] < model_metrics["coverage"]["90"]["log_ret"][
        "all"] - 0.2
    assert over["interval_width"]["90"]["log_ret"]["all"] < 0.6 * model_metrics[
        "interval_width"]["90"]["log_ret"]["all"]


def test_evaluate_forecast_when_crps_aggregated_matches_masked_mean(
        forecasts: list[Forecast]) -> None:
    f = forecasts[1]
    mask = f.mask.copy()
    mask[:5, 5, :] = False  # log_ret of the first windows not scored
    g = Forecast(f.name, f.samples, f.realized, mask)
    out = metrics.evaluate_forecast(g)
    crps = crps_ensemble(f.samples.values, f.realized)
    k = CHANNELS.index("log_ret")
    assert math.isclose(out["crps"]["log_ret"]["mean"], crps[5:, k].mean(), rel_tol=1e-9)
    assert math.isclose(out["crps"]["log_ret"]["by_step"][3], crps[5:, k, 3].mean(), rel_tol=1e-9)
    channel_means = np.array([out["crps"][c]["mean"] for c in CHANNELS])
    assert math.isclose(out["crps"]["mean_raw"], float(channel_means.mean()), rel_tol=1e-12)
    # the headline mean divides each channel by the std of its scored realized values
    scales = np.array([f.realized[:, i][g.mask[:, i]].std() for i in range(len(CHANNELS))])
    np.testing.assert_allclose(out["crps"]["scales"], scales, rtol=1e-12)
    assert math.isclose(out["crps"]["mean"], float((channel_means / scales).mean()),
                        rel_tol=1e-12)


def test_evaluate_forecast_when_no_realized_raises() -> None:
    f = Forecast("x", Samples(np.zeros((2, 4, 1, 3)), ("a",)))
    with pytest.raises(TapecastError, match="no realized"):
        metrics.evaluate_forecast(f)


def test_evaluate_forecast_when_pair_channel_absent_cov_error_is_null(
        forecasts: list[Forecast]) -> None:
    out = metrics.evaluate_forecast(forecasts[0], pair=("imb_a0", "nope"))
    assert out["cov_rel_error"] is None


def test_channel_groups_when_custom_group_names_unknown_channel_raises() -> None:
    assert metrics.channel_groups(("a", "b"), {"ab": ["a", "b"]}) == {"ab": [0, 1]}
    with pytest.raises(TapecastError, match="unknown channel"):
        metrics.channel_groups(("a", "b"), {"ac": ["a", "c"]})


def test_compare_forecasts_when_reference_present_tests_each_against_it(
        forecasts: list[Forecast]) -> None:
    tests = metrics.compare_forecasts(forecasts, reference="climatology")
    assert [(t["a"], t["b"]) for t in tests] == [("model", "climatology"),
                                                  ("overconfident", "climatology"),
                                                  ("persistence", "climatology")]
    model = tests[0]
    assert model["mean_diff"] < 0 and model["p_value"] < 0.01
    assert 1 <= model["n_eff"] <= model["n"] == 240
    assert len(model["by_step"]) == 10 and model["by_step"][0]["n"] == 240
    json.dumps(tests, allow_nan=False)


def test_compare_forecasts_when_no_reference_tests_every_pair(forecasts: list[Forecast]) -> None:
    tests = metrics.compare_forecasts(forecasts[:3], reference="none-of-them")
    assert len(tests) == 3


def test_compare_forecasts_when_targets_differ_raises(forecasts: list[Forecast]) -> None:
    f = forecasts[1]
    other = Forecast("other", f.samples, f.realized + 1.0)
    with pytest.raises(TapecastError, match="different"):
        metrics.compare_forecasts([forecasts[0], other])
    shifted = Samples(f.samples.values, f.samples.channels, f.samples.window_ids + 1)
    with pytest.raises(TapecastError, match="window ids"):
        metrics.compare_forecasts([forecasts[0], Forecast("s", shifted, f.realized)])
    with pytest.raises(TapecastError, match="unique"):
        metrics.compare_forecasts([forecasts[0], forecasts[0]])


def test_build_metrics_when_built_carries_wall_s_dm_and_provenance(
        forecasts: list[Forecast]) -> None:
    out = metrics.build_metrics(forecasts, {"command": "test"})
    json.dumps(out, allow_nan=False)
    assert list(out["forecasters"]) == ["model", "climatology", "overconfident", "persistence"]
    assert out["forecasters"]["climatology"]["wall_s"] == 1.5
    assert out["reference"] == "climatology" and len(out["dm_tests"]) == 3
    prov = out["provenance"]
    assert prov["features_sha256"] == "abc123" and prov["seed"] == 7
    assert prov["split"] == {"kind": "last", "test_sessions": 1}
    assert prov["command"] == "test" and "package_version" in prov and "git_commit" in prov
    assert set(prov["forecasts"]) == set(out["forecasters"])


def test_collect_provenance_when_values_differ_keeps_them_per_forecaster(
        forecasts: list[Forecast]) -> None:
    f = forecasts[1]
    other = Forecast("b", f.samples, f.realized, provenance={"seed": 9})
    prov = metrics.collect_provenance([forecasts[0], other])
    assert prov["seed"] == {"model": 7, "b": 9}
    assert prov["features_sha256"] == {"model": "abc123"}


def test_origin_stride_when_origins_step_by_horizon_overlap_is_one() -> None:
    ids = np.arange(0, 100, 10)[:, None] + np.arange(10)[None, :]  # stride 10, H = 10
    assert metrics.origin_stride(ids) == 10 and metrics.overlap(10, 10) == 1
    assert metrics.origin_stride(ids[:, :3] // 5) == 2 and metrics.overlap(10, 2) == 5
    inst = np.array(["A"] * 5 + ["B"] * 5)
    restarted = np.concatenate([ids[:5], ids[:5]])  # ids restart per instrument
    assert metrics.origin_stride(restarted, inst) == 10
    assert metrics.origin_stride(None) == 1

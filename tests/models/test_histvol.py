"""hist-vol: Gaussian with the context's moments; zero mean for returns; random walk for levels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models import get_baseline
from tests.models.batches import batch_from_series, synthetic_windows

C, H, S = 100, 10, 20000


@pytest.fixture(scope="module")
def batches() -> tuple[ForecastBatch, ForecastBatch]:
    rng = np.random.default_rng(0)
    train = batch_from_series(synthetic_windows(rng, 200), C, H)
    test = batch_from_series(synthetic_windows(rng, 130), C, H, stride=10, first_id=900)
    return train, test


def test_histvol_when_sampled_matches_context_mean_and_std(batches) -> None:
    train, test = batches
    values = get_baseline("hist-vol").fit(train).sample(test, S, seed=0).values.astype(float)
    mean, std = values.mean(axis=(1, 3)), values.std(axis=(1, 3))  # (B, K)
    ctx_mean, ctx_std = test.context.mean(axis=2), test.context.std(axis=2, ddof=1)
    levels = [0, 1, 2, 3, 4, 6, 7]
    assert np.allclose(mean[:, levels], ctx_mean[:, levels], atol=0.02 * ctx_std[:, levels])
    assert np.allclose(std, ctx_std, rtol=0.02)
    assert np.allclose(mean[:, 5], 0.0, atol=0.02 * ctx_std[:, 5])  # log_ret: driftless


def test_histvol_when_context_has_nan_uses_defined_values(batches) -> None:
    train, test = batches
    ctx = test.context.copy()
    ctx[:, 7, ::2] = np.nan
    gappy = dataclasses.replace(test, context=ctx)
    values = get_baseline("hist-vol").fit(train).sample(gappy, S, seed=0).values[:, :, 7]
    expected = test.context[:, 7, 1::2]
    assert np.allclose(values.std(axis=(1, 2)), expected.std(axis=1, ddof=1), rtol=0.02)


def test_histvol_when_channel_is_random_walk_grows_variance_from_last_value(batches) -> None:
    train, test = batches
    forecaster = get_baseline("hist-vol", driftless_channels=(),
                              random_walk_channels=("log_tot_vol",)).fit(train)
    walk = forecaster.sample(test, S, seed=0).values[:, :, 7].astype(float)  # (B, S, H)
    step_std = np.diff(test.context[:, 7], axis=1).std(axis=1, ddof=1)  # (B,)
    assert np.allclose(walk.mean(axis=1)[:, 0], test.context[:, 7, -1],
                       atol=0.05 * step_std)
    ratio = walk.var(axis=1) / (step_std[:, None] ** 2 * np.arange(1, H + 1))
    assert np.allclose(ratio, 1.0, atol=0.05)


def test_histvol_config_when_channel_in_both_lists_raises() -> None:
    with pytest.raises(TapecastError, match="both"):
        get_baseline("hist-vol", random_walk_channels=("log_ret",))


def test_histvol_config_when_channels_given_as_text_splits_commas() -> None:
    config = get_baseline("hist-vol", driftless_channels="log_ret, x",
                          random_walk_channels="").config
    assert config.driftless_channels == ("log_ret", "x")
    assert config.random_walk_channels == ()

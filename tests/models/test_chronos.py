"""Chronos-Bolt baseline: a tiny local Bolt end to end, quantile-to-sample maths, offline errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models import get_baseline
from tapecast.models.baselines.chronos import ChronosBolt, ModelUnavailableError, quantile_samples
from tests.models.batches import batch_from_series, synthetic_windows
from tests.models.tiny_chronos import BOLT_LEVELS

LEVELS = np.array(BOLT_LEVELS)


@pytest.fixture(scope="module")
def batch() -> ForecastBatch:
    return batch_from_series(synthetic_windows(np.random.default_rng(0), 150), 100, 10,
                             stride=10)


def test_chronos_when_tiny_bolt_loaded_samples_within_its_quantile_range(tiny_bolt: Path,
                                                                         batch) -> None:
    forecaster = get_baseline("chronos", model=str(tiny_bolt), n_threads=1).fit(batch)
    assert isinstance(forecaster, ChronosBolt)
    samples = forecaster.sample(batch, 64, seed=0)
    assert samples.values.shape == (batch.size, 64, 8, 10)
    q = forecaster.predict_quantiles(batch.context.reshape(-1, 100), 10)  # (B*K, H, Q)
    q = np.sort(q, axis=-1).reshape(batch.size, 8, 10, -1)
    width_lo, width_hi = q[..., 1] - q[..., 0], q[..., -1] - q[..., -2]
    values = samples.values.astype(float)
    assert np.all(values >= (q[..., 0] - width_lo)[:, None] - 1e-4)
    assert np.all(values <= (q[..., -1] + width_hi)[:, None] + 1e-4)


def test_chronos_when_n_threads_set_restores_torch_threads(tiny_bolt: Path, batch) -> None:
    import torch

    before = torch.get_num_threads()
    get_baseline("chronos", model=str(tiny_bolt), n_threads=1).fit(batch).sample(batch, 2)
    assert torch.get_num_threads() == before


def test_quantile_samples_when_u_on_levels_returns_the_quantiles() -> None:
    q = np.linspace(-2.0, 2.0, 9)[None, :]  # (1, Q)
    u = np.broadcast_to(LEVELS[:, None], (9, 1))  # (S=9, 1)
    assert np.allclose(quantile_samples(q, LEVELS, u, "linear")[:, 0], q[0])


def test_quantile_samples_when_between_levels_interpolates_linearly() -> None:
    q = np.array([[0.0, 1.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0]])
    u = np.array([[0.15], [0.25], [0.85]])
    assert np.allclose(quantile_samples(q, LEVELS, u, "linear")[:, 0], [0.5, 2.0, 9.0])


def test_quantile_samples_when_in_tails_extends_or_clamps() -> None:
    q = np.array([[0.0, 1.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0]])
    u = np.array([[0.0], [0.05], [0.95], [1.0]])
    assert np.allclose(quantile_samples(q, LEVELS, u, "linear")[:, 0], [-1.0, -0.5, 11.0, 12.0])
    assert np.allclose(quantile_samples(q, LEVELS, u, "clamp")[:, 0], [0.0, 0.0, 10.0, 10.0])


def test_quantile_samples_when_quantiles_cross_sorts_them_first() -> None:
    crossed = np.array([[0.0, 2.0, 1.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])
    u = np.random.default_rng(0).random((200, 1))
    draws = quantile_samples(crossed, LEVELS, u, "linear")[:, 0]
    order = np.argsort(u[:, 0])
    assert np.all(np.diff(draws[order]) >= 0)  # a monotone quantile function


def test_quantile_samples_when_many_draws_reproduce_the_quantiles() -> None:
    q = np.array([[-3.0, -1.5, -0.6, -0.2, 0.0, 0.3, 0.8, 1.7, 3.5]])
    u = np.random.default_rng(1).random((200_000, 1))
    draws = quantile_samples(q, LEVELS, u, "linear")[:, 0]
    assert np.allclose(np.quantile(draws, LEVELS), q[0], atol=0.02)


def test_chronos_when_local_folder_missing_raises_na_offline(tmp_path: Path, batch) -> None:
    forecaster = get_baseline("chronos", model=str(tmp_path / "no-such-bolt"))
    with pytest.raises(ModelUnavailableError, match=r"^n/a offline: no Chronos-Bolt checkpoint"):
        forecaster.fit(batch)


def test_chronos_when_hub_model_not_cached_raises_na_offline(batch) -> None:
    forecaster = get_baseline("chronos", model="tapecast-tests/no-such-bolt",
                              local_files_only=True)
    with pytest.raises(TapecastError, match=r"^n/a offline: cannot load Chronos-Bolt model"):
        forecaster.fit(batch)


def test_chronos_config_when_tails_unknown_raises() -> None:
    with pytest.raises(TapecastError, match="tails"):
        get_baseline("chronos", tails="exponential")

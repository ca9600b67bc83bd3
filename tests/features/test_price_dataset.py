"""PriceDataset: price windows as forecast origins (batches with their own target channel)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.features.test_price import synthetic_grid

from tapecast.core.batch import OriginSource, as_batch
from tapecast.core.errors import TapecastError
from tapecast.features.price import PriceGridConfig
from tapecast.features.price_dataset import PriceDataset
from tapecast.features.price_windows import context_features, gather_windows
from tapecast.models import get_baseline


@pytest.fixture(scope="module")
def built() -> tuple[object, object, PriceGridConfig]:
    return synthetic_grid()


def test_price_dataset_when_batched_gives_features_and_the_30s_return(built) -> None:
    grid, windows, config = built
    data = PriceDataset(grid, windows, config)
    assert isinstance(data, OriginSource) and len(data) == windows.height
    batch = data.batch(np.array([0, 5, 100]))
    c = config.context_s
    assert batch.context.shape == (3, len(context_features(config)), c)
    assert batch.target.shape == (3, 1, 1) and batch.target_names == ("log_return",)
    np.testing.assert_array_equal(batch.target[:, 0, 0], windows["target"].to_numpy()[[0, 5, 100]])
    rows = windows["row"].to_numpy()[[0, 5, 100]]
    context, _ = gather_windows(grid, rows, config)
    np.testing.assert_array_equal(batch.context, context)
    assert batch.window_ids[:, c - 1].tolist() == rows.tolist()  # the origin: last context row
    assert batch.window_ids[:, c].tolist() == (rows + config.horizon_s).tolist()
    assert set(batch.extra("price_source")) <= {"mid", "trade"}


def test_price_dataset_when_path_asked_gives_the_cumulative_returns(built) -> None:
    grid, windows, config = built
    batch = PriceDataset(grid, windows, config, target="path").batch(slice(0, 4))
    assert batch.target.shape == (4, 1, config.horizon_s)
    np.testing.assert_array_equal(batch.target[:, 0, -1], windows["target"].to_numpy()[:4])


def test_price_dataset_when_given_to_an_order_flow_baseline_is_refused(built) -> None:
    grid, windows, config = built
    batch = as_batch(PriceDataset(grid, windows, config))
    with pytest.raises(TapecastError, match="forecasts the context's own channels"):
        get_baseline("climatology").fit(batch)
    with pytest.raises(TapecastError, match="target must be 'return' or 'path'"):
        PriceDataset(grid, windows, config, target="level")  # type: ignore[arg-type]


def test_price_dataset_batches_carry_the_origin_price_and_its_lattice_step(built) -> None:
    grid, windows, config = built
    batch = PriceDataset(grid, windows, config).batch(np.arange(50))
    rows = windows["row"].to_numpy()[:50]
    np.testing.assert_array_equal(batch.extra("origin_price"), grid["price"].to_numpy()[rows])
    step = np.where(batch.extra("price_source") == "mid", config.tick_size / 2, config.tick_size)
    np.testing.assert_array_equal(batch.extra("lattice_step"), step)

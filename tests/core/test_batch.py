"""ForecastBatch: checks, selection, extras, from_context, pickling."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from tapecast.core.batch import ForecastBatch, OriginSource, as_batch
from tapecast.core.errors import TapecastError

CHANNELS = ("a", "b")
C, H = 4, 2


def _batch(b: int = 3) -> ForecastBatch:
    rng = np.random.default_rng(0)
    ids = np.arange(b)[:, None] + np.arange(C + H)  # (B, C+H)
    t0 = np.datetime64("2024-01-02T14:30", "ns")
    return ForecastBatch(CHANNELS, rng.standard_normal((b, 2, C)), rng.standard_normal((b, 2, H)),
                         ids, t0 + ids * np.timedelta64(1, "s"),
                         np.array(["X"] * b), np.array(["mid"] * b),
                         {"count": ids * 10, "tag": np.arange(b)})


def test_batch_when_pickled_or_deep_copied_round_trips_with_its_extras() -> None:
    batch = _batch()
    for again in (pickle.loads(pickle.dumps(batch)), copy.deepcopy(batch)):
        np.testing.assert_array_equal(again.context, batch.context)
        np.testing.assert_array_equal(again.extra("count"), batch.extra("count"))


def test_batch_when_extras_dict_changes_afterwards_keeps_its_own_copy() -> None:
    extras = {"tag": np.arange(3)}
    batch = ForecastBatch(*[getattr(_batch(), f) for f in (
        "channels", "context", "target", "window_ids", "timestamps", "instruments", "regimes")],
        extras)
    extras["other"] = np.zeros(3)
    assert set(batch.extras) == {"tag"}


def test_batch_when_selected_keeps_positional_and_origin_extras_aligned() -> None:
    batch = _batch()
    part = batch.select(np.array([2, 0]))
    np.testing.assert_array_equal(part.extra("count"), batch.extra("count")[[2, 0]])
    assert part.is_positional("count") and not part.is_positional("tag")
    assert isinstance(batch, OriginSource) and as_batch(batch) is batch
    assert ForecastBatch.concat([part, part]).size == 4


@pytest.mark.parametrize("field,value,message", [
    ("instruments", np.array(["X"]), r"instruments must have shape \(3,\)"),
    ("window_ids", np.zeros((3, 5), np.int64), r"window_ids must have shape \(3, 6\)"),
    ("extras", {"n": np.zeros(2)}, "batch extra 'n' must have 3 rows"),
])
def test_batch_when_a_field_has_the_wrong_shape_raises_naming_it(field: str, value: object,
                                                                 message: str) -> None:
    import dataclasses

    with pytest.raises(TapecastError, match=message):
        dataclasses.replace(_batch(), **{field: value})


def test_extra_when_missing_names_the_extras_present() -> None:
    with pytest.raises(TapecastError, match=r"no 'n_trades' \(extras: \['count', 'tag'\]\)"):
        _batch().extra("n_trades")


def test_from_context_when_one_origin_pads_the_horizon_of_context_extras() -> None:
    batch = ForecastBatch.from_context(CHANNELS, np.ones((2, C)), H, instruments="SPY",
                                       extras={"n": np.array([1, 2, 3, 4]),
                                               "x": np.array([0.5] * C)})
    assert (batch.size, batch.context_length, batch.horizon) == (1, C, H)
    assert np.isnan(batch.target).all() and batch.instruments.tolist() == ["SPY"]
    assert batch.extra("n").tolist() == [[1, 2, 3, 4, 0, 0]]
    assert np.isnan(batch.extra("x")[0, C:]).all()


@pytest.mark.parametrize("kwargs,message", [
    ({"context": np.ones((1, 3, C))}, r"context must have shape \(B, 2, C\)"),
    ({"context": [["a", "b"], ["c", "d"]]}, "context must hold numbers"),
    ({"horizon": True}, "horizon must be a positive integer"),
    ({"horizon": 0}, "horizon must be a positive integer"),
    ({"instruments": ["A", "B"]}, r"instruments must be one name or 1 names"),
    ({"timestamps": ["not a time"] * C}, "timestamps must be datetimes"),
])
def test_from_context_when_input_is_bad_raises_one_line(kwargs: dict[str, object],
                                                        message: str) -> None:
    args: dict[str, object] = {"context": np.ones((1, 2, C)), "horizon": H, **kwargs}
    with pytest.raises(TapecastError, match=message):
        ForecastBatch.from_context(CHANNELS, args.pop("context"), args.pop("horizon"),  # type: ignore[arg-type]
                                   **args)  # type: ignore[arg-type]


def test_batch_when_target_channels_are_its_own_keeps_them_through_select_and_concat() -> None:
    import dataclasses

    base = _batch()
    batch = dataclasses.replace(base, target=base.target[:, :1], target_channels=("r_30s",))
    assert batch.target_names == ("r_30s",) and not batch.forecasts_its_context
    assert _batch().target_names == CHANNELS and _batch().forecasts_its_context
    part = batch.select(np.array([0, 2]))
    assert part.target_names == ("r_30s",) and part.target.shape == (2, 1, H)
    assert ForecastBatch.concat([part, part]).target_names == ("r_30s",)
    with pytest.raises(TapecastError, match="1 target channel names"):
        dataclasses.replace(base, target_channels=("r_30s",))  # target still has 2 channels
    with pytest.raises(TapecastError, match="differ in channels"):
        ForecastBatch.concat([part, _batch()])


def test_from_context_when_target_channels_given_sizes_the_unknown_target_by_them() -> None:
    batch = ForecastBatch.from_context(CHANNELS, np.ones((3, 2, C)), 1,
                                       target_channels=["r_30s"])
    assert batch.target.shape == (3, 1, 1) and batch.target_names == ("r_30s",)

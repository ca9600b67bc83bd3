import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Forecast, Samples, load_forecast


def _samples(b: int = 3, s: int = 16, k: int = 2, h: int = 4, seed: int = 0) -> Samples:
    rng = np.random.default_rng(seed)
    ts = np.datetime64("2013-10-07T14:00", "ns") + np.arange(b * h).reshape(b, h) * 10**9
    return Samples(rng.normal(size=(b, s, k, h)), ("a", "b"),
                   window_ids=np.arange(b * h).reshape(b, h), timestamps=ts,
                   instruments=["SPY"] * b, regimes=["low", "mid", "high"])


def test_samples_when_quantile_and_interval_match_numpy() -> None:
    s = _samples()
    assert s.values.dtype == np.float32 and s.mean().shape == (3, 2, 4)
    lo, hi = s.interval(0.9)
    np.testing.assert_allclose(lo, np.quantile(s.values.astype(np.float64), 0.05, axis=1))
    np.testing.assert_allclose(hi, np.quantile(s.values.astype(np.float64), 0.95, axis=1))
    assert s.quantile([0.1, 0.5, 0.9]).shape == (3, 3, 2, 4)


def test_samples_when_shapes_disagree_raise_one_line_error() -> None:
    with pytest.raises(TapecastError, match="channel names"):
        Samples(np.zeros((1, 2, 3, 4)), ("a",))
    with pytest.raises(TapecastError, match="window_ids"):
        Samples(np.zeros((1, 2, 1, 4)), ("a",), window_ids=np.zeros((1, 3)))
    with pytest.raises(TapecastError, match="unknown channel"):
        _samples().channel_index("zzz")


def test_forecast_when_saved_and_loaded_round_trips_every_array(tmp_path) -> None:
    s = _samples()
    realized = np.random.default_rng(1).normal(size=(3, 2, 4))
    realized[0, 1, 2] = np.nan
    f = Forecast("climatology", s, realized, context=np.zeros((3, 2, 5)),
                 provenance={"seed": 3, "split": {"kind": "last"}})
    assert not f.mask[0, 1, 2] and f.mask.sum() == 23
    path = f.save(tmp_path / "f.npz")
    g = load_forecast(path)
    assert g.name == "climatology" and g.provenance == f.provenance
    np.testing.assert_array_equal(g.samples.values, s.values)
    np.testing.assert_array_equal(g.samples.timestamps, s.timestamps)
    np.testing.assert_array_equal(g.samples.regimes, s.regimes)
    np.testing.assert_array_equal(g.mask, f.mask)
    assert g.select([0, 2]).samples.batch == 2


def test_load_forecast_when_file_is_not_a_forecast_raises(tmp_path) -> None:
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(2))
    with pytest.raises(TapecastError, match="not a tapecast forecast"):
        load_forecast(bad)
    with pytest.raises(TapecastError, match="no such"):
        load_forecast(tmp_path / "missing.npz")


def test_load_forecast_when_meta_is_bad_json_or_file_is_text_raises_one_line(tmp_path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, samples=np.zeros((1, 1, 1, 1)), meta=np.asarray("{not json"))
    with pytest.raises(TapecastError, match="not valid JSON"):
        load_forecast(bad)
    text = tmp_path / "README.md"
    text.write_text("# hello\n")
    with pytest.raises(TapecastError, match=r"expected an \.npz archive"):
        load_forecast(text)
    with pytest.raises(TapecastError, match="is a folder"):
        _forecast_to(tmp_path)


def _forecast_to(path) -> None:
    Forecast("x", _samples()).save(path)

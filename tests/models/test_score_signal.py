"""The score model's trading signal (models/score_signal.py) on an analytic score."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tapecast.core.errors import TapecastError
from tapecast.models.score_matching import ScoreMatching
from tapecast.models.score_signal import (
    SignalCalibration,
    calibrate_signal,
    feature_index,
    return_score,
    score_signal,
    signal_positions,
)

MU = torch.tensor([0.5, -1.0], dtype=torch.float64)  # the mean of the analytic state law


class GaussianScore(nn.Module):
    """σ-scaled score of N(μ, I) blurred by σ: σ · (μ − x) / (1 + σ²)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))  # sets the dtype

    def forward(self, x: Tensor, log_sigma: Tensor, cond: object = None) -> Tensor:
        sigma = log_sigma.to(torch.float64).exp()[:, None]  # (B, 1)
        return sigma * (MU - x.to(torch.float64)) / (1 + sigma**2) + 0 * self.dummy


def _analytic_model(names: tuple[str, ...] = ("return_1", "volatility")) -> ScoreMatching:
    model = ScoreMatching("tiny")
    model.config = model.config.replace(sigma_max=10.0,
                                        net=model.config.net.replace(dim=2))
    model.net = GaussianScore()  # type: ignore[assignment]
    model.mean, model.cov = MU.clone(), torch.eye(2, dtype=torch.float64)
    model.feature_names = list(names)
    return model


@pytest.fixture(scope="module")
def model() -> ScoreMatching:
    return _analytic_model()


@pytest.fixture(scope="module")
def train_states() -> np.ndarray:
    return np.random.default_rng(0).normal(MU.numpy(), 1.0, size=(2000, 2))


def test_return_score_when_analytic_net_is_mu_minus_x(model: ScoreMatching) -> None:
    x = np.array([[0.0, 0.0], [2.0, -1.0], [0.5, 3.0]])
    s = return_score(model, x, 0)
    np.testing.assert_allclose(s, (0.5 - x[:, 0]) / (1 + 0.01**2), rtol=1e-5)


def test_signal_when_analytic_score_direction_is_its_sign(
        model: ScoreMatching, train_states: np.ndarray) -> None:
    cal = calibrate_signal(model, train_states, threshold=None)
    x = np.array([[-2.0, -1.0], [3.0, -1.0], [0.4, -1.0], [0.6, 0.0]])
    sig = score_signal(model, x, cal)
    np.testing.assert_array_equal(sig.direction, [1.0, -1.0, 1.0, -1.0])  # sign(μ_r − r)
    assert sig.position[0] > 0 > sig.position[1]  # confident, in distribution
    assert sig.position[2] == sig.position[3] == 0.0  # |s_r| ≈ 0.1: under the 0.3 confidence


def test_signal_when_one_state_confidence_is_not_forced_to_one(
        model: ScoreMatching, train_states: np.ndarray) -> None:
    cal = calibrate_signal(model, train_states, threshold=None)
    assert cal.scale == pytest.approx(1.96, abs=0.15)  # 95th percentile of |N(0, 1)|
    one = score_signal(model, np.array([[0.0, -1.0]]), cal)  # |s_r| = 0.5
    assert one.confidence[0] == pytest.approx(0.5 / cal.scale, rel=1e-3)
    assert 0 < one.confidence[0] < 0.3 and one.position[0] == 0.0  # the seed's 0.3 now binds
    mid = score_signal(model, np.array([[-0.3, -1.0]]), cal)  # |s_r| = 0.8
    assert 0.3 < mid.confidence[0] < 1 and mid.position[0] == mid.confidence[0]
    far = score_signal(model, np.array([[-9.5, -1.0]]), cal)
    assert far.confidence[0] == 1.0 and far.position[0] == 1.0


def test_signal_when_state_has_low_density_is_filtered(
        model: ScoreMatching, train_states: np.ndarray) -> None:
    cal = calibrate_signal(model, train_states[:200], threshold=None)
    x = np.array([[-1.5, -1.0], [-1.5, 6.0]])  # same return score; the second is 7 σ off
    loose = score_signal(model, x, cal)
    assert loose.position[0] == loose.position[1] > 0
    from tapecast.models.score_signal import state_neg_log_p

    neg = state_neg_log_p(model, train_states[:200])
    strict = SignalCalibration(cal.scale, float(np.quantile(neg, 0.99)), cal.feature_index)
    sig = score_signal(model, x, strict)
    np.testing.assert_array_equal(sig.in_distribution, [True, False])
    assert sig.position[0] == loose.position[0] and sig.position[1] == 0.0


def test_signal_positions_when_threshold_given_without_log_p_raise() -> None:
    cal = SignalCalibration(1.0, 3.0, 0)
    with pytest.raises(TapecastError, match="pass -log p"):
        signal_positions(np.array([1.0]), cal)
    sig = signal_positions(np.array([1.0, -2.0, 0.5]), cal, np.array([3.5, 1.0, 1.0]))
    np.testing.assert_array_equal(sig.position, [0.0, -1.0, 0.5])


def test_calibration_when_round_tripped_through_json_is_equal() -> None:
    import json

    cal = SignalCalibration(1.7, -2.5, 3, 0.25, 0.9)
    assert SignalCalibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    assert SignalCalibration.from_dict(SignalCalibration(2.0, None, 0).to_dict()).threshold is None
    with pytest.raises(TapecastError, match="scale must be finite and > 0"):
        SignalCalibration(0.0, None, 0)
    with pytest.raises(TapecastError, match="missing or invalid field"):
        SignalCalibration.from_dict({"scale": 1.0})


def test_feature_index_when_states_lack_return_1_raises() -> None:
    with pytest.raises(TapecastError, match="no 'return_1' feature"):
        feature_index(_analytic_model(("return_5", "volatility")))

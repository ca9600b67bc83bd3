"""Anomaly scores of states: the score model's (nll, typicality, MSMA) and the controls."""

from __future__ import annotations

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.evaluate.anomaly import auroc
from tapecast.models.baselines.state_anomaly import BASELINE_DETECTORS, baseline_detector
from tapecast.models.score_anomaly import score_detector, score_norms
from tapecast.models.score_matching import ScoreMatching, score_matching_config

NAMES = ["return_1", "volatility", "volume_ratio"]


def _gaussian(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal([0.0, 0.0, 0.0], [[1, 0.6, 0], [0.6, 1, 0], [0, 0, 1]], n)


@pytest.fixture(scope="module")
def model() -> ScoreMatching:
    cfg = score_matching_config("tiny").with_train(max_steps=400, batch_size=256)
    return ScoreMatching(cfg.replace(likelihood_steps=20)).fit(_gaussian(3000, 0), progress=False)


def _test_set() -> tuple[np.ndarray, np.ndarray]:
    """Typical states, then states with the correlation of the first two coordinates reversed
    and their spread tripled."""
    rng = np.random.default_rng(5)
    normal = _gaussian(400, 1)
    broken = rng.multivariate_normal([0, 0, 0], [[1, -0.6, 0], [-0.6, 1, 0], [0, 0, 1]], 100)
    broken[:, :2] *= 3.0
    return np.concatenate([normal, broken]), np.r_[np.zeros(400, bool), np.ones(100, bool)]


@pytest.mark.parametrize("name", [n for n in BASELINE_DETECTORS if n != "volatility"])
def test_baseline_detectors_rank_far_states_higher(name: str) -> None:
    det = baseline_detector(name, NAMES).fit(_gaussian(2000, 0))
    x, y = _test_set()
    assert auroc(det.score(x), y) > 0.85  # Mahalanobis, the optimal test here, reaches 0.89


def test_volatility_detector_reads_its_own_column() -> None:
    det = baseline_detector("volatility", NAMES).fit(_gaussian(100, 0))
    x = _gaussian(10, 1)
    np.testing.assert_array_equal(det.score(x), x[:, 1])


@pytest.mark.parametrize("name", ["nll", "msma"])
def test_score_detectors_rank_broken_states_higher(model: ScoreMatching, name: str) -> None:
    det = score_detector(name, model).fit(_gaussian(1000, 2))
    x, y = _test_set()
    # the tiny network (400 steps) is rougher at small σ than the exact law: MSMA lags
    assert auroc(det.score(x), y) > (0.85 if name == "nll" else 0.7)


def test_typicality_flags_a_batch_at_the_mode_that_likelihood_calls_most_typical(
        model: ScoreMatching) -> None:
    """Nalisnick et al.'s point: states all at the mode have the highest likelihood, yet a
    batch of them is not a typical draw."""
    nll = score_detector("nll", model)
    typ = score_detector("typicality", model, window=20).fit(_gaussian(1000, 2))
    rng = np.random.default_rng(3)
    x = np.concatenate([_gaussian(200, 4), 0.05 * rng.normal(size=(100, 3))])
    y = np.r_[np.zeros(200, bool), np.ones(100, bool)]
    assert auroc(nll.score(x), y) < 0.3  # likelihood ranks the mode batch as least anomalous
    s = typ.score(x)
    assert auroc(s[20:], y[20:]) > 0.9
    assert typ.entropy is not None and abs(typ.entropy - 3.95) < 0.3  # H of that Gaussian


def test_score_norms_grow_with_distance_at_every_level(model: ScoreMatching) -> None:
    norms = score_norms(model, np.array([[0.0, 0.0, 0.0], [4.0, -4.0, 4.0]]), n_levels=4)
    assert norms.shape == (2, 4) and (norms[1] > norms[0]).all()


def test_detectors_refuse_bad_input(model: ScoreMatching) -> None:
    with pytest.raises(TapecastError, match="must be one of"):
        baseline_detector("svm", NAMES)
    with pytest.raises(TapecastError, match="must be one of"):
        score_detector("energy", model)
    with pytest.raises(TapecastError, match="call fit"):
        baseline_detector("gmm", NAMES).score(_gaussian(3, 0))
    with pytest.raises(TapecastError, match="dimension"):
        baseline_detector("gmm", NAMES).fit(_gaussian(50, 0)).score(np.zeros((2, 4)))
    with pytest.raises(TapecastError, match="finite"):
        baseline_detector("mahalanobis", NAMES).fit(np.full((5, 3), np.nan))
    with pytest.raises(TapecastError, match="call fit"):
        score_detector("typicality", model).score(_gaussian(3, 0))

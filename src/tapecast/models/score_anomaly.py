"""Anomaly and regime scores of market states from a trained score model (issue 16).

Three detectors, each fitted on the training states and scoring states (M, D) in time order,
**higher = more anomalous** (the controls, Mahalanobis, volatility, Isolation Forest and a
Gaussian mixture, are in :mod:`tapecast.models.baselines.state_anomaly`):

``nll``
    ``−log p(x)`` by the probability-flow ODE (:meth:`ScoreMatching.log_prob`, Hutchinson
    divergence by default).
``typicality``
    Nalisnick et al. 2019 ("Detecting out-of-distribution inputs to deep generative models
    using typicality"): likelihood alone can rank unfamiliar data *higher* than familiar data
    (a state near the mode of a broad law is not a typical draw of it); a batch of M draws is
    typical when its mean NLL is near the entropy ``Ĥ`` (the mean training NLL). Here the batch
    is the trailing window of ``window`` states (fewer at the start of the series) and the score
    is ``|mean NLL of the window − Ĥ|``. It needs states in time order, and it reacts over a
    window (a delay of up to ``window`` bars by design).
``msma``
    Multi-scale score matching analysis (Mahmood, Lopez & Leon 2021, "Multiscale score
    matching for out-of-distribution detection"): the norms ``‖σ_i s_θ(x, σ_i)‖`` at L noise
    levels σ_i (geometric between the model's σ_min and σ_max) form an L-vector per state; a
    full-covariance Gaussian mixture (components by BIC, scikit-learn) is fitted on the training
    states' vectors and the score is its negative log-density. Large-σ norms see where a state
    lies relative to the whole law, small-σ norms its local neighbourhood.

Usage::

    det = score_detector("msma", model).fit(train)
    det.score(test)  # (M,)

Legend: s_θ the score network, σ_i the L analysis levels, Ĥ the mean training NLL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError
from tapecast.evaluate.anomaly import trailing_mean
from tapecast.models.baselines.state_anomaly import as_states, bic_mixture

if TYPE_CHECKING:
    from tapecast.models.score_matching import ScoreMatching

__all__ = ["SCORE_DETECTORS", "THRESHOLD_STATES", "ScoreDetector", "score_detector",
           "score_norms", "threshold_states"]

SCORE_DETECTORS: Final = ("nll", "typicality", "msma")
CHUNK: Final = 1024
THRESHOLD_STATES: Final = 10_000


def threshold_states(states: ArrayLike, cap: int = THRESHOLD_STATES, seed: int = 0
                     ) -> NDArray[np.float64]:
    """At most ``cap`` of the states (N, D), drawn without replacement (seeded) and kept in time
    order: the sample a training quantile of −log p is read from. The 99th percentile of 10,000
    states has a standard error of about 0.1 percentile points, and the probability-flow ODE of
    every training state costs minutes on 30,000 of them."""
    x = np.asarray(states, dtype=np.float64)
    if len(x) <= cap:
        return x
    pick = np.sort(np.random.default_rng(seed).choice(len(x), size=cap, replace=False))
    return x[pick]


def score_norms(model: ScoreMatching, states: ArrayLike, n_levels: int = 10
                ) -> NDArray[np.float64]:
    """``‖σ_i s_θ(x, σ_i)‖`` at ``n_levels`` geometric σ_i in [σ_min, σ_max]: (M, L)."""
    x = np.asarray(states, dtype=np.float64)
    sigmas = np.geomspace(model.config.sigma_min, float(model.config.sigma_max or 1.0),
                          n_levels)
    cols = [np.concatenate([sigma * model.score(x[i:i + CHUNK], float(sigma)).norm(dim=1)
                            .double().numpy() for i in range(0, len(x), CHUNK)])
            for sigma in sigmas]
    return np.stack(cols, axis=1)


class ScoreDetector:
    """An anomaly score of states from a trained :class:`ScoreMatching` (module docstring).

    Parameters
    ----------
    name : str
        ``nll``, ``typicality`` or ``msma``.
    model : ScoreMatching
        Trained.
    divergence : str
        Of the log-density (``hutchinson`` or ``exact``).
    window : int
        Trailing states per typicality batch.
    n_levels : int
        L, MSMA's noise levels.
    seed : int
        Of the Hutchinson probes and the mixture.
    """

    def __init__(self, name: str, model: ScoreMatching, *, divergence: str = "hutchinson",
                 window: int = 5, n_levels: int = 10, seed: int = 0) -> None:
        if name not in SCORE_DETECTORS:
            raise TapecastError(f"detector must be one of {', '.join(SCORE_DETECTORS)}, got "
                                f"{name!r}")
        if window < 1 or n_levels < 2:
            raise TapecastError(f"window >= 1 and n_levels >= 2, got {window}, {n_levels}")
        self.name, self.model, self.divergence = name, model, divergence
        self.window, self.n_levels, self.seed = window, n_levels, seed
        self.entropy: float | None = None  # Ĥ, mean training NLL (typicality)
        self._mixture: Any = None
        self._scale: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    def __repr__(self) -> str:
        return f"ScoreDetector({self.name!r}, fitted={self._fitted})"

    @property
    def _fitted(self) -> bool:
        return self.entropy is not None or self._mixture is not None or self.name == "nll"

    def nll(self, states: ArrayLike) -> NDArray[np.float64]:
        """−log p of states (M, D): (M,) nats."""
        return -self.model.log_prob_chunked(states, divergence=self.divergence, seed=self.seed,
                                            chunk=CHUNK)

    def _msma_features(self, states: ArrayLike) -> NDArray[np.float64]:
        return np.log(score_norms(self.model, states, self.n_levels) + 1e-12)

    def fit(self, train: ArrayLike) -> Self:
        """Fit on the training states (N, D): Ĥ for ``typicality``, the mixture for ``msma``."""
        train = as_states(train, "train")
        if self.name == "typicality":
            self.entropy = float(self.nll(train).mean())
        elif self.name == "msma":
            feats = self._msma_features(train)
            mean, std = feats.mean(0), feats.std(0) + 1e-12
            self._scale = (mean, std)
            self._mixture = bic_mixture((feats - mean) / std, seed=self.seed)
        return self

    def score(self, states: ArrayLike) -> NDArray[np.float64]:
        """Anomaly score of states (M, D) in time order: (M,), higher = more anomalous."""
        if not self._fitted:
            raise TapecastError(f"{self!r}: call fit(train) first")
        states = as_states(states, "states")
        if self.name == "nll":
            return self.nll(states)
        if self.name == "typicality":
            assert self.entropy is not None
            return np.abs(trailing_mean(self.nll(states), self.window) - self.entropy)
        assert self._scale is not None
        feats = (self._msma_features(states) - self._scale[0]) / self._scale[1]
        return -np.asarray(self._mixture.score_samples(feats), dtype=np.float64)


def score_detector(name: str, model: ScoreMatching, **kwargs: Any) -> ScoreDetector:
    """:class:`ScoreDetector` ``name`` (unfitted)."""
    return ScoreDetector(name, model, **kwargs)

"""Model-free anomaly scores of market states, the controls of the score model's detectors.

Every detector is fitted on training states (N, D) and returns, for states (M, D), a score
where **higher means more anomalous**. Each wraps scikit-learn, the field's library for them:

- ``mahalanobis``: the squared Mahalanobis distance to the training mean under the training
  covariance (:class:`sklearn.covariance.EmpiricalCovariance`) — what a Gaussian model of the
  state sees;
- ``volatility``: the state's own volatility coordinate (a threshold on current realized
  volatility, the one-feature detector every regime test must beat);
- ``isolation-forest``: −``score_samples`` of :class:`sklearn.ensemble.IsolationForest` (Liu,
  Ting & Zhou 2008), 200 trees;
- ``gmm``: −log-density of a full-covariance :class:`sklearn.mixture.GaussianMixture` whose
  number of components (1..8) minimizes BIC on the training states.

Usage::

    det = baseline_detector("mahalanobis", feature_names).fit(train)
    det.score(test)  # (M,)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError

__all__ = ["BASELINE_DETECTORS", "StateDetector", "as_states", "baseline_detector", "bic_mixture"]

BASELINE_DETECTORS: Final = ("mahalanobis", "volatility", "isolation-forest", "gmm")


def as_states(x: ArrayLike, what: str) -> NDArray[np.float64]:
    """``x`` as a float64 (N, D) array, refused in one line unless 2-D, N >= 1 and finite."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or not len(arr) or not np.isfinite(arr).all():
        raise TapecastError(f"{what}: states must be a finite (N, D) array with N >= 1, got "
                            f"shape {arr.shape}")
    return arr


def bic_mixture(x: NDArray[np.float64], max_components: int = 8, seed: int = 0) -> Any:
    """The full-covariance Gaussian mixture of 1..``max_components`` components with the lowest
    BIC on ``x`` (N, K), fitted with 2 initializations."""
    from sklearn.mixture import GaussianMixture

    best, best_bic = None, np.inf
    for k in range(1, max(1, min(max_components, len(x) // (2 * x.shape[1] + 2))) + 1):
        gmm = GaussianMixture(k, covariance_type="full", n_init=2, random_state=seed,
                              reg_covar=1e-5).fit(x)
        bic = gmm.bic(x)
        if bic < best_bic:
            best, best_bic = gmm, bic
    return best


class StateDetector:
    """A fitted-on-train anomaly score of states (module docstring).

    Parameters
    ----------
    name : str
        One of :data:`BASELINE_DETECTORS`.
    feature_names : sequence of str
        The D feature names (``volatility`` reads its coordinate).
    seed : int
    """

    def __init__(self, name: str, feature_names: Sequence[str], seed: int = 0) -> None:
        if name not in BASELINE_DETECTORS:
            raise TapecastError(f"detector must be one of {', '.join(BASELINE_DETECTORS)}, got "
                                f"{name!r}")
        if name == "volatility" and "volatility" not in feature_names:
            raise TapecastError("the volatility detector needs a 'volatility' feature")
        self.name, self.feature_names, self.seed = name, list(feature_names), seed
        self._model: Any = None

    def __repr__(self) -> str:
        return f"StateDetector({self.name!r}, fitted={self._model is not None})"

    def fit(self, train: ArrayLike) -> Self:
        """Fit on training states (N, D)."""
        x = as_states(train, "train")
        if x.shape[1] != len(self.feature_names):
            raise TapecastError(f"train states have dimension {x.shape[1]}, feature names "
                                f"{len(self.feature_names)}")
        if self.name == "mahalanobis":
            from sklearn.covariance import EmpiricalCovariance
            self._model = EmpiricalCovariance().fit(x)
        elif self.name == "isolation-forest":
            from sklearn.ensemble import IsolationForest
            self._model = IsolationForest(n_estimators=200, random_state=self.seed).fit(x)
        elif self.name == "gmm":
            self._model = bic_mixture(x, seed=self.seed)
        else:
            self._model = self.feature_names.index("volatility")
        return self

    def score(self, states: ArrayLike) -> NDArray[np.float64]:
        """Anomaly score of states (M, D): (M,), higher = more anomalous."""
        if self._model is None:
            raise TapecastError(f"{self!r}: call fit(train) first")
        x = as_states(states, "states")
        if x.shape[1] != len(self.feature_names):
            raise TapecastError(f"states have dimension {x.shape[1]}; the detector was fitted "
                                f"on dimension {len(self.feature_names)}")
        if self.name == "volatility":
            return x[:, int(self._model)].copy()
        if self.name == "mahalanobis":
            out: NDArray[np.float64] = self._model.mahalanobis(x)
            return out
        return -np.asarray(self._model.score_samples(x), dtype=np.float64)


def baseline_detector(name: str, feature_names: Sequence[str], seed: int = 0) -> StateDetector:
    """:class:`StateDetector` ``name`` (unfitted)."""
    return StateDetector(name, feature_names, seed)

"""A position per market state from a fitted score model: the seed's signal, made sound (issue 16).

The seed (``../shared/seeds/score-matching-trading.txt``, "Signal Generation",
``LangevinDynamics.get_trading_signal`` and ``ScoreMatchingTrader.generate_signal``) reads the
``return_1`` coordinate of the score at the lowest noise level, trades its sign, scales by a
confidence and trades only in "familiar" (high-density) states::

    cal = calibrate_signal(model, train_states, threshold=neg_log_p_99)
    sig = score_signal(model, states, cal, neg_log_p=-log_p)   # sig.position: (N,) in [-1, 1]

**What the signal really is.** At σ_min the score's ``return_1`` coordinate is
``s_r(x) = ∂/∂r log p(r, rest) = ∂/∂r log p(r | rest)``: it points from the current bar's return
r toward the more typical values of r *given the rest of the state* (the longer returns,
volatility, RSI, ...). Its sign is long when this bar's return is below what is typical for such a
state, short when above: a mean-reversion bet on the current bar's return, not a forecast of the
next one. Whether it pays depends on whether returns revert next bar, which the density model
was never asked.

**Deviations from the seed.** (1) The seed divides |s_r| by its batch maximum, which is always
1 for the one state ``generate_signal`` passes (so its 0.3 confidence threshold never binds);
here the confidence is ``|s_r| / scale`` clipped to [0, 1] with ``scale`` the train states'
95th percentile of |s_r|, fixed before any test state is seen. (2) The seed's density filter is
a straight-line integral of the score against an arbitrary ``-5``; here it is the probability-
flow log p of :meth:`ScoreMatching.log_prob` against the run's train 99th percentile of −log p
(``threshold.json``). (3) The seed's denoised state is not used for trading and is dropped.

Legend: N states, D state dimension, s_r the score's ``return_1`` coordinate at σ_min.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError

if TYPE_CHECKING:
    from tapecast.models.score_matching import ScoreMatching

__all__ = ["SIGNAL_FEATURE", "ScoreSignal", "SignalCalibration", "calibrate_signal",
           "feature_index", "return_score", "score_signal", "signal_positions",
           "state_neg_log_p"]

SIGNAL_FEATURE = "return_1"
CHUNK = 1024  # states per network pass


@dataclass(frozen=True)
class SignalCalibration:
    """What turns a return score into a position, fitted on the train states.

    Parameters
    ----------
    scale : float
        |s_r| at which the confidence reaches 1 (the train ``quantile`` of |s_r|), > 0.
    threshold : float or None
        Largest −log p traded (the train 99th percentile); None trades every state.
    feature_index : int
        Column of ``return_1`` in the state vector.
    confidence_threshold : float
        Confidence below which the position is 0 (the seed's 0.3).
    quantile : float
        The train quantile ``scale`` was taken at (provenance).
    """

    scale: float
    threshold: float | None
    feature_index: int
    confidence_threshold: float = 0.3
    quantile: float = 0.95

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise TapecastError(f"signal calibration: scale must be finite and > 0, got "
                                f"{self.scale}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise TapecastError(f"signal calibration: threshold must be finite, got "
                                f"{self.threshold}")
        if self.feature_index < 0:
            raise TapecastError(f"signal calibration: feature_index must be >= 0, got "
                                f"{self.feature_index}")
        if not 0.0 <= self.confidence_threshold <= 1.0 or not 0.0 < self.quantile <= 1.0:
            raise TapecastError(f"signal calibration: need 0 <= confidence_threshold <= 1 and "
                                f"0 < quantile <= 1, got {self.confidence_threshold}, "
                                f"{self.quantile}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "signal calibration"
                  ) -> SignalCalibration:
        """Read :meth:`to_dict`'s output (one-line errors naming ``where``)."""
        try:
            threshold = data["threshold"]
            return cls(float(data["scale"]), None if threshold is None else float(threshold),
                       int(data["feature_index"]), float(data["confidence_threshold"]),
                       float(data["quantile"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TapecastError(f"{where}: missing or invalid field {exc}") from None


@dataclass(frozen=True)
class ScoreSignal:
    """The signal of N states, each field (N,).

    Attributes
    ----------
    score : ndarray of float64
        s_r, the return score at σ_min.
    direction : ndarray of float64
        sign(s_r) in {-1, 0, 1}.
    confidence : ndarray of float64
        |s_r| / scale clipped to [0, 1].
    in_distribution : ndarray of bool
        −log p <= threshold (all True without a threshold).
    position : ndarray of float64
        direction · confidence where in distribution and confident, else 0.
    """

    score: NDArray[np.float64]
    direction: NDArray[np.float64]
    confidence: NDArray[np.float64]
    in_distribution: NDArray[np.bool_]
    position: NDArray[np.float64]


def feature_index(model: ScoreMatching, feature: str = SIGNAL_FEATURE) -> int:
    """The column of ``feature`` in the model's states (from its feature names)."""
    names = model.feature_names
    if not names or feature not in names:
        raise TapecastError(f"the score model's states have no {feature!r} feature (features: "
                            f"{', '.join(names or ['unknown'])}); the signal needs it")
    return names.index(feature)


def return_score(model: ScoreMatching, states: ArrayLike, index: int) -> NDArray[np.float64]:
    """s_r: coordinate ``index`` of the score at σ_min of states (N, D): (N,) float64."""
    x = np.asarray(states, dtype=np.float64)
    if x.ndim != 2 or not len(x):
        raise TapecastError(f"states must have shape (N, D) with N >= 1, got {x.shape}")
    sigma = model.config.sigma_min
    parts = [model.score(x[i:i + CHUNK], sigma)[:, index].double().numpy()
             for i in range(0, len(x), CHUNK)]
    return np.concatenate(parts)


def state_neg_log_p(model: ScoreMatching, states: ArrayLike, *, seed: int = 0,
                    steps: int | None = None) -> NDArray[np.float64]:
    """−log p of states (N, D) with one Hutchinson probe (as the run's threshold): (N,)."""
    return -model.log_prob_chunked(states, steps=steps, seed=seed, chunk=CHUNK)


def calibrate_signal(model: ScoreMatching, train_states: ArrayLike, *,
                     threshold: float | None, feature: str = SIGNAL_FEATURE,
                     quantile: float = 0.95, confidence_threshold: float = 0.3
                     ) -> SignalCalibration:
    """Fit the confidence scale on the train states (normalized, (N, D)).

    Parameters
    ----------
    model : ScoreMatching
        Fitted, with feature names.
    train_states : array_like, shape (N, D)
    threshold : float or None
        −log p above which a state is not traded (the run's ``threshold.json``).
    feature, quantile, confidence_threshold
        The coordinate read, the train quantile of |s_r| that maps to confidence 1, the seed's
        minimum confidence.

    Returns
    -------
    SignalCalibration
    """
    index = feature_index(model, feature)
    if not 0.0 < quantile <= 1.0:
        raise TapecastError(f"quantile must be in (0, 1], got {quantile}")
    scale = float(np.quantile(np.abs(return_score(model, train_states, index)), quantile))
    if not scale > 0:
        raise TapecastError(f"the train states' {quantile:.0%} quantile of |score of {feature}| "
                            f"is {scale}: the model's score ignores {feature}")
    return SignalCalibration(scale, threshold, index, confidence_threshold, quantile)


def signal_positions(score: ArrayLike, calibration: SignalCalibration,
                     neg_log_p: ArrayLike | None = None) -> ScoreSignal:
    """Positions from return scores s_r (N,) and, with a threshold, −log p (N,).

    Returns
    -------
    ScoreSignal
        Fields of shape (N,); ``position`` is in [-1, 1].
    """
    s = np.asarray(score, dtype=np.float64)
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise TapecastError(f"return scores must be 1-D and finite, got shape {s.shape}")
    if calibration.threshold is None:
        in_dist = np.ones(s.shape, dtype=bool)
    else:
        if neg_log_p is None:
            raise TapecastError("the calibration has a density threshold: pass -log p")
        nlp = np.asarray(neg_log_p, dtype=np.float64)
        if nlp.shape != s.shape:
            raise TapecastError(f"-log p {nlp.shape} and scores {s.shape} differ in shape")
        in_dist = nlp <= calibration.threshold  # NaN -log p is never traded
    direction = np.sign(s)
    confidence = np.clip(np.abs(s) / calibration.scale, 0.0, 1.0)
    trade = in_dist & (confidence >= calibration.confidence_threshold)
    position = np.where(trade, direction * confidence, 0.0)
    return ScoreSignal(s, direction, confidence, in_dist, position)


def score_signal(model: ScoreMatching, states: ArrayLike, calibration: SignalCalibration, *,
                 neg_log_p: ArrayLike | None = None, seed: int = 0) -> ScoreSignal:
    """The signal of normalized states (N, D); −log p is computed (Hutchinson, ``seed``) when
    the calibration has a threshold and none is given."""
    x = np.asarray(states, dtype=np.float64)
    s = return_score(model, x, calibration.feature_index)
    if calibration.threshold is not None and neg_log_p is None:
        neg_log_p = state_neg_log_p(model, x, seed=seed)
    return signal_positions(s, calibration, neg_log_p)

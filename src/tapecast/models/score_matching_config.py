"""Configuration of the score model of market states (:mod:`tapecast.models.score_matching`).

One frozen, validated dataclass holding the network sizes, the σ range, the objective, the
Langevin and likelihood defaults and the training loop, saved in a model folder's
``config.json``. Presets::

    score_matching_config("small")   # the default: 3 residual blocks of width 128
    score_matching_config("tiny")    # tests and smoke runs

σ_max is estimated from the training states at fit time (None here) unless set: Song & Ermon
2020 (NCSN v2, Technique 1) advise σ_1 about the largest Euclidean distance between two
training points; σ_min = 0.01 is NCSN's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError
from tapecast.diffusion import VENoise
from tapecast.nets.score_mlp import ScoreMLPConfig
from tapecast.train import TrainConfig

Objective = Literal["dsm", "ssm-vr"]

__all__ = ["Objective", "ScoreMatchingConfig", "score_matching_config"]


def _small_train() -> TrainConfig:
    # one thread: two OpenMP threads on a shared 2-core machine wait for each other
    return TrainConfig(lr=2e-3, weight_decay=0.0, batch_size=256, max_epochs=None,
                       max_steps=3000, grad_clip=1.0, ema_decay=0.999, lr_schedule="cosine",
                       warmup_steps=100, min_lr_ratio=0.05, eval_every=500, log_every=100,
                       seed=0, num_threads=1)


def _tiny_train() -> TrainConfig:
    return TrainConfig(lr=3e-3, weight_decay=0.0, batch_size=64, max_epochs=None,
                       max_steps=40, grad_clip=1.0, ema_decay=0.9, eval_every=20,
                       log_every=10, seed=0, num_threads=1)


@dataclass(frozen=True)
class ScoreMatchingConfig(ConfigBase):
    """Everything that defines a score model of D-dimensional states.

    Parameters
    ----------
    name : str
        Preset name (provenance only).
    net : ScoreMLPConfig
        Network sizes; ``dim`` is set from the data at fit time.
    objective : {"dsm", "ssm-vr"}
        Multi-scale denoising score matching (Song & Ermon 2019, eq. 6, λ(σ) = σ²) or sliced
        score matching with variance reduction (Song et al. 2020, eq. 8) at the same noise
        levels and weights.
    sigma_min : float
        σ_L, the smallest noise level (NCSN: 0.01).
    sigma_max : float, optional
        σ_1; None: ``sigma_max_scale`` times the largest pairwise distance among
        ``sigma_max_subsample`` training states.
    sigma_max_subsample : int
        States drawn (seeded) to estimate σ_max (the distance matrix is quadratic in them).
    sigma_max_scale : float
        The estimated σ_max is this times the largest distance. 2 by default: the density's
        terminal law ``N(m, C + σ_max² I)`` is off by the data's higher cumulants over σ_max⁴;
        on the 2-D mixture of the tests that costs 2.7e-3 nats per state at 1x, 3.4e-4 at 2x
        (analytic score), for 10 % more log-σ range to learn.
    noise_draws : int
        Noise levels drawn per training state and step.
    n_projections : int
        Random projections per noisy state of the sliced objective.
    n_levels, steps_per_level, epsilon
        Annealed Langevin defaults: L levels, T steps each, step ``α_i = ε σ_i² / σ_L²``
        (NCSN: T = 100, ε = 2e-5 with σ_L = 0.01: the relative step ``ε/σ_L²`` is 0.2).
    likelihood_steps : int
        RK4 steps of the probability-flow ODE of :meth:`ScoreMatching.log_prob`.
    train : TrainConfig
    """

    name: str = "small"
    net: ScoreMLPConfig = field(default_factory=ScoreMLPConfig)
    objective: Objective = "dsm"
    sigma_min: float = 0.01
    sigma_max: float | None = None
    sigma_max_subsample: int = 1000
    sigma_max_scale: float = 2.0
    noise_draws: int = 4
    n_projections: int = 1
    n_levels: int = 20
    steps_per_level: int = 100
    epsilon: float = 2e-5
    likelihood_steps: int = 100
    train: TrainConfig = field(default_factory=_small_train)

    def validate(self) -> None:
        """Positive sizes and levels; σ_min < σ_max when both are set."""
        self.check_range("sigma_min", low=0.0, low_inclusive=False)
        if self.sigma_max is not None:
            self.check_range("sigma_max", low=self.sigma_min, low_inclusive=False)
        self.check_range("sigma_max_subsample", low=2)
        self.check_range("sigma_max_scale", low=1.0)
        self.check_range("noise_draws", low=1)
        self.check_range("n_projections", low=1)
        self.check_range("n_levels", low=1)
        self.check_range("steps_per_level", low=1)
        self.check_range("epsilon", low=0.0, low_inclusive=False)
        self.check_range("likelihood_steps", low=1)

    def make_noise(self) -> VENoise:
        """The VE process of this config (σ_max must be set: after fit or load), feeding the
        network ``log σ``."""
        if self.sigma_max is None:
            self.fail("sigma_max", "is not set yet (it is estimated at fit time)")
        return VENoise(self.sigma_min, self.sigma_max, time_input="log_sigma")

    def with_train(self, **changes: object) -> ScoreMatchingConfig:
        """This config with training-loop fields changed (``seed=1``, ``max_steps=10``)."""
        return self.replace(train=self.train.replace(**changes))


PRESETS: dict[str, ScoreMatchingConfig] = {
    "small": ScoreMatchingConfig(),
    "tiny": ScoreMatchingConfig(name="tiny", net=ScoreMLPConfig(width=32, depth=1,
                                                                sigma_dim=8),
                                noise_draws=2, n_levels=5, steps_per_level=10,
                                likelihood_steps=20, train=_tiny_train()),
}


def score_matching_config(name: str) -> ScoreMatchingConfig:
    """A preset by name (``small``, ``tiny``)."""
    if name not in PRESETS:
        raise TapecastError(f"unknown score-matching preset {name!r}; expected one of "
                            f"{', '.join(PRESETS)}")
    return PRESETS[name]

"""Configuration of the price-distribution forecaster (:mod:`tapecast.models.price_diffusion`).

One frozen, validated dataclass (:class:`tapecast.core.config.ConfigBase`) holding the network
sizes, the noise, the default sampler, the lattice rule and the training loop, saved as JSON in
a model folder's ``config.json``. Presets::

    price_diffusion_config("small")   # the default: d = 128 CNN encoder, 4 x 256 FiLM-MLP
    price_diffusion_config("tiny")    # tests and smoke runs: d = 16, 2 x 32

The seed (``../shared/seeds/price-distribution-diffusion-plan.md``) fixes T = 1,000 diffusion
timesteps with a cosine schedule (Nichol & Dhariwal 2021, eq. 17); v-prediction (Salimans & Ho
2022, §4) is the default, ε-prediction the alternative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError
from tapecast.diffusion import GaussianNoise
from tapecast.nets.film_config import PriceDenoiserConfig
from tapecast.train import TrainConfig

Prediction = Literal["epsilon", "v"]
PriceSamplerName = Literal["ddpm", "ddim", "dpm-solver++"]

DEFAULT_STEPS: dict[str, int] = {"ddpm": 1000, "ddim": 20, "dpm-solver++": 10}
"""Reverse steps per sampler: DDPM over every training timestep (the quality reference), the
fast samplers at the evaluations the latency aim allows."""


def _small_train() -> TrainConfig:
    # one thread: two OpenMP threads on a shared 2-core machine wait for each other
    return TrainConfig(lr=1e-3, weight_decay=1e-4, weight_decay_on="matrices", batch_size=128,
                       max_epochs=None, max_steps=3000, grad_clip=1.0, ema_decay=0.999,
                       lr_schedule="cosine", warmup_steps=100, min_lr_ratio=0.05,
                       eval_every=250, max_val_batches=16, log_every=20, seed=0,
                       num_threads=1)


def _tiny_train() -> TrainConfig:
    return TrainConfig(lr=3e-3, weight_decay=0.0, batch_size=32, max_epochs=None,
                       max_steps=60, grad_clip=1.0, ema_decay=0.9, lr_schedule="constant",
                       eval_every=30, log_every=10, seed=0, num_threads=1)


@dataclass(frozen=True)
class PriceDiffusionConfig(ConfigBase):
    """Everything that defines a price-distribution forecaster.

    Parameters
    ----------
    name : str
        Preset name (provenance only).
    net : PriceDenoiserConfig
        Encoder and FiLM-MLP sizes; ``n_features``, ``context`` and ``target_dim`` are set from
        the data at fit time (:meth:`with_data`).
    num_train_timesteps : int
        T of the Gaussian VP process.
    schedule : {"cosine", "linear"}
        Beta schedule (:func:`tapecast.diffusion.schedules.make_betas`).
    prediction : {"v", "epsilon"}
        What the network regresses.
    sampler : {"dpm-solver++", "ddim", "ddpm"}
        ``sample()``'s default sampler; ``steps`` its reverse steps (None: :data:`DEFAULT_STEPS`).
    steps : int, optional
    noise_draws : int
        Noise levels drawn per training origin, sharing its encoded context (the encoder costs
        far more than the FiLM-MLP, so many draws per encoding are nearly free).
    zero_atom : bool
        For the 30-s return (D = 1): a mixture of an atom at zero and a continuous part. The
        encoder's window embedding also gives P(unchanged price | window) (a logistic head,
        trained by cross-entropy); the diffusion learns the returns of the windows whose price
        moved. Ignored for the path target.
    lattice : bool
        Move every sampled return to the nearest lattice price
        (:func:`tapecast.features.price_lattice.snap_returns`): P_t + k·δ, δ a half-tick for a
        mid, a tick for a trade price. False returns the continuous samples.
    context_clip : float
        Normalized context values are clipped to ±this many standard deviations.
    train : TrainConfig
    """

    name: str = "small"
    net: PriceDenoiserConfig = field(default_factory=PriceDenoiserConfig)
    num_train_timesteps: int = 1000
    schedule: Literal["cosine", "linear"] = "cosine"
    prediction: Prediction = "v"
    sampler: PriceSamplerName = "dpm-solver++"
    steps: int | None = None
    noise_draws: int = 16
    zero_atom: bool = True
    lattice: bool = True
    context_clip: float = 10.0
    train: TrainConfig = field(default_factory=_small_train)

    def validate(self) -> None:
        """Positive sizes; a known sampler."""
        self.check_range("num_train_timesteps", low=2)
        self.check_range("noise_draws", low=1)
        self.check_range("context_clip", low=0.0, low_inclusive=False)
        if self.steps is not None:
            self.check_range("steps", low=1, high=self.num_train_timesteps)

    def steps_for(self, sampler: str) -> int:
        """Reverse steps of ``sampler``: ``steps`` for the default sampler when set, else
        :data:`DEFAULT_STEPS` (DDPM capped at T)."""
        if sampler == self.sampler and self.steps is not None:
            return self.steps
        if sampler not in DEFAULT_STEPS:
            raise TapecastError(f"unknown price sampler {sampler!r}; expected one of "
                                f"{', '.join(DEFAULT_STEPS)}")
        return min(DEFAULT_STEPS[sampler], self.num_train_timesteps)

    def make_noise(self) -> GaussianNoise:
        """The Gaussian VP forward process of this config."""
        return GaussianNoise.from_schedule(self.schedule, self.num_train_timesteps,
                                           prediction=self.prediction)

    def with_data(self, n_features: int, context: int, target_dim: int) -> PriceDiffusionConfig:
        """This config with the network sized to the data (K features, C seconds, D targets);
        the zero-move head on for D = 1 when ``zero_atom``."""
        return self.replace(net=self.net.replace(n_features=n_features, context=context,
                                                 target_dim=target_dim,
                                                 zero_head=self.zero_atom and target_dim == 1))

    def with_train(self, **changes: object) -> PriceDiffusionConfig:
        """This config with training-loop fields changed (``seed=1``, ``max_steps=10``)."""
        return self.replace(train=self.train.replace(**changes))


PRESETS: dict[str, PriceDiffusionConfig] = {
    "small": PriceDiffusionConfig(),
    "tiny": PriceDiffusionConfig(
        name="tiny", net=PriceDenoiserConfig(encoder_dim=16, encoder_layers=2, width=32,
                                             depth=2, time_dim=16),
        num_train_timesteps=1000, noise_draws=2, train=_tiny_train()),
}


def price_diffusion_config(name: str) -> PriceDiffusionConfig:
    """A preset by name (``small``, ``tiny``)."""
    if name not in PRESETS:
        raise TapecastError(f"unknown price-diffusion preset {name!r}; expected one of "
                            f"{', '.join(PRESETS)}")
    return PRESETS[name]

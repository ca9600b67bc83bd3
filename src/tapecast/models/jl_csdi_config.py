"""Configuration of the JL-CSDI forecaster: one frozen, validated dataclass and named presets.

A :class:`JLCSDIConfig` says everything needed to build, train and sample the forecaster: the
denoiser's sizes (:class:`tapecast.nets.DenoiserConfig`), the noise process and its settings, the
default sampler and step counts, the training loop (:class:`tapecast.train.TrainConfig`) and how
forecast-time trade counts are chosen for the inverse normalization. It is saved as
``config.json`` beside the weights (``to_dict`` / ``from_dict`` of
:class:`tapecast.core.config.ConfigBase`; errors name the field path, e.g.
``JLCSDIConfig.denoiser.channels: must be >= 1, got 0``).

Named presets (:func:`jlcsdi_config`):

``small``
    Context-cached denoiser of width 64 (``denoiser_config("small")``), Jump-Laplace noise,
    sized to train in a few minutes on 2 CPU cores.
``jl-csdi-esc1``
    The model card's release architecture (``../shared/seeds/jl-csdi-esc1-model-card.txt``):
    full-grid CSDI, 6 blocks of 528 channels, 6 heads, feed-forward 2112; 800 training steps on
    the tanh6-1 schedule; Jump-Laplace sampling with 50 uniform steps of Δt = 0.12 up to
    T_max = 6 with σ = 1.

Card settings, in this module's names: ``train_timesteps = 800``, ``schedule = "tanh6-1"``
(Li et al. 2024, arXiv 2307.08529), ``jl_t_max = 6.0``, ``jl_laplace_scale = 1.0`` (σ),
``sample_steps["sde"] = sample_steps["sde-mgd"] = 50`` (Δt = T_max / 50 = 0.12).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError
from tapecast.diffusion import SCHEDULES, GaussianNoise, JumpLaplaceNoise, sampler_names
from tapecast.diffusion.registry import samplers_for
from tapecast.nets import DenoiserConfig, denoiser_config
from tapecast.train import TrainConfig

NoiseName = Literal["gaussian", "jump-laplace"]
CountPlugin = Literal["context-mean", "context-median", "context-last"]
MgdTargetMode = Literal["conditional", "unconditional"]

DEFAULT_SAMPLER: dict[str, str] = {"gaussian": "ddim", "jump-laplace": "sde-mgd"}
"""The sampler ``sample()`` uses when none is asked for, per noise."""

DEFAULT_STEPS: dict[str, int] = {"ddpm": 50, "ddim": 10, "sde": 50, "sde-mgd": 50}
"""Reverse steps per sampler (``ddpm`` respaced to 50; the card's 50 JL steps)."""


def _small_train() -> TrainConfig:
    # 250 steps of 8 windows x 8 noise draws (JLCSDIConfig.noise_draws): about 1 s per step on
    # one thread. One thread because on a shared 2-core machine two OpenMP threads wait for each
    # other: 1.0 s against 9.4 s per step measured under load (docs/jl-csdi.md)
    return TrainConfig(lr=2e-3, weight_decay=1e-6, batch_size=8, max_epochs=None,
                       max_steps=250, grad_clip=1.0, ema_decay=0.99, lr_schedule="cosine",
                       warmup_steps=10, min_lr_ratio=0.05, eval_every=50, log_every=5, seed=0,
                       num_threads=1)


def _esc1_train() -> TrainConfig:
    # the card gives no optimiser settings; CSDI's (Tashiro et al. 2021, App. E): lr 1e-3,
    # batch 16, rate / 10 at 75 % and 90 % of training
    return TrainConfig(lr=1e-3, weight_decay=1e-6, batch_size=16, max_epochs=100,
                       grad_clip=1.0, ema_decay=0.999, lr_schedule="step", eval_every="epoch")


@dataclass(frozen=True)
class JLCSDIConfig(ConfigBase):
    """Everything that defines a JL-CSDI forecaster (sizes, noise, sampling, training).

    Parameters
    ----------
    denoiser : DenoiserConfig
        The network (``architecture`` picks full-grid CSDI or the context-cached variant);
        its ``context`` / ``horizon`` are the model's C and H.
    noise : {"gaussian", "jump-laplace"}
        Gaussian variance-preserving (DDPM, ε-prediction) or Jump-Laplace (Baule 2025,
        generalized-score regression).
    schedule : {"linear", "quad", "cosine", "tanh6-1"}
        Beta schedule of the Gaussian noise.
    gaussian_prediction : {"epsilon", "v"}
        What the network predicts under Gaussian noise: ε (Ho et al. 2020) or
        v = √ᾱ ε − √(1−ᾱ) x0 (Salimans & Ho 2022), which stays well conditioned where ᾱ → 0.
    zero_terminal_snr : bool
        Rescale the Gaussian schedule to ᾱ = 0 at its last step (Lin et al. 2024); needs
        ``gaussian_prediction="v"``.
    train_timesteps : int
        Training diffusion steps N (Gaussian: the schedule's length; Jump-Laplace: the time
        grid ``T k / N``).
    jl_t_max, jl_laplace_scale, jl_ou_rate : float
        Jump-Laplace terminal time T, Laplace scale σ (= b) and OU rate θ (jump rate 2θ).
    sampler : str or None
        Default sampler; None picks ``ddim`` for Gaussian, ``sde-mgd`` for Jump-Laplace noise.
    sample_steps : mapping of sampler name -> int
        Default reverse steps per sampler (missing names take :data:`DEFAULT_STEPS`).
    ddim_eta : float
        η of the ``ddim`` sampler (0: deterministic). Default 1: with tanh6-1 the first of 10
        steps starts at zero signal, and fresh noise washes out its poor clean-sample estimate
        (validation CRPS 0.69 against 0.91 at η = 0 on SPY, docs/jl-csdi.md).
    gaussian_clip_x0 : float or None
        ``ddpm`` / ``ddim`` clamp their estimate of the clean sample to ±this many model-space
        units (training standard deviations with ``standardize``). tanh6-1 ends at ᾱ ≈ 2e-6, so
        ``x0 = (x - √(1-ᾱ) ε̂)/√ᾱ`` multiplies the first step's ε error by ~700 (docs/jl-csdi.md).
    noise_draws : int
        Noise draws per window and training step; they share one context encoding.
    count_plugin : {"context-mean", "context-median", "context-last"}
        The horizon's trade counts (``n_signed`` T for the imbalances, ``n_trades`` n for the
        log return) are unknown at the origin; the inverse normalization of the samples uses
        this causal statistic of the context windows' counts instead (floored at 1).
    clip_imbalance : bool
        Clip sampled imbalances to their support [-1, 1] in original units.
    standardize : bool
        Divide each normalized channel by its training standard deviation before the diffusion
        (and multiply back after), so every channel meets the noise at unit scale.
    mgd_targets : {"conditional", "unconditional"}
        Targets of ``sde-mgd``: estimated from each window's context, or the training
        horizons' moments.
    mgd_strength : float
        Share of the moment gap MGD closes per step, in (0, 1].
    mgd_context_windows : int or None
        Last context windows the conditional targets are estimated from (None: all C).
    train : TrainConfig
        The training loop's settings.
    name : str
        Preset name, for reports.
    """

    denoiser: DenoiserConfig = field(default_factory=lambda: denoiser_config("small"))
    noise: NoiseName = "jump-laplace"
    schedule: str = "tanh6-1"
    gaussian_prediction: Literal["epsilon", "v"] = "epsilon"
    zero_terminal_snr: bool = False
    train_timesteps: int = 800
    jl_t_max: float = 6.0
    jl_laplace_scale: float = 1.0
    jl_ou_rate: float = 0.5
    sampler: str | None = None
    sample_steps: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_STEPS))
    ddim_eta: float = 1.0
    gaussian_clip_x0: float | None = 3.0
    noise_draws: int = 4
    count_plugin: CountPlugin = "context-mean"
    clip_imbalance: bool = True
    standardize: bool = True
    mgd_targets: MgdTargetMode = "conditional"
    mgd_strength: float = 0.5
    mgd_context_windows: int | None = None
    train: TrainConfig = field(default_factory=_small_train)
    name: str = "custom"

    def validate(self) -> None:
        """Choices, ranges, the sampler against the noise, MGD's window against the context."""
        object.__setattr__(self, "sample_steps", {**DEFAULT_STEPS, **self.sample_steps})
        self.check_choice("schedule", SCHEDULES)
        for name in ("train_timesteps", "noise_draws"):
            self.check_range(name, low=1)
        for name in ("jl_t_max", "jl_laplace_scale", "jl_ou_rate", "gaussian_clip_x0"):
            self.check_range(name, low=0.0, low_inclusive=False)
        self.check_range("ddim_eta", low=0.0)
        self.check_range("mgd_strength", low=0.0, high=1.0, low_inclusive=False)
        for key, steps in self.sample_steps.items():
            self.check_choice(f"sample_steps[{key!r}]", sampler_names(), value=key)
            self.check_range(f"sample_steps[{key!r}]", low=1, value=steps)
        if self.sampler is not None and self.sampler not in samplers_for(self.noise):
            self.fail("sampler", f"must be a sampler for {self.noise} noise "
                                 f"({', '.join(samplers_for(self.noise))}), got {self.sampler!r}")
        self.check_range("mgd_context_windows", low=3, high=self.denoiser.context)
        if self.zero_terminal_snr and self.gaussian_prediction != "v":
            self.fail("zero_terminal_snr", "needs gaussian_prediction='v' (at zero terminal SNR "
                                           "the noise is not predictable), got 'epsilon'")

    # derived values --------------------------------------------------------------------------
    @property
    def context(self) -> int:
        """C, the context windows the model reads."""
        return self.denoiser.context

    @property
    def horizon(self) -> int:
        """H, the windows it forecasts."""
        return self.denoiser.horizon

    @property
    def default_sampler(self) -> str:
        """The sampler used when ``sample()`` is given none."""
        return self.sampler or DEFAULT_SAMPLER[self.noise]

    def steps_for(self, sampler: str) -> int:
        """Default reverse steps of ``sampler``."""
        return int(self.sample_steps.get(sampler, DEFAULT_STEPS.get(sampler, 50)))

    @property
    def jl_dt(self) -> float:
        """Δt of the Jump-Laplace samplers at their default steps (card: 6.0 / 50 = 0.12)."""
        return self.jl_t_max / self.steps_for("sde")

    def make_noise(self) -> GaussianNoise | JumpLaplaceNoise:
        """The forward noise process this config names."""
        if self.noise == "gaussian":
            return GaussianNoise.from_schedule(self.schedule, self.train_timesteps,
                                               prediction=self.gaussian_prediction,
                                               zero_terminal_snr=self.zero_terminal_snr)
        return JumpLaplaceNoise(laplace_scale=self.jl_laplace_scale, ou_rate=self.jl_ou_rate,
                                t_max=self.jl_t_max, num_train_timesteps=self.train_timesteps)

    # copies (``replace`` comes from ConfigBase) ---------------------------------------------------
    def with_sizes(self, context: int, horizon: int) -> JLCSDIConfig:
        """The same model for ``context`` / ``horizon`` windows (e.g. a features folder's)."""
        if (context, horizon) == (self.context, self.horizon):
            return self
        window = self.mgd_context_windows
        window = None if window is None or window > context else window
        return self.replace(denoiser=self.denoiser.replace(context=context, horizon=horizon),
                            mgd_context_windows=window)

    def with_noise(self, noise: str) -> JLCSDIConfig:
        """The same model with another noise (the default sampler follows the noise)."""
        if noise == self.noise:
            return self
        return self.replace(noise=noise, sampler=None)

    def with_train(self, **changes: Any) -> JLCSDIConfig:
        """A copy with some training-loop fields changed (e.g. ``max_steps``)."""
        return self.replace(train=self.train.replace(**changes))


JLCSDI_CONFIGS: dict[str, JLCSDIConfig] = {
    "small": JLCSDIConfig(denoiser=denoiser_config("small"), noise_draws=8, name="small"),
    "jl-csdi-esc1": JLCSDIConfig(denoiser=denoiser_config("jl-csdi-esc1"), noise="jump-laplace",
                                 schedule="tanh6-1", train_timesteps=800, jl_t_max=6.0,
                                 jl_laplace_scale=1.0, train=_esc1_train(), name="jl-csdi-esc1"),
}


def jlcsdi_config(name: str) -> JLCSDIConfig:
    """The named preset ``name`` (``small`` or ``jl-csdi-esc1``).

    Raises
    ------
    TapecastError
        When no preset has that name.
    """
    try:
        return JLCSDI_CONFIGS[name]
    except KeyError:
        raise TapecastError(f"unknown JL-CSDI config {name!r}; expected one of "
                            f"{', '.join(sorted(JLCSDI_CONFIGS))} or a config.json path") \
            from None

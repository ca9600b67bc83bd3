"""Configuration of the TradeFM model (:mod:`tapecast.models.tradefm`): network and training.

One frozen, validated dataclass (:class:`tapecast.core.config.ConfigBase`) holding the decoder
sizes (:class:`tapecast.nets.tradefm_config.TradeFMConfig`) and the training loop
(:class:`tapecast.train.TrainConfig`), saved in a model folder's ``config.json``. Presets share
the decoder presets' names::

    tradefm_model_config("tiny")    # 5.0 M parameters; trains on 2 CPU cores in minutes
    tradefm_model_config("125M")    # the seed's sizes; the training defaults of a GPU run

Training follows the paper's recipe (Kawawa-Beaudan et al. 2026, §7): AdamW with betas
(0.9, 0.95), weight decay on the weight matrices only, linear warm-up then cosine decay, gradient
clipping at 1; windows of ``context`` + 1 tokens drawn uniformly at random
(:class:`tapecast.train.RandomWindows`), an "epoch" being ``epoch_steps`` steps between
validations. The best validation checkpoint is kept: with ~0.2 M training tokens here a model of
5 M parameters overfits without that early stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError
from tapecast.nets.tradefm_config import TRADEFM_CONFIGS, TradeFMConfig
from tapecast.train import TrainConfig

__all__ = ["TRADEFM_MODEL_PRESETS", "TradeFMModelConfig", "tradefm_model_config"]


def _cpu_train() -> TrainConfig:
    """The ``tiny`` recipe: a few hundred steps on 2 CPU cores, bf16 where the CPU runs it."""
    return TrainConfig(lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1,
                       weight_decay_on="matrices", batch_size=16, max_epochs=None,
                       max_steps=600, lr_schedule="cosine", warmup_steps=60, min_lr_ratio=0.1,
                       eval_every=100, ema_decay=None, grad_clip=1.0, log_every=20, seed=0,
                       precision="auto")


def _gpu_train() -> TrainConfig:
    """The large presets: the paper's optimiser, a GPU and bf16."""
    return TrainConfig(lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                       weight_decay_on="matrices", batch_size=32, max_epochs=None,
                       max_steps=20_000, lr_schedule="cosine", warmup_steps=1000,
                       min_lr_ratio=0.1, eval_every=1000, max_val_batches=64, ema_decay=None,
                       grad_clip=1.0, log_every=50, seed=0, device="auto", precision="auto")


@dataclass(frozen=True)
class TradeFMModelConfig(ConfigBase):
    """Everything that defines a TradeFM model.

    Parameters
    ----------
    name : str
        Preset name (provenance only).
    net : TradeFMConfig
        Decoder sizes; ``net.context`` is the training window L.
    train : TrainConfig
        The training loop (optimiser, schedule, precision, cadence, seeds).
    epoch_steps : int
        Steps per bookkeeping "epoch" of random windows; 0 means ``train.eval_every`` when that
        is a step count (else 100).
    eval_stride : int
        Stride of the perplexity evaluation's windows (0: half the context): every scored
        token sees at least ``context − eval_stride`` tokens of context.
    """

    name: str = "tiny"
    net: TradeFMConfig = field(default_factory=lambda: TRADEFM_CONFIGS["tiny"])
    train: TrainConfig = field(default_factory=_cpu_train)
    epoch_steps: int = 0
    eval_stride: int = 0

    def validate(self) -> None:
        self.check_range("epoch_steps", low=0)
        self.check_range("eval_stride", low=0, high=self.net.context)

    @property
    def steps_per_epoch(self) -> int:
        """Random-window steps per epoch (see ``epoch_steps``)."""
        if self.epoch_steps:
            return self.epoch_steps
        every = self.train.eval_every
        return every if isinstance(every, int) else 100

    @property
    def stride(self) -> int:
        """The evaluation stride (see ``eval_stride``)."""
        return self.eval_stride or max(1, self.net.context // 2)

    def with_train(self, **changes: object) -> TradeFMModelConfig:
        """This config with training-loop fields changed (``seed=1``, ``max_steps=10``)."""
        return self.replace(train=self.train.replace(**changes))


TRADEFM_MODEL_PRESETS: dict[str, TradeFMModelConfig] = {
    name: TradeFMModelConfig(name=name, net=net,
                             train=_cpu_train() if name == "tiny" else _gpu_train())
    for name, net in TRADEFM_CONFIGS.items()
}


def tradefm_model_config(name: str) -> TradeFMModelConfig:
    """The preset ``name`` (``tiny``, ``125M``, ``250M``, ``500M``).

    Raises
    ------
    TapecastError
        When no preset has that name.
    """
    try:
        return TRADEFM_MODEL_PRESETS[name]
    except KeyError:
        raise TapecastError(f"unknown TradeFM preset {name!r}; expected one of "
                            f"{', '.join(TRADEFM_MODEL_PRESETS)}") from None

"""Configuration of the training loop: one frozen, validated dataclass saved as JSON with a run.

``TrainConfig`` holds every knob of :func:`tapecast.train.fit` that changes what is learned
(optimiser, batch, schedule, EMA, precision, seeds) and a few that only change where it runs or
how the run is watched (device, evaluation and logging cadence). It is a
:class:`tapecast.core.config.ConfigBase`: types checked from the annotations, errors naming the
field (``TrainConfig.lr: must be > 0, got 0``), ``to_dict`` / ``from_dict`` round-trip it through
``train_config.json`` in the run folder (missing keys take their defaults).

The learning rate is a pure function of the step (:meth:`TrainConfig.lr_at`), so a resumed run
needs no scheduler state: linear warm-up over ``warmup_steps``, then

``constant``
    the base rate;
``cosine``
    half a cosine from the base rate down to ``min_lr_ratio`` times it at the last step
    (Loshchilov & Hutter 2017, SGDR, arXiv 1608.03983, Eq. 5 without restarts);
``step``
    the base rate divided by 10 at 75 % and again at 90 % of the steps (the schedule of the
    CSDI reference training, Tashiro et al. 2021, arXiv 2107.03502, App. E).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, get_args

from tapecast.core.config import ConfigBase

LrSchedule = Literal["constant", "cosine", "step"]
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)
Precision = Literal["fp32", "bf16", "fp16", "auto"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
DecayOn = Literal["all", "matrices"]
DECAY_ON: tuple[str, ...] = get_args(DecayOn)

# Fields that may differ between a checkpoint's run and the run that resumes it: they change
# when training stops, where it runs or how it is watched, not the update of a planned step.
RESUMABLE_CHANGES: frozenset[str] = frozenset(
    {"max_epochs", "max_steps", "eval_every", "log_every", "checkpoint_every", "num_threads",
     "device", "max_val_batches"}
)


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Knobs of the training loop (AdamW, EMA, clipping, schedule, cadence, seeds).

    Parameters
    ----------
    lr : float
        Base learning rate of AdamW (Loshchilov & Hutter 2019, arXiv 1711.05101).
    weight_decay : float
        Decoupled weight decay of AdamW.
    weight_decay_on : {"all", "matrices"}
        ``"all"``: every trained parameter decays. ``"matrices"``: only weight matrices (and
        other >= 2-D parameters) decay; biases, normalisation weights, embeddings and names the
        model lists in ``no_weight_decay()`` get none (nanoGPT's grouping,
        :func:`tapecast.train.optim.parameter_groups`).
    betas : tuple of float
        AdamW's (beta1, beta2), each in [0, 1).
    eps : float
        AdamW's epsilon.
    batch_size : int
        Global batch: samples per optimiser step, summed over all ranks.
    max_epochs, max_steps : int or None
        Training stops at whichever comes first; at least one must be set.
    grad_clip : float or None
        Largest global L2 norm of the gradient (``clip_grad_norm_``); None turns clipping off.
    ema_decay : float or None
        Decay of the exponential moving average of the weights, in [0, 1); None keeps no EMA
        (validation and ``best/`` then use the trained weights).
    validate_with_ema : bool
        Validate (and save to ``best/``) the EMA weights; False uses the trained weights.
    ema_warmup : bool
        Use ``min(ema_decay, (1 + n) / (10 + n))`` at update ``n`` so early averages are not
        dominated by the random initialisation (``tf.train.ExponentialMovingAverage``'s rule).
    lr_schedule : {"constant", "cosine", "step"}
        Shape of the rate after warm-up (module docstring).
    warmup_steps : int
        Steps of linear warm-up from ``lr / warmup_steps`` to ``lr``.
    min_lr_ratio : float
        Final rate of the cosine schedule as a share of ``lr``.
    eval_every : int or "epoch"
        Validate every this many steps, or at the end of each epoch. Training always ends with
        a validation.
    max_val_batches : int or None
        Validate on the first this many validation batches only; None uses them all.
    checkpoint_every : int or None
        Also write the resumable ``last`` checkpoint every this many steps; None writes it at
        each validation only (and at the end, and on Ctrl-C).
    log_every : int
        Steps between progress refreshes and ``train`` rows in ``train_log.jsonl``.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when present, else CPU); the
        model is moved there. Under torchrun ``"cuda"`` means ``cuda:LOCAL_RANK``
        (:func:`tapecast.train.device.resolve_device`).
    precision : {"fp32", "bf16", "fp16", "auto"}
        The loss runs under ``torch.autocast`` with bfloat16 or float16 (weights, gradients and
        optimiser state stay float32); ``"fp16"`` is CUDA only and adds a gradient scaler;
        ``"auto"`` picks bf16 where it is fast (CUDA with bf16, a CPU with AMX or AVX512-BF16),
        else fp32, once when the run starts (:func:`tapecast.train.device.resolve_precision`).
    bf16 : bool
        Older spelling: True sets ``precision="bf16"`` (and reads back as False).
    seed : int
        Root of every random stream of the run (data order, loss draws, dropout).
    batch_shards : int or None
        The global batch is cut into this many shards, each with its own random stream; ranks
        share the shards out. Runs with equal ``batch_shards`` give the same result whatever the
        number of ranks (docs/training.md). None means "the number of ranks" (fastest).
    val_batch_size : int or None
        Samples per validation batch; None uses ``batch_size``.
    drop_last : bool
        Drop the last incomplete batch of each epoch.
    num_threads : int or None
        ``torch.set_num_threads`` during the fit; None leaves the setting alone.
    """

    lr: float = 1e-3
    weight_decay: float = 1e-6
    weight_decay_on: DecayOn = "all"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    batch_size: int = 16
    max_epochs: int | None = 100
    max_steps: int | None = None
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.999
    ema_warmup: bool = True
    validate_with_ema: bool = True
    lr_schedule: LrSchedule = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    eval_every: int | Literal["epoch"] = "epoch"
    max_val_batches: int | None = None
    checkpoint_every: int | None = None
    log_every: int = 10
    device: str = "cpu"
    precision: Precision = "fp32"
    bf16: bool = False
    seed: int = 0
    batch_shards: int | None = None
    val_batch_size: int | None = None
    drop_last: bool = False
    num_threads: int | None = None

    def validate(self) -> None:
        """Ranges and cross-field checks (the field types are checked by :class:`ConfigBase`)."""
        self._check_numbers()
        self._check_counts()
        if not _DEVICE.fullmatch(self.device):
            self.fail("device", f"must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        if self.bf16:  # the older spelling of precision="bf16", folded into it
            if self.precision not in ("fp32", "bf16"):
                self.fail("bf16", f"must be false with precision {self.precision!r}, got true")
            object.__setattr__(self, "precision", "bf16")
            object.__setattr__(self, "bf16", False)

    def _check_numbers(self) -> None:
        self.check_range("lr", low=0.0, low_inclusive=False)
        self.check_range("weight_decay", low=0.0)
        self.check_range("eps", low=0.0, low_inclusive=False)
        self.check_range("ema_decay", low=0.0, high=1.0, high_inclusive=False)
        self.check_range("min_lr_ratio", low=0.0, high=1.0)
        for i, beta in enumerate(self.betas):
            self.check_range(f"betas[{i}]", low=0.0, high=1.0, high_inclusive=False, value=beta)
        self.check_range("grad_clip", low=0.0, low_inclusive=False)

    def _check_counts(self) -> None:
        for name in ("batch_size", "log_every", "max_epochs", "max_steps", "checkpoint_every",
                     "batch_shards", "val_batch_size", "num_threads", "max_val_batches"):
            self.check_range(name, low=1)
        for name in ("warmup_steps", "seed"):
            self.check_range(name, low=0)
        if self.max_epochs is None and self.max_steps is None:
            self.fail("max_steps", "max_epochs or max_steps (or both) must be set")
        if self.batch_shards is not None and self.batch_shards > self.batch_size:
            self.fail("batch_shards", f"must be at most batch_size ({self.batch_size}), "
                                      f"got {self.batch_shards}")
        if self.eval_every != "epoch":
            self.check_range("eval_every", low=1)

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate of the update that takes the weights from ``step`` to ``step + 1``.

        Parameters
        ----------
        step : int
            Completed optimiser steps before this update (0-based).
        total_steps : int
            Planned steps of the whole run (the end of the cosine and step schedules).
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        span = max(total_steps - 1 - self.warmup_steps, 1)  # the last update reaches the end
        progress = min((step - self.warmup_steps) / span, 1.0)
        if self.lr_schedule == "cosine":
            ratio = self.min_lr_ratio
            return self.lr * (ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
        drops = (progress >= 0.75) + (progress >= 0.9)
        return self.lr * 0.1**drops

    def trajectory_differences(self, other: TrainConfig) -> list[str]:
        """Fields whose change would alter a resumed run's steps (all but RESUMABLE_CHANGES)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in RESUMABLE_CHANGES and mine[k] != theirs[k]]


_DEVICE = re.compile(r"cpu|auto|cuda(:\d+)?")

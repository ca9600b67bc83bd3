"""The one training loop of every tapecast torch model: :func:`fit`.

::

    result = fit(model, loss_fn, train_data, val_data, TrainConfig(max_steps=2000),
                 run_dir="runs/csdi-small")

Each step takes one global batch of ``config.batch_size`` sample indices from the sampler (by
default a per-epoch shuffle), computes ``loss_fn(model, batch, generator)`` on each shard of the
batch, sums the shards' gradients weighted by the loss's own weights (samples, or e.g. tokens:
:mod:`tapecast.train.loss`; over ranks too under torchrun), clips their global norm, applies
AdamW (:mod:`tapecast.train.optim`) and updates the EMA of the weights when there is one.
Validation (:mod:`tapecast.train.validate`) runs the same loss with the EMA or the trained
weights; the lowest validation loss writes ``RUN/best``; ``RUN/last`` is the resumable state
(:mod:`tapecast.train.checkpoint`). Device and precision: :mod:`tapecast.train.device`.

Randomness is stateless: the batches of epoch ``e`` and every draw of shard ``s`` of step ``t``
(the generator handed to ``loss_fn`` and the global torch RNG, e.g. dropout) are seeded from
``(seed, e, ...)`` and ``(seed, t, s)``. So a resumed run replays exactly and the number of
ranks does not change the result at equal ``batch_shards`` (docs/training.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import torch
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text
from tapecast.train import checkpoint as ckpt
from tapecast.train import distributed as ddp
from tapecast.train.config import TrainConfig
from tapecast.train.data import as_dataset
from tapecast.train.device import (
    Resolved,
    backend_for,
    make_scaler,
    resolve_device,
    resolve_precision,
)
from tapecast.train.ema import EMA
from tapecast.train.loss import LossFn, ShardLoss, compute_loss, derived_metrics
from tapecast.train.optim import make_optimizer
from tapecast.train.progress import ProgressBar, TrainLog
from tapecast.train.sampler import TRAIN, BatchSampler, EpochShuffle, seeded_stream
from tapecast.train.validate import Validation, ValidationPlan, to_device, validate

LOG_NAME, CONFIG_NAME = "train_log.jsonl", "train_config.json"


@dataclass(frozen=True)
class TrainEvent:
    """What a callback sees after each step (``kind="step"``) and each validation (``"eval"``).

    ``metrics`` holds the step's training metrics (``"step"``) or the validation metrics
    (``"eval"``) of a loss that reports them, ``perplexity`` included.
    """

    kind: Literal["step", "eval"]
    step: int
    epoch: int
    train_loss: float
    lr: float
    val_loss: float | None = None
    grad_norm: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


Callback = Callable[[TrainEvent], None]


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    run_dir : Path
        The run folder (``best/``, ``last/``, ``train_log.jsonl``, ``train_config.json``).
    step, epoch : int
        Completed steps; the epoch the next step would belong to.
    best_step, best_epoch : int or None
        Where ``best/`` was written.
    best_val_loss : float or None
        Its validation loss (None without validation data).
    wall_s : float
        Training seconds over all sessions of the run.
    resumed_from : int or None
        The step this session resumed from (None for a fresh run).
    evals : tuple of dict
        The ``eval`` rows this session wrote to ``train_log.jsonl``.
    best_val_metrics : dict of str to float
        Validation metrics of ``best/`` (e.g. ``perplexity``); empty for a plain loss.
    device : str
        The device the run trained on.
    precision : str
        ``"fp32"``, ``"bf16"`` or ``"fp16"``: the precision it used.
    """

    run_dir: Path
    step: int
    epoch: int
    best_step: int | None
    best_epoch: int | None
    best_val_loss: float | None
    wall_s: float
    resumed_from: int | None
    evals: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    best_val_metrics: Mapping[str, float] = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "fp32"


def fit(model: nn.Module, loss_fn: LossFn, train_data: Any, val_data: Any | None,
        config: TrainConfig, *, run_dir: str | Path, resume: bool = True,
        callbacks: Sequence[Callback] = (), progress: bool = True,
        restore_best: bool = True, sampler: BatchSampler | None = None) -> TrainResult:
    """Train ``model`` with AdamW, EMA, clipping; keep the best and the last checkpoint.

    Parameters
    ----------
    model : nn.Module
        Trained in place; moved to ``config.device`` (on torchrun with CUDA: this rank's GPU).
    loss_fn : callable
        ``loss_fn(model, batch, generator)`` returns a scalar tensor, the mean loss over the
        samples of ``batch`` (a dict of tensors on the training device), or a
        :class:`tapecast.train.loss.LossOutput` (a mean over its own weight, e.g. tokens, and
        metrics). All its random draws must come from ``generator`` or the global torch RNG
        (both seeded per shard by the loop).
    train_data, val_data : Dataset, dict of tensors or sequence of dicts
        Training samples and validation samples (``val_data=None``: no validation; ``best/``
        then holds the final weights).
    config : TrainConfig
        Optimiser, schedule, EMA, precision, device, cadence and seeds.
    run_dir : path
        Folder of the run; created if needed.
    resume : bool
        Continue from ``run_dir/last`` when it exists; False starts afresh (overwriting).
    callbacks : sequence of callables
        Called with a :class:`TrainEvent` after every step and every validation, on every rank
        (they must act alike on all ranks). A callback raising KeyboardInterrupt stops the run
        like Ctrl-C.
    progress : bool
        Draw a Rich progress bar on a terminal (rank 0 only).
    restore_best : bool
        Load the best weights into ``model`` at the end (else it keeps the trained weights).
        The model leaves in the train/eval mode it came in.
    sampler : BatchSampler or None
        Which samples form each batch (:mod:`tapecast.train.sampler`); None shuffles the
        samples each epoch (``EpochShuffle(config.drop_last)``).

    Returns
    -------
    TrainResult

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C (or from a callback), after ``run_dir/last`` was written at the last completed
        step; ``fit(..., resume=True)`` continues from there.
    TapecastError
        On an empty dataset, a non-scalar or non-finite loss, a device or precision this
        machine lacks, or a checkpoint that does not fit or cannot be read.
    """
    device = resolve_device(config.device, local_rank=ddp.env_local_rank(),
                            distributed=ddp.env_world_size() > 1)
    ctx, was_training = ddp.init(backend_for(device)), model.training
    try:
        model.to(device)
        with _num_threads(config.num_threads), _deferred_interrupts(ctx) as flag:
            trainer = _Trainer(model, loss_fn, _Data(train_data, val_data, sampler), config,
                               Path(run_dir), ctx, callbacks, flag, device)
            trainer.setup(resume)
            with ProgressBar(progress and ctx.is_main, total=trainer.total_steps,
                             done=trainer.state.step, val=trainer.state.best_val_loss) as bar:
                trainer.display = bar
                if trainer.resumed_from is not None:
                    trainer._note(f"resuming {trainer.run_dir} at step {trainer.resumed_from}")
                trainer.run()
        if restore_best:
            ddp.barrier(ctx)
            ckpt.load_best(Path(run_dir), model)
        return trainer.result()
    finally:
        model.train(was_training)
        ddp.teardown(ctx)


class _InterruptFlag:
    raised = False


@contextlib.contextmanager
def _deferred_interrupts(ctx: ddp.DistContext) -> Iterator[_InterruptFlag]:
    """Turn Ctrl-C (and SIGTERM under torchrun) into a flag read at step boundaries; a second
    Ctrl-C interrupts at once."""
    flag = _InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    signals = [signal.SIGINT] + ([signal.SIGTERM] if ctx.active else [])
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.raised:
            raise KeyboardInterrupt
        flag.raised = True

    for s in signals:
        signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def _num_threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Data:
    """The training and validation datasets and the training sampler of a fit."""

    def __init__(self, train_data: Any, val_data: Any | None, sampler: BatchSampler | None) -> None:
        self.train = as_dataset(train_data)
        self.val = None if val_data is None else as_dataset(val_data)
        self.sampler = sampler
        if len(self.train) == 0 or (self.val is not None and len(self.val) == 0):
            raise TapecastError("fit: expected non-empty training and validation data")


@dataclass(frozen=True)
class _StepLoss:
    """The global loss and metrics of one step, and whether any rank was interrupted."""

    loss: float
    metrics: dict[str, float]
    stop: bool


class _Trainer:
    """State and steps of one fit session (see :func:`fit`)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: _Data, config: TrainConfig,
                 run_dir: Path, ctx: ddp.DistContext, callbacks: Sequence[Callback],
                 flag: _InterruptFlag, device: torch.device) -> None:
        self.model, self.loss_fn, self.config, self.ctx = model, loss_fn, config, ctx
        self.train, self.val, self.device = data.train, data.val, device
        self.sampler: BatchSampler = data.sampler or EpochShuffle(config.drop_last)
        self.run_dir, self.callbacks, self.flag = run_dir, tuple(callbacks), flag
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise TapecastError("fit: the model has no trainable parameters")
        self.steps_per_epoch = self.sampler.steps_per_epoch(len(self.train), config.batch_size)
        self.total_steps = int(min(config.max_steps or math.inf,
                                   (config.max_epochs or math.inf) * self.steps_per_epoch))
        self.optimizer = make_optimizer(model, config)
        self.ema = self._new_ema()
        self.precision: Resolved = "fp32"
        self.scaler = make_scaler(device, "fp32")
        self.state = ckpt.TrainState()
        self.log = TrainLog(run_dir / LOG_NAME, enabled=ctx.is_main)
        self.display: ProgressBar | None = None
        self.resumed_from: int | None = None
        self.evals: list[dict[str, Any]] = []
        self.at_boundary = True
        self.saved_step: int | None = None
        self.window: list[float] = [0.0, 0.0, 0.0]  # loss sum, steps, train seconds
        self.window_metrics: dict[str, float] = {}  # metric sums over the window's steps
        self.metric_names: tuple[str, ...] | None = None  # of the training loss, fixed at step 1
        self.perplexity_of: str | None = None

    def _new_ema(self) -> EMA | None:
        decay = self.config.ema_decay
        return None if decay is None else EMA(self.model, decay, warmup=self.config.ema_warmup)

    # --- setup and checkpoints --------------------------------------------------------------

    def setup(self, resume: bool) -> None:
        """Start afresh or load ``run_dir/last``; write the run's config."""
        document = ckpt.read_last_document(self.run_dir) if resume else None
        if document is None:
            ddp.broadcast_module(self.model, self.ctx)
            self.ema = self._new_ema()
            shards = self.config.batch_shards or self.ctx.world_size
            self.state = ckpt.TrainState(batch_shards=shards, precision=resolve_precision(
                self.config.precision, self.device))
            self.log.reset(keep_through=None)
        else:
            self._check_resumable(document)
            self.state = ckpt.load_last(self.run_dir, model=self.model, ema=self.ema,
                                        optimizer=self.optimizer)
            if self.state.precision is None:  # a checkpoint older than the field
                self.state.precision = resolve_precision(self.config.precision, self.device)
            self.resumed_from = self.state.step
            self.log.reset(keep_through=self.state.step)
        self.precision = self._run_precision(self.state.precision)
        self.scaler = make_scaler(self.device, self.precision)
        if document is not None and document.get("scaler"):
            self.scaler.load_state_dict(document["scaler"])
        self.config = replace(self.config, batch_shards=self.state.batch_shards)
        if self.ctx.is_main:
            atomic_write_text(self.run_dir / CONFIG_NAME,
                              json.dumps(self.config.to_dict(), indent=1) + "\n")

    def _run_precision(self, stored: str | None) -> Resolved:
        """The precision the run started with, checked against this device."""
        if stored not in ("fp32", "bf16", "fp16"):
            raise TapecastError(f"{self.run_dir / ckpt.LAST}: unknown precision {stored!r}")
        return resolve_precision(stored, self.device)  # type: ignore[arg-type]

    def _check_resumable(self, document: dict[str, Any]) -> None:
        stored = TrainConfig.from_dict(document["train_config"])
        mine = self.config
        if mine.batch_shards is None:
            mine = replace(mine, batch_shards=stored.batch_shards)
        changed = stored.trajectory_differences(mine)
        if changed:
            raise TapecastError(f"{self.run_dir / ckpt.LAST}: cannot resume with a different "
                                f"{', '.join(changed)}; use the run's train_config.json or "
                                f"resume=False")
        sampler = document.get("sampler")
        if sampler is not None and sampler != repr(self.sampler):
            raise TapecastError(f"{self.run_dir / ckpt.LAST}: the run was trained with sampler "
                                f"{sampler}, not {self.sampler!r}; pass the same sampler or "
                                f"resume=False")

    def save_last(self) -> None:
        """Write ``run_dir/last`` (rank 0), once per step."""
        if self.ctx.is_main and self.saved_step != self.state.step:
            self.saved_step = self.state.step
            extra = {"scaler": self.scaler.state_dict() or None, "sampler": repr(self.sampler)}
            ckpt.save_last(self.run_dir, model=self.model, ema=self.ema,
                           optimizer=self.optimizer, state=self.state,
                           config=self.config.to_dict(), extra=extra)

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Train until max_steps / max_epochs; on KeyboardInterrupt save ``last`` and re-raise."""
        try:
            while self.state.step < self.total_steps:
                self._train_step(self.sampler.indices(
                    len(self.train), self.config.batch_size, seed=self.config.seed,
                    epoch=self.state.epoch, batch=self.state.batch_in_epoch))
            if self.state.best_step is None or self.state.last_eval_step != self.state.step:
                self._evaluate()
            self.save_last()
        except KeyboardInterrupt:
            if self.at_boundary:
                self.save_last()
                self._note(f"interrupted: {self.run_dir / ckpt.LAST} holds step "
                           f"{self.state.step}; fit again with resume=True to go on")
            raise

    def _note(self, text: str) -> None:
        if self.display is not None:
            self.display.note(text)

    def _train_step(self, indices: torch.Tensor) -> None:
        started = time.perf_counter()
        done = self._accumulate(indices)
        self.at_boundary = False
        lr = self.config.lr_at(self.state.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.scaler.unscale_(self.optimizer)  # fp16 only; a no-op otherwise
        grad_norm = None
        if self.config.grad_clip is not None:
            grad_norm = float(nn.utils.clip_grad_norm_(self.params, self.config.grad_clip))
        self.scaler.step(self.optimizer)  # optimizer.step(), skipped on inf/nan fp16 grads
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self._advance(done, time.perf_counter() - started)
        if self.display is not None:
            self.display.advance(self.state.step)
        evaluated = self._due_for_eval()
        if evaluated:
            self._evaluate()
        self.at_boundary = True
        metrics = derived_metrics(done.loss, done.metrics, self.perplexity_of)
        for callback in self.callbacks:
            callback(TrainEvent("step", self.state.step, self.state.epoch, done.loss, lr,
                                grad_norm=grad_norm, metrics=metrics))
        if self._due_for_checkpoint():
            self.save_last()
        self._log_window(lr, grad_norm)
        if done.stop or (evaluated and self._any_rank_interrupted()):
            self.save_last()
            raise KeyboardInterrupt

    def _accumulate(self, indices: torch.Tensor) -> _StepLoss:
        """Forward and backward of this rank's shards, each weighted by ``weight / N``; the
        gradients summed over ranks and rescaled to ``Σ w_s ∇ℓ_s / Σ w_s``."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        shards, total = self.state.batch_shards, len(indices)
        part = 0.0
        outs: list[ShardLoss] = []
        for s in self.ctx.rank_shards(shards):
            sub = indices[s::shards]
            if len(sub) == 0:
                continue
            batch = to_device(self.train.batch(sub), self.device)
            with seeded_stream(self.config.seed, TRAIN, self.state.step, s,
                               device=self.device) as generator:
                out = compute_loss(self.loss_fn, self.model, batch, generator,
                                   n_samples=len(sub), device=self.device,
                                   precision=self.precision)
                if out.weight > 0:
                    torch.autograd.backward(self.scaler.scale(out.loss * (out.weight / total)))
            if out.weight > 0:
                part += float(out.loss.detach()) * out.weight / total
            outs.append(out)
        names = self._metric_names(outs)
        sums = [sum(o.metrics[k] * o.weight for o in outs if o.weight > 0) for k in names]
        extras = torch.tensor([part, float(self.flag.raised), sum(o.weight for o in outs),
                               *sums], dtype=torch.float64)
        summed = ddp.reduce_gradients(self.params, extras, self.ctx)
        return self._step_loss(summed, total, names)

    def _metric_names(self, outs: list[ShardLoss]) -> tuple[str, ...]:
        """The training loss's metric names, fixed at the session's first step by rank 0's
        shard 0 (every rank must build the same reduction vector)."""
        if self.metric_names is None:
            first = outs[0] if outs else None
            shared = ddp.broadcast_names([] if first is None else
                                         [first.perplexity_of or "", *sorted(first.metrics)],
                                         self.ctx)
            self.perplexity_of = shared[0] or None
            self.metric_names = shared[1:]
        for out in outs:
            if set(out.metrics) != set(self.metric_names):
                raise TapecastError(f"fit: every batch must report the metrics "
                                    f"{list(self.metric_names)}, got {sorted(out.metrics)} at "
                                    f"step {self.state.step + 1}")
        return self.metric_names

    def _step_loss(self, summed: torch.Tensor, total: int,
                   names: tuple[str, ...]) -> _StepLoss:
        weight = float(summed[2])
        if not weight > 0:
            raise TapecastError(f"fit: the loss weights of step {self.state.step + 1} sum to "
                                f"{weight}; expected a positive total")
        loss = float(summed[0])
        if weight != total:  # weights other than sample counts: Σ w ℓ / N  ->  Σ w ℓ / Σ w
            loss *= total / weight
            for p in self.params:
                if p.grad is not None:
                    p.grad.mul_(total / weight)
        if not math.isfinite(loss):
            raise TapecastError(f"fit: non-finite training loss {loss} at step "
                                f"{self.state.step + 1}")
        metrics = {k: float(summed[3 + j]) / weight for j, k in enumerate(names)}
        return _StepLoss(loss, metrics, bool(summed[1] > 0))

    def _advance(self, done: _StepLoss, seconds: float) -> None:
        state = self.state
        state.step += 1
        state.batch_in_epoch += 1
        state.wall_s += seconds
        if state.batch_in_epoch == self.steps_per_epoch:
            state.epoch += 1
            state.batch_in_epoch = 0
        self.window = [self.window[0] + done.loss, self.window[1] + 1, self.window[2] + seconds]
        state.loss_sum_since_eval += done.loss
        state.steps_since_eval += 1
        for name, value in done.metrics.items():
            self.window_metrics[name] = self.window_metrics.get(name, 0.0) + value
            state.metric_sums_since_eval[name] = (
                state.metric_sums_since_eval.get(name, 0.0) + value)

    def _due_for_eval(self) -> bool:
        every = self.config.eval_every
        if every == "epoch":
            return self.state.batch_in_epoch == 0
        return self.state.step % every == 0

    def _due_for_checkpoint(self) -> bool:
        every = self.config.checkpoint_every
        return every is not None and self.state.step % every == 0

    def _any_rank_interrupted(self) -> bool:
        flag = torch.tensor([float(self.flag.raised)], dtype=torch.float64)
        return bool(ddp.all_reduce_sum(flag, self.ctx)[0] > 0)

    # --- validation ---------------------------------------------------------------------------

    def _eval_ema(self) -> EMA | None:
        """The EMA validation and ``best/`` use, or None for the trained weights."""
        return self.ema if self.config.validate_with_ema else None

    def _evaluate(self) -> None:
        """Validate, update ``best`` and ``last``, log a row."""
        state = self.state
        val = self._validate() if self.val is not None else None
        val_loss = None if val is None else val.loss
        improved = self.val is None or state.best_val_loss is None or (
            val_loss is not None and val_loss < state.best_val_loss)
        if improved:
            state.best_val_loss, state.best_step = val_loss, state.step
            state.best_epoch = state.epoch
            state.best_val_metrics = {} if val is None else dict(val.metrics)
            if self.ctx.is_main:
                ckpt.save_best(self.run_dir, model=self.model, ema=self._eval_ema(),
                               step=state.step, epoch=state.epoch, val_loss=val_loss,
                               metrics=state.best_val_metrics)
        steps = max(state.steps_since_eval, 1)
        train_loss = state.loss_sum_since_eval / steps
        train_metrics = self._mean_metrics(state.metric_sums_since_eval, steps, train_loss, val)
        lr = self.config.lr_at(max(state.step - 1, 0), self.total_steps)
        row = {"kind": "eval", "step": state.step, "epoch": state.epoch, "train_loss": train_loss,
               "val_loss": val_loss, "lr": lr, "wall_s": round(state.wall_s, 3), "best": improved,
               **{f"train_{k}": v for k, v in train_metrics.items()},
               **({} if val is None else {f"val_{k}": v for k, v in val.metrics.items()})}
        state.loss_sum_since_eval, state.steps_since_eval = 0.0, 0
        state.metric_sums_since_eval = {}
        state.last_eval_step = state.step
        self.save_last()
        self.log.write(row)
        self.evals.append(row)
        if self.display is not None:
            self.display.show_val(val_loss)
        for callback in self.callbacks:
            callback(TrainEvent("eval", state.step, state.epoch, train_loss, lr, val_loss,
                                metrics={} if val is None else dict(val.metrics)))

    def _mean_metrics(self, sums: Mapping[str, float], steps: float, loss: float,
                      val: Validation | None = None) -> dict[str, float]:
        perplexity_of = self.perplexity_of or (None if val is None else val.perplexity_of)
        if not sums and perplexity_of is None:
            return {}
        return derived_metrics(loss, {k: v / steps for k, v in sums.items()}, perplexity_of)

    def _validate(self) -> Validation:
        assert self.val is not None
        plan = ValidationPlan(self.config.val_batch_size or self.config.batch_size,
                              self.config.max_val_batches, self.config.seed, self.device,
                              self.precision, self.ctx)
        return validate(self.model, self.loss_fn, self.val, plan, ema=self._eval_ema())

    # --- progress and result ----------------------------------------------------------------

    def _log_window(self, lr: float, grad_norm: float | None) -> None:
        loss_sum, steps, seconds = self.window
        if steps < self.config.log_every and self.state.step < self.total_steps:
            return
        steps_per_s = steps / seconds if seconds > 0 else math.nan
        samples_per_s = steps_per_s * self.config.batch_size
        metrics = self._mean_metrics(self.window_metrics, steps, loss_sum / steps)
        self.log.write({"kind": "train", "step": self.state.step, "epoch": self.state.epoch,
                        "train_loss": loss_sum / steps, "lr": lr, "grad_norm": grad_norm,
                        "steps_per_s": steps_per_s, "samples_per_s": samples_per_s,
                        "wall_s": round(self.state.wall_s, 3),
                        **{f"train_{k}": v for k, v in metrics.items()}})
        if self.display is not None:
            self.display.show_train(self.state.step, loss_sum / steps, steps_per_s,
                                    samples_per_s)
        self.window, self.window_metrics = [0.0, 0.0, 0.0], {}

    def result(self) -> TrainResult:
        """The :class:`TrainResult` of this session."""
        state = self.state
        return TrainResult(self.run_dir, state.step, state.epoch, state.best_step,
                           state.best_epoch, state.best_val_loss, state.wall_s,
                           self.resumed_from, tuple(self.evals), dict(state.best_val_metrics),
                           str(self.device), self.precision)

"""The one training loop of every tapecast torch model: :func:`fit`.

::

    result = fit(model, loss_fn, train_data, val_data, TrainConfig(max_steps=2000),
                 run_dir="runs/csdi-small")

Each step draws one global batch of ``config.batch_size`` samples from a per-epoch shuffle,
computes ``loss_fn(model, batch, generator)`` (a scalar mean over the batch's samples) on each
shard of the batch, sums the shards' gradients (weighted by their share of samples, and over
ranks under torchrun), clips their global norm, applies AdamW and updates the EMA of the weights.
Validation runs the same loss with the EMA weights; the lowest validation loss writes
``RUN/best``; ``RUN/last`` is the resumable state (:mod:`tapecast.train.checkpoint`).

Randomness is stateless: the data order of epoch ``e`` and every draw of shard ``s`` of step
``t`` (the generator handed to ``loss_fn`` and the global torch RNG, e.g. dropout) are seeded
from ``(seed, e)`` and ``(seed, t, s)``. So a resumed run replays exactly and the number of
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
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text
from tapecast.train import checkpoint as ckpt
from tapecast.train import distributed as ddp
from tapecast.train.config import TrainConfig
from tapecast.train.ema import EMA

Batch = Mapping[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch, torch.Generator], torch.Tensor]
LOG_NAME, CONFIG_NAME = "train_log.jsonl", "train_config.json"
_DATA, _TRAIN, _VAL = 1, 2, 3  # stream tags of derive_seeds


@runtime_checkable
class Dataset(Protocol):
    """What :func:`fit` needs of a dataset: a length and a batch of given sample indices."""

    def __len__(self) -> int: ...

    def batch(self, indices: torch.Tensor) -> Batch:
        """The samples at ``indices`` (int64, (n,)) as a dict of tensors with leading dim n."""
        ...


class TensorDictDataset:
    """A dataset held as a dict of tensors sharing their first dimension (the samples).

    Raises
    ------
    TapecastError
        When the dict is empty or the first dimensions differ.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        sizes = {name: t.shape[0] if t.dim() else -1 for name, t in tensors.items()}
        if not sizes or len(set(sizes.values())) != 1 or -1 in sizes.values():
            raise TapecastError(f"dataset: expected tensors with one common first dimension, "
                                f"got sizes {sizes}")
        self.tensors = dict(tensors)
        self._len = next(iter(sizes.values()))

    def __len__(self) -> int:
        return self._len

    def batch(self, indices: torch.Tensor) -> Batch:
        """Rows ``indices`` of every tensor."""
        return {name: t[indices] for name, t in self.tensors.items()}


class _StackedItems:
    """An index-able dataset of dicts of tensors, batched by stacking the items."""

    def __init__(self, items: Any) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, indices: torch.Tensor) -> Batch:
        rows = [self.items[i] for i in indices.tolist()]
        return {name: torch.stack([row[name] for row in rows]) for name in rows[0]}


def as_dataset(data: Any) -> Dataset:
    """Accept a :class:`Dataset`, a dict of tensors, or a sequence of dicts of tensors.

    Raises
    ------
    TapecastError
        On anything else.
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, Mapping):
        return TensorDictDataset(data)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return _StackedItems(data)
    raise TapecastError(f"dataset: expected an object with __len__ and batch(indices), a dict "
                        f"of tensors or a sequence of dicts, got {type(data).__name__}")


@dataclass(frozen=True)
class TrainEvent:
    """What a callback sees after each step (``kind="step"``) and each validation (``"eval"``)."""

    kind: Literal["step", "eval"]
    step: int
    epoch: int
    train_loss: float
    lr: float
    val_loss: float | None = None
    grad_norm: float | None = None


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


def derive_seeds(seed: int, *words: int) -> tuple[int, int]:
    """Two independent 64-bit seeds for the stream ``(seed, *words)`` (numpy SeedSequence)."""
    first, second = np.random.SeedSequence([seed, *words]).generate_state(2, dtype=np.uint64)
    return int(first), int(second)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffled sample order of ``epoch``: int64, (n,), a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(derive_seeds(seed, _DATA, epoch)[0])
    return torch.randperm(n, generator=generator)


@contextlib.contextmanager
def seeded_stream(seed: int, *words: int, device: torch.device) -> Iterator[torch.Generator]:
    """A generator seeded from ``(seed, *words)``; the global torch RNG is seeded too for the
    block (dropout) and restored afterwards."""
    loss_seed, global_seed = derive_seeds(seed, *words)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.default_generator.manual_seed(global_seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(global_seed)
        yield torch.Generator(device=device).manual_seed(loss_seed)


def fit(model: nn.Module, loss_fn: LossFn, train_data: Any, val_data: Any | None,
        config: TrainConfig, *, run_dir: str | Path, resume: bool = True,
        callbacks: Sequence[Callback] = (), progress: bool = True,
        restore_best: bool = True) -> TrainResult:
    """Train ``model`` with AdamW, EMA, clipping; keep the best and the last checkpoint.

    Parameters
    ----------
    model : nn.Module
        Trained in place; its device is the training device.
    loss_fn : callable
        ``loss_fn(model, batch, generator) -> Tensor``: a scalar, the mean loss over the samples
        of ``batch`` (a dict of tensors on the model's device). All its random draws must come
        from ``generator`` or the global torch RNG (both seeded per shard by the loop).
    train_data, val_data : Dataset, dict of tensors or sequence of dicts
        Training samples and validation samples (``val_data=None``: no validation; ``best/``
        then holds the final EMA weights).
    config : TrainConfig
        Optimiser, schedule, EMA, cadence and seeds.
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
        Load the best EMA weights into ``model`` at the end (else it keeps the trained weights).
        The model leaves in the train/eval mode it came in.

    Returns
    -------
    TrainResult

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C (or from a callback), after ``run_dir/last`` was written at the last completed
        step; ``fit(..., resume=True)`` continues from there.
    TapecastError
        On an empty dataset, a non-scalar or non-finite loss, or a checkpoint that does not fit.
    """
    ctx, was_training = ddp.init(), model.training
    try:
        with _num_threads(config.num_threads), _deferred_interrupts(ctx) as flag:
            trainer = _Trainer(model, loss_fn, train_data, val_data, config, Path(run_dir),
                               ctx, callbacks, flag)
            trainer.setup(resume)
            with _Display(progress and ctx.is_main, trainer) as display:
                trainer.display = display
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


class _Trainer:
    """State and steps of one fit session (see :func:`fit`)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, train_data: Any, val_data: Any,
                 config: TrainConfig, run_dir: Path, ctx: ddp.DistContext,
                 callbacks: Sequence[Callback], flag: _InterruptFlag) -> None:
        self.model, self.loss_fn, self.config, self.ctx = model, loss_fn, config, ctx
        self.train = as_dataset(train_data)
        self.val = None if val_data is None else as_dataset(val_data)
        self.run_dir, self.callbacks, self.flag = run_dir, tuple(callbacks), flag
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise TapecastError("fit: the model has no trainable parameters")
        if len(self.train) == 0 or (self.val is not None and len(self.val) == 0):
            raise TapecastError("fit: expected non-empty training and validation data")
        self.steps_per_epoch = self._steps_per_epoch()
        self.total_steps = int(min(config.max_steps or math.inf,
                                   (config.max_epochs or math.inf) * self.steps_per_epoch))
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, betas=config.betas,
                                           eps=config.eps, weight_decay=config.weight_decay)
        self.ema = EMA(model, config.ema_decay, warmup=config.ema_warmup)
        self.state = ckpt.TrainState()
        self.log = _Log(run_dir / LOG_NAME, enabled=ctx.is_main)
        self.display: _Display | None = None
        self.resumed_from: int | None = None
        self.evals: list[dict[str, Any]] = []
        self.at_boundary = True
        self.saved_step: int | None = None
        self.window: list[float] = [0.0, 0.0, 0.0]  # loss sum, steps, train seconds
        self.order: tuple[int, torch.Tensor] | None = None  # (epoch, its sample order)

    def _steps_per_epoch(self) -> int:
        n, size = len(self.train), self.config.batch_size
        steps = n // size if self.config.drop_last else -(-n // size)
        if steps == 0:
            raise TapecastError(f"fit: {n} training samples make no full batch of {size} "
                                f"(drop_last is on)")
        return steps

    # --- setup and checkpoints --------------------------------------------------------------

    def setup(self, resume: bool) -> None:
        """Start afresh or load ``run_dir/last``; write the run's config."""
        document = ckpt.read_last_document(self.run_dir) if resume else None
        if document is None:
            ddp.broadcast_module(self.model, self.ctx)
            self.ema = EMA(self.model, self.config.ema_decay, warmup=self.config.ema_warmup)
            shards = self.config.batch_shards or self.ctx.world_size
            self.state = ckpt.TrainState(batch_shards=shards)
            self.log.reset(keep_through=None)
        else:
            self._check_resumable(document)
            self.state = ckpt.load_last(self.run_dir, model=self.model, ema=self.ema,
                                        optimizer=self.optimizer)
            self.resumed_from = self.state.step
            self.log.reset(keep_through=self.state.step)
        self.config = replace(self.config, batch_shards=self.state.batch_shards)
        if self.ctx.is_main:
            atomic_write_text(self.run_dir / CONFIG_NAME,
                              json.dumps(self.config.to_dict(), indent=1) + "\n")

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

    def save_last(self) -> None:
        """Write ``run_dir/last`` (rank 0), once per step."""
        if self.ctx.is_main and self.saved_step != self.state.step:
            self.saved_step = self.state.step
            ckpt.save_last(self.run_dir, model=self.model, ema=self.ema,
                           optimizer=self.optimizer, state=self.state,
                           config=self.config.to_dict())

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Train until max_steps / max_epochs; on KeyboardInterrupt save ``last`` and re-raise."""
        try:
            while self.state.step < self.total_steps:
                if self.order is None or self.order[0] != self.state.epoch:
                    order = epoch_order(self.config.seed, self.state.epoch, len(self.train))
                    self.order = (self.state.epoch, order)
                start = self.state.batch_in_epoch * self.config.batch_size
                self._train_step(self.order[1][start: start + self.config.batch_size])
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
        loss, stop = self._accumulate(indices)
        self.at_boundary = False
        lr = self.config.lr_at(self.state.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        grad_norm = None
        if self.config.grad_clip is not None:
            grad_norm = float(nn.utils.clip_grad_norm_(self.params, self.config.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model)
        self._advance(loss, time.perf_counter() - started)
        if self.display is not None:
            self.display.advance(self.state.step)
        evaluated = self._due_for_eval()
        if evaluated:
            self._evaluate()
        self.at_boundary = True
        for callback in self.callbacks:
            callback(TrainEvent("step", self.state.step, self.state.epoch, loss, lr,
                                grad_norm=grad_norm))
        if self._due_for_checkpoint():
            self.save_last()
        self._log_window(lr, grad_norm)
        if stop or (evaluated and self._any_rank_interrupted()):
            self.save_last()
            raise KeyboardInterrupt

    def _accumulate(self, indices: torch.Tensor) -> tuple[float, bool]:
        """Forward and backward of this rank's shards; returns the global mean loss and
        whether any rank was interrupted."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        shards, total = self.state.batch_shards, len(indices)
        part = 0.0
        for s in self.ctx.rank_shards(shards):
            sub = indices[s::shards]
            if len(sub) == 0:
                continue
            batch = _to_device(self.train.batch(sub), self.device)
            with seeded_stream(self.config.seed, _TRAIN, self.state.step, s,
                               device=self.device) as generator:
                loss = self._loss(batch, generator)
                torch.autograd.backward(loss * (len(sub) / total))
            part += float(loss.detach()) * len(sub) / total
        extras = torch.tensor([part, float(self.flag.raised)], dtype=torch.float64)
        summed = ddp.reduce_gradients(self.params, extras, self.ctx)
        loss_value = float(summed[0])
        if not math.isfinite(loss_value):
            raise TapecastError(f"fit: non-finite training loss {loss_value} at step "
                                f"{self.state.step + 1}")
        return loss_value, bool(summed[1] > 0)

    def _loss(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            loss = self.loss_fn(self.model, batch, generator)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TapecastError(f"fit: loss_fn must return a scalar tensor, got "
                                f"{getattr(loss, 'shape', type(loss).__name__)}")
        return loss.float().reshape(())

    def _advance(self, loss: float, seconds: float) -> None:
        state = self.state
        state.step += 1
        state.batch_in_epoch += 1
        state.wall_s += seconds
        if state.batch_in_epoch == self.steps_per_epoch:
            state.epoch += 1
            state.batch_in_epoch = 0
        self.window = [self.window[0] + loss, self.window[1] + 1, self.window[2] + seconds]
        state.loss_sum_since_eval += loss
        state.steps_since_eval += 1

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

    def _evaluate(self) -> None:
        """Validate with the EMA weights, update ``best`` and ``last``, log a row."""
        state = self.state
        val_loss = self._validate() if self.val is not None else None
        improved = self.val is None or state.best_val_loss is None or (
            val_loss is not None and val_loss < state.best_val_loss)
        if improved:
            state.best_val_loss, state.best_step = val_loss, state.step
            state.best_epoch = state.epoch
            if self.ctx.is_main:
                ckpt.save_best(self.run_dir, model=self.model, ema=self.ema, step=state.step,
                               epoch=state.epoch, val_loss=val_loss)
        steps = max(state.steps_since_eval, 1)
        train_loss = state.loss_sum_since_eval / steps
        lr = self.config.lr_at(max(state.step - 1, 0), self.total_steps)
        row = {"kind": "eval", "step": state.step, "epoch": state.epoch, "train_loss": train_loss,
               "val_loss": val_loss, "lr": lr, "wall_s": round(state.wall_s, 3), "best": improved}
        state.loss_sum_since_eval, state.steps_since_eval = 0.0, 0
        state.last_eval_step = state.step
        self.save_last()
        self.log.write(row)
        self.evals.append(row)
        if self.display is not None:
            self.display.show_val(val_loss)
        for callback in self.callbacks:
            callback(TrainEvent("eval", state.step, state.epoch, train_loss, lr, val_loss))

    @torch.no_grad()
    def _validate(self) -> float:
        assert self.val is not None
        was_training = self.model.training
        self.model.eval()
        size = self.config.val_batch_size or self.config.batch_size
        n_batches = -(-len(self.val) // size)
        sums = torch.zeros(2, dtype=torch.float64)  # loss * samples, samples
        with self.ema.applied_to(self.model):
            for i in self.ctx.rank_shards(n_batches):
                indices = torch.arange(i * size, min((i + 1) * size, len(self.val)))
                batch = _to_device(self.val.batch(indices), self.device)
                with seeded_stream(self.config.seed, _VAL, i, device=self.device) as generator:
                    loss = self._loss(batch, generator)
                sums += torch.tensor([float(loss) * len(indices), len(indices)],
                                     dtype=torch.float64)
        self.model.train(was_training)
        total = ddp.all_reduce_sum(sums, self.ctx)
        return float(total[0] / total[1])

    # --- progress and result ----------------------------------------------------------------

    def _log_window(self, lr: float, grad_norm: float | None) -> None:
        loss_sum, steps, seconds = self.window
        if steps < self.config.log_every and self.state.step < self.total_steps:
            return
        steps_per_s = steps / seconds if seconds > 0 else math.nan
        samples_per_s = steps_per_s * self.config.batch_size
        self.log.write({"kind": "train", "step": self.state.step, "epoch": self.state.epoch,
                        "train_loss": loss_sum / steps, "lr": lr, "grad_norm": grad_norm,
                        "steps_per_s": steps_per_s, "samples_per_s": samples_per_s,
                        "wall_s": round(self.state.wall_s, 3)})
        if self.display is not None:
            self.display.show_train(self.state.step, loss_sum / steps, steps_per_s,
                                    samples_per_s)
        self.window = [0.0, 0.0, 0.0]

    def result(self) -> TrainResult:
        """The :class:`TrainResult` of this session."""
        state = self.state
        return TrainResult(self.run_dir, state.step, state.epoch, state.best_step,
                           state.best_epoch, state.best_val_loss, state.wall_s,
                           self.resumed_from, tuple(self.evals))


def _to_device(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    return {name: t.to(device, non_blocking=True) for name, t in batch.items()}


class _Log:
    """``train_log.jsonl``: one JSON object per line (rank 0 only)."""

    def __init__(self, path: Path, *, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def reset(self, *, keep_through: int | None) -> None:
        """Start empty, or keep the rows up to step ``keep_through`` (drop rows a crash wrote
        after the checkpoint it resumes from)."""
        if not self.enabled:
            return
        kept: list[str] = []
        if keep_through is not None and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    if json.loads(line).get("step", math.inf) <= keep_through:
                        kept.append(line)
        atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, row: dict[str, Any]) -> None:
        """Append one row and flush."""
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


class _Display:
    """Rich progress bar on stderr: steps, train and val loss, steps/s, samples/s, time left."""

    def __init__(self, enabled: bool, trainer: _Trainer) -> None:
        console = Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=console, disable=not self.enabled, transient=False)
        self.task = self.progress.add_task(
            "train", total=trainer.total_steps,
            completed=trainer.state.step, loss="-", val=_fmt(trainer.state.best_val_loss),
            rate="")

    def __enter__(self) -> _Display:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def note(self, text: str) -> None:
        if self.enabled:
            self.progress.console.print(escape(text))

    def show_train(self, step: int, loss: float, steps_per_s: float,
                   samples_per_s: float) -> None:
        self.progress.update(self.task, completed=step, loss=_fmt(loss),
                             rate=f"{steps_per_s:.2f} steps/s {samples_per_s:.0f} samples/s")

    def show_val(self, val_loss: float | None) -> None:
        self.progress.update(self.task, val=_fmt(val_loss))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"

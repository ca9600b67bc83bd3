"""A tiny regression trained by tapecast.train.fit: run under torchrun by test_ddp.py, or alone.

    python -m torch.distributed.run --standalone --nproc_per_node=2 \
        tests/train/ddp_worker.py --run-dir RUN --steps 6

Every rank writes ``RUN/rank<r>.safetensors`` (its final trained weights) and ``RUN/rank<r>.json``
(its view of the result); rank 0 also writes the usual checkpoints. The model has dropout and
the loss draws input jitter from the loop's generator, so both random streams are exercised.
This file imports nothing from ``tests`` (torchrun runs it as a script).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from tapecast.train import LossOutput, TrainConfig, fit

N_TRAIN, N_VAL, N_FEATURES = 61, 23, 4  # 61 = 5 batches of 12 + 1: an uneven last batch


def make_data(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Train and validation dicts: x (n, 4) float32, y (n, 1) float32 = x @ w + noise."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N_TRAIN + N_VAL, N_FEATURES, generator=generator)
    w = torch.randn(N_FEATURES, 1, generator=generator)
    y = torch.tanh(x @ w) + 0.05 * torch.randn(N_TRAIN + N_VAL, 1, generator=generator)
    return ({"x": x[:N_TRAIN], "y": y[:N_TRAIN]}, {"x": x[N_TRAIN:], "y": y[N_TRAIN:]})


def make_model(seed: int = 1, *, dropout: float = 0.1) -> nn.Module:
    """A 4-32-1 MLP with GELU and dropout, initialised from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(N_FEATURES, 32), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(32, 1))


def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor],
            generator: torch.Generator) -> torch.Tensor:
    """MSE of the model on inputs jittered by draws from ``generator`` (mean over samples)."""
    x = batch["x"]
    jitter = 0.05 * torch.randn(x.shape, generator=generator, device=generator.device)
    return ((model(x + jitter.to(x.device)) - batch["y"]) ** 2).mean()


def weighted_loss_fn(model: nn.Module, batch: dict[str, torch.Tensor],
                     generator: torch.Generator) -> LossOutput:
    """The jittered MSE over the samples with y > 0 only (weight: their count), with the mean
    absolute error as a metric: shards and ranks then hold different weights."""
    x = batch["x"]
    jitter = 0.05 * torch.randn(x.shape, generator=generator, device=generator.device)
    error = (model(x + jitter.to(x.device)) - batch["y"]).squeeze(-1)  # (n,)
    keep = (batch["y"].squeeze(-1) > 0).float()
    count = keep.sum()
    mse = (error**2 * keep).sum() / count.clamp(min=1)
    mae = (error.abs() * keep).sum() / count.clamp(min=1)
    return LossOutput(mse, weight=count, metrics={"mae": mae.detach()})


def make_config(steps: int) -> TrainConfig:
    """Two shards per global batch of 12, validation every 4 steps, one thread."""
    return TrainConfig(lr=2e-2, weight_decay=1e-3, batch_size=12, max_steps=steps,
                       max_epochs=None, grad_clip=1.0, ema_decay=0.9, eval_every=4,
                       batch_shards=2, seed=7, num_threads=1, log_every=2)


def train(run_dir: Path, steps: int, *, weighted: bool = False) -> dict[str, object]:
    """Fit the tiny model; write this rank's weights and result; return the result as a dict."""
    train_data, val_data = make_data()
    model = make_model(seed=1 + int(os.environ.get("RANK", "0")))  # ranks start unequal
    result = fit(model, weighted_loss_fn if weighted else loss_fn, train_data, val_data,
                 make_config(steps), run_dir=run_dir, resume=False, progress=False,
                 restore_best=False)
    rank = int(os.environ.get("RANK", "0"))
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              str(run_dir / f"rank{rank}.safetensors"))
    summary = {"step": result.step, "best_step": result.best_step,
               "best_val_loss": result.best_val_loss,
               "val_losses": [row["val_loss"] for row in result.evals],
               "val_mae": [row.get("val_mae") for row in result.evals]}
    (run_dir / f"rank{rank}.json").write_text(json.dumps(summary), encoding="utf-8")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--weighted", action="store_true", help="use weighted_loss_fn")
    args = parser.parse_args()
    train(args.run_dir, args.steps, weighted=args.weighted)


if __name__ == "__main__":
    main()

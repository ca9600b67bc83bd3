"""Overhead of tapecast.train.fit over a bare AdamW loop on the same model and batches.

A TransformerEncoderLayer (d = 128, 4 heads, no dropout) regresses a linear map of its input,
batch 16 × 110 tokens. The bare loop does forward, backward, AdamW step, zero_grad; ``fit`` does
the same plus everything the loop adds: per-shard seeding, loss-weight bookkeeping, clipping,
the EMA update, the gradient scaler calls, logging (no validation until the end, one checkpoint).
Both run ``--steps`` steps; the two alternate ``--repeats`` times and the best of each is kept
(other jobs may share the cores).

Run: ``.venv/bin/python benchmarks/train_loop.py [--steps 40] [--repeats 3] [--threads 2]``.
Printed: seconds per step of each, the ratio, and a bare 1024² fp32 matmul timed in the same
run (its GFLOP/s says how much of the machine was ours).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from timing import best_of  # benchmarks/timing.py (the script's folder is on sys.path)
from torch import nn

from tapecast.train import TrainConfig, fit

B, L, D = 16, 110, 128


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.TransformerEncoderLayer(D, 4, 4 * D, dropout=0.0, batch_first=True)


def _data(n: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, L, D, generator=generator)
    w = torch.randn(D, D, generator=generator) / D**0.5
    return {"x": x, "y": x @ w}


def _loss(model: nn.Module, batch: dict[str, torch.Tensor],
          generator: torch.Generator) -> torch.Tensor:
    return ((model(batch["x"]) - batch["y"]) ** 2).mean()


def bare(steps: int, data: dict[str, torch.Tensor]) -> None:
    """Forward, backward, AdamW, zero_grad over the same batches ``fit`` sees."""
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(steps):
        rows = slice(step * B, (step + 1) * B)
        _loss(model, {k: v[rows] for k, v in data.items()}, torch.Generator()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def looped(steps: int, data: dict[str, torch.Tensor]) -> None:
    """The same steps through ``fit`` (EMA, clipping, logging; one final checkpoint)."""
    config = TrainConfig(lr=1e-3, batch_size=B, max_steps=steps, max_epochs=None,
                         eval_every=steps, log_every=10)
    with tempfile.TemporaryDirectory() as run:
        fit(_model(), _loss, data, None, config, run_dir=run, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = _data(args.steps * B)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    matmul = best_of(5, lambda: a @ b)
    times = {"bare": float("inf"), "fit": float("inf")}
    for _ in range(args.repeats):
        times["bare"] = min(times["bare"], best_of(1, lambda: bare(args.steps, data)))
        times["fit"] = min(times["fit"], best_of(1, lambda: looped(args.steps, data)))
    bare_s, fit_s = times["bare"] / args.steps, times["fit"] / args.steps
    print(f"bare AdamW loop: {bare_s:.4f} s/step; fit: {fit_s:.4f} s/step "
          f"(x{fit_s / bare_s:.3f}); fp32 matmul 1024²: {2 * 1024**3 / matmul / 1e9:.0f} "
          f"GFLOP/s; {args.steps} steps, {args.threads} threads, torch {torch.__version__}")


if __name__ == "__main__":
    main()

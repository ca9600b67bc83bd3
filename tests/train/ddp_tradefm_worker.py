"""A very small TradeFM trained by tapecast.train.fit on a synthetic token corpus: run under
torchrun by test_ddp_tradefm.py, or alone.

    python -m torch.distributed.run --standalone --nproc_per_node=2 \
        tests/train/ddp_tradefm_worker.py --run-dir RUN --corpus CORPUS --steps 8

The corpus (:func:`write_corpus`, written once by the caller) has a long and a short training
segment and a long and a short validation segment of random ids of the 16,384-token vocabulary;
a short segment gives one window whose targets are padded with −100, so ``tradefm_loss``'s token
weights differ between the shards, and so between the ranks. Every rank writes
``RUN/rank<r>.safetensors`` (its final trained weights) and ``RUN/rank<r>.json`` (its view of the
result); rank 0 also writes the usual checkpoints. The model has dropout, so the per-shard
global-RNG streams are exercised. This file imports nothing from ``tests`` (torchrun runs it as a
script).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from tapecast.features.token_corpus import TokenCorpus
from tapecast.models.tradefm import tradefm_loss
from tapecast.nets import TradeFM, TradeFMConfig, tradefm_config
from tapecast.train import TrainConfig, fit

CONTEXT = 32
# (split, tokens): 120 tokens at stride 4 make 23 windows; 20 < CONTEXT + 1 make one padded one
SEGMENTS = (("train", 120), ("train", 20), ("val", 80), ("val", 12))
TRAIN_STRIDE = 4  # 23 + 1 = 24 training windows; batches of 7 give 4 steps an epoch, last of 3


def make_config() -> TradeFMConfig:
    """The ``tiny`` preset cut to 2 layers of width 64, context 32, with dropout."""
    return replace(tradefm_config("tiny"), token_dim=64, d_model=64, n_layers=2, n_heads=4,
                   n_kv_heads=2, d_ff=128, context=CONTEXT, dropout=0.1)


def write_corpus(folder: Path, seed: int = 0) -> TokenCorpus:
    """Random tokens, tiers, flags and Δp bins in the segments of :data:`SEGMENTS`."""
    config, rng = make_config(), np.random.default_rng(seed)
    parts = [{"instrument": f"SYN{i}", "session": "2024-01-02", "split": split,
              "tokens": rng.integers(0, config.vocab_size, n),
              "tier": rng.integers(0, config.n_tiers, n),
              "flag": rng.integers(0, config.n_flags, n),
              "dp_bin": rng.integers(0, config.n_dp_bins, n)}
             for i, (split, n) in enumerate(SEGMENTS)]
    return TokenCorpus.write(folder, parts, provenance={"source": "ddp_tradefm_worker"})


def make_train_config(steps: int) -> TrainConfig:
    """Two shards per global batch of 7 (4 and 3 windows), validation every 3 steps, one thread."""
    return TrainConfig(lr=3e-3, weight_decay=1e-2, batch_size=7, max_steps=steps,
                       max_epochs=None, grad_clip=1.0, ema_decay=0.9, eval_every=3,
                       batch_shards=2, val_batch_size=2, seed=11, num_threads=1, log_every=2)


def train(run_dir: Path, corpus_dir: Path, steps: int) -> dict[str, object]:
    """Fit the model; write this rank's weights and result; return the result as a dict."""
    corpus = TokenCorpus.open(corpus_dir)
    train_windows = corpus.windows(CONTEXT, split="train", stride=TRAIN_STRIDE)
    val_windows = corpus.windows(CONTEXT, split="val", stride=CONTEXT)
    rank = int(os.environ.get("RANK", "0"))
    torch.manual_seed(1 + rank)  # ranks start unequal: fit must broadcast rank 0's weights
    model = TradeFM(make_config())
    result = fit(model, tradefm_loss, train_windows, val_windows, make_train_config(steps),
                 run_dir=run_dir, resume=False, progress=False, restore_best=False)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              str(run_dir / f"rank{rank}.safetensors"))
    summary: dict[str, object] = {"step": result.step, "best_step": result.best_step,
                                  "best_val_loss": result.best_val_loss,
                                  "val_losses": [row["val_loss"] for row in result.evals],
                                  "val_accuracy": [row.get("val_accuracy") for row in result.evals],
                                  "train_losses": [row["train_loss"] for row in result.evals]}
    (run_dir / f"rank{rank}.json").write_text(json.dumps(summary), encoding="utf-8")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    train(args.run_dir, args.corpus, args.steps)


if __name__ == "__main__":
    main()

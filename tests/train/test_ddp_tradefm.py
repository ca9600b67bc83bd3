"""TradeFM trained by tapecast.train.fit under torchrun on two ranks against one process.

The loss is ``tradefm_loss``, a mean over kept tokens with the token count as its weight; the
corpus has short segments whose windows carry padded (−100) targets, so the shards and the ranks
hold different token counts and only a token-weighted reduction matches one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from tapecast.features.token_corpus import IGNORE_INDEX
from tests.train import ddp_tradefm_worker as worker

WORKER = Path(worker.__file__)
REPO = WORKER.parents[2]


def _gloo_available() -> bool:
    return dist.is_available() and dist.is_gloo_available()


def test_corpus_when_written_has_padded_windows_in_both_splits(tmp_path: Path) -> None:
    corpus = worker.write_corpus(tmp_path / "corpus")
    train = corpus.windows(worker.CONTEXT, split="train", stride=worker.TRAIN_STRIDE)
    val = corpus.windows(worker.CONTEXT, split="val", stride=worker.CONTEXT)
    for windows in (train, val):
        kept = (windows.batch(torch.arange(len(windows)))["targets"] != IGNORE_INDEX).sum(1)
        assert kept.min() < worker.CONTEXT == kept.max()  # one short window, the rest full


@pytest.mark.slow
@pytest.mark.skipif(not _gloo_available(), reason="torch.distributed with gloo unavailable")
def test_fit_tradefm_when_run_by_torchrun_on_two_ranks_matches_one_process(
        tmp_path: Path) -> None:
    steps = 8  # two epochs of 4 batches (7, 7, 7, 3 windows)
    corpus_dir, ddp_dir, single_dir = tmp_path / "corpus", tmp_path / "ddp", tmp_path / "single"
    worker.write_corpus(corpus_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(WORKER), "--run-dir", str(ddp_dir),
               "--corpus", str(corpus_dir), "--steps", str(steps)]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    single_dir.mkdir()
    single = worker.train(single_dir, corpus_dir, steps)

    reference = load_file(str(single_dir / "rank0.safetensors"))
    for rank in (0, 1):
        weights = load_file(str(ddp_dir / f"rank{rank}.safetensors"))
        assert weights.keys() == reference.keys()
        for name, value in reference.items():
            assert torch.allclose(weights[name], value, rtol=0, atol=1e-5), (rank, name)
        summary = json.loads((ddp_dir / f"rank{rank}.json").read_text())
        assert summary["step"] == single["step"] == steps
        assert summary["best_step"] == single["best_step"]
        for key in ("val_losses", "val_accuracy", "train_losses"):  # token-weighted over ranks
            assert summary[key] == pytest.approx(single[key], rel=1e-5), key
    saved = load_file(str(ddp_dir / "last" / "model.safetensors"))
    assert all(torch.allclose(saved[k], v, rtol=0, atol=1e-5) for k, v in reference.items())
    rows = [json.loads(line) for line in (ddp_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [3, 6, 8]  # rank 0 alone wrote

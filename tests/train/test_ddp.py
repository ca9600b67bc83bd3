"""tapecast.train.distributed: helpers, and the loop under torchrun against one process."""

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
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.train import distributed as ddp
from tests.train import ddp_worker

WORKER = Path(ddp_worker.__file__)
REPO = WORKER.parents[2]


def test_rank_shards_when_two_ranks_split_strided() -> None:
    assert list(ddp.DistContext(rank=0, world_size=2).rank_shards(5)) == [0, 2, 4]
    assert list(ddp.DistContext(rank=1, world_size=2).rank_shards(5)) == [1, 3]
    assert list(ddp.DistContext().rank_shards(3)) == [0, 1, 2]


def test_init_when_no_torchrun_env_is_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = ddp.init()
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.active) == (0, 1, True, False)
    ddp.teardown(ctx)  # nothing to tear down


def test_init_when_world_size_set_without_rank_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(TapecastError, match="RANK"):
        ddp.init()


def test_env_world_size_when_not_a_number_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(TapecastError, match="WORLD_SIZE"):
        ddp.env_world_size()


def test_check_backend_when_unknown_backend_raises() -> None:
    with pytest.raises(TapecastError, match="backend"):
        ddp.check_backend("carrier-pigeon")


def test_reduce_gradients_when_single_process_leaves_grads_alone() -> None:
    layer = nn.Linear(2, 1)
    layer(torch.ones(1, 2)).sum().backward()
    before = [p.grad.clone() for p in layer.parameters() if p.grad is not None]
    extras = torch.tensor([1.5, 0.0], dtype=torch.float64)
    out = ddp.reduce_gradients(list(layer.parameters()), extras, ddp.DistContext())
    assert torch.equal(out, extras)
    assert all(torch.equal(p.grad, b) for p, b in zip(layer.parameters(), before, strict=True))


def _gloo_available() -> bool:
    return dist.is_available() and dist.is_gloo_available()


@pytest.mark.slow
@pytest.mark.skipif(not _gloo_available(), reason="torch.distributed with gloo unavailable")
@pytest.mark.parametrize("weighted", [False, True], ids=["per-sample", "loss-weighted"])
def test_fit_when_run_by_torchrun_on_two_ranks_matches_one_process(tmp_path: Path,
                                                                   weighted: bool) -> None:
    steps = 12  # two epochs of 6 batches; each epoch ends with a 1-sample batch (one rank idle)
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(WORKER), "--run-dir", str(ddp_dir),
               "--steps", str(steps), *(["--weighted"] if weighted else [])]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    single_dir.mkdir()
    single = ddp_worker.train(single_dir, steps, weighted=weighted)

    reference = load_file(str(single_dir / "rank0.safetensors"))
    for rank in (0, 1):
        weights = load_file(str(ddp_dir / f"rank{rank}.safetensors"))
        for name, value in reference.items():
            assert torch.allclose(weights[name], value, rtol=0, atol=1e-5), (rank, name)
        summary = json.loads((ddp_dir / f"rank{rank}.json").read_text())
        assert summary["step"] == single["step"] == steps
        assert summary["best_step"] == single["best_step"]
        assert summary["val_losses"] == pytest.approx(single["val_losses"], rel=1e-6)
        if weighted:  # metrics combine by weight over ranks too
            assert summary["val_mae"] == pytest.approx(single["val_mae"], rel=1e-6)
    saved = load_file(str(ddp_dir / "last" / "model.safetensors"))
    assert all(torch.allclose(saved[k], v, atol=1e-5) for k, v in reference.items())
    rows = [json.loads(line) for line in (ddp_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [4, 8, 12]  # rank 0 alone wrote

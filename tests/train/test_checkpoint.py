"""tapecast.train.checkpoint: best and last checkpoints in safetensors + JSON."""

from __future__ import annotations

import faulthandler
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tapecast.core import io
from tapecast.core.errors import TapecastError
from tapecast.train import checkpoint as ckpt
from tapecast.train.ema import EMA


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))


def _trained(seed: int = 0) -> tuple[nn.Module, EMA, torch.optim.Optimizer]:
    model = _model(seed)
    ema = EMA(model, 0.9)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        loss = model(torch.randn(8, 3)).pow(2).mean()  # also moves BatchNorm's buffers
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        ema.update(model)
    return model, ema, optimizer


def _draws() -> tuple[torch.Tensor, np.ndarray, float]:
    return torch.rand(3), np.random.rand(3), random.random()  # noqa: NPY002 (global state)


def test_flatten_state_when_nested_round_trips_keys_tuples_and_tensors() -> None:
    state = {"state": {0: {"step": torch.tensor(3.0), "m": torch.ones(2)}},
             "groups": [{"betas": (0.9, 0.99), "params": [0], "name": None, "flag": True}]}
    tensors: dict[str, torch.Tensor] = {}
    structure = ckpt.flatten_state(state, "opt", tensors)
    back = ckpt.unflatten_state(json.loads(json.dumps(structure)), tensors)
    assert set(tensors) == {"opt/state/0/step", "opt/state/0/m"}
    assert list(back["state"]) == [0]  # int key kept
    assert back["groups"][0]["betas"] == (0.9, 0.99)  # tuple kept
    assert torch.equal(back["state"][0]["m"], torch.ones(2))
    assert back["groups"][0]["name"] is None and back["groups"][0]["flag"] is True


def test_flatten_state_when_value_not_storable_raises() -> None:
    with pytest.raises(TapecastError, match="cannot store"):
        ckpt.flatten_state({"fn": print}, "x", {})


def test_save_last_when_loaded_restores_weights_ema_optimizer_rng_and_state(
        tmp_path: Path) -> None:
    model, ema, optimizer = _trained()
    state = ckpt.TrainState(step=3, epoch=1, batch_in_epoch=2, batch_shards=2, wall_s=1.5,
                            best_val_loss=0.25, best_step=2, best_epoch=0, last_eval_step=2)
    torch.manual_seed(11)
    np.random.seed(12)  # noqa: NPY002 (global state is what is saved)
    random.seed(13)
    ckpt.save_last(tmp_path, model=model, ema=ema, optimizer=optimizer, state=state,
                   config={"lr": 0.01})
    expected = _draws()

    model2, ema2, optimizer2 = _trained(seed=5)
    _draws()
    loaded = ckpt.load_last(tmp_path, model=model2, ema=ema2, optimizer=optimizer2)

    assert loaded == state
    assert all(torch.equal(model2.state_dict()[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(ema2.shadow[k], v) for k, v in ema.shadow.items())
    assert ema2.num_updates == ema.num_updates
    assert _same_optimizer_state(optimizer.state_dict(), optimizer2.state_dict())
    got = _draws()
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]
    assert ckpt.read_last_document(tmp_path)["train_config"] == {"lr": 0.01}  # type: ignore[index]


def _same_optimizer_state(a: dict[str, object], b: dict[str, object]) -> bool:
    state_a, state_b = a["state"], b["state"]
    assert isinstance(state_a, dict) and isinstance(state_b, dict)
    for pid, entries in state_a.items():
        for key, value in entries.items():
            if not torch.equal(value, state_b[pid][key]):
                return False
    return a["param_groups"] == b["param_groups"]


def test_save_last_when_written_holds_only_safetensors_and_json(tmp_path: Path) -> None:
    model, ema, optimizer = _trained()
    path = ckpt.save_last(tmp_path, model=model, ema=ema, optimizer=optimizer,
                          state=ckpt.TrainState(), config={})
    names = sorted(p.name for p in path.iterdir())
    assert names == ["ema.safetensors", "model.safetensors", "optimizer.safetensors",
                     "rng.safetensors", "state.json"]


def test_load_last_when_model_shape_differs_raises(tmp_path: Path) -> None:
    model, ema, optimizer = _trained()
    ckpt.save_last(tmp_path, model=model, ema=ema, optimizer=optimizer,
                   state=ckpt.TrainState(), config={})
    other = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, 1))
    with pytest.raises(TapecastError, match="do not fit"):
        ckpt.load_last(tmp_path, model=other, ema=EMA(other, 0.9),
                       optimizer=torch.optim.AdamW(other.parameters()))


def test_load_last_when_absent_raises(tmp_path: Path) -> None:
    model, ema, optimizer = _trained()
    assert ckpt.read_last_document(tmp_path) is None
    with pytest.raises(TapecastError, match="found none"):
        ckpt.load_last(tmp_path, model=model, ema=ema, optimizer=optimizer)


def test_save_last_when_writing_fails_keeps_previous_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, ema, optimizer = _trained()
    ckpt.save_last(tmp_path, model=model, ema=ema, optimizer=optimizer,
                   state=ckpt.TrainState(step=1), config={})

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_last(tmp_path, model=model, ema=ema, optimizer=optimizer,
                       state=ckpt.TrainState(step=2), config={})
    monkeypatch.undo()
    assert ckpt.load_last(tmp_path, model=model, ema=ema, optimizer=optimizer).step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no staging left


def test_save_best_when_loaded_gives_ema_weights_not_trained_ones(tmp_path: Path) -> None:
    model, ema, _ = _trained()
    ckpt.save_best(tmp_path, model=model, ema=ema, step=3, epoch=1, val_loss=0.5)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = _model(seed=9)
    info = ckpt.load_best(tmp_path, fresh)
    assert info == {"step": 3, "epoch": 1, "val_loss": 0.5, "weights": "ema"}
    assert torch.equal(fresh[0].weight, ema.shadow["0.weight"])
    assert not torch.equal(fresh[0].weight, own["0.weight"])
    assert torch.equal(fresh[1].running_mean, own["1.running_mean"])  # buffers as trained
    assert all(torch.equal(model.state_dict()[k], v) for k, v in own.items())  # model untouched


def test_load_best_when_absent_raises(tmp_path: Path) -> None:
    assert ckpt.read_best(tmp_path) is None
    with pytest.raises(TapecastError, match="best"):
        ckpt.load_best(tmp_path, _model())


# --- crash safety: a hard crash (os._exit) at each step of writing last/ -------------------

# (atomic exchange available, patched call, crash at its n-th call): writing the staging folder,
# then each rename / exchange / removal of the swap
CRASH_POINTS = [(False, "save_file", 2), (False, "replace", 1), (False, "replace", 2),
                (False, "replace", 3), (False, "rmtree", 1), (True, "save_file", 2),
                (True, "exchange", 1), (True, "replace", 1), (True, "rmtree", 1)]


def _save_step(run_dir: Path, step: int,
               trained: tuple[nn.Module, EMA, torch.optim.Optimizer] | None = None) -> None:
    model, ema, optimizer = trained or _trained()
    ckpt.save_last(run_dir, model=model, ema=ema, optimizer=optimizer,
                   state=ckpt.TrainState(step=step), config={})


def _crash_while_saving(run_dir: Path, patch: str, at_call: int, *, exchange: bool) -> int:
    """Fork; the child saves step 2 and ``os._exit(17)`` at call ``at_call`` of ``patch``.

    The state is trained in the parent: torch's thread pool may hang in a forked child.
    """
    trained = _trained()
    pid = os.fork()
    if pid == 0:
        code = 0
        faulthandler.dump_traceback_later(60, exit=True)  # never hang the test run
        try:
            if not exchange:
                io.exchange_paths = lambda first, second: False  # type: ignore[assignment]
            module, name = {"replace": (os, "replace"), "rmtree": (shutil, "rmtree"),
                            "exchange": (io, "exchange_paths"),
                            "save_file": (ckpt, "save_file")}[patch]
            real, calls = getattr(module, name), [0]

            def crashing(*args: Any, **kwargs: Any) -> Any:
                calls[0] += 1
                if calls[0] == at_call:
                    os._exit(17)
                return real(*args, **kwargs)

            setattr(module, name, crashing)
            _save_step(run_dir, 2, trained)
        except BaseException:  # any failure is reported through the exit code
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize(("exchange", "patch", "at_call"), CRASH_POINTS)
def test_save_last_when_process_dies_at_any_point_loader_finds_old_or_new_step(
        tmp_path: Path, exchange: bool, patch: str, at_call: int) -> None:
    if exchange and not io.exchange_paths(tmp_path, tmp_path):
        pytest.skip("this file system cannot exchange folders atomically")
    _save_step(tmp_path, 1)
    assert _crash_while_saving(tmp_path, patch, at_call, exchange=exchange) == 17
    document = ckpt.read_last_document(tmp_path)
    assert document is not None
    model, ema, optimizer = _trained(seed=3)
    step = ckpt.load_last(tmp_path, model=model, ema=ema, optimizer=optimizer).step
    assert step in (1, 2) and document["train_state"]["step"] == step
    _save_step(tmp_path, 3)  # the next save clears what the crash left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_read_last_document_when_last_has_no_state_raises_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "last").mkdir()
    with pytest.raises(TapecastError, match="resume=False"):
        ckpt.read_last_document(tmp_path)


def test_load_last_when_format_1_checkpoint_loads(tmp_path: Path) -> None:
    _save_step(tmp_path, 4)
    path = tmp_path / "last" / "state.json"
    document = json.loads(path.read_text())
    document["format"] = 1  # as written before the optional EMA and the new state fields
    for key in ("metric_sums_since_eval", "best_val_metrics", "precision"):
        del document["train_state"][key]
    path.write_text(json.dumps(document))
    model, ema, optimizer = _trained(seed=3)
    state = ckpt.load_last(tmp_path, model=model, ema=ema, optimizer=optimizer)
    assert (state.step, state.precision, state.best_val_metrics) == (4, None, {})


def test_save_last_when_no_ema_writes_none_and_loads_without(tmp_path: Path) -> None:
    model, _, optimizer = _trained()
    ckpt.save_last(tmp_path, model=model, ema=None, optimizer=optimizer,
                   state=ckpt.TrainState(step=5), config={})
    assert not (tmp_path / "last" / "ema.safetensors").exists()
    assert ckpt.load_last(tmp_path, model=model, ema=None, optimizer=optimizer).step == 5
    with pytest.raises(TapecastError, match="no EMA"):
        ckpt.load_last(tmp_path, model=model, ema=EMA(model, 0.9), optimizer=optimizer)

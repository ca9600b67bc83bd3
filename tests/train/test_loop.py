"""tapecast.train.loop: fit, exact resume, Ctrl-C, best checkpoint, clipping, bf16, shards."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.train import TrainConfig, TrainEvent, fit
from tapecast.train.data import as_dataset
from tests.train.ddp_worker import loss_fn, make_data, make_model

BASE = TrainConfig(lr=2e-2, weight_decay=1e-3, batch_size=8, max_steps=14, max_epochs=None,
                   grad_clip=1.0, ema_decay=0.9, eval_every=5, seed=3, log_every=4)


def _fit(run_dir: Path, config: TrainConfig = BASE, **kwargs: Any) -> nn.Module:
    train, val = make_data()
    model = make_model()
    fit(model, loss_fn, train, val, config, run_dir=run_dir, progress=False, **kwargs)
    return model


def _last_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name in ("model", "ema", "optimizer"):
        path = run_dir / "last" / f"{name}.safetensors"
        for key, value in (load_file(str(path)) if path.exists() else {}).items():
            out[f"{name}:{key}"] = value
    return out


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def _eval_rows(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "train_log.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows if r["kind"] == "eval"]


def _interrupt_at(step: int) -> Any:
    def callback(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == step:
            raise KeyboardInterrupt
    return callback


def test_fit_when_trained_lowers_validation_loss(tmp_path: Path) -> None:
    _fit(tmp_path, dataclasses.replace(BASE, max_steps=30))
    rows = _eval_rows(tmp_path)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    assert rows[-1]["val_loss"] < 0.5 * rows[0]["val_loss"]
    assert set(rows[0]) == {"kind", "step", "epoch", "train_loss", "val_loss", "lr", "best"}


NO_EMA_GROUPED = dataclasses.replace(BASE, ema_decay=None, weight_decay_on="matrices")


@pytest.mark.parametrize("config", [BASE, NO_EMA_GROUPED], ids=["ema", "no-ema-grouped"])
def test_fit_when_interrupted_then_resumed_matches_straight_run_bitwise(
        tmp_path: Path, config: TrainConfig) -> None:
    _fit(tmp_path / "straight", config)
    with pytest.raises(KeyboardInterrupt):  # mid-epoch, between evals
        _fit(tmp_path / "resumed", config, callbacks=[_interrupt_at(7)])
    state = json.loads((tmp_path / "resumed" / "last" / "state.json").read_text())
    assert state["train_state"]["step"] == 7
    _fit(tmp_path / "resumed", config)
    _assert_bitwise_equal(_last_tensors(tmp_path / "straight"), _last_tensors(tmp_path / "resumed"))
    assert _eval_rows(tmp_path / "straight") == _eval_rows(tmp_path / "resumed")
    best = [json.loads((tmp_path / r / "best" / "best.json").read_text())
            for r in ("straight", "resumed")]
    assert best[0] == best[1]


def test_fit_when_stopped_at_max_steps_then_extended_matches_straight_run(tmp_path: Path) -> None:
    _fit(tmp_path / "straight")
    _fit(tmp_path / "extended", dataclasses.replace(BASE, max_steps=7))
    _fit(tmp_path / "extended")  # max_steps 7 -> 14 is a resumable change
    _assert_bitwise_equal(_last_tensors(tmp_path / "straight"),
                          _last_tensors(tmp_path / "extended"))


def test_fit_when_sigint_arrives_finishes_step_saves_and_resumes(tmp_path: Path) -> None:
    def send_sigint(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # handled as a flag: the next step completes

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a background job, else the default
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "run", callbacks=[send_sigint])
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text())
    assert state["train_state"]["step"] == 5
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored
    _fit(tmp_path / "run")
    _fit(tmp_path / "straight")
    _assert_bitwise_equal(_last_tensors(tmp_path / "straight"), _last_tensors(tmp_path / "run"))


def test_fit_when_resumed_with_other_learning_rate_raises(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, callbacks=[_interrupt_at(3)])
    with pytest.raises(TapecastError, match="lr"):
        _fit(tmp_path, dataclasses.replace(BASE, lr=1e-3))
    _fit(tmp_path, dataclasses.replace(BASE, lr=1e-3), resume=False)  # a fresh start is fine


def _scalar_model() -> nn.Module:
    model = nn.Module()
    model.theta = nn.Parameter(torch.zeros(1))
    return model


def _to_target(model: nn.Module, batch: dict[str, torch.Tensor],
               generator: torch.Generator) -> torch.Tensor:
    return ((model.theta - batch["y"]) ** 2).mean()


def test_fit_when_validation_worsens_best_keeps_lowest_val_loss(tmp_path: Path) -> None:
    # theta walks from 0 to the training target 1 and passes the validation target 0.3
    train, val = {"y": torch.ones(4, 1)}, {"y": torch.full((4, 1), 0.3)}
    config = TrainConfig(lr=0.05, batch_size=4, max_steps=20, max_epochs=None, ema_decay=0.0,
                         ema_warmup=False, eval_every=1, grad_clip=None, weight_decay=0.0)
    thetas: dict[int, float] = {}

    def record(event: TrainEvent) -> None:
        if event.kind == "eval":
            thetas[event.step] = float(model.theta.detach())  # EMA with decay 0 equals the weights

    model = _scalar_model()
    result = fit(model, _to_target, train, val, config, run_dir=tmp_path, progress=False,
                 callbacks=[record])
    rows = _eval_rows(tmp_path)
    best_row = min(rows, key=lambda r: r["val_loss"])
    assert rows[-1]["val_loss"] > best_row["val_loss"]  # validation did get worse
    assert result.best_step == best_row["step"] < 20
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert (best["step"], best["val_loss"]) == (best_row["step"], best_row["val_loss"])
    saved = load_file(str(tmp_path / "best" / "model.safetensors"))["theta"]
    assert saved.item() == pytest.approx(thetas[best_row["step"]])
    assert model.theta.item() == pytest.approx(saved.item())  # restore_best=True


def test_fit_when_no_validation_data_best_holds_final_ema(tmp_path: Path) -> None:
    train, _ = make_data()
    model = make_model()
    result = fit(model, loss_fn, train, None, BASE, run_dir=tmp_path, progress=False,
                 restore_best=False)
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert (best["step"], best["val_loss"], result.best_step) == (14, None, 14)
    ema = load_file(str(tmp_path / "last" / "ema.safetensors"))
    saved = load_file(str(tmp_path / "best" / "model.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in ema.items())


def _adam_first_moment_norm(run_dir: Path, beta1: float) -> float:
    state = load_file(str(run_dir / "last" / "optimizer.safetensors"))
    moments = [v for k, v in state.items() if k.endswith("/exp_avg")]
    return float(torch.sqrt(sum((m**2).sum() for m in moments))) / (1.0 - beta1)


@pytest.mark.parametrize("clip", [0.5, None])
def test_fit_when_grad_clip_set_bounds_the_gradient_applied(tmp_path: Path,
                                                           clip: float | None) -> None:
    def steep(model: nn.Module, batch: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        return 1000.0 * loss_fn(model, batch, generator)

    train, val = make_data()
    norms: list[float | None] = []
    config = dataclasses.replace(BASE, max_steps=1, grad_clip=clip)
    fit(make_model(), steep, train, val, config, run_dir=tmp_path, progress=False,
        callbacks=[lambda e: norms.append(e.grad_norm) if e.kind == "step" else None])
    applied = _adam_first_moment_norm(tmp_path, BASE.betas[0])  # m1 = (1 - b1) g
    if clip is None:
        assert applied > 10.0 and norms == [None]
    else:
        assert applied == pytest.approx(clip, rel=1e-5)
        assert norms[0] is not None and norms[0] > 10.0  # the pre-clip norm is reported


def test_fit_when_bf16_runs_the_loss_under_bfloat16_autocast(tmp_path: Path) -> None:
    dtypes: list[torch.dtype] = []

    def watched(model: nn.Module, batch: dict[str, torch.Tensor],
                generator: torch.Generator) -> torch.Tensor:
        dtypes.append(model(batch["x"]).dtype)
        return loss_fn(model, batch, generator)

    train, val = make_data()
    model = make_model()
    result = fit(model, watched, train, val, dataclasses.replace(BASE, precision="bf16",
                                                                 max_steps=4),
                 run_dir=tmp_path, progress=False)
    assert set(dtypes) == {torch.bfloat16} and result.precision == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert result.best_val_loss is not None and result.best_val_loss < 10.0


def test_fit_when_shards_split_batch_matches_one_shard_for_deterministic_loss(
        tmp_path: Path) -> None:
    def plain(model: nn.Module, batch: dict[str, torch.Tensor],
              generator: torch.Generator) -> torch.Tensor:
        return ((model(batch["x"]) - batch["y"]) ** 2).mean()

    train, val = make_data()  # 61 samples, batches of 7: shards of 4 and 3, last batch of 5
    weights = []
    for shards in (1, 2):
        model = make_model(dropout=0.0)
        config = dataclasses.replace(BASE, batch_size=7, batch_shards=shards, max_steps=10)
        fit(model, plain, train, val, config, run_dir=tmp_path / str(shards), progress=False,
            restore_best=False)
        weights.append(model.state_dict())
    for key, value in weights[0].items():
        assert torch.allclose(weights[1][key], value, rtol=0, atol=1e-5), key


def test_fit_when_loss_is_not_scalar_raises(tmp_path: Path) -> None:
    def per_sample(model: nn.Module, batch: dict[str, torch.Tensor],
                   generator: torch.Generator) -> torch.Tensor:
        return (model(batch["x"]) - batch["y"]) ** 2

    train, val = make_data()
    with pytest.raises(TapecastError, match="scalar"):
        fit(make_model(), per_sample, train, val, BASE, run_dir=tmp_path, progress=False)


def test_fit_when_loss_is_nan_raises(tmp_path: Path) -> None:
    train, val = make_data()
    with pytest.raises(TapecastError, match="non-finite"):
        fit(make_model(), lambda m, b, g: torch.tensor(float("nan"), requires_grad=True),
            train, val, BASE, run_dir=tmp_path, progress=False)


def test_fit_when_data_is_sequence_of_dicts_trains(tmp_path: Path) -> None:
    train, val = make_data()
    rows = [{"x": train["x"][i], "y": train["y"][i]} for i in range(len(train["x"]))]
    result = fit(make_model(), loss_fn, rows, val, dataclasses.replace(BASE, max_steps=3),
                 run_dir=tmp_path, progress=False)
    assert result.step == 3 and len(as_dataset(rows)) == 61


def test_fit_when_max_epochs_ends_run_counts_steps_per_epoch(tmp_path: Path) -> None:
    train, val = make_data()  # 61 samples in batches of 8: 8 steps per epoch
    config = dataclasses.replace(BASE, max_steps=None, max_epochs=2, eval_every="epoch")
    result = fit(make_model(), loss_fn, train, val, config, run_dir=tmp_path, progress=False)
    assert (result.step, result.epoch) == (16, 2)
    assert [r["step"] for r in _eval_rows(tmp_path)] == [8, 16]


def test_tensor_dict_dataset_when_lengths_differ_raises() -> None:
    with pytest.raises(TapecastError, match="first dimension"):
        as_dataset({"x": torch.zeros(3, 2), "y": torch.zeros(4)})


def test_fit_when_model_came_in_eval_mode_leaves_in_eval_mode(tmp_path: Path) -> None:
    train, val = make_data()
    model = make_model().eval()
    fit(model, loss_fn, train, val, dataclasses.replace(BASE, max_steps=2), run_dir=tmp_path,
        progress=False)
    assert not model.training


def _scalar_fit(tmp_path: Path, **changes: Any) -> tuple[nn.Module, dict[int, float]]:
    """theta walks from 0 towards 1 (train target); validation targets 0.3; eval every step."""
    train, val = {"y": torch.ones(4, 1)}, {"y": torch.full((4, 1), 0.3)}
    config = TrainConfig(lr=0.05, batch_size=4, max_steps=20, max_epochs=None, ema_decay=0.5,
                         ema_warmup=False, eval_every=1, grad_clip=None, weight_decay=0.0)
    thetas: dict[int, float] = {}
    model = _scalar_model()

    def record(event: TrainEvent) -> None:
        if event.kind == "eval":
            thetas[event.step] = float(model.theta.detach())

    fit(model, _to_target, train, val, dataclasses.replace(config, **changes),
        run_dir=tmp_path, progress=False, callbacks=[record], restore_best=False)
    return model, thetas


@pytest.mark.parametrize("changes", [{"ema_decay": None}, {"validate_with_ema": False}])
def test_fit_when_ema_off_or_not_validated_best_holds_trained_weights(
        tmp_path: Path, changes: dict[str, Any]) -> None:
    _, thetas = _scalar_fit(tmp_path, **changes)
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["weights"] == "trained"
    saved = load_file(str(tmp_path / "best" / "model.safetensors"))["theta"].item()
    assert saved == pytest.approx(thetas[best["step"]], abs=1e-7)
    assert best["val_loss"] == pytest.approx((thetas[best["step"]] - 0.3) ** 2, rel=1e-5)
    assert (tmp_path / "last" / "ema.safetensors").exists() == ("ema_decay" not in changes)


def test_fit_when_ema_validated_best_holds_the_ema_not_the_trained_weights(
        tmp_path: Path) -> None:
    _, thetas = _scalar_fit(tmp_path)
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    saved = load_file(str(tmp_path / "best" / "model.safetensors"))["theta"].item()
    assert best["weights"] == "ema"
    assert saved != pytest.approx(thetas[best["step"]], abs=1e-4)  # the EMA lags the weights
    assert best["val_loss"] == pytest.approx((saved - 0.3) ** 2, rel=1e-5)


def test_fit_when_last_is_unreadable_raises_instead_of_starting_over(tmp_path: Path) -> None:
    _fit(tmp_path, dataclasses.replace(BASE, max_steps=3))
    (tmp_path / "last" / "state.json").unlink()
    with pytest.raises(TapecastError, match="resume=False"):
        _fit(tmp_path)
    _fit(tmp_path, dataclasses.replace(BASE, max_steps=3), resume=False)
    (tmp_path / "last" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(TapecastError, match="readable safetensors"):
        _fit(tmp_path)


def test_fit_when_a_crash_left_only_the_old_last_resumes_from_it(tmp_path: Path) -> None:
    _fit(tmp_path / "run", dataclasses.replace(BASE, max_steps=6))
    os.replace(tmp_path / "run" / "last", tmp_path / "run" / ".last.4242.old")  # mid-swap
    train, val = make_data()
    result = fit(make_model(), loss_fn, train, val, BASE, run_dir=tmp_path / "run",
                 progress=False)
    assert result.resumed_from == 6 and result.step == 14
    _fit(tmp_path / "straight")
    _assert_bitwise_equal(_last_tensors(tmp_path / "straight"), _last_tensors(tmp_path / "run"))

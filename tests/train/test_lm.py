"""tapecast.train with a decoder language model: token windows, random-window sampling,
token-weighted losses (LossOutput), perplexity and accuracy, parameter groups, exact resume."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tapecast.core.errors import TapecastError
from tapecast.train import (
    LossOutput,
    RandomWindows,
    TokenWindows,
    TrainConfig,
    TrainEvent,
    fit,
)
from tests.train.tiny_lm import IGNORE, VOCAB, TinyLM, lm_loss, pattern_stream

WINDOW = 16
LM = TrainConfig(lr=1e-2, weight_decay=0.1, weight_decay_on="matrices", betas=(0.9, 0.95),
                 batch_size=8, max_steps=30, max_epochs=None, grad_clip=1.0, ema_decay=None,
                 eval_every=10, log_every=10, seed=5, val_batch_size=8, max_val_batches=4)


def _data() -> tuple[TokenWindows, TokenWindows]:
    stream = pattern_stream(3000)
    train = TokenWindows(stream[:2400], WINDOW)  # every offset; sampled at random
    val = TokenWindows(stream[2400:], WINDOW, stride=WINDOW)  # consecutive windows
    return train, val


def _rows(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def test_fit_when_tiny_lm_trains_on_random_windows_perplexity_falls_far_below_uniform(
        tmp_path: Path) -> None:
    train, val = _data()
    events: list[TrainEvent] = []
    result = fit(TinyLM(), lm_loss, train, val, LM, run_dir=tmp_path, progress=False,
                 sampler=RandomWindows(epoch_steps=20), callbacks=[events.append])
    evals = _rows(tmp_path, "eval")
    assert [r["step"] for r in evals] == [10, 20, 30]
    for row in evals:
        assert row["val_perplexity"] == pytest.approx(math.exp(row["val_loss"]))
        assert {"train_accuracy", "train_perplexity", "val_accuracy"} <= set(row)
    assert evals[-1]["val_perplexity"] < VOCAB / 100  # uniform guessing scores VOCAB
    assert evals[-1]["val_perplexity"] < evals[0]["val_perplexity"] / 10
    assert evals[-1]["val_accuracy"] > 0.5  # the cycle is learnt, not only its unigram
    assert result.best_val_metrics["perplexity"] == min(r["val_perplexity"] for r in evals)
    assert "train_perplexity" in _rows(tmp_path, "train")[0]
    steps = [e for e in events if e.kind == "step"]
    assert steps[0].metrics["perplexity"] == pytest.approx(math.exp(steps[0].train_loss))
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["weights"] == "trained" and set(best["metrics"]) == {"accuracy", "perplexity"}


def test_fit_when_val_batches_capped_validates_on_that_many_batches(tmp_path: Path) -> None:
    train, val = _data()  # 37 validation windows: 5 batches of 8
    seen: list[int] = []

    def counting(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                 generator: torch.Generator) -> LossOutput:
        if not model.training:
            seen.append(len(batch["inputs"]))
        return lm_loss(model, batch, generator)

    config = dataclasses.replace(LM, max_steps=2, eval_every=2)
    fit(TinyLM(), counting, train, val, config, run_dir=tmp_path / "cap", progress=False)
    assert seen == [8, 8, 8, 8]
    seen.clear()
    fit(TinyLM(), counting, train, val, dataclasses.replace(config, max_val_batches=None),
        run_dir=tmp_path / "all", progress=False)
    assert seen == [8, 8, 8, 8, 5]


def _padded_batch() -> dict[str, torch.Tensor]:
    """4 sequences whose targets keep 2, 16, 3 and 16 tokens (the rest are padding)."""
    stream = pattern_stream(400, seed=1)
    windows = TokenWindows(stream, WINDOW, stride=WINDOW).batch(torch.arange(4))
    targets = windows["targets"].clone()
    for row, kept in enumerate((2, 16, 3, 16)):
        targets[row, kept:] = IGNORE
    return {"inputs": windows["inputs"], "targets": targets}


def _first_moment(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_file(str(run_dir / "last" / "optimizer.safetensors"))
    return {k: v for k, v in state.items() if k.endswith("/exp_avg")}  # m1 = (1 - b1) g


@pytest.mark.parametrize("shards", [2, 4])
def test_fit_when_shards_hold_different_token_counts_gradient_equals_one_batch(
        tmp_path: Path, shards: int) -> None:
    # shards of the strided split keep 2+3 and 16+16 tokens (2 shards), or 2, 16, 3, 16 (4)
    config = dataclasses.replace(LM, batch_size=4, max_steps=1, grad_clip=None,
                                 max_val_batches=None)
    moments = []
    for n_shards in (1, shards):
        run = tmp_path / str(n_shards)
        fit(TinyLM(), lm_loss, _padded_batch(), None, dataclasses.replace(
            config, batch_shards=n_shards), run_dir=run, progress=False)
        moments.append(_first_moment(run))
        loss = _rows(run, "train")[0]["train_loss"]
        if n_shards == 1:
            whole = loss
    assert loss == pytest.approx(whole, rel=1e-6)
    for key, value in moments[0].items():
        torch.testing.assert_close(moments[1][key], value, rtol=1e-4, atol=1e-9)


def test_fit_when_loss_weighs_samples_instead_of_tokens_gradient_differs(tmp_path: Path) -> None:
    def per_sample_weight(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                          generator: torch.Generator) -> torch.Tensor:
        return lm_loss(model, batch, generator).loss  # a plain scalar: weight = samples

    config = dataclasses.replace(LM, batch_size=4, max_steps=1, grad_clip=None)
    moments = []
    for n_shards in (1, 2):
        run = tmp_path / str(n_shards)
        fit(TinyLM(), per_sample_weight, _padded_batch(), None,
            dataclasses.replace(config, batch_shards=n_shards), run_dir=run, progress=False)
        moments.append(_first_moment(run))
    assert any(not torch.allclose(moments[1][k], v, rtol=1e-3) for k, v in moments[0].items())


def test_fit_when_every_token_is_masked_raises(tmp_path: Path) -> None:
    batch = _padded_batch()
    batch["targets"][:] = IGNORE
    with pytest.raises(TapecastError, match="sum to"):
        fit(TinyLM(), lm_loss, batch, None, dataclasses.replace(LM, batch_size=4, max_steps=1),
            run_dir=tmp_path, progress=False)


def _last_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return {f"{name}:{k}": v for name in ("model", "optimizer")
            for k, v in load_file(str(run_dir / "last" / f"{name}.safetensors")).items()}


def test_fit_when_random_windows_run_interrupted_then_resumed_matches_straight_run(
        tmp_path: Path) -> None:
    train, val = _data()
    config = dataclasses.replace(LM, max_steps=7, eval_every=3, ema_decay=0.9)
    sampler = RandomWindows(epoch_steps=4)  # steps 5..7 belong to epoch 1

    def stop_at(step: int) -> Any:
        def callback(event: TrainEvent) -> None:
            if event.kind == "step" and event.step == step:
                raise KeyboardInterrupt
        return callback

    fit(TinyLM(), lm_loss, train, val, config, run_dir=tmp_path / "straight", progress=False,
        sampler=sampler)
    with pytest.raises(KeyboardInterrupt):
        fit(TinyLM(), lm_loss, train, val, config, run_dir=tmp_path / "resumed", progress=False,
            sampler=sampler, callbacks=[stop_at(5)])
    fit(TinyLM(), lm_loss, train, val, config, run_dir=tmp_path / "resumed", progress=False,
        sampler=sampler)
    straight, resumed = _last_tensors(tmp_path / "straight"), _last_tensors(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(v, resumed[k]) for k, v in straight.items())

    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]

    assert strip(_rows(tmp_path / "straight", "eval")) == strip(_rows(tmp_path / "resumed",
                                                                      "eval"))
    with pytest.raises(TapecastError, match="sampler"):
        fit(TinyLM(), lm_loss, train, val, dataclasses.replace(config, max_steps=9),
            run_dir=tmp_path / "resumed", progress=False, sampler=RandomWindows(epoch_steps=3))

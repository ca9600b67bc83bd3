"""tapecast.train.device: device and precision resolution, the bf16 speed probe, CUDA paths."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tapecast.core.config import ConfigError
from tapecast.core.errors import TapecastError
from tapecast.train import TrainConfig, fit
from tapecast.train import device as dev
from tapecast.train.config import Precision
from tests.train.ddp_worker import loss_fn, make_data, make_model

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
BASE = TrainConfig(lr=2e-2, batch_size=8, max_steps=4, max_epochs=None, ema_decay=0.9,
                   eval_every=2, seed=3)


@pytest.fixture
def cpu_flags(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[frozenset[str]]]:
    """Set the CPU flags the probe sees (``box[0]``); the probe's cache is cleared around."""
    box = [frozenset({"avx2"})]
    monkeypatch.setattr(dev, "cpu_flags", lambda: box[0])
    dev.bf16_is_fast.cache_clear()
    yield box
    dev.bf16_is_fast.cache_clear()


@pytest.mark.parametrize(("flags", "fast"), [({"avx2", "fma"}, False),
                                             ({"avx512f", "avx512_bf16"}, True),
                                             ({"amx_tile", "amx_bf16"}, True)])
def test_bf16_is_fast_when_cpu_has_amx_or_avx512_bf16(cpu_flags: list[frozenset[str]],
                                                      flags: set[str], fast: bool) -> None:
    cpu_flags[0] = frozenset(flags)
    assert dev.bf16_is_fast() is fast
    expected = "bf16" if fast else "fp32"
    assert dev.resolve_precision("auto", torch.device("cpu")) == expected


def test_cpu_flags_when_cpuinfo_lists_flags_reads_the_first_cpu(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\n"
                    "flags\t\t: fpu\n")
    assert dev.cpu_flags(info) == {"fpu", "avx2", "amx_bf16"}
    assert dev.cpu_flags(tmp_path / "missing") == frozenset()


def test_resolve_precision_when_fp16_on_cpu_raises_and_explicit_choices_stay() -> None:
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^TrainConfig\.precision: 'fp16' needs a CUDA device "
                                          r"\(its gradient scaler is CUDA only\); use 'bf16' or "
                                          r"'fp32' on a CPU$"):
        dev.resolve_precision("fp16", cpu)
    assert dev.resolve_precision("bf16", cpu) == "bf16"
    assert dev.resolve_precision("fp32", cpu) == "fp32"


def test_resolve_precision_when_bf16_on_a_gpu_without_it_names_the_config_field(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(ConfigError, match=r"^TrainConfig\.precision: cuda:0 has no bfloat16; "
                                          r"use 'fp16' or 'fp32'$"):
        dev.resolve_precision("bf16", torch.device("cuda", 0))


def test_fit_when_fp16_asked_on_cpu_raises_before_training(tmp_path: Path) -> None:
    train, val = make_data()
    with pytest.raises(TapecastError, match=r"^TrainConfig\.precision: 'fp16' needs"):
        fit(make_model(), loss_fn, train, val, dataclasses.replace(BASE, precision="fp16"),
            run_dir=tmp_path, progress=False)


def test_resolve_device_when_cpu_or_auto_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.resolve_device("cpu") == torch.device("cpu")
    assert dev.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^TrainConfig\.device: 'cuda' asked for, but this "
                                          r"torch build sees no CUDA device; use 'cpu' or 'auto'$"):
        dev.resolve_device("cuda")
    assert dev.backend_for(torch.device("cpu")) == "gloo"
    assert dev.backend_for(torch.device("cuda", 1)) == "nccl"


def test_resolve_device_when_torchrun_gives_each_rank_its_local_gpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert dev.resolve_device("cuda", local_rank=2, distributed=True) == torch.device("cuda", 2)
    assert dev.resolve_device("auto", local_rank=3, distributed=True) == torch.device("cuda", 3)
    assert dev.resolve_device("cuda:1", local_rank=2, distributed=True) == torch.device("cuda", 1)
    assert dev.resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match=r"^TrainConfig\.device: cuda:7 asked for, but only 4 "
                                          r"CUDA device\(s\) are visible$"):
        dev.resolve_device("cuda:7")


def test_fit_when_precision_auto_on_cpu_records_what_it_chose(
        tmp_path: Path, cpu_flags: list[frozenset[str]]) -> None:
    train, val = make_data()
    result = fit(make_model(), loss_fn, train, val, dataclasses.replace(BASE, precision="auto"),
                 run_dir=tmp_path, progress=False)
    assert (result.precision, result.device) == ("fp32", "cpu")  # the flags say avx2 only


@CUDA
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_fit_when_on_cuda_trains_on_the_gpu_in_each_precision(tmp_path: Path,
                                                              precision: Precision) -> None:
    train, val = make_data()
    model = make_model()
    config = dataclasses.replace(BASE, device="cuda", precision=precision, max_steps=6)
    result = fit(model, loss_fn, train, val, config, run_dir=tmp_path, progress=False)
    assert next(model.parameters()).device.type == "cuda"
    assert result.precision == precision and result.best_val_loss is not None
    assert result.best_val_loss < 10.0
    if precision == "fp16":
        state = json.loads((tmp_path / "last" / "state.json").read_text())
        assert state["scaler"]["scale"] > 0  # the gradient scaler's state is checkpointed


@CUDA
def test_fit_when_on_cuda_resumes_to_the_straight_run(tmp_path: Path) -> None:
    from tests.train.test_loop import _interrupt_at, _last_tensors

    train, val = make_data()
    config = dataclasses.replace(BASE, device="cuda", max_steps=8)
    fit(make_model(), loss_fn, train, val, config, run_dir=tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), loss_fn, train, val, config, run_dir=tmp_path / "b", progress=False,
            callbacks=[_interrupt_at(3)])
    fit(make_model(), loss_fn, train, val, config, run_dir=tmp_path / "b", progress=False)
    a, b = _last_tensors(tmp_path / "a"), _last_tensors(tmp_path / "b")
    for key, value in a.items():  # GPU kernels need not be bitwise reproducible
        torch.testing.assert_close(b[key], value, rtol=1e-5, atol=1e-7)

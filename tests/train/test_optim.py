"""tapecast.train.optim: AdamW parameter groups (no decay on biases, norms, embeddings)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from tapecast.train import TrainConfig, make_optimizer, parameter_groups
from tapecast.train.optim import no_decay_names
from tests.train.tiny_lm import TinyLM

MATRICES = TrainConfig(weight_decay=0.1, weight_decay_on="matrices", betas=(0.8, 0.95))


def _decay_of(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    by_id = {id(p): group["weight_decay"] for group in optimizer.param_groups
             for p in group["params"]}
    return {name: by_id[id(p)] for name, p in model.named_parameters()}


def test_make_optimizer_when_matrices_decays_only_weight_matrices() -> None:
    model = TinyLM(n_layers=1)
    optimizer = make_optimizer(model, MATRICES)
    decay = _decay_of(model, optimizer)
    decayed = sorted(name for name, wd in decay.items() if wd > 0)
    assert decayed == ["blocks.layers.0.linear1.weight", "blocks.layers.0.linear2.weight",
                       "blocks.layers.0.self_attn.in_proj_weight",
                       "blocks.layers.0.self_attn.out_proj.weight"]
    assert all(decay[k] == 0.1 for k in decayed)
    for name in ("tokens.weight", "positions.weight", "norm.weight", "norm.bias",
                 "blocks.layers.0.norm1.weight", "blocks.layers.0.linear1.bias"):
        assert decay[name] == 0.0, name  # embeddings (tied head included), norms, biases
    assert all(group["betas"] == (0.8, 0.95) for group in optimizer.param_groups)


def test_make_optimizer_when_all_uses_one_group_with_the_decay() -> None:
    model = TinyLM()
    optimizer = make_optimizer(model, dataclasses.replace(MATRICES, weight_decay_on="all"))
    assert len(optimizer.param_groups) == 1
    assert set(_decay_of(model, optimizer).values()) == {0.1}


def test_no_decay_names_when_model_lists_names_and_freezes_some_honours_both() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.zeros(4, 3))  # a learned position table, 2-D
            self.proj = nn.Linear(3, 3)
            self.frozen = nn.Linear(3, 3)
            self.frozen.requires_grad_(False)

        def no_weight_decay(self) -> set[str]:
            return {"table"}

    model = Net()
    assert no_decay_names(model) == {"table", "proj.bias", "frozen.bias"}
    groups = parameter_groups(model, MATRICES)
    assert [len(g["params"]) for g in groups] == [1, 2]  # proj.weight | table, proj.bias
    assert groups[0]["params"][0] is model.proj.weight

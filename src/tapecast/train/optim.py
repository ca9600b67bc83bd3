"""The optimiser of a fit: AdamW over one or two parameter groups.

With ``TrainConfig.weight_decay_on="matrices"`` the parameters are split as nanoGPT does
(``GPT.configure_optimizers``): weight matrices (every trained parameter with two or more
dimensions: Linear and attention projections, convolution kernels) decay; biases,
normalisation weights (all 1-D), embedding tables and the names a model returns from an
optional ``no_weight_decay()`` method (timm's convention, e.g. a learned position table) do not.
Decaying an embedding pulls the rows of rare tokens to zero, and decaying a norm's gain fights
the scale the network needs, hence the split (Loshchilov & Hutter 2019, arXiv 1711.05101, for
the decoupled decay itself). ``"all"`` decays every parameter (one group).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from tapecast.train.config import TrainConfig

_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


def _owners(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """``(full name, owning module, local name)`` of every parameter, tied ones repeated."""
    for module_name, module in model.named_modules(remove_duplicate=False):
        for local, _ in module.named_parameters(recurse=False):
            yield (f"{module_name}.{local}" if module_name else local), module, local


def no_decay_names(model: nn.Module) -> set[str]:
    """Names (as in ``model.named_parameters()``) of the parameters that get no weight decay.

    A tied parameter (one tensor under several names) gets none if any of its owners is an
    embedding.
    """
    listed = getattr(model, "no_weight_decay", None)
    names = set(listed()) if callable(listed) else set()
    embedded = {id(getattr(module, local)) for _, module, local in _owners(model)
                if isinstance(module, _EMBEDDINGS)}
    for name, p in model.named_parameters():
        if p.dim() < 2 or id(p) in embedded:
            names.add(name)
    return names


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trained parameters (module docstring).

    Returns
    -------
    list of dict
        ``[{"params": [...]}]`` for ``"all"``; ``[{"params": decayed, "weight_decay": wd},
        {"params": not decayed, "weight_decay": 0.0}]`` for ``"matrices"`` (empty groups left
        out).
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if config.weight_decay_on == "all":
        return [{"params": [p for _, p in named]}]
    exempt = no_decay_names(model)
    decay = [p for name, p in named if name not in exempt]
    keep = [p for name, p in named if name in exempt]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": keep, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with ``config``'s rate, betas, eps and decay over :func:`parameter_groups`."""
    groups = parameter_groups(model, config)
    if config.weight_decay_on == "all":  # one plain group: the exact optimiser of older runs
        return torch.optim.AdamW(groups[0]["params"], lr=config.lr, betas=config.betas,
                                 eps=config.eps, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps,
                             weight_decay=config.weight_decay)

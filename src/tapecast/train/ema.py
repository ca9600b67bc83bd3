"""Exponential moving average (EMA) of a model's weights.

After every optimiser step ``n`` (1-based count of updates so far) each floating-point parameter
``θ`` updates its shadow ``θ̄`` by

    θ̄ ← d_n · θ̄ + (1 − d_n) · θ,     d_n = min(d, (1 + n) / (10 + n))  (warm-up on)
                                     d_n = d                         (warm-up off)

the Polyak–Ruppert averaging of iterates with exponential forgetting (Polyak & Juditsky 1992;
used for diffusion models by Song & Ermon 2020, arXiv 2006.09011, and Ho et al. 2020,
arXiv 2006.11239, App. B). The warm-up rule is the one of TensorFlow's
``tf.train.ExponentialMovingAverage(num_updates=...)``. Buffers (e.g. normalisation statistics)
are not averaged: the model's own buffers are used as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from tapecast.core.errors import TapecastError


class EMA:
    """Shadow copies of a model's floating-point parameters, averaged after each step.

    Parameters
    ----------
    model : nn.Module
        The model whose parameters are tracked; the shadows start as copies of them.
    decay : float
        ``d`` in [0, 1): the weight of the old average.
    warmup : bool
        Use ``min(d, (1 + n) / (10 + n))`` at update ``n``.
    """

    def __init__(self, model: nn.Module, decay: float, *, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise TapecastError(f"EMA decay: expected a number in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in _tracked(model)
        }

    def current_decay(self) -> float:
        """``d_n`` of the next update (``n`` = updates so far + 1)."""
        n = self.num_updates + 1
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the model's current parameters into the shadows (one optimiser step)."""
        d = self.current_decay()
        for name, p in _tracked(model):
            self.shadow[name].lerp_(p.detach(), 1.0 - d)  # θ̄ + (1-d)(θ - θ̄) = dθ̄ + (1-d)θ
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the shadows."""
        for name, p in _tracked(model):
            p.copy_(self.shadow[name])

    @contextlib.contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """Swap the shadows into ``model`` for the block, then restore its own weights exactly."""
        backup = {name: p.detach().clone() for name, p in _tracked(model)}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in _tracked(model):
                    p.copy_(backup[name])

    def state_dict(self) -> dict[str, object]:
        """``{"shadow": {name: tensor}, "num_updates": int, "decay": float, "warmup": bool}``."""
        return {"shadow": dict(self.shadow), "num_updates": self.num_updates,
                "decay": self.decay, "warmup": self.warmup}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore shadows and counters from :meth:`state_dict` (names must match the model).

        Raises
        ------
        TapecastError
            When the parameter names differ from the tracked ones.
        """
        shadow = state["shadow"]
        assert isinstance(shadow, dict)
        if set(shadow) != set(self.shadow):
            missing = sorted(set(self.shadow) - set(shadow))
            extra = sorted(set(shadow) - set(self.shadow))
            raise TapecastError(f"EMA state does not fit the model: missing {missing[:3]}, "
                                f"unexpected {extra[:3]}")
        with torch.no_grad():
            for name, value in shadow.items():
                self.shadow[name].copy_(value)
        self.num_updates = int(state["num_updates"])  # type: ignore[call-overload]
        self.decay = float(state["decay"])  # type: ignore[arg-type]
        self.warmup = bool(state["warmup"])


def _tracked(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """Floating-point parameters, each once (tied weights share one name)."""
    for name, p in model.named_parameters():
        if p.is_floating_point():
            yield name, p

"""Chronos-Bolt zero-shot quantile forecasts per channel, turned into samples.

Chronos-Bolt (Ansari et al. 2024, "Chronos: Learning the Language of Time Series", TMLR; the
Bolt variant patches the context and decodes quantiles directly) forecasts each channel's context
series on its own (univariate, zero-shot, no training on our data). The model returns the
quantiles ``q(tau_1) <= ... <= q(tau_Q)`` at its training levels (0.1, ..., 0.9 for the
released models) for every horizon step. Samples are drawn by inverse transform: a level
``u ~ U(0, 1)`` per sample, channel and step, and the value of the piecewise-linear quantile
function through ``(tau_j, q_j)`` at ``u``. Outside ``[tau_1, tau_Q]`` the function is

* ``tails="linear"`` (default): extended with the slope of its first / last segment, so the
  tails reach one segment width beyond ``q(tau_1)`` and ``q(tau_Q)`` (a bounded, light tail);
* ``tails="clamp"``: held at ``q(tau_1)`` / ``q(tau_Q)``, a point mass of ``tau_1`` at each end.

Crossing quantiles are sorted first (monotone rearrangement, Chernozhukov, Fernández-Val and
Galichon 2010, Econometrica 78(3)). Draws are independent across channels and horizon steps:
the forecast has Chronos' marginals and no joint structure.

The model is loaded with ``BaseChronosPipeline.from_pretrained(model)`` (a hub id such as
``amazon/chronos-bolt-tiny`` or a local checkpoint folder) when the baseline is fitted. When it
cannot be loaded (offline, no local copy) ``fit`` raises :class:`ModelUnavailableError`, a
:class:`~tapecast.core.errors.TapecastError` whose message starts with ``"n/a offline:"``, for
reports to show as ``n/a offline``. NaN in a context is passed to Chronos, which masks it; a
channel with no defined context value is filled with the training mean.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models.base import Baseline, BaselineConfig, ChannelStats, TrainingWindows, register


class ModelUnavailableError(TapecastError):
    """A pretrained model could not be loaded (message starts with ``"n/a offline:"``)."""


@dataclass(frozen=True)
class ChronosConfig(BaselineConfig):
    """Options of :class:`ChronosBolt`.

    Parameters
    ----------
    model : str
        Hub id (``amazon/chronos-bolt-{tiny,mini,small,base}``) or a local checkpoint folder.
    tails : {"linear", "clamp"}
        Quantile function beyond the model's outermost levels (module docstring).
    batch_size : int
        Series per forward pass.
    n_threads : int or None
        torch threads during prediction (None: torch's current setting, capped at the CPU count).
    local_files_only : bool
        Never contact the hub (fail fast when the model is not cached).
    """

    model: str = "amazon/chronos-bolt-tiny"
    tails: Literal["linear", "clamp"] = "linear"
    batch_size: int = 512
    n_threads: int | None = None
    local_files_only: bool = False

    def validate(self) -> None:
        self.check_choice("tails", ("linear", "clamp"))
        self.check_range("batch_size", low=1)
        self.check_range("n_threads", low=1)  # None passes


def load_pipeline(model: str, local_files_only: bool = False) -> Any:
    """``ChronosBoltPipeline`` for ``model`` on the CPU in float32.

    Raises
    ------
    ModelUnavailableError
        When the checkpoint cannot be loaded ("n/a offline: ...").
    TapecastError
        When it loads but is not a Chronos-Bolt model.
    """
    import torch
    from chronos import BaseChronosPipeline, ChronosBoltPipeline  # type: ignore[import-untyped]

    if (os.path.isabs(model) or model.startswith(".")) and not os.path.isdir(model):
        raise ModelUnavailableError(f"n/a offline: no Chronos-Bolt checkpoint folder at '{model}'")
    try:
        pipeline = BaseChronosPipeline.from_pretrained(
            model, device_map="cpu", dtype=torch.float32, local_files_only=local_files_only)
    except Exception as exc:  # hub, file-system and config errors alike mean "not available"
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelUnavailableError(
            f"n/a offline: cannot load Chronos-Bolt model '{model}' ({detail})") from exc
    if not isinstance(pipeline, ChronosBoltPipeline):
        raise TapecastError(f"chronos: '{model}' is a {type(pipeline).__name__}, "
                            "only Chronos-Bolt checkpoints are supported")
    return pipeline


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run torch with ``n`` threads (None: current setting, capped at the CPU count); restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(n or before, os.cpu_count() or 1))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def quantile_samples(quantiles: NDArray[np.float64], levels: NDArray[np.float64],
                     u: NDArray[np.float64], tails: str) -> NDArray[np.float64]:
    """Evaluate piecewise-linear quantile functions at levels ``u``.

    Parameters
    ----------
    quantiles : ndarray, shape (..., Q)
        Quantile values at ``levels`` (sorted along the last axis here).
    levels : ndarray, shape (Q,)
        Increasing levels in (0, 1), Q >= 2.
    u : ndarray, shape (S, ...)
        Levels to evaluate, each in [0, 1].
    tails : {"linear", "clamp"}

    Returns
    -------
    ndarray, float64, shape (S, ...)
    """
    q = np.sort(quantiles, axis=-1)
    if tails == "clamp":
        u = np.clip(u, levels[0], levels[-1])
    j = np.clip(np.searchsorted(levels, u, side="right") - 1, 0, levels.size - 2)  # segment
    lo = np.take_along_axis(q[None], j[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(q[None], j[..., None] + 1, axis=-1)[..., 0]
    frac = (u - levels[j]) / (levels[j + 1] - levels[j])
    return np.asarray(lo + frac * (hi - lo))


@register
class ChronosBolt(Baseline[ChronosConfig]):
    """Chronos-Bolt quantiles per channel, sampled by quantile interpolation."""

    name = "chronos"
    config_class = ChronosConfig

    def _fit(self, windows: TrainingWindows, seed: int) -> None:
        self.pipeline = load_pipeline(self.config.model, self.config.local_files_only)
        self.levels = np.asarray(self.pipeline.quantiles, dtype=np.float64)  # (Q,)

    def predict_quantiles(self, context: NDArray[np.float64], horizon: int) -> NDArray[np.float64]:
        """Chronos quantiles of each series, context (N, C) -> (N, H, Q)."""
        import torch

        out = []
        with torch_threads(self.config.n_threads), torch.inference_mode():
            for start in range(0, context.shape[0], self.config.batch_size):
                chunk = torch.as_tensor(context[start:start + self.config.batch_size],
                                        dtype=torch.float32)
                q, _ = self.pipeline.predict_quantiles(chunk, prediction_length=horizon,
                                                       quantile_levels=self.levels.tolist())
                out.append(q.numpy().astype(np.float64))
        return np.concatenate(out, axis=0)

    def _draw(self, batch: ForecastBatch, n_samples: int, rng: np.random.Generator,
              stats: ChannelStats) -> NDArray[np.float64]:
        b, k, h = batch.target.shape
        ctx = np.where(np.isfinite(batch.context), batch.context, np.nan)  # (B, K, C)
        empty = ~np.isfinite(ctx).any(axis=2)  # (B, K)
        ctx[empty] = stats.mean[np.nonzero(empty)[1], None]
        q = self.predict_quantiles(ctx.reshape(b * k, -1), h).reshape(b, k, h, -1)  # (B,K,H,Q)
        u = rng.random((n_samples, b, k, h))
        draws = quantile_samples(q, self.levels, u, self.config.tails)  # (S, B, K, H)
        return draws.transpose(1, 0, 2, 3)  # (B, S, K, H)

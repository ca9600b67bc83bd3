"""Model space of the price-distribution forecaster: the normalizer and the training origins.

**Context.** Each of the K channels is first mapped by a fixed transform that tames its tails
(:data:`TRANSFORMS`: realized variances ``log(rv + 1e-12)``, staleness and spread ``log1p``,
the rest unchanged), then z-scored with the mean and standard deviation of the training
contexts and clipped at ±``clip``. NaN (a spread on a quote-less day) stays NaN: the network
masks it.

**Target.** The 30-s log return (or each step of the return path) is divided by its training
standard deviation s_h, so the diffusion runs on x0 = r / s with unit scale; sampling multiplies
back.

Both are fitted on training origins only and saved as ``normalization.json`` beside the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch, OriginSource
from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text

KIND: Final = "tapecast.price-normalizer"
RV_FLOOR: Final = 1e-12
FIT_ORIGINS: Final = 8192  # origins whose contexts give the channel statistics
CHUNK: Final = 8192


def channel_transform(name: str) -> str:
    """The fixed transform of a context channel, by name (see :data:`TRANSFORMS`)."""
    if name.startswith("rv_"):
        return "log_rv"
    if name in ("staleness_s", "spread_bps"):
        return "log1p"
    return "identity"


TRANSFORMS: Final = ("identity", "log1p", "log_rv")


def _apply(transform: str, x: NDArray[np.float64]) -> NDArray[np.float64]:
    if transform == "log_rv":
        return np.log(np.maximum(x, 0.0) + RV_FLOOR)
    if transform == "log1p":
        return np.log1p(np.maximum(x, 0.0))
    return x


@dataclass(frozen=True, eq=False)
class PriceNormalizer:
    """Context z-scores and target scale, fitted on training origins.

    Attributes
    ----------
    channels : tuple of str, length K
    transforms : tuple of str, length K
    mean, std : ndarray, float64, shape (K,)
        Of the transformed training contexts.
    target_names : tuple of str
    target_scale : ndarray, float64, shape (H,)
        Standard deviation of each horizon step of the training targets.
    clip : float
    """

    channels: tuple[str, ...]
    transforms: tuple[str, ...]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    target_names: tuple[str, ...]
    target_scale: NDArray[np.float64]
    clip: float

    @classmethod
    def fit(cls, data: OriginSource, clip: float = 10.0, seed: int = 0) -> PriceNormalizer:
        """Statistics of ``data``'s contexts (up to :data:`FIT_ORIGINS` origins, drawn with
        ``seed``) and of all its targets."""
        n = len(data)
        if n == 0:
            raise TapecastError("cannot fit the price normalizer on zero training origins")
        pick = np.sort(np.random.default_rng(seed).choice(n, min(n, FIT_ORIGINS),
                                                          replace=False))
        probe = data.batch(pick)
        transforms = tuple(channel_transform(c) for c in probe.channels)
        z = _transform(probe.context, transforms)  # (B, K, C)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(z, axis=(0, 2))
            std = np.nanstd(z, axis=(0, 2))
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        targets = np.concatenate([data.batch(np.arange(a, min(a + CHUNK, n))).target[:, 0]
                                  for a in range(0, n, CHUNK)])  # (N, H)
        scale = np.nanstd(targets, axis=0)
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise TapecastError("the training targets have no spread (every return equal or "
                                "undefined); the price model needs moving prices to learn from")
        return cls(tuple(probe.channels), transforms, mean, std, tuple(probe.target_names),
                   scale, float(clip))

    def context(self, batch: ForecastBatch) -> NDArray[np.float32]:
        """Normalized context (B, K, C), float32, NaN where undefined."""
        self._check(batch)
        z = (_transform(batch.context, self.transforms) - self.mean[:, None]) / self.std[:, None]
        out: NDArray[np.float32] = np.clip(z, -self.clip, self.clip).astype(np.float32)
        return out

    def target(self, batch: ForecastBatch) -> NDArray[np.float32]:
        """Scaled target x0 = r / s, (B, H) float32."""
        out: NDArray[np.float32] = (batch.target[:, 0] / self.target_scale).astype(np.float32)
        return out

    def _check(self, batch: ForecastBatch) -> None:
        if tuple(batch.channels) != self.channels:
            raise TapecastError(f"the price model was fitted on channels {list(self.channels)}, "
                                f"the batch has {list(batch.channels)}")
        if tuple(batch.target_names) != self.target_names or \
                batch.horizon != self.target_scale.shape[0]:
            raise TapecastError(f"the price model forecasts {list(self.target_names)} over "
                                f"{self.target_scale.shape[0]} step(s); the batch has "
                                f"{list(batch.target_names)} over {batch.horizon}")

    # persistence
    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, "channels": list(self.channels),
                "transforms": list(self.transforms), "mean": self.mean.tolist(),
                "std": self.std.tolist(), "target_names": list(self.target_names),
                "target_scale": self.target_scale.tolist(), "clip": self.clip}

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> PriceNormalizer:
        """Read ``normalization.json``; a TapecastError naming the file and field on bad input."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise TapecastError(f"{path}: missing (the model folder has no normalizer)") from None
        except (OSError, ValueError) as exc:
            raise TapecastError(f"{path}: not readable JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise TapecastError(f"{path}: not a price normalizer (kind "
                                f"{data.get('kind') if isinstance(data, dict) else None!r})")

        def field(name: str, parse: Any) -> Any:
            if name not in data:
                raise TapecastError(f"{path}: field '{name}' is missing")
            try:
                return parse(data[name])
            except (TypeError, ValueError) as exc:
                raise TapecastError(f"{path}: field '{name}' is malformed ({exc})") from None

        def strings(v: Any) -> tuple[str, ...]:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError("expected a list of strings")
            return tuple(v)

        def floats(v: Any) -> NDArray[np.float64]:
            out = np.asarray(v, dtype=np.float64)
            if out.ndim != 1 or not np.isfinite(out).all():
                raise ValueError("expected a list of finite numbers")
            return out

        channels, transforms = field("channels", strings), field("transforms", strings)
        mean, std = field("mean", floats), field("std", floats)
        targets, scale = field("target_names", strings), field("target_scale", floats)
        clip = field("clip", float)
        k = len(channels)
        for name, size in (("transforms", len(transforms)), ("mean", mean.size),
                           ("std", std.size)):
            if size != k:
                raise TapecastError(f"{path}: field '{name}' has {size} entries, one per "
                                    f"channel ({k}) expected")
        if any(t not in TRANSFORMS for t in transforms):
            raise TapecastError(f"{path}: field 'transforms' must hold {TRANSFORMS}")
        for name, values in (("std", std), ("target_scale", scale)):
            if not np.all(values > 0) or values.size == 0:
                raise TapecastError(f"{path}: field '{name}' must be > 0 everywhere")
        if not clip > 0:
            raise TapecastError(f"{path}: field 'clip' must be > 0, got {clip}")
        return cls(channels, transforms, mean, std, targets, scale, clip)


def _transform(context: NDArray[np.float64], transforms: tuple[str, ...]
               ) -> NDArray[np.float64]:
    """Each channel of (B, K, C) through its transform."""
    out = np.array(context, dtype=np.float64)
    for k, name in enumerate(transforms):
        out[:, k] = _apply(name, out[:, k])
    return out


class NormalizedPriceOrigins:
    """Training origins as tensors in model space, built per batch for :func:`tapecast.train.fit`.

    Parameters
    ----------
    data : OriginSource
    normalizer : PriceNormalizer
    permutation : ndarray of int, optional
        The SHUFFLE control: origin i's context is paired with origin ``permutation[i]``'s
        target, so the context carries no information about the target.
    """

    def __init__(self, data: OriginSource, normalizer: PriceNormalizer,
                 permutation: NDArray[np.int64] | None = None) -> None:
        self.data, self.normalizer, self.permutation = data, normalizer, permutation

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """``context`` (B, K, C) and ``target`` (B, H), float32."""
        idx = np.asarray(indices.cpu().numpy(), dtype=np.int64)
        batch = self.data.batch(idx)
        target_batch = batch if self.permutation is None else \
            self.data.batch(self.permutation[idx])
        return {"context": torch.from_numpy(self.normalizer.context(batch)),
                "target": torch.from_numpy(self.normalizer.target(target_batch))}

"""Z-scores of market-state vectors, fitted on a training slice and clipped at ±clip σ.

The seed (``../shared/seeds/score-matching-trading.txt``, "Preprocessing") z-scores each
feature and clips to ±5 std; here the mean and std come from the training rows only and are
saved as JSON beside the features, so validation, test and a live stream use the same ones.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text

__all__ = ["StateNormalizer"]


@dataclass(frozen=True)
class StateNormalizer:
    """Per-feature mean and population std (ddof 0) of the training rows, and the clip.

    z = clip((x - mean) / std, -clip, clip).
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    clip: float = 5.0

    @classmethod
    def fit(cls, table: pl.DataFrame, features: tuple[str, ...], clip: float = 5.0
            ) -> StateNormalizer:
        """Fit on ``table`` (the training rows only).

        Raises
        ------
        TapecastError
            No rows, or a feature constant over them (std 0: z undefined).
        """
        if table.height == 0:
            raise TapecastError("state normalizer: no training rows to fit on")
        x = table.select(features).to_numpy().astype(np.float64)  # (N, d)
        mean, std = x.mean(axis=0), x.std(axis=0)
        flat = [f for f, s in zip(features, std, strict=True) if not s > 0]
        if flat:
            raise TapecastError(f"state normalizer: feature(s) {flat} constant over the "
                                f"{table.height:,} training rows (std 0); give more bars")
        return cls(features, tuple(map(float, mean)), tuple(map(float, std)), clip)

    def transform(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, d) raw features in :attr:`features` order -> (N, d) clipped z-scores."""
        z = (x - np.asarray(self.mean)) / np.asarray(self.std)
        clipped: NDArray[np.float64] = np.clip(z, -self.clip, self.clip)
        return clipped

    def inverse(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, d) z-scores -> (N, d) raw features (a clipped z maps back to the clip edge)."""
        raw: NDArray[np.float64] = (np.asarray(z, dtype=np.float64) * np.asarray(self.std)
                                    + np.asarray(self.mean))
        return raw

    def transform_frame(self, table: pl.DataFrame) -> pl.DataFrame:
        """``table`` with each feature column replaced by its clipped z-score."""
        z = self.transform(table.select(self.features).to_numpy().astype(np.float64))
        return table.with_columns(pl.Series(f, z[:, k]) for k, f in enumerate(self.features))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean),
                "std": list(self.std), "clip": self.clip}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "state normalizer") -> StateNormalizer:
        try:
            out = cls(tuple(map(str, data["features"])), tuple(map(float, data["mean"])),
                      tuple(map(float, data["std"])), float(data["clip"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TapecastError(f"{where}: missing or invalid field {exc}") from None
        if not len(out.features) == len(out.mean) == len(out.std):
            raise TapecastError(f"{where}: features, mean and std differ in length")
        if not all(math.isfinite(v) for v in (*out.mean, *out.std)) or min(out.std) <= 0:
            raise TapecastError(f"{where}: mean and std must be finite, std > 0")
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write JSON atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StateNormalizer:
        """Read a file written by :meth:`save` (one-line errors)."""
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TapecastError(f"{file}: no such normalizer file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TapecastError(f"{file}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise TapecastError(f"{file}: expected a JSON object")
        return cls.from_dict(data, str(file))

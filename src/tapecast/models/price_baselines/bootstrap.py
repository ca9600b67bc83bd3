"""Block bootstrap of the context's own 1-s returns (moving blocks, Künsch 1989).

For each origin and sample, ``ceil(T / L)`` blocks of L consecutive 1-s returns are drawn
uniformly, with replacement, among the context's blocks whose L returns are all finite
(``C - L + 1`` blocks in a complete context), laid end to end and cut to T = ``max(steps)``
seconds; the forecast is their cumulative sum at the horizon steps (the 30-s return, or the
path). Blocks keep the short-range dependence of the returns (bid-ask bounce, volatility
clusters within L seconds) that an i.i.d. bootstrap would lose.

The context's own returns, not the training returns, are resampled: the forecast then follows
the volatility of the last C seconds, like the hist-vol Gaussian, without assuming a shape.
A context with no complete block draws its returns i.i.d. from the distinct training 1-s returns
of its instrument (pooled for an unseen one).

Reference: H. R. Künsch (1989), "The jackknife and the bootstrap for general stationary
observations", Ann. Statist. 17, 1217-1241.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.models.price_baselines.base import (
    PriceBaseline,
    PriceBaselineConfig,
    PriceTraining,
    context_returns,
    cumulative_at,
    per_instrument,
    register,
)

_CHUNK = 512
"""Origins drawn at a time (bounds the (B, S, T) index arrays)."""


@dataclass(frozen=True)
class PriceBootstrapConfig(PriceBaselineConfig):
    """Options of :class:`PriceBootstrap`.

    Parameters
    ----------
    block_length : int
        L, seconds per block (>= 1; at most the context length).
    """

    block_length: int = 5

    def validate(self) -> None:
        self.check_range("block_length", low=1)


def block_paths(returns: NDArray[np.float64], block_length: int, seconds: int, n_samples: int,
                rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Bootstrapped 1-s return paths of each context.

    Parameters
    ----------
    returns : ndarray, float64, shape (B, C)
        Context returns, NaN where undefined.
    block_length, seconds, n_samples : int
        L, T and S.

    Returns
    -------
    paths : ndarray, float64, shape (B, S, T)
        Increments (rows without a complete block: zeros, to be filled by the caller).
    has_block : ndarray, bool, shape (B,)
        Whether the context has a complete block.
    """
    b = returns.shape[0]
    n_blocks = -(-seconds // block_length)
    bad = np.concatenate([np.zeros((b, 1)), np.cumsum(~np.isfinite(returns), axis=1)], axis=1)
    complete = bad[:, block_length:] == bad[:, :-block_length]  # (B, C - L + 1)
    n_ok = complete.sum(axis=1)  # (B,)
    starts = np.argsort(~complete, axis=1, kind="stable")  # complete blocks' starts first
    k = (rng.random((b, n_samples * n_blocks)) * n_ok[:, None]).astype(np.intp)  # (B, S*nb)
    first = np.take_along_axis(starts, k, axis=1)  # (B, S*nb) block starts
    idx = (first[:, :, None] + np.arange(block_length)).reshape(b, n_samples, -1)  # (B, S, nb*L)
    idx = idx[:, :, :seconds]  # (B, S, T)
    filled = np.where(np.isfinite(returns), returns, 0.0)
    paths = np.take_along_axis(filled, idx.reshape(b, -1), axis=1).reshape(b, n_samples, seconds)
    return paths, n_ok > 0


@register
class PriceBootstrap(PriceBaseline[PriceBootstrapConfig]):
    """Moving-block bootstrap of the context's 1-s returns; see the module docstring."""

    name = "price-bootstrap"
    config_class = PriceBootstrapConfig

    def _fit(self, data: PriceTraining, seed: int) -> None:
        if data.returns.size == 0:
            raise TapecastError("price baseline 'price-bootstrap': the training contexts hold no "
                                "finite 1-s return")
        self.pools: dict[str, NDArray[np.float64]] = {
            str(name): data.returns_of(str(name))[0] for name in np.unique(data.return_instruments)}
        self.pooled: NDArray[np.float64] = data.returns

    def _draw(self, batch: ForecastBatch, steps: NDArray[np.int64], n_samples: int,
              rng: np.random.Generator) -> NDArray[np.float64]:
        returns = context_returns(batch)  # (B, C)
        length = self.config.block_length
        if length > returns.shape[1]:
            raise TapecastError(f"price-bootstrap: block_length {length} exceeds the context "
                                f"length {returns.shape[1]}")
        seconds = int(steps[-1])
        out = np.empty((batch.size, n_samples, steps.size))  # (B, S, H)
        for lo in range(0, batch.size, _CHUNK):
            rows = slice(lo, lo + _CHUNK)
            paths, has_block = block_paths(returns[rows], length, seconds, n_samples, rng)
            if not has_block.all():
                self._iid_fill(paths, ~has_block, batch.instruments[rows], rng)
            out[rows] = cumulative_at(paths, steps)
        return out

    def _iid_fill(self, paths: NDArray[np.float64], missing: NDArray[np.bool_],
                  instruments: NDArray[np.str_], rng: np.random.Generator) -> None:
        """Fill the paths of contexts without a complete block from the training returns."""
        where = np.flatnonzero(missing)
        for name, rows in per_instrument(instruments[where], self.pools):
            pool = self.pooled if name is None else self.pools[name]
            shape = (rows.size, *paths.shape[1:])
            paths[where[rows]] = pool[rng.integers(pool.size, size=shape)]

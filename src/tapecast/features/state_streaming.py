"""Market-state vectors one bar at a time, equal to the batch path (:func:`state_features`).

:class:`StreamingState` keeps the last ``warmup`` + 1 bars of one instrument and computes the
newest row's features from them with scalar NumPy reductions (the batch path uses sliding
windows over the whole history); the two agree to rounding (tested to 1e-12 on real bars).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from tapecast.core.errors import TapecastError
from tapecast.features.state_config import StateConfig

__all__ = ["StreamingState"]


class StreamingState:
    """Causal market-state vectors of one instrument, fed bars in time order.

    Parameters
    ----------
    config : StateConfig, optional
    instrument : str
        Name written into the rows.

    Examples
    --------
    >>> state = StreamingState(StateConfig(), "SPY")
    >>> row = state.update({"ts": ts, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 5.0})
    ... # doctest: +SKIP
    """

    def __init__(self, config: StateConfig | None = None, instrument: str = "") -> None:
        self.config = config or StateConfig()
        self.instrument = instrument
        self._bars: deque[tuple[float, float, float, float]] = deque(
            maxlen=self.config.warmup + 1)
        self._n = 0
        self._last_ts: Any = None

    def update(self, bar: Mapping[str, Any]) -> dict[str, Any] | None:
        """Add one bar (``ts``, ``high``, ``low``, ``close``, ``volume``); the row of
        :func:`state_features` for it (``instrument``, ``ts``, ``row``, ``close`` and the
        features), or None during the warm-up.

        Raises
        ------
        TapecastError
            A bar not later than the one before, or a close <= 0.
        """
        ts = bar["ts"]
        if self._last_ts is not None and not ts > self._last_ts:
            raise TapecastError(f"{self.instrument}: bar at {ts} is not after the previous one "
                                f"({self._last_ts}); feed bars in time order without duplicates")
        close = float(bar["close"])
        if not close > 0:
            raise TapecastError(f"{self.instrument}: close {close} at {ts} is not > 0")
        self._last_ts = ts
        self._bars.append((float(bar["high"]), float(bar["low"]), close, float(bar["volume"])))
        row = self._n
        self._n += 1
        if row < self.config.warmup:
            return None
        return {"instrument": self.instrument, "ts": ts, "row": row, "close": close,
                **self._features()}

    def _features(self) -> dict[str, float]:
        cfg = self.config
        high, low, close, volume = (np.asarray(c, dtype=np.float64) for c in zip(*self._bars,
                                                                                   strict=True))
        r = close[1:] / close[:-1] - 1.0  # (warmup,) the newest returns, oldest first
        lb = cfg.lookback
        out: dict[str, float] = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for p in cfg.return_spans:
                out[f"return_{p}"] = float(r[-p:].sum())
            vol = r[-lb:].std(ddof=1)
            out["volatility"] = float(vol)
            out["volatility_ratio"] = float(r[-cfg.short_vol:].std(ddof=1) / vol)
            out["momentum"] = float(close[-1] / close[-lb] - 1.0)
            out["volume_ratio"] = float(volume[-1] / volume[-lb:].mean())
            hi, lo = high[-lb:].max(), low[-lb:].min()
            out["price_position"] = float((close[-1] - lo) / (hi - lo + cfg.epsilon))
            rw = r[-cfg.rsi_span:]
            gains, losses = np.maximum(rw, 0.0).mean(), np.maximum(-rw, 0.0).mean()
            out["rsi"] = float(gains / (gains + losses + cfg.epsilon))
        return {name: out[name] for name in cfg.names}

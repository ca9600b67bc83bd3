"""Walk-forward with controls: SHUFFLE loses skill on a series with signal, and the verdict is
credible there and not on white noise."""

from __future__ import annotations

import dataclasses
import json
from typing import Self

import numpy as np
import pytest

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Samples
from tapecast.evaluate import walkforward as wf

C, H, SESSION_LEN, STRIDE = 20, 5, 600, 5


def _series(phi: float, n_sessions: int, seed: int) -> np.ndarray:
    """AR(1) x_t = phi x_{t-1} + e_t per session (stationary start), shape (n_sessions, L)."""
    rng = np.random.default_rng(seed)
    x = np.empty((n_sessions, SESSION_LEN))
    x[:, 0] = rng.normal(0, 1 / np.sqrt(1 - phi**2), n_sessions)
    for t in range(1, SESSION_LEN):
        x[:, t] = phi * x[:, t - 1] + rng.normal(0, 1, n_sessions)
    return x


def _batch(x: np.ndarray, sessions: list[int]) -> ForecastBatch:
    """Origins every STRIDE windows inside the given sessions; one channel ``x``."""
    ctx, tgt, ids, ts = [], [], [], []
    for s in sessions:
        day = np.datetime64("2024-01-01T14:00", "ns") + np.timedelta64(s, "D")
        for start in range(0, SESSION_LEN - C - H + 1, STRIDE):
            ctx.append(x[s, start:start + C])
            tgt.append(x[s, start + C:start + C + H])
            window = s * SESSION_LEN + start + np.arange(C + H)
            ids.append(window)
            ts.append(day + (start + np.arange(C + H)) * np.timedelta64(1, "m"))
    b = len(ctx)
    return ForecastBatch(("x",), np.asarray(ctx)[:, None, :], np.asarray(tgt)[:, None, :],
                         np.asarray(ids, np.int64), np.asarray(ts),
                         np.full(b, "SYN"), np.full(b, "mid"),
                         {"n_trades": np.ones((b, C + H), np.int64),
                          "n_signed": np.ones((b, C + H), np.int64),
                          "session": np.full(b, 0)})


def _folds(x: np.ndarray) -> list[wf.Fold]:
    return [(f"test {s}", _batch(x, list(range(s))), _batch(x, [s]))
            for s in range(1, x.shape[0])]


def _samples(values: np.ndarray, batch: ForecastBatch) -> Samples:
    return Samples(values.astype(np.float32), batch.channels, batch.window_ids[:, C:])


class AR1:
    """Uses the context: least-squares AR(1) on (last context value, first target)."""

    name = "ar1"

    def fit(self, train: ForecastBatch, *, seed: int = 0) -> Self:
        last, nxt = train.context[:, 0, -1], train.target[:, 0, 0]
        self.phi = float(last @ nxt / (last @ last))
        self.sigma = float(np.std(nxt - self.phi * last))
        return self

    def sample(self, batch: ForecastBatch, n_samples: int, *, seed: int = 0) -> Samples:
        rng = np.random.default_rng(seed)
        x = np.repeat(batch.context[:, 0, -1][:, None], n_samples, axis=1)  # (B, S)
        out = np.empty((batch.size, n_samples, 1, batch.horizon))
        for h in range(batch.horizon):
            x = self.phi * x + rng.normal(0, self.sigma, x.shape)
            out[:, :, 0, h] = x
        return _samples(out, batch)


class Climatology:
    """Ignores the context: whole training target windows drawn at random."""

    name = "climatology"

    def fit(self, train: ForecastBatch, *, seed: int = 0) -> Self:
        self.pool = train.target
        return self

    def sample(self, batch: ForecastBatch, n_samples: int, *, seed: int = 0) -> Samples:
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(self.pool), (batch.size, n_samples))
        return _samples(self.pool[pick], batch)  # (B, S, K, H)


class Persistence:
    name = "persistence"

    def fit(self, train: ForecastBatch, *, seed: int = 0) -> Self:
        return self

    def sample(self, batch: ForecastBatch, n_samples: int, *, seed: int = 0) -> Samples:
        last = batch.context[:, :, -1:]  # (B, K, 1)
        values = np.broadcast_to(last[:, None], (batch.size, n_samples, 1, batch.horizon))
        return _samples(np.array(values), batch)


def _run(phi: float, seed: int = 11) -> wf.WalkForwardResult:
    return wf.walk_forward(_folds(_series(phi, 5, seed)), AR1, make_random=Climatology,
                           make_naive=Persistence, seeds=(0, 1, 2), n_samples=32)


def test_walk_forward_when_context_predicts_target_shuffle_loses_skill_and_credible() -> None:
    result = _run(phi=0.9)
    table = result.fold_table()
    for fold in result.folds:
        real, shuffled = table[fold]["REAL"], table[fold]["SHUFFLE"]
        assert real["mean_crps"] < 0.8 * shuffled["mean_crps"]
        assert real["first_step_crps"] < 0.5 * shuffled["first_step_crps"]
    v = wf.verdict(result)
    assert v.credible, v.reasons
    assert all(line.startswith("PASS") for line in v.reasons)
    assert set(v.checks) == {"SHUFFLE", "RANDOM", "NAIVE"}


def test_walk_forward_when_series_is_white_noise_verdict_not_credible() -> None:
    result = _run(phi=0.0)
    v = wf.verdict(result)
    assert not v.credible
    failed = [line for line in v.reasons if line.startswith("FAIL")]
    assert any("SHUFFLE" in line for line in failed) and any("RANDOM" in line for line in failed)


def test_walk_forward_when_a_control_is_the_real_forecaster_verdict_not_credible() -> None:
    result = wf.walk_forward(_folds(_series(0.9, 3, 5)), AR1, make_random=AR1,
                             make_naive=Persistence, seeds=(0,))
    v = wf.verdict(result)
    assert not v.credible and v.reasons[1].startswith("FAIL vs RANDOM")


def test_walk_forward_when_control_factory_missing_raises() -> None:
    with pytest.raises(TapecastError, match="make_naive"):
        wf.walk_forward(_folds(_series(0.5, 2, 1)), AR1, make_random=Climatology, seeds=(0,))


def test_walk_forward_when_unknown_control_raises() -> None:
    with pytest.raises(TapecastError, match="unknown control"):
        wf.walk_forward(_folds(_series(0.5, 2, 1)), AR1, controls=("LEAK",))


def test_verdict_when_no_controls_not_credible() -> None:
    result = wf.walk_forward(_folds(_series(0.9, 2, 1)), AR1, controls=(), seeds=(0,))
    assert result.arms == ("REAL",)
    assert not wf.verdict(result).credible


def test_result_to_dict_when_serialized_has_no_nan_and_records_thresholds() -> None:
    result = wf.walk_forward(_folds(_series(0.9, 3, 2)), AR1, make_random=Climatology,
                             controls=("SHUFFLE", "RANDOM"), seeds=(0, 1))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["thresholds"]["min_relative_gain"] == wf.MIN_RELATIVE_GAIN
    assert len(data["runs"]) == 2 * 3 * 2  # folds x arms x seeds
    assert data["fold_table"]["test 1"]["REAL"]["mean_crps"] > 0


def test_shuffle_pairs_when_applied_keeps_contexts_and_ids_permutes_whole_targets() -> None:
    batch = _batch(_series(0.5, 1, 3), [0])
    n_trades = batch.extra("n_trades").copy()
    n_trades[:, C:] = np.arange(batch.size)[:, None]  # tag each target row's trade counts
    origin_tag = np.arange(batch.size)  # a per-origin extra stays with its context
    batch = dataclasses.replace(batch, extras={**batch.extras, "n_trades": n_trades,
                                               "session": origin_tag})
    shuffled = wf.shuffle_pairs(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(shuffled.context, batch.context)
    np.testing.assert_array_equal(shuffled.window_ids, batch.window_ids)
    np.testing.assert_array_equal(shuffled.timestamps, batch.timestamps)
    assert not np.array_equal(shuffled.target, batch.target)
    # each shuffled row is some original target row, with that row's trade counts
    source = [int(np.flatnonzero((batch.target == row).all(axis=(1, 2)))[0])
              for row in shuffled.target]
    assert sorted(source) == list(range(batch.size))
    np.testing.assert_array_equal(shuffled.extra("n_trades")[:, C], source)
    np.testing.assert_array_equal(shuffled.extra("n_trades")[:, :C], batch.extra("n_trades")[:, :C])
    np.testing.assert_array_equal(shuffled.extra("session"), origin_tag)


def test_verdict_when_forecaster_ignores_training_says_shuffle_cannot_be_passed() -> None:
    result = wf.walk_forward(_folds(_series(0.9, 3, 4)), Persistence, controls=("SHUFFLE",),
                             seeds=(0,))
    v = wf.verdict(result)
    assert not v.credible and "does not learn from training pairs" in v.reasons[0]

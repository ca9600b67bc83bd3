"""Hawkes order flow: likelihood, recovery of known parameters, generator, JSON, bad input."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.sim.hawkes import (
    HawkesGenerator,
    HawkesParams,
    fit_hawkes,
    hawkes_loglik,
    simulate_hawkes,
)
from tapecast.sim.order_flow import BookView, OrderFlowGenerator

BETA = np.array([2.0, 2.5, 1.5, 3.0])
G = np.array([[0.25, 0.05, 0.10, 0.05],
              [0.05, 0.25, 0.05, 0.10],
              [0.15, 0.05, 0.20, 0.05],
              [0.05, 0.15, 0.05, 0.20]])
TRUE = HawkesParams(np.array([0.4, 0.4, 0.3, 0.3]), G * BETA[:, None], BETA)
VIEW = BookView(t=0.0, mid=100.0, best_bid=99.99, best_ask=100.01, tick=0.01, resting=(5, 5))


@pytest.fixture(scope="module")
def simulated() -> tuple[np.ndarray, np.ndarray]:
    return simulate_hawkes(TRUE, 30_000, seed=1)


def _token_frame(times: np.ndarray, types: np.ndarray, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = times.shape[0]
    return pl.DataFrame({
        "instrument": ["X"] * n, "session_date": [date(2024, 1, 2)] * n,
        "action": np.where(types >= 2, "cancel", "add"),
        "side": np.where(types % 2 == 1, "ask", "bid"),
        "dt": np.diff(times, prepend=0.0),
        "delta_p": np.where(types % 2 == 1, 1.0, -1.0) * rng.exponential(1e-4, n),
        "size": rng.integers(1, 500, n)})


def test_loglik_gradient_when_compared_to_finite_differences_agrees() -> None:
    from tapecast.sim.hawkes import _objective

    t, c = simulate_hawkes(TRUE, 2_000, seed=3)
    x = np.log(TRUE.to_vector())
    _, grad = _objective(x, [(t, c)], 4, 1.0)
    h = 1e-6
    numeric = np.array([(_objective(x + h * e, [(t, c)], 4, 1.0)[0]
                         - _objective(x - h * e, [(t, c)], 4, 1.0)[0]) / (2 * h)
                        for e in np.eye(x.shape[0])])
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4)


def test_simulate_when_stationary_gives_increasing_times_at_the_stationary_rate(
        simulated: tuple[np.ndarray, np.ndarray]) -> None:
    t, c = simulated
    assert np.all(np.diff(t) > 0) and set(np.unique(c)) == {0, 1, 2, 3}
    rates = np.bincount(c, minlength=4) / t[-1]
    np.testing.assert_allclose(rates, TRUE.stationary_rates, rtol=0.1)


def test_fit_when_data_simulated_from_known_parameters_recovers_them(
        simulated: tuple[np.ndarray, np.ndarray]) -> None:
    t, c = simulated
    fit = fit_hawkes([t], [c])
    assert fit.converged and fit.stderr is not None
    assert fit.loglik >= hawkes_loglik(TRUE, [t], [c])
    est, se = fit.params, fit.stderr
    for name in ("mu", "alpha", "beta"):  # every parameter within 3.5 standard errors
        z = (getattr(est, name) - getattr(TRUE, name)) / getattr(se, name)
        assert np.all(np.abs(z) < 3.5), (name, z)
    np.testing.assert_allclose(est.mu, TRUE.mu, rtol=0.15)
    np.testing.assert_allclose(est.beta, TRUE.beta, rtol=0.15)
    np.testing.assert_allclose(est.branching, G, atol=0.05)
    assert abs(fit.spectral_radius - TRUE.spectral_radius) < 0.05


def test_generator_when_fitted_on_tokens_is_reproducible_and_round_trips_json(
        simulated: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    t, c = simulated
    gen = HawkesGenerator.fit(_token_frame(t[:5_000], c[:5_000], seed=0), max_marks=300)
    assert isinstance(gen, OrderFlowGenerator)
    assert all(m.shape[0] <= 300 for m in gen.mark_delta_p)
    gen.reset(7)
    first = [gen.next(VIEW) for _ in range(2_000)]  # crosses a chunk boundary
    gen.save(tmp_path / "hawkes.json")
    loaded = HawkesGenerator.load(tmp_path / "hawkes.json")
    loaded.reset(7)
    assert [loaded.next(VIEW) for _ in range(2_000)] == first
    assert {(i.action, i.side) for i in first} == {("add", 0), ("add", 1), ("cancel", 0),
                                                   ("cancel", 1)}
    assert all(i.dt >= 0 and i.size > 0 for i in first)
    assert all((i.delta_p > 0) == (i.side == 1) for i in first)  # marks of the event's own type


@pytest.mark.parametrize(("times", "types", "message"), [
    ([], [], "expected at least one event"),
    ([0.1, 0.3, 0.2], [0, 1, 2], "expected times not decreasing"),
    ([0.1, 0.2, 0.3], [0, 4, 1], "field 'type': expected 0..3"),
])
def test_fit_when_input_is_bad_raises_one_line(times: list[float], types: list[int],
                                               message: str) -> None:
    with pytest.raises(TapecastError, match=message) as info:
        fit_hawkes([np.array(times)], [np.array(types)])
    assert "\n" not in str(info.value)


def test_fit_when_tokens_are_empty_or_unknown_raises_one_line(
        simulated: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    frame = _token_frame(*simulated, seed=0).head(100)
    with pytest.raises(TapecastError, match="expected token events, got none"):
        HawkesGenerator.fit(frame.head(0))
    with pytest.raises(TapecastError, match="row 3, field 'action'/'side'"):
        HawkesGenerator.fit(frame.with_columns(
            pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("fill"))
            .otherwise(pl.col("action")).alias("action")))
    with pytest.raises(TapecastError, match="missing \\['dt'\\]"):
        HawkesGenerator.fit(frame.drop("dt"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(TapecastError, match=r"expected a tapecast\.hawkes/1 JSON"):
        HawkesGenerator.load(tmp_path / "bad.json")


def test_simulate_when_explosive_raises_one_line() -> None:
    explosive = HawkesParams(TRUE.mu, 3 * TRUE.alpha, TRUE.beta)
    with pytest.raises(TapecastError, match="spectral radius < 1"):
        simulate_hawkes(explosive, 10, seed=0)


AAPL = Path(__file__).parents[2] / "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"


@pytest.mark.skipif(not AAPL.exists(), reason="shared LOBSTER sample absent")
def test_fit_when_tokens_are_real_lobster_is_stationary_and_matches_the_rates() -> None:
    from tapecast.data.detect import read
    from tapecast.features.events import event_features_from_tables
    from tapecast.sim.hawkes import token_sequences

    tokens = event_features_from_tables(read(AAPL)).tokens.head(20_000)
    gen = HawkesGenerator.fit(tokens)
    fit = gen.fit_result
    assert fit.converged and 0 < fit.spectral_radius < 1 and fit.n_events == 20_000
    _, types, _, _ = token_sequences(tokens)
    observed = np.bincount(np.concatenate(types), minlength=4) / fit.duration
    np.testing.assert_allclose(fit.params.stationary_rates, observed, rtol=0.02)
    gen.reset(0)
    assert all(np.isfinite(gen.next(VIEW).delta_p) for _ in range(100))

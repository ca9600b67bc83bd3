"""Order-flow feature speed beside a bare ``np.bincount`` group-sum over the same rows.

Run: ``.venv/bin/python benchmarks/features.py [--repeats 15] [--session calendar]``

Input: the real SPY trade ticks (5 days, 1.89 M trades, tick-rule signed) when
``../shared/data`` has them, else a synthetic tape of the same size. Figures, best of
``--repeats`` interleaved wall-clock rounds, in trades/s of the input rows:

* ``pipeline``    :func:`orderflow_windows` from the in-memory signed trades DataFrame to the
                  windows frame, print filters off: grouping and order check, sessions, window
                  assignment, the fused kernel, tick inference, channel assembly, the frame;
* ``end-to-end``  the same with the default print filters (suspicious, LEAN conditions);
* ``kernels``     window assignment + sums + channels alone (numba, arrays in, arrays out);
* ``bincount``    ``np.bincount(window_id, weights=size)`` over the same rows (window ids
                  precomputed; excluded rows in one extra bin): the speed of light of a group-sum;
* ``ratio``       pipeline rate / bincount rate (target >= 10 %, aim 25 %), from the best
                  times and, per round, the median (the runs of a round are back to back, so a
                  busy machine slows both alike).

numba compile time is measured apart: each kernel is compiled afresh (no cache) and timed on
its first call; the pipelines are warmed up before timing, so no figure above includes it.
"""

from __future__ import annotations

import argparse
import gc
import glob
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np
import polars as pl
from timing import best_of  # benchmarks/timing.py (the script's folder is on sys.path)

from tapecast.data import read, sign_trades
from tapecast.data.schemas import TRADES
from tapecast.features import kernels
from tapecast.features.filters import _parse_hex_views
from tapecast.features.orderflow import OrderFlowConfig, _group_by_instrument, orderflow_windows
from tapecast.features.sessions import assign_sessions

SPY = Path(__file__).resolve().parents[2] / "shared" / "data" / "lean/equity/usa/tick/spy"


def interleaved(rounds: int, runs: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Wall-clock seconds of every run in each of ``rounds`` rounds, the runs one after the
    other within a round, so that a busy machine slows the runs being compared alike."""
    seconds: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(rounds):
        for key, fn in runs.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            seconds[key].append(time.perf_counter() - start)
    return seconds


def load_tape() -> tuple[str, pl.DataFrame]:
    """The SPY ticks, tick-rule signed; else a synthetic tape of 1.89 M trades over 5 days."""
    paths = sorted(glob.glob(str(SPY / "*_trade.zip")))
    if paths:
        trades = pl.concat([read(p).trades for p in paths])
        return f"SPY ticks, {len(paths)} days", sign_trades(trades).rechunk()
    rng = np.random.default_rng(0)
    n = 1_890_000
    ts = 1_381_132_800 * 10**9 + np.sort(rng.integers(0, 5 * 86_400 * 10**9, size=n))
    frame = pl.DataFrame({
        "ts": pl.Series(ts).cast(pl.Datetime("ns", "UTC")), "instrument": ["SYN"] * n,
        "price": 167.0 + 0.01 * np.cumsum(rng.choice([-1, 0, 0, 0, 0, 0, 1], size=n)),
        "size": rng.integers(1, 10, size=n) * 100.0,
        "side": rng.choice(np.array([-1, 1], dtype=np.int8), size=n),
        "side_source": None, "exchange": None, "sale_condition": None, "suspicious": False,
    }).cast(dict(TRADES))
    return "synthetic tape (no SPY data found)", frame


def compile_seconds(trades: pl.DataFrame, config: OrderFlowConfig) -> dict[str, float]:
    """Fresh (uncached) compile + first call of each numba kernel, minus a warm call."""
    _, tape = _group_by_instrument(trades.head(10_000))
    group = np.zeros(tape.ts_ns.shape[0], dtype=np.int64)
    args: dict[str, tuple[Any, ...]] = {
        "assign_windows": (group, np.zeros(0, dtype=np.bool_), tape.size,
                           config.window_trades or -1, np.inf, 1)}
    window = kernels._assign_windows(*args["assign_windows"])[0]
    n_windows = int(window.max()) + 1
    args["window_sums"] = (tape.ts_ns, tape.price, tape.size, tape.side, window, group,
                           n_windows)
    sums = kernels.WindowSums(*kernels._window_sums(*args["window_sums"]))
    args["channels"] = (sums.signed_num, sums.signed_den, sums.n_trades - sums.n_unsigned,
                        sums.first_price, sums.last_price, sums.sum_sq_ret, sums.total_size,
                        sums.group, np.full(n_windows, 0.01))
    args["lean_conditions"] = (np.zeros((10, 2), dtype=np.uint64), np.ones(10, dtype=np.bool_),
                               np.int64(1))
    functions = {"assign_windows": kernels._assign_windows, "window_sums": kernels._window_sums,
                 "channels": kernels._channels, "lean_conditions": _parse_hex_views}
    seconds = {}
    for name, dispatcher in functions.items():
        fresh = numba.njit(dispatcher.py_func)
        start = time.perf_counter()
        fresh(*args[name])
        first = time.perf_counter() - start
        seconds[name] = first - best_of(3, lambda f=fresh, a=args[name]: f(*a))
    return seconds


def window_ids(trades: pl.DataFrame, config: OrderFlowConfig) -> tuple[np.ndarray, int]:
    """Window id of every row as the pipeline assigns it (-1: in no window), and W."""
    _, tape = _group_by_instrument(trades)
    group, sessions = assign_sessions(tape.ts_ns, config.session, config.time_zone)
    window, n_windows, _, _ = kernels.assign_windows(group, tape.size, config.window_trades,
                                                     config.window_volume, len(sessions))
    return window, n_windows


def kernels_only(trades: pl.DataFrame, config: OrderFlowConfig) -> Callable[[], object]:
    """A closure running the three pipeline kernels on prepared arrays."""
    _, tape = _group_by_instrument(trades)
    group, sessions = assign_sessions(tape.ts_ns, config.session, config.time_zone)
    n_groups = max(len(sessions), 1)

    def run() -> object:
        window, n_windows, _, _ = kernels.assign_windows(group, tape.size, config.window_trades,
                                                      config.window_volume, n_groups)
        sums = kernels.window_sums(tape.ts_ns, tape.price, tape.size, tape.side, window, group,
                                   n_windows)
        return kernels.window_channels(sums, np.full(n_windows, 0.01))
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--session", default="calendar",
                        choices=["calendar", "us-equity-rth", "cme-globex"])
    parser.add_argument("--window-trades", type=int, default=500)
    args = parser.parse_args()
    name, trades = load_tape()
    n = trades.height
    plain = OrderFlowConfig(window_trades=args.window_trades, session=args.session,
                            drop_suspicious=False, condition_codes="none")
    default = OrderFlowConfig(window_trades=args.window_trades, session=args.session)
    start = time.perf_counter()
    orderflow_windows(trades, default)  # warm-up: loads (or compiles) the kernels
    warm_up = time.perf_counter() - start
    orderflow_windows(trades, plain)
    compiled = compile_seconds(trades, plain)

    # bare group-sum over the same rows: the pipeline's window id per row, the rows in no
    # window (partial windows, outside sessions) in one extra bin
    window, n_windows = window_ids(trades, plain)
    bins = np.where(window >= 0, window, n_windows)
    size = trades["size"].to_numpy()

    runs = {
        "pipeline": lambda: orderflow_windows(trades, plain),
        "end-to-end": lambda: orderflow_windows(trades, default),
        "kernels": kernels_only(trades, plain),
        "bincount": lambda: np.bincount(bins, weights=size, minlength=n_windows + 1),
    }
    seconds = interleaved(args.repeats, runs)
    best = {key: min(values) for key, values in seconds.items()}
    print(f"{name}: {n:,d} trades -> {n_windows:,d} windows of {args.window_trades} trades, "
          f"session {args.session}; best of {args.repeats} interleaved rounds")
    for key, t in best.items():
        print(f"  {key:11s} {n / t / 1e6:8.2f} M trades/s  ({t * 1e3:7.1f} ms)"
              f"  {best['bincount'] / t:6.1%} of bincount")
    for key in ("pipeline", "end-to-end"):
        per_round = np.array(seconds["bincount"]) / np.array(seconds[key])
        print(f"  ratio {key}/bincount: {best['bincount'] / best[key]:.1%} of the best times; "
              f"per round median {np.median(per_round):.1%} (min {per_round.min():.1%}, "
              f"max {per_round.max():.1%}); target >= 10 %, aim 25 %")
    print("  numba compile (fresh, uncached): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in compiled.items())
          + f"; first pipeline call here (cache load or compile) {warm_up:.2f} s")


if __name__ == "__main__":
    main()

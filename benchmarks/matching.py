"""Matching speed beside replay speed, on one machine in one run.

Run: ``.venv/bin/python benchmarks/matching.py [--orders 2000000] [--repeats 3]``

A long generated order stream (limit adds around a mean-reverting mid, crossing ones included,
market orders, cancels near a price, half of them partial: :func:`order_stream`) goes through

* ``match_orders``  the compiled matching loop (:meth:`MatchingEngine.run`), orders/s, and the
                    Databento-style events it produced per second;
* ``run_loop``      the replay loop behind ``tapecast book`` on those produced events (the
                    integer columns only), events/s;
* ``replay_book``   the whole replay (columns out of Polars, loop, levels frame back), events/s;

and, when present, the ES MBO day through ``run_loop`` and ``replay_book`` for a real-data
anchor. Best of ``--repeats`` wall-clock runs, after one warm-up call (numba's cache load or
compile). The issue's aim: matching at least the replay's rate; 1 M events/s is the anchor of
the field (hftbacktest).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from timing import best_of, cpu_description  # benchmarks/timing.py, on sys.path

from tapecast.data import book_core as core
from tapecast.data import read
from tapecast.data.book import _columns, replay_book
from tapecast.data.book_state import new_state
from tapecast.sim import matching_core as mc
from tapecast.sim.matching import MatchingEngine

ROOT = Path(__file__).resolve().parents[1]
ES = ROOT.parent / "shared" / "data" / "nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst"


def order_stream(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` operations (int64 arrays ``ops, sides, prices, sizes, ts``) around a mid that
    reverts to 100,000 ticks (AR(1), coefficient 0.999, unit steps): 55 % limit adds from 2
    ticks through the mid to 8 ticks away on their own side, 5 % market orders, 40 % cancels
    near the add prices (half partial)."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-1, 2, n)
    mid = np.empty(n, dtype=np.int64)
    x = 0.0
    for i in range(n):  # (n,) AR(1) in ticks
        x = 0.999 * x + steps[i]
        mid[i] = 100_000 + round(x)
    u = rng.random(n)
    ops = np.where(u < 0.55, mc.OP_LIMIT, np.where(u < 0.6, mc.OP_MARKET, mc.OP_CANCEL_NEAR))
    sides = rng.integers(0, 2, n)
    away = rng.integers(-2, 9, n)  # ticks from the mid to the passive side (< 0: crossing)
    prices = mid + np.where(sides == 0, -away, away)
    sizes = np.where(ops == mc.OP_MARKET, rng.integers(1, 15, n), rng.integers(1, 10, n))
    sizes[(ops == mc.OP_CANCEL_NEAR) & (rng.random(n) < 0.5)] = 0  # a full cancel
    return {"ops": ops.astype(np.int64), "sides": sides.astype(np.int64),
            "prices": prices.astype(np.int64), "sizes": sizes.astype(np.int64),
            "ts": np.arange(n, dtype=np.int64) * 1000}


def run_matching(stream: dict[str, np.ndarray]) -> MatchingEngine:
    eng = MatchingEngine(order_capacity=1 << 12)
    eng.run(stream["ops"], stream["sides"], stream["prices"], stream["sizes"], stream["ts"])
    return eng


def loop_only(cols: core.EventColumns, full_state: bool, fills_reduce: bool) -> None:
    cfg = core.LoopConfig(10, full_state, fills_reduce, "bench")
    core.run_loop(cols, new_state(1 << 12), cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(cpu_description())
    stream = order_stream(args.orders)
    run_matching(order_stream(1000))  # warm-up: load or compile the kernels
    t_match = best_of(args.repeats, lambda: run_matching(stream))
    eng = run_matching(stream)
    events = eng.events(0.01, "SIM")
    c = eng.counters
    print(f"stream: {args.orders:,} orders -> {events.height:,} events, {c['n_trades']:,} fills, "
          f"{c['dropped_cancels']:,} cancels found nothing, book depth "
          f"{int(eng.state.meta[0])}/{int(eng.state.meta[1])} levels at the end")
    cols = _columns(events)
    loop_only(cols, True, False)
    replay_book(events.head(1000), 10)
    rows = [("match_orders (generated)", args.orders, t_match, events.height),
            ("run_loop (its events)", events.height,
             best_of(args.repeats, lambda: loop_only(cols, True, False)), None),
            ("replay_book (its events)", events.height,
             best_of(args.repeats, lambda: replay_book(events, 10)), None)]
    if ES.exists():
        es = read(ES).events
        assert es is not None
        es_cols = _columns(es)
        rows += [("run_loop (ES MBO day)", es.height,
                  best_of(args.repeats, lambda: loop_only(es_cols, True, False)), None),
                 ("replay_book (ES MBO day)", es.height,
                  best_of(args.repeats, lambda: replay_book(es, 10)), None)]
    print(f"\n| {'what':<26} | {'count':>10} | {'seconds':>8} | {'per second':>12} | "
          f"{'events/s':>12} |")
    print(f"|{'-' * 28}|{'-' * 12}|{'-' * 10}|{'-' * 14}|{'-' * 14}|")
    for name, count, seconds, produced in rows:
        per_event = (produced or count) / seconds
        print(f"| {name:<26} | {count:>10,} | {seconds:>8.3f} | {count / seconds:>12,.0f} | "
              f"{per_event:>12,.0f} |")


if __name__ == "__main__":
    main()

"""Book replay speed on the real Databento MBO files, beside a bare-loop "speed of light".

Run: ``.venv/bin/python benchmarks/book_replay.py [--repeats 5]``

Figures printed, per file (best of ``--repeats`` runs, wall clock):

* ``replay``      the whole :func:`tapecast.data.book.replay_book` (columns out of Polars, loop,
                  levels frame back), events/s;
* ``core loop``   :func:`tapecast.data.book_core.run_loop` alone, events/s;
* ``bare loop``   a Python loop over the same rows that only looks each order id up in a dict
                  (the least any per-event Python loop can do), events/s;
* ``loop/bare``   how many bare-loop iterations one core-loop event costs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl
from timing import best_of  # benchmarks/timing.py (the script's folder is on sys.path)

from tapecast.data import book_core as core
from tapecast.data import read
from tapecast.data.book import _columns, replay_book

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = {
    "ES MBO day (ESH4 2023-12-25)": "nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst",
    "ES MBO, clear + snapshot (ESM4)":
        "nautilus/databento/orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst",
    "ARL MBO (XNAS.ITCH)": "blockhouse_arl/mbo.csv",
}


def bare_loop(cols: core.EventColumns) -> None:
    """The speed-of-light denominator: one dict lookup per event, nothing else."""
    orders: dict[int, list[int]] = {}
    oid = cols.order_id
    for i in range(len(oid)):
        orders.get(oid[i])


def bench(name: str, events: pl.DataFrame, n_levels: int, repeats: int) -> None:
    cols = _columns(events)

    def loop() -> None:
        # these files open with a clear or a snapshot: a full-state replay, as replay_book decides
        full = cols.action[0] == core.CLEAR or bool(cols.flags[0] & core.F_SNAPSHOT)
        core.run_loop(cols, core.BookState(), core.LoopConfig(n_levels, full, False, name))

    n = events.height
    t_replay = best_of(repeats, lambda: replay_book(events, n_levels))
    t_loop = best_of(repeats, loop)
    t_bare = best_of(repeats, lambda: bare_loop(cols))
    print(f"{name:34s} {n:>8,d} ev  levels={n_levels:<3d}"
          f" replay {n / t_replay / 1e6:6.2f} M ev/s ({t_replay * 1e3:7.1f} ms)"
          f" | core loop {n / t_loop / 1e6:6.2f} M ev/s"
          f" | bare loop {n / t_bare / 1e6:6.2f} M ev/s"
          f" | loop/bare {t_loop / t_bare:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, relative in FILES.items():
        path = DATA / relative
        if not path.exists():
            print(f"{name}: {path} absent, skipped")
            continue
        events = read(path).events
        assert events is not None
        for n_levels in (1, 10):
            bench(name, events, n_levels, args.repeats)


if __name__ == "__main__":
    main()

"""Book replay speed on the real MBO and LOBSTER files: the old pure-Python loop beside the new one.

Run: ``.venv/bin/python benchmarks/book_replay.py [--repeats 5]`` (needs git: the old loop is read
from the repository's history, commit ``OLD_COMMIT``, the last one with the pure-Python loop).

For every file it first checks that the old and the new replay give the same levels frame and the
same counters (for LOBSTER files under every depth-window option), then times both on the same
events, interleaved (old, new, old, new, ...), best of ``--repeats`` wall-clock runs:

* ``loop``    the per-event loop alone (old: ``book_core.run_loop`` over Python lists; new:
              ``book_core.run_loop``, numba, over int64 arrays), events/s, and new / old;
* ``replay``  the whole ``replay_book`` (columns out of Polars, loop, levels frame back), events/s,
              and new / old.

The target of issue 11 was new >= 0.9 x old for the loop. The first new call in a process also
loads the compiled kernels from numba's cache (or compiles them, once per checkout); that time is
printed apart.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tapecast.data import book_core as core
from tapecast.data import read
from tapecast.data.book import _columns, _seeded, replay_book, replay_tables
from tapecast.data.book_state import new_state
from tapecast.data.tables import Tables

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OLD_COMMIT = "ab5bff64645189ad8d1df99a79268ff51e580153"
FILES = {
    "ES MBO day (ESH4 2023-12-25)": "nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst",
    "ES MBO, clear + snapshot (ESM4)":
        "nautilus/databento/orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst",
    "ARL MBO (XNAS.ITCH)": "blockhouse_arl/mbo.csv",
    "LOBSTER AAPL L1": "lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip",
    "LOBSTER AMZN L1": "lobster/LOBSTER_SampleFile_AMZN_2012-06-21_1.zip",
    "LOBSTER AMZN L5": "lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip",
}
WINDOW_OPTIONS: list[dict[str, Any]] = [
    {"depth_window": "source"}, {"depth_window": None},
    {"depth_window": "source", "forgotten": "drop"},
    {"depth_window": "source", "uncross": False},
    {"depth_window": "source", "uncross": False, "forgotten": "drop"},
]


def old_modules() -> tuple[types.ModuleType, types.ModuleType]:
    """The old ``book_core`` and ``book`` modules, executed from ``OLD_COMMIT``'s sources."""
    def load(name: str, path: str, replace: tuple[str, str] | None = None) -> types.ModuleType:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:{path}"],
                              capture_output=True, text=True, check=True).stdout
        if replace is not None:
            assert replace[0] in text
            text = text.replace(*replace)
        module = types.ModuleType(name)
        sys.modules[name] = module  # dataclasses look their module up
        exec(compile(text, f"{OLD_COMMIT[:7]}:{path}", "exec"), module.__dict__)
        return module

    old_core = load("_old_book_core", "src/tapecast/data/book_core.py")
    old_book = load("_old_book", "src/tapecast/data/book.py", (
        "from tapecast.data import book_core as core", "import _old_book_core as core"))
    return old_core, old_book


def interleaved_best(repeats: int, old: Callable[[], object],
                     new: Callable[[], object]) -> tuple[float, float]:
    """Best wall-clock seconds of ``old`` and ``new`` over ``repeats`` alternating calls."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for k, fn in enumerate((old, new)):
            gc.collect()
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best[0], best[1]


def same_result(old_book: types.ModuleType, name: str, tables: Tables) -> Iterator[str]:
    """Replay with the old and the new code under each option; yield what differs."""
    assert tables.events is not None
    lobster = tables.format == "lobster"
    for n_levels in (1, 10):
        for options in WINDOW_OPTIONS if lobster else [{}]:
            if lobster:
                old = old_book.replay_tables(tables, n_levels, **options)
                new = replay_tables(tables, n_levels, **options)
            else:
                old = old_book.replay_book(tables.events, n_levels, source=name)
                new = replay_book(tables.events, n_levels, source=name)
            if not new.levels.equals(old.levels):
                yield f"levels differ at {n_levels} levels, {options}"
            if new.counters != old.counters:
                yield f"counters differ at {n_levels} levels, {options}: {new.counters} " \
                      f"vs {old.counters}"


def bench(old_core: types.ModuleType, old_book: types.ModuleType, name: str, tables: Tables,
          n_levels: int, repeats: int) -> None:
    events = tables.events
    assert events is not None
    depth = old_book.source_depth(tables)  # a LOBSTER file: its own depth window
    full = bool(events.height) and (events["action"][0] == "clear" or bool(
        (events["flags"][0] or 0) & core.F_SNAPSHOT))
    fills = events["flags"].null_count() == events.height
    old_cols, new_cols = old_book._columns(events), _columns(events)
    seed = tables.book_seed

    def old_loop() -> None:
        state = old_core.BookState()
        if seed is not None:
            old_book._apply_seed(state, seed)
        old_core.run_loop(old_cols, state, old_core.LoopConfig(n_levels, full, fills, name,
                                                               depth))

    def new_loop() -> None:
        state = new_state(order_capacity=min(events.height, 1 << 16))
        if seed is not None:
            state = _seeded(state, seed)
        core.run_loop(new_cols, state, core.LoopConfig(n_levels, full, fills, name, depth))

    n = events.height
    t_old, t_new = interleaved_best(repeats, old_loop, new_loop)
    r_old, r_new = interleaved_best(
        repeats, lambda: old_book.replay_tables(tables, n_levels),
        lambda: replay_tables(tables, n_levels))
    print(f"{name:32s} {n:>8,d} ev levels={n_levels:<3d}"
          f" loop old {n / t_old / 1e6:6.2f} new {n / t_new / 1e6:7.2f} M ev/s"
          f" new/old {t_old / t_new:6.1f}x"
          f" | replay old {n / r_old / 1e6:5.2f} new {n / r_new / 1e6:5.2f} M ev/s"
          f" ({r_old * 1e3:6.1f} / {r_new * 1e3:6.1f} ms) new/old {r_old / r_new:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    old_core, old_book = old_modules()
    first = True
    for name, relative in FILES.items():
        path = DATA / relative
        if not path.exists():
            print(f"{name}: {path} absent, skipped")
            continue
        tables = read(path)
        assert tables.events is not None
        if first:  # numba: load the cached kernels, or compile them
            start = time.perf_counter()
            replay_book(tables.events.head(100), 1)
            print(f"first new replay in this process (numba cache load or compile): "
                  f"{time.perf_counter() - start:.2f} s")
            first = False
        differences = list(same_result(old_book, name, tables))
        print(f"{name}: old and new replays "
              f"{'agree' if not differences else 'DIFFER: ' + '; '.join(differences)}")
        for n_levels in (1, 10):
            bench(old_core, old_book, name, tables, n_levels, args.repeats)


if __name__ == "__main__":
    main()

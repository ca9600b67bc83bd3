"""Events/s of tapecast's DBN -> canonical ``events`` table beside the official client's to_df().

Run: ``.venv/bin/python benchmarks/ingest.py [FILE.dbn.zst] [--repeats N]``. Both paths start
from the same file on disk and end with a table in memory; the best of ``--repeats`` runs is
reported (imports are warmed up first, so neither side pays for them).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from tapecast.data.readers.dbn import read_dbn

DEFAULT = (Path(__file__).resolve().parents[2] / "shared" / "data" / "nautilus" / "databento"
           / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")


def best_of(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Best wall time in seconds over ``repeats`` calls of ``fn`` and the rows it returned."""
    times, rows = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - start)
    return min(times), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from databento import DBNStore

    def ours() -> int:
        return read_dbn(args.file)["events"].height

    def client_df() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the client's pandas deprecation warnings
            return len(DBNStore.from_bytes(args.file.read_bytes()).to_df())

    def client_ndarray() -> int:
        return len(DBNStore.from_bytes(args.file.read_bytes()).to_ndarray())

    ours(), client_df(), client_ndarray()  # warm up imports and caches
    rows: dict[str, tuple[float, int]] = {
        "tapecast read_dbn -> events (validated)": best_of(ours, args.repeats),
        "databento DBNStore.to_df()": best_of(client_df, args.repeats),
        "databento DBNStore.to_ndarray() (raw)": best_of(client_ndarray, args.repeats),
    }
    print(f"file: {args.file.name}  (best of {args.repeats})")
    print(f"{'path':<42}{'records':>10}{'seconds':>10}{'events/s':>14}")
    for name, (seconds, n) in rows.items():
        print(f"{name:<42}{n:>10,}{seconds:>10.4f}{n / seconds:>14,.0f}")
    ours_s, df_s, nd_s = (seconds for seconds, _ in rows.values())
    print(f"ratio to_df() / tapecast: {df_s / ours_s:.1f}x faster; "
          f"tapecast / raw to_ndarray(): {ours_s / nd_s:.1f}x the time")


if __name__ == "__main__":
    main()

"""Lines/s of the hftbacktest capture reader beside a plain per-line ``json.loads`` loop.

Usage: ``python benchmarks/binance_read.py [capture.gz]`` (default: the largest staged capture,
``shared/data/hftbacktest_binance/usdm/btcusdt_20240808.gz``). Prints both figures in one run;
the baseline only decodes the JSON of trade and bookTicker lines (no table is built).
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

from tapecast.data.readers.binance import read_hftbacktest

DEFAULT = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hftbacktest_binance"
           / "usdm" / "btcusdt_20240808.gz")


def _baseline(path: Path) -> int:
    n = 0
    with gzip.open(path, "rt") as fh:
        for line in fh:
            _, js = line.split(" ", 1)
            if "@trade" in js[:40] or "@bookTicker" in js[:40]:
                json.loads(js)
            n += 1
    return n


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    best_ours = best_base = float("inf")
    lines = 0
    for _ in range(3):
        t0 = time.perf_counter()
        tables = read_hftbacktest(path)
        best_ours = min(best_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        lines = _baseline(path)
        best_base = min(best_base, time.perf_counter() - t0)
    rows = sum(tables.row_counts().values())
    print(f"{path.name}: {lines} lines, {rows} table rows (best of 3)")
    print(f"  tapecast read_hftbacktest : {best_ours:6.3f} s  {lines / best_ours:12,.0f} lines/s")
    print(f"  python json.loads per line: {best_base:6.3f} s  {lines / best_base:12,.0f} lines/s")


if __name__ == "__main__":
    main()

"""A small generic L3 events CSV (new / cancel / trade rows) for tests that need an event feed
without the shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def l3_csv(path: Path, seed: int, n: int = 3000, symbol: str = "XYZ") -> Path:
    """Write ``n`` rows ms apart (10 % simultaneous): adds on either side of 100 within 20
    cents, cancels of random resting orders, trade prints at 100; returns ``path``."""
    rng = np.random.default_rng(seed)
    live: dict[int, tuple[str, float, int]] = {}
    lines, next_id, t = ["timestamp,symbol,order_id,action,side,price,size"], 1, 1.7e12
    for _ in range(n):
        t += float(rng.exponential(50.0)) * (rng.random() > 0.1)
        u = rng.random()
        if u < 0.1:
            lines.append(f"{int(t)},{symbol},,trade,buy,100.00,{rng.integers(1, 5)}")
        elif u < 0.6 or not live:
            side = "buy" if rng.random() < 0.5 else "sell"
            price = 100 + (-1 if side == "buy" else 1) * rng.integers(1, 20) / 100
            live[next_id] = (side, price, int(rng.integers(1, 50)))
            lines.append(f"{int(t)},{symbol},{next_id},new,{side},{price:.2f},"
                         f"{live[next_id][2]}")
            next_id += 1
        else:
            oid = int(rng.choice(sorted(live)))
            side, price, size = live.pop(oid)
            lines.append(f"{int(t)},{symbol},{oid},cancel,{side},{price:.2f},{size}")
    path.write_text("\n".join(lines) + "\n")
    return path

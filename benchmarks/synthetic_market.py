"""Speed of the built-in synthetic market (:func:`tapecast.sim.generate_market`).

Run: ``.venv/bin/python benchmarks/synthetic_market.py [--repeats 5] [--sessions 5]``

Figures, best of ``--repeats`` wall-clock runs after one warm-up (numba compiled, or loaded from
its cache), for the default config with ``--sessions`` sessions:

* ``total``        ``generate_market`` end to end, in trades/s;
* ``signs``        the metaorder sign loop (numba) with its uniforms;
* ``volatility``   the three AR(1) log-volatility components (``scipy.signal.lfilter``);
* ``propagator``   the FFT convolution of the mid price (``scipy.signal.fftconvolve``);
* ``tables``       everything else: sizes, timestamps, quotes, the Polars frames and their
                   validation (``total`` minus the three above, so it is approximate).
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import best_of  # benchmarks/timing.py (the script's folder is on sys.path)

from tapecast.sim import SyntheticMarketConfig, generate_market
from tapecast.sim.orders import metaorder_signs
from tapecast.sim.prices import mid_path, volatility_factor


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=5)
    args = parser.parse_args()
    cfg = SyntheticMarketConfig(n_sessions=args.sessions)
    tables = generate_market(cfg, seed=0)  # warm-up (numba)
    assert tables.trades is not None
    n = tables.trades.height
    rng = np.random.default_rng(0)
    signs, _, _ = metaorder_signs(rng, n, n_active=cfg.n_metaorders, alpha=cfg.metaorder_alpha,
                                  max_length=cfg.max_metaorder_length,
                                  noise=cfg.noise_fraction, burst=cfg.burst_prob)
    sizes = tables.trades["size"].to_numpy()
    sigma = volatility_factor(rng, n, cfg.vol_sd)
    noise = rng.normal(0.0, cfg.noise_ticks, size=n)
    times = {
        "total": best_of(args.repeats, lambda: generate_market(cfg, seed=1)),
        "signs": best_of(args.repeats, lambda: metaorder_signs(
            np.random.default_rng(1), n, n_active=cfg.n_metaorders, alpha=cfg.metaorder_alpha,
            max_length=cfg.max_metaorder_length, noise=cfg.noise_fraction,
            burst=cfg.burst_prob)),
        "volatility": best_of(args.repeats, lambda: volatility_factor(
            np.random.default_rng(1), n, cfg.vol_sd)),
        "propagator": best_of(args.repeats, lambda: mid_path(
            signs, sizes, sigma, noise, impact=cfg.impact_ticks, l0=cfg.propagator_l0,
            beta=cfg.propagator_beta, size_exponent=cfg.impact_size_exponent)),
    }
    times["tables"] = times["total"] - times["signs"] - times["volatility"] - times["propagator"]
    print(f"{n:,} trades ({args.sessions} sessions), best of {args.repeats}")
    for name, seconds in times.items():
        print(f"{name:>11s}: {seconds:7.3f} s  {n / seconds / 1e6:8.2f} M trades/s")


if __name__ == "__main__":
    main()

"""TradeFM ``tiny`` in closed loop: events/s at batch 1 and 64 (independent rollouts), with the
KV cache, through the matching engine and the mid estimator (issue 15, "Closed-loop
generation"; aims ≥ 500 events/s at batch 1 and ≥ 5,000 at batch 64 on this CPU).

The model is ``tiny`` with fresh weights (the cost does not depend on training), its tokenizer
calibrated on the built-in synthetic L3 market (:mod:`tapecast.sim.l3_market`), and the
rollouts start from that market's book after its first session's events, with a 256-token
prompt: no data needed. Beside the loop, in the same run, the parts of one step are timed
alone: the decoder step with the KV cache (``TradeFM.step``), sampling, in-bin decoding, and
the B markets' ``apply``; their sum against the loop's time per step says where the time goes.

Run::

    .venv/bin/python benchmarks/tradefm_loop.py [--events 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import best_of, cpu_description  # benchmarks/timing.py

from tapecast.models.tradefm import TradeFMModel
from tapecast.models.tradefm_config import tradefm_model_config
from tapecast.nets.tradefm import TradeFM, sample_next
from tapecast.sim.l3_market import SyntheticL3Config, generate_l3_market
from tapecast.sim.session import SimulatedMarket, start_from_tables
from tapecast.sim.tradefm_loop import generate
from tapecast.workflows.tokenize import tokenize_sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=256, help="new events per rollout")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_description()}, torch threads {args.threads}, load "
          f"{os.getloadavg()[0]:.1f}")
    tables = generate_l3_market(SyntheticL3Config(n_sessions=1), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        result = tokenize_sources([tables], Path(tmp) / "tokens")
        model = TradeFMModel(tradefm_model_config("tiny"))
        model.tokenizer = result.tokenizer
        torch.manual_seed(0)
        model.net = TradeFM(model.config.net).eval()
    start = start_from_tables(tables, model.tokenizer, context=model.config.net.context)
    rows = []
    for batch in (1, 64):
        n = args.events if batch == 1 else max(16, args.events // 4)
        generate(model, start, 8, batch=batch, seed=0)  # warm-up (numba, allocations)
        began = time.perf_counter()
        out = generate(model, start, n, batch=batch, seed=1)
        loop_s = time.perf_counter() - began
        parts = _parts(model, start, batch)
        rows.append((batch, n, batch * n / loop_s, loop_s / n, parts, out.cancel_miss_share))
    aims = {1: 500, 64: 5000}
    print("\nclosed loop, tiny, prompt 256, fp32")
    print(f"{'batch':>5} {'events/s':>10} {'aim':>6} {'ms/step':>8} | {'decoder':>8} "
          f"{'sample':>7} {'decode':>7} {'markets':>8} (ms per step, timed alone) | "
          "cancels missed")
    for batch, _, eps, per_step, p, miss in rows:
        print(f"{batch:>5} {eps:>10,.0f} {aims[batch]:>6,} {per_step * 1e3:>8.2f} | "
              f"{p['decoder'] * 1e3:>8.2f} {p['sample'] * 1e3:>7.2f} {p['decode'] * 1e3:>7.2f} "
              f"{p['markets'] * 1e3:>8.2f} | {miss:.1%}")
    for batch, _, eps, *_ in rows:
        verdict = "met" if eps >= aims[batch] else "NOT met"
        print(f"batch {batch}: {eps:,.0f} events/s, aim {aims[batch]:,}: {verdict}")


def _parts(model: TradeFMModel, start: object, batch: int) -> dict[str, float]:
    """Seconds per step of each part of the loop, timed alone (best of a few)."""
    net = model.net
    tokenizer = model.tokenizer
    assert net is not None and tokenizer is not None
    from tapecast.sim.session import RolloutStart

    assert isinstance(start, RolloutStart)
    prompt = torch.as_tensor(np.broadcast_to(start.tokens, (batch, start.tokens.size)).copy())
    ctx = torch.zeros_like(prompt)
    with torch.no_grad():
        logits, decoding = net.prefill(prompt, ctx, ctx, ctx, last_only=True)
        logits = logits[:, -1]
        token = sample_next(logits)
        one = torch.zeros_like(token)

        def decoder() -> None:
            net.step(decoding, token, one, one, one)
            decoding.position -= 1  # stay at the same position

        gen = torch.Generator().manual_seed(0)
        rng = np.random.default_rng(0)
        ids = token[:, 0].numpy()
        markets = [SimulatedMarket(start) for _ in range(batch)]
        decoded = tokenizer.decode(ids, rng)

        def apply() -> None:
            for b, m in enumerate(markets):
                m.apply(float(decoded["dt"][b]), int(decoded["action"][b]),
                        int(decoded["side"][b]), float(decoded["dp"][b]),
                        float(decoded["size"][b]))

        return {"decoder": best_of(5, decoder),
                "sample": best_of(5, lambda: sample_next(logits, generator=gen)),
                "decode": best_of(5, lambda: tokenizer.decode(ids, rng)),
                "markets": best_of(3, apply)}


if __name__ == "__main__":
    main()

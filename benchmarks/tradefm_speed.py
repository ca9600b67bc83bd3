"""TradeFM ``tiny`` speed: training tokens/s against a bare matmul, and generation with the KV cache
against full recomputation, measured side by side in one run (issue 14, "Speed").

* **Training**: one real step — ``tradefm_loss`` forward, backward, AdamW step, zero_grad — at
  batch 16 × 256 tokens of a random token stream, fp32 and, where bf16 is fast on this CPU
  (:func:`tapecast.train.bf16_is_fast`), under bf16 autocast. FLOPs of forward + backward are
  counted by ``torch.utils.flop_counter.FlopCounterMode`` over one real step (AdamW's elementwise
  work is not counted). The **bare matmul** is ``torch.mm`` / ``torch.bmm`` over exactly the
  matrix products that step dispatches (shapes recorded by a dispatch mode, so the same FLOPs),
  on preallocated operands, in the same dtype; the step's share = its GFLOP/s over the bare
  GFLOP/s (aim ≥ 40 %). A 1024² fp32 matmul is printed beside it as the machine's speed of light.
* **Generation**: ``TradeFM.generate`` (prefill a 512-token prompt, then ``step`` one token at a
  time, sampling included) at batch 1 and 64; events/s = batch × new tokens / s.
  **Recomputation** draws the same number of new tokens by re-running the decoder over the whole
  context (prompt + tokens so far, 512 + i positions) at every step, with the head applied to the
  last position only (applying it everywhere would add B × T × 16,384 logits per step and inflate
  the speed-up). Before timing, both are run greedily (top-k = 1 against argmax) on a short
  rollout that crosses the window, and must give the same tokens.

Other jobs may share the cores: the load average is printed before and after, and each figure is
the best of a few repeats. Prints a table and writes nothing, unless ``--json PATH``.

Run::

    .venv/bin/python benchmarks/tradefm_speed.py [--quick] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from timing import (  # benchmarks/timing.py (the script's folder is on sys.path)
    best_of,
    cpu_description,
)
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from tapecast.models.tradefm import tradefm_loss
from tapecast.nets.tradefm import TradeFM, rope_angles, sample_next
from tapecast.nets.tradefm_config import tradefm_config, tradefm_parameter_count
from tapecast.train import bf16_is_fast
from tapecast.train.device import Resolved, autocast

TRAIN_BATCH, TRAIN_LENGTH = 16, 256
PROMPT = 512  # the context of the generation comparison
CPU = torch.device("cpu")
MatmulShape = tuple[int, int, int, int]  # (batch, m, k, n) of a (batch ×) m×k @ k×n product
Inputs = tuple[Tensor, Tensor, Tensor, Tensor]  # tokens, tier, flag, dp_bin, each (B, T)


# ----------------------------------------------------------------------------------------------
# training


class MatmulShapes(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Records the (batch, m, k, n) of every mm / addmm / bmm dispatched inside it."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.shapes: list[MatmulShape] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        aten = torch.ops.aten
        if func is aten.mm.default:
            a, b = args[0], args[1]
            self.shapes.append((1, a.shape[0], a.shape[1], b.shape[1]))
        elif func is aten.addmm.default:
            a, b = args[1], args[2]
            self.shapes.append((1, a.shape[0], a.shape[1], b.shape[1]))
        elif func is aten.bmm.default:
            a, b = args[0], args[1]
            self.shapes.append((a.shape[0], a.shape[1], a.shape[2], b.shape[2]))
        return func(*args, **(kwargs or {}))


def bare_matmul(shapes: list[MatmulShape], dtype: torch.dtype, repeats: int) -> float:
    """GFLOP/s of ``torch.mm``/``bmm`` over ``shapes`` on preallocated operands (best of)."""
    operands = [(torch.randn(b, m, k, dtype=dtype), torch.randn(b, k, n, dtype=dtype),
                 torch.empty(b, m, n, dtype=dtype)) for b, m, k, n in shapes]

    def run() -> None:
        for a, b, out in operands:
            if a.shape[0] == 1:
                torch.mm(a[0], b[0], out=out[0])
            else:
                torch.bmm(a, b, out=out)

    run()  # warm-up
    flops = sum(2 * b * m * k * n for b, m, k, n in shapes)
    return flops / best_of(repeats, run) / 1e9


def training_batch(vocab: int) -> dict[str, Tensor]:
    """A random token stream cut into (16, 256) inputs and next-token targets."""
    generator = torch.Generator().manual_seed(0)
    stream = torch.randint(0, vocab, (TRAIN_BATCH, TRAIN_LENGTH + 1), generator=generator)
    return {"inputs": stream[:, :-1], "targets": stream[:, 1:]}  # (B, T) each


def train_step(precision: str) -> Callable[[], None]:
    """One real step of a fresh ``tiny`` model: loss under autocast, backward, AdamW, zero_grad."""
    torch.manual_seed(0)
    model = TradeFM(tradefm_config("tiny")).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = training_batch(model.config.vocab_size)
    resolved: Resolved = "bf16" if precision == "bf16" else "fp32"

    def step() -> None:
        with autocast(CPU, resolved):
            loss = tradefm_loss(model, batch).loss
        torch.autograd.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def counted(step: Callable[[], None]) -> tuple[int, list[MatmulShape]]:
    """FLOPs of one step (FlopCounterMode) and the matrix products it dispatches."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    shapes = MatmulShapes()
    with shapes:
        step()
    return int(counter.get_total_flops()), shapes.shapes


def run_steps(step: Callable[[], None], steps: int) -> None:
    """``steps`` calls of ``step``."""
    for _ in range(steps):
        step()


def training_rows(precisions: list[str], steps: int, repeats: int) -> list[dict[str, Any]]:
    """Tokens/s, GFLOP/s and share of the same-shape bare matmul, per precision."""
    rows = []
    for precision in precisions:
        step = train_step(precision)
        flops, shapes = counted(step)  # also the warm-up
        seconds = best_of(repeats, partial(run_steps, step, steps)) / steps
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        bare = bare_matmul(shapes, dtype, repeats)
        gflops = flops / seconds / 1e9
        rows.append({"precision": precision, "step_s": seconds,
                     "tokens_per_s": TRAIN_BATCH * TRAIN_LENGTH / seconds,
                     "gflop_per_step": flops / 1e9, "gflop_per_s": gflops,
                     "bare_matmul_gflop_per_s": bare, "share_of_bare": gflops / bare,
                     "matmuls_per_step": len(shapes)})
    return rows


# ----------------------------------------------------------------------------------------------
# generation


def prompt(model: TradeFM, batch: int, length: int, seed: int) -> Inputs:
    """Random tokens and context inputs (B, T) for a prompt."""
    c, generator = model.config, torch.Generator().manual_seed(seed)
    shape = (batch, length)
    return (torch.randint(0, c.vocab_size, shape, generator=generator),
            torch.randint(0, c.n_tiers, shape, generator=generator),
            torch.randint(0, c.n_flags, shape, generator=generator),
            torch.randint(0, c.n_dp_bins, shape, generator=generator))


@torch.no_grad()
def last_logits(model: TradeFM, inputs: Inputs) -> Tensor:
    """The decoder over the whole context, the head on the last position only: (B, V)."""
    tokens = inputs[0]
    positions = torch.arange(tokens.shape[1])  # (T,)
    rope = rope_angles(positions, model.config.head_dim, model.config.rope_base)
    x = model.embedding(*inputs)  # (B, T, d)
    for layer in model.layers:
        x = layer(x, rope, positions)
    return model.head(model.norm(x[:, -1]))  # type: ignore[no-any-return]


@torch.no_grad()
def recompute_generate(model: TradeFM, inputs: Inputs, n_new: int, *, greedy: bool,
                       generator: torch.Generator | None = None) -> Tensor:
    """``n_new`` tokens (B, n_new), each from a full pass over the context so far.

    The context inputs of new tokens repeat the prompt's last values, as ``generate`` does.
    """
    tokens, tier, flag, dp_bin = inputs
    context = (tier[:, -1:], flag[:, -1:], dp_bin[:, -1:])
    new = []
    for _ in range(n_new):
        logits = last_logits(model, (tokens, tier, flag, dp_bin))  # (B, V)
        token = (logits.argmax(-1, keepdim=True) if greedy
                 else sample_next(logits, generator=generator))  # (B, 1)
        new.append(token)
        tokens = torch.cat([tokens, token], dim=1)
        tier, flag, dp_bin = (torch.cat([a, b], dim=1)
                              for a, b in zip((tier, flag, dp_bin), context, strict=True))
    return torch.cat(new, dim=1)


@torch.no_grad()
def check_greedy(model: TradeFM) -> str:
    """KV-cache generation (top-k 1) and recomputation (argmax) give the same tokens."""
    window = model.config.window_size
    inputs = prompt(model, 2, window + 40, seed=3)  # a prompt longer than W: the ring has wrapped
    full = model(*inputs)[:, -1]  # (B, V)
    gap = float((full - last_logits(model, inputs)).abs().max())
    if gap > 1e-4:
        raise AssertionError(f"last_logits differs from forward by {gap:.2e}")
    cached = model.generate(*inputs, 24, top_k=1)
    recomputed = recompute_generate(model, inputs, 24, greedy=True)
    if not torch.equal(cached, recomputed):
        raise AssertionError(f"greedy tokens differ:\n{cached}\n{recomputed}")
    return f"greedy KV cache = recomputation on 2 × 24 tokens after a {window + 40}-token prompt"


@torch.no_grad()
def kv_timings(model: TradeFM, inputs: Inputs, n_new: int, repeats: int) -> tuple[float, float]:
    """Best seconds of ``prefill`` and of the ``n_new`` tokens after it (sample, then step).

    The loop is ``TradeFM.generate``'s, timed in two parts: n_new draws and n_new − 1 steps.
    """
    context = tuple(a[:, -1:] for a in inputs[1:])  # (B, 1) each: the prompt's last values
    prefill_s = steps_s = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        logits, decoding = model.prefill(*inputs)
        logits = logits[:, -1]  # (B, V)
        prefilled = time.perf_counter()
        generator = torch.Generator().manual_seed(0)
        for i in range(n_new):
            token = sample_next(logits, generator=generator)  # (B, 1)
            if i < n_new - 1:
                logits = model.step(decoding, token, *context)  # (B, V)
        done = time.perf_counter()
        prefill_s, steps_s = min(prefill_s, prefilled - start), min(steps_s, done - prefilled)
    return prefill_s, steps_s


def generation_rows(model: TradeFM, batches: list[int], n_new: int, n_compare: int,
                    repeats: int) -> list[dict[str, Any]]:
    """Events/s with the KV cache, and the speed-up over recomputation, per batch size."""
    rows = []
    for batch in batches:
        inputs = prompt(model, batch, PROMPT, seed=batch)
        kv_timings(model, prompt(model, batch, 16, seed=0), 2, 1)  # warm-up
        prefill_s, steps_s = kv_timings(model, inputs, n_new, repeats)
        logits = torch.randn(batch, model.config.vocab_size)
        sample_s = best_of(5, partial(sample_next, logits))
        trunk_s = best_of(repeats, partial(last_logits, model, inputs))
        recompute_s = best_of(max(1, repeats - 1), partial(
            recompute_generate, model, inputs, n_compare, greedy=False,
            generator=torch.Generator().manual_seed(0)))
        kv_token_s, recompute_token_s = steps_s / n_new, recompute_s / n_compare
        kv_compare_s = prefill_s + n_compare * kv_token_s
        rows.append({"batch": batch, "prompt": PROMPT, "new_tokens": n_new,
                     "prefill_s": prefill_s, "prefill_last_head_only_s": trunk_s,
                     "steps_s": steps_s, "token_ms": 1e3 * kv_token_s,
                     "sample_ms": 1e3 * sample_s,
                     "step_events_per_s": batch / kv_token_s,
                     "events_per_s": batch * n_new / (prefill_s + steps_s),
                     "compare_new_tokens": n_compare, "recompute_s": recompute_s,
                     "recompute_token_ms": 1e3 * recompute_token_s,
                     "recompute_events_per_s": batch / recompute_token_s,
                     "speedup_per_token": recompute_token_s / kv_token_s,
                     "kv_compare_s": kv_compare_s,
                     "speedup_end_to_end": recompute_s / kv_compare_s})
    return rows


# ----------------------------------------------------------------------------------------------


def print_tables(train: list[dict[str, Any]], generation: list[dict[str, Any]],
                 peak: float) -> None:
    print(f"\ntraining step, tiny, batch {TRAIN_BATCH} × {TRAIN_LENGTH} tokens "
          "(forward + backward + AdamW)")
    print(f"{'precision':<10}{'s/step':>9}{'tokens/s':>10}{'GFLOP':>8}{'GFLOP/s':>9}"
          f"{'bare mm GFLOP/s':>17}{'share':>7}{'of 1024² fp32':>15}")
    for r in train:
        print(f"{r['precision']:<10}{r['step_s']:>9.3f}{r['tokens_per_s']:>10,.0f}"
              f"{r['gflop_per_step']:>8.1f}{r['gflop_per_s']:>9.1f}"
              f"{r['bare_matmul_gflop_per_s']:>17.1f}{r['share_of_bare']:>7.0%}"
              f"{r['gflop_per_s'] / peak:>15.0%}")
    print(f"\ngeneration, tiny, prompt {PROMPT}, sampling included, fp32; per new token at "
          f"context {PROMPT}: KV cache (sample + step) against recomputation")
    print(f"{'batch':>5}{'prefill s':>10}{'(head last)':>12}{'KV ms/tok':>10}{'(sample)':>9}"
          f"{'events/s':>10}{'(+prefill)':>11}{'recomp ms/tok':>14}{'speed-up':>9}"
          f"{'end-to-end':>12}")
    for r in generation:
        print(f"{r['batch']:>5}{r['prefill_s']:>10.3f}{r['prefill_last_head_only_s']:>12.3f}"
              f"{r['token_ms']:>10.2f}{r['sample_ms']:>9.2f}{r['step_events_per_s']:>10,.0f}"
              f"{r['events_per_s']:>11,.0f}{r['recompute_token_ms']:>14.1f}"
              f"{r['speedup_per_token']:>8.1f}×{r['speedup_end_to_end']:>11.1f}×")
    r = generation[0]
    print(f"events/s (+prefill): {r['new_tokens']} new tokens after the prompt, prefill "
          f"included; end-to-end: prefill + {r['compare_new_tokens']} new tokens against "
          f"{r['compare_new_tokens']} recomputed ones. (head last): the prompt's pass with the "
          f"head on the last position only, as recomputation runs it.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and tokens (< 60 s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    # RMSNorm's fused kernel needs input and weight of one dtype; under bf16 autocast it falls
    # back to the unfused path (part of what is measured) and warns once.
    warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight")
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    config = tradefm_config("tiny")
    print(f"CPU: {cpu_description()}")
    print(f"threads: {torch.get_num_threads()}; bf16 fast here: {bf16_is_fast()}; load average "
          f"before: {load_before:.2f}; tiny: {tradefm_parameter_count(config):,} parameters")
    repeats = 2 if args.quick else 3
    peak = bare_matmul([(1, 1024, 1024, 1024)], torch.float32, 5)
    precisions = ["fp32", *(["bf16"] if bf16_is_fast() else [])]
    train = training_rows(precisions, steps=2 if args.quick else 8, repeats=repeats)
    torch.manual_seed(0)
    model = TradeFM(config).eval()
    print(check_greedy(model))
    generation = generation_rows(model, [1, 64], n_new=16 if args.quick else 256,
                                 n_compare=3 if args.quick else 16,
                                 repeats=1 if args.quick else repeats)
    load_after = os.getloadavg()[0]
    print_tables(train, generation, peak)
    print(f"\nFLOPs: FlopCounterMode over one real step (forward + backward, attention included; "
          f"AdamW not counted). bare mm: the step's own {train[0]['matmuls_per_step']} matrix "
          f"products, same dtype. fp32 matmul 1024²: {peak:.0f} GFLOP/s.")
    print("recompute: the decoder over the whole context (512 + i) for each new token, head on "
          "the last position only.")
    print(f"load average before {load_before:.2f}, after {load_after:.2f} (other jobs may have "
          f"run beside this); {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "cpu": cpu_description(), "threads": torch.get_num_threads(),
            "bf16_fast": bf16_is_fast(), "load_before": load_before, "load_after": load_after,
            "peak_fp32_gflop_per_s": peak, "training": train, "generation": generation,
        }, indent=2))


if __name__ == "__main__":
    main()

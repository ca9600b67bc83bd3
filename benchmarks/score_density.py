"""Score model speed: log-likelihood of 1,000 market states (aim: under 60 s on this CPU) and
annealed Langevin samples/s (issue 16, "Results, CLI, speed").

The model is the ``small`` preset of :mod:`tapecast.models.score_matching` fitted for a few
steps on the built-in daily S&P 500 state vectors (``tapecast features --kind state --sp500``'s
features, z-scored on the train split); the costs do not depend on how well it is trained.
Timed side by side in one run: ``log_prob`` of 1,000 test states with the Hutchinson trace
(1 probe, the default of ``tapecast density``) and with the exact trace, and ``sample`` of 1,000
states with the config's Langevin schedule (levels × steps per level network calls).

Run::

    .venv/bin/python benchmarks/score_density.py [--states 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from timing import cpu_description  # benchmarks/timing.py

from tapecast.data.readers.embedded import sp500_daily_bars
from tapecast.features.state_config import StateConfig
from tapecast.features.state_featureset import StateFeatureSet
from tapecast.models.score_matching import ScoreMatching
from tapecast.models.score_matching_config import score_matching_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_description()}, torch threads {args.threads}, load "
          f"{os.getloadavg()[0]:.1f}")
    fs = StateFeatureSet.build(sp500_daily_bars(), StateConfig())
    train, test = fs.matrix("train"), fs.matrix("test")
    # the model runs inference with its config's thread count (ScoreMatching.threads)
    config = score_matching_config("small").with_train(max_steps=20, eval_every=20,
                                                        num_threads=args.threads)
    model = ScoreMatching(config).fit(train, progress=False)
    states = np.resize(test, (args.states, test.shape[1]))  # (N, D)
    rows = []
    for name, kwargs in (("log p, Hutchinson (1 probe)", {"divergence": "hutchinson"}),
                         ("log p, exact trace", {"divergence": "exact"})):
        began = time.perf_counter()
        model.log_prob(states, **kwargs)
        rows.append((name, time.perf_counter() - began))
    began = time.perf_counter()
    model.sample(args.states, seed=0)
    sample_s = time.perf_counter() - began
    print(f"\nscore model 'small', {train.shape[1]}-D S&P 500 states, {args.states:,} states")
    for name, seconds in rows:
        verdict = "met" if seconds < 60 else "NOT met"
        print(f"{name:<30} {seconds:8.1f} s   (aim < 60 s: {verdict})")
    print(f"{'Langevin sampling':<30} {sample_s:8.1f} s   "
          f"({args.states / sample_s:,.0f} samples/s)")


if __name__ == "__main__":
    main()

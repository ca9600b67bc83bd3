"""Regenerate docs/results/score-matching.md: the score model of market states (issue 16).

Four studies, every number computed here:

1. **Density checks** on a known 2-D Gaussian mixture (:data:`tapecast.models.score_reference.
   TWO_COMPONENTS`): the probability-flow log p and Langevin's mixture weights with the exact
   score plugged in, then with a DSM and an SSM-VR network trained on 8,192 draws; Hutchinson
   against the exact divergence; a picture of the learned score field.
2. **Injected regimes at unchanged volatility** on the built-in market's 1-minute bars
   (:mod:`tapecast.sim.regimes`): a score model trained on the clean first 60 % of the bars, the
   last 30 % rewritten with 20 segments of 60 bars whose return autocorrelation or volume-return
   coupling changes; AUROC of every detector per bar and over a trailing window of 20 bars (the
   state lookback, fixed before looking), detection delay at each detector's train 99th
   percentile, paired block-bootstrap p of NLL against Mahalanobis and against volatility.
3. **Real data** (the embedded daily S&P 500; the BTC perpetual 1-minute bars of
   ``../shared/data`` when present): a score model per source on its 70 % train split (early
   stop on val); the false-alarm rate on the validation period at each detector's train 99th
   percentile; AUROC on the test period against "top 1 % realized volatility over the next 20
   bars"; Langevin samples against the real states.
4. **Backtest**: :func:`tapecast.workflows.score_backtest.walk_forward` (4 expanding folds, a
   new normalizer and model per fold) with the REAL / SHUFFLE / NAIVE / RANDOM arms.

Run from the repository root::

    .venv/bin/python scripts/results_score_matching.py [--steps 2000] [--backtest-steps 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray
from scipy.stats import ks_2samp

from tapecast.data.detect import read
from tapecast.data.readers.embedded import sp500_daily_bars
from tapecast.evaluate.anomaly import (
    auroc,
    auroc_difference,
    delay_summary,
    detection_delays,
    false_alarm_rate,
    trailing_mean,
)
from tapecast.evaluate.trading import trading_metrics
from tapecast.features.state import state_features
from tapecast.features.state_config import StateConfig
from tapecast.features.state_featureset import StateFeatureSet
from tapecast.features.state_normalize import StateNormalizer
from tapecast.models.baselines.state_anomaly import baseline_detector
from tapecast.models.score_anomaly import score_detector, threshold_states
from tapecast.models.score_matching import ScoreMatching, score_matching_config
from tapecast.models.score_matching_ops import sample_states, state_log_density
from tapecast.models.score_reference import TWO_COMPONENTS
from tapecast.sim.regimes import inject_regimes, minute_bars, random_regimes
from tapecast.workflows.score_backtest import SEED_CLAIMED_SHARPE, walk_forward

ROOT = Path(__file__).resolve().parents[1]
BTC = ROOT.parent / "shared" / "data" / "nautilus" / "btc-perp-20211231-20220201_1m.csv"
SCORE_DETECTORS = ("nll", "typicality", "msma")
BASELINES = ("mahalanobis", "volatility", "isolation-forest", "gmm")
DETECTORS = SCORE_DETECTORS + BASELINES
WINDOW = 20  # trailing states of the windowed detectors: the state lookback, fixed a priori
REGIMES = (("autocorrelation", 0.5), ("autocorrelation", 0.8), ("autocorrelation", -0.5),
           ("coupling", 0.8), ("coupling", -0.8))
N_BOOT = 500


def small(steps: int, seed: int = 0) -> Any:
    return score_matching_config("small").with_train(max_steps=steps, seed=seed)


# -- 1. density checks -----------------------------------------------------------------------


def density_checks(img: Path) -> dict[str, Any]:
    law = TWO_COMPONENTS
    train, points = law.sample(8192, 0), law.sample(200, 1)
    exact = law.log_prob(points, law.spread**2 + 0.01**2)
    out: dict[str, Any] = {}
    fitted: dict[str, ScoreMatching] = {}
    for objective in ("dsm", "ssm-vr"):
        cfg = score_matching_config("small").replace(objective=objective)
        cfg = cfg.replace(net=cfg.net.replace(width=48, depth=2)).with_train(
            max_steps=3000, batch_size=128, lr=3e-3, eval_every=3000, log_every=3000)
        t0 = time.perf_counter()
        fitted[objective] = model = ScoreMatching(cfg).fit(train.float(), progress=False)
        out[objective] = {
            "train_s": time.perf_counter() - t0,
            "logp_error_per_dim": float((model.log_prob(points) - exact).abs().mean()) / 2,
            "weight": law.component_share(model.sample(2000, n_levels=20, steps_per_level=50,
                                                       seed=0))}
    noise = fitted["dsm"].noise
    mean, cov = law.moments()
    ll = state_log_density(law.analytic_net(), noise, points, steps=50, prior_mean=mean,
                           prior_cov=cov)
    draws = sample_states(law.analytic_net(), noise, 4000, 2, n_levels=20, steps_per_level=50,
                          epsilon=2e-5, seed=0)
    out["analytic"] = {"logp_error": float((ll - exact).abs().mean()),
                       "weight": law.component_share(draws)}
    model = fitted["dsm"]
    few = law.sample(8, 9)
    ex = model.log_prob(few, steps=40)
    hutch = model.log_prob(few.repeat_interleave(64, 0), divergence="hutchinson", steps=40,
                           seed=3).reshape(8, 64)
    z = ((hutch.mean(1) - ex) / (hutch.std(1) / 8.0)).abs()
    out["hutchinson"] = {"max_abs_z": float(z.max()), "mean_abs_z": float(z.mean()),
                         "probes": 64, "points": 8}
    out["figure"] = score_field_figure(model, img / "score-field.png")
    return out


def score_field_figure(model: ScoreMatching, path: Path) -> str:
    law = TWO_COMPONENTS
    g = np.linspace(-3.5, 3.5, 21)
    xx, yy = np.meshgrid(g, g)
    grid = np.stack([xx.ravel(), yy.ravel()], 1)
    sigma = 0.1
    learned = model.score(grid, sigma).double().numpy()
    exact = (law.analytic_net()(torch.from_numpy(grid), torch.full((len(grid),), math.log(sigma)))
             .numpy() / sigma)
    fine = np.linspace(-3.5, 3.5, 200)
    fx, fy = np.meshgrid(fine, fine)
    dens = law.log_prob(torch.from_numpy(np.stack([fx.ravel(), fy.ravel()], 1)),
                        law.spread**2 + sigma**2).exp().numpy().reshape(fx.shape)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharey=True)
    for ax, field, title in ((axes[0], exact, "exact score"), (axes[1], learned,
                                                                 "learned score (DSM)")):
        ax.contour(fx, fy, dens, levels=8, colors="0.7", linewidths=0.8)
        norm = np.linalg.norm(field, axis=1, keepdims=True) + 1e-12
        unit = field / norm
        ax.quiver(grid[:, 0], grid[:, 1], unit[:, 0], unit[:, 1], np.log(norm[:, 0]),
                  cmap="viridis", scale=30, width=0.004)
        ax.set_title(f"{title} at σ = {sigma}")
        ax.set_xlabel("x1")
    axes[0].set_ylabel("x2")
    fig.suptitle("Score field of the 2-D mixture (arrows: direction; colour: log ‖s‖; "
                 "grey: density)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


# -- detectors ---------------------------------------------------------------------------------


def fit_detectors(model: ScoreMatching, train: NDArray[np.float64], names: list[str]
                  ) -> dict[str, Any]:
    """Every detector fitted on ``train`` (at most 10,000 states, as the CLI's threshold)."""
    dets: dict[str, Any] = {k: score_detector(k, model, window=5).fit(train)
                            for k in SCORE_DETECTORS}
    dets.update({k: baseline_detector(k, names).fit(train) for k in BASELINES})
    return dets


# -- 2. injected regimes -------------------------------------------------------------------------


def regime_study(steps: int, seed: int) -> dict[str, Any]:
    cfg = StateConfig()
    names = list(cfg.names)
    bars = minute_bars(n_sessions=40, seed=seed)
    n = bars.height
    cut, vcut = int(0.6 * n), int(0.7 * n)
    clean, _ = state_features(bars, cfg)
    rows = clean["row"].to_numpy()
    norm = StateNormalizer.fit(clean.filter(pl.col("row") < cut), cfg.names)
    x = norm.transform(clean.select(names).to_numpy())
    train, val = x[rows < cut], x[(rows >= cut + cfg.warmup) & (rows < vcut)]
    model = ScoreMatching(small(steps, seed)).fit(train, val, progress=False,
                                                  feature_names=names)
    sub = threshold_states(train, seed=seed)
    dets = fit_detectors(model, sub, names)
    train_scores = {k: d.score(sub) for k, d in dets.items()}
    thr = {k: float(np.quantile(trailing_mean(s, WINDOW), 0.99)) for k, s in train_scores.items()}
    thr_bar = {k: float(np.quantile(s, 0.99)) for k, s in train_scores.items()}
    results: list[dict[str, Any]] = []
    first = vcut + cfg.warmup
    for i, (kind, strength) in enumerate(REGIMES):
        regimes = random_regimes(n, kind=kind, strength=strength, first=first, count=20,
                                 length=60, seed=seed + 1 + i)
        injected = inject_regimes(bars, regimes, seed=seed + 100 + i)
        states, _ = state_features(injected.bars, cfg)
        r = states["row"].to_numpy()
        keep = r >= first
        xt = norm.transform(states.select(names).to_numpy()[keep])
        labels = injected.labels[r[keep]]
        # a state whose 20-bar lookback lies wholly inside a segment, or wholly outside every
        # one; states straddling an edge are ambiguous and left out of the "clean" AUROC
        csum = np.concatenate([[0], np.cumsum(injected.labels)])
        inside = csum[r[keep] + 1] - csum[np.maximum(r[keep] + 1 - WINDOW, 0)]
        clean = (inside == 0) | (inside == WINDOW)
        row: dict[str, Any] = {"kind": kind, "strength": strength, "states": int(keep.sum()),
                               "labelled": int(labels.sum()), "segments": len(regimes),
                               "clean_states": int(clean.sum()), "detectors": {}}
        windowed: dict[str, NDArray[np.float64]] = {}
        for k, det in dets.items():
            s = det.score(xt)
            windowed[k] = trailing_mean(s, WINDOW)
            row["detectors"][k] = {
                "auroc_bar": auroc(s, labels), "auroc_window": auroc(windowed[k], labels),
                "auroc_clean": auroc(s[clean], inside[clean] == WINDOW),
                "false_alarms_bar": false_alarm_rate(s[~labels], thr_bar[k]),
                **delay_summary(detection_delays(windowed[k], labels, thr[k]))}
        row["tests"] = {f"nll vs {b}": auroc_difference(windowed["nll"], windowed[b], labels,
                                                        n_boot=N_BOOT, seed=seed).to_dict()
                        for b in ("mahalanobis", "volatility")}
        row["tests"].update({f"msma vs {b}": auroc_difference(
            windowed["msma"], windowed[b], labels, n_boot=N_BOOT, seed=seed).to_dict()
            for b in ("mahalanobis", "volatility")})
        results.append(row)
        print(f"regime {kind} {strength}: " + ", ".join(
            f"{k} {v['auroc_window']:.3f}" for k, v in row["detectors"].items()), flush=True)
    return {"bars": n, "train_states": len(train), "val_states": len(val),
            "model": model.training, "regimes": results}


# -- 3. real data --------------------------------------------------------------------------------


def next_realized_vol(returns: NDArray[np.float64], span: int) -> NDArray[np.float64]:
    """std of r_{t+1..t+span} (NaN where fewer than ``span`` returns follow): (n,)."""
    out = np.full(len(returns), np.nan)
    for t in range(len(returns) - span):
        out[t] = returns[t + 1:t + 1 + span].std(ddof=1)
    return out


def real_study(name: str, bars: pl.DataFrame, steps: int, seed: int, img: Path
               ) -> dict[str, Any]:
    fs = StateFeatureSet.build(bars, StateConfig(), source=name)
    names = list(fs.config.names)
    train, val, test = fs.matrix("train"), fs.matrix("val"), fs.matrix("test")
    t0 = time.perf_counter()
    model = ScoreMatching(small(steps, seed)).fit(train, val, progress=False,
                                                  feature_names=names)
    train_s = time.perf_counter() - t0
    sub = threshold_states(train, seed=seed)
    dets = fit_detectors(model, sub, names)
    thr = {k: float(np.quantile(d.score(sub), 0.99)) for k, d in dets.items()}
    alarms = {k: false_alarm_rate(d.score(val), thr[k]) for k, d in dets.items()}
    r = fs.table.filter(pl.col("split") == "test")["return_1"].to_numpy()
    rv = next_realized_vol(r, WINDOW)
    ok = np.isfinite(rv)
    labels = rv[ok] >= np.quantile(rv[ok], 0.99)
    scores = {k: d.score(test)[ok] for k, d in dets.items()}
    aurocs = {k: auroc(s, labels) for k, s in scores.items()}
    tests = {f"{a} vs {b}": auroc_difference(scores[a], scores[b], labels, n_boot=N_BOOT,
                                             seed=seed).to_dict()
             for a in SCORE_DETECTORS for b in ("mahalanobis", "volatility")}
    t1 = time.perf_counter()
    draws = model.sample(2000, seed=seed).double().numpy()
    sample_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    model.log_prob(test[:1000], divergence="hutchinson")
    logp_s = time.perf_counter() - t2
    marginals = {f: {"real_mean": float(test[:, j].mean()), "real_std": float(test[:, j].std()),
                     "sample_mean": float(draws[:, j].mean()),
                     "sample_std": float(draws[:, j].std()),
                     "ks_samples_vs_test": float(ks_2samp(draws[:, j], test[:, j]).statistic),
                     "ks_samples_vs_train": float(ks_2samp(draws[:, j], train[:, j]).statistic),
                     "ks_train_vs_test": float(ks_2samp(train[:, j], test[:, j]).statistic)}
                 for j, f in enumerate(names)}
    fig = samples_figure(name, names, train, draws, img / f"score-samples-{slug(name)}.png")
    return {"states": {"train": len(train), "val": len(val), "test": len(test)},
            "model": model.training, "train_s": train_s, "false_alarms": alarms,
            "test_positives": int(labels.sum()), "test_labelled": int(ok.sum()),
            "auroc": aurocs, "tests": tests, "marginals": marginals, "figure": fig,
            "langevin_samples_per_s": 2000 / sample_s, "logp_1000_s": logp_s}


def slug(name: str) -> str:
    return name.lower().replace(" ", "-").replace("&", "")


def samples_figure(name: str, names: list[str], real: NDArray[np.float64],
                   draws: NDArray[np.float64], path: Path) -> str:
    pairs = (("return_1", "volume_ratio"), ("return_20", "volatility"),
             ("price_position", "rsi"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    rng = np.random.default_rng(0)
    pick = rng.choice(len(real), size=min(2000, len(real)), replace=False)
    for ax, (a, b) in zip(axes, pairs, strict=True):
        i, j = names.index(a), names.index(b)
        ax.scatter(real[pick, i], real[pick, j], s=3, alpha=0.35, label="real (train)")
        ax.scatter(draws[:, i], draws[:, j], s=3, alpha=0.35, label="Langevin")
        ax.set_xlabel(f"{a} (z)")
        ax.set_ylabel(f"{b} (z)")
    axes[0].legend(markerscale=4)
    fig.suptitle(f"{name}: 2,000 Langevin states beside 2,000 real training states")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


# -- 4. backtest ---------------------------------------------------------------------------------


def backtest_study(name: str, bars: pl.DataFrame, steps: int, periods_per_year: float,
                   seed: int, img: Path) -> dict[str, Any]:
    fs = StateFeatureSet.build(bars, StateConfig(), source=name)
    t0 = time.perf_counter()
    res = walk_forward(fs.table, fs.config.names, folds=4, config="small", max_steps=steps,
                       cost=0.0005, periods_per_year=periods_per_year, seed=seed, n_boot=N_BOOT)
    wall = time.perf_counter() - t0
    bt = res.backtest
    fig, ax = plt.subplots(figsize=(9, 4))
    for arm_name, arm in bt.arms.items():
        ax.plot(arm.equity, label=arm_name, lw=1.2 if arm_name == "REAL" else 0.8)
    for k in np.flatnonzero(np.diff(bt.folds)):
        ax.axvline(k + 1, color="0.8", lw=0.8)
    ax.set_xlabel("test bar (4 folds, grey lines)")
    ax.set_ylabel("cumulative P&L (notional, after 5 bp)")
    ax.set_title(f"{name}: walk-forward equity of the four arms")
    ax.legend()
    fig.tight_layout()
    path = img / f"score-equity-{slug(name)}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    gross = {name: trading_metrics(arm.positions, bt.returns, cost=0.0,
                                   periods_per_year=periods_per_year)["sharpe"]
             for name, arm in bt.arms.items()}
    return {**bt.summary(), "folds_info": res.folds, "wall_s": wall, "figure": path.name,
            "traded": float(np.mean(bt.arms["REAL"].positions != 0)), "gross_sharpe": gross}


# -- page ----------------------------------------------------------------------------------------


def f3(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def pval(res: dict[str, Any]) -> str:
    p = res.get("p_value")
    return "–" if p is None else f"{p:.3f}"


def write_page(out: Path, args: argparse.Namespace, results: dict[str, Any], wall: float
               ) -> None:
    d = results["density"]
    lines = [
        "# Results: score matching on market states", "",
        "Generated by `scripts/results_score_matching.py` (`.venv/bin/python "
        f"scripts/results_score_matching.py --steps {args.steps} --backtest-steps "
        f"{args.backtest_steps}`) on this 2-core CPU in {wall / 60:.0f} min. Every number "
        "comes from that command; the model is [docs/score-matching.md](../score-matching.md), "
        "the signal and backtest [docs/score-backtest.md](../score-backtest.md).", "",
        "## 1. Density checks on a known law", "",
        "The law is 0.3 N((−1.5, −0.5), 0.25 I) + 0.7 N((1.5, 1.0), 0.25 I) "
        "(`tapecast.models.score_reference`), whose blurred density and score are exact. The "
        "networks are `small` with width 48, depth 2, 3,000 steps on 8,192 draws; log p of 200 "
        "fresh draws against the exact log p_σmin; weights from 2,000 (trained) or 4,000 "
        "(analytic) Langevin draws, 20 levels × 50 steps.", "",
        "| score | mean abs log p error | target | weight of the heavy component | target |",
        "|---|---|---|---|---|",
        f"| exact (analytic) | {d['analytic']['logp_error']:.1e} nats | ≤ 1e-3 nats | "
        f"{d['analytic']['weight']:.3f} | 0.70 ± 0.05 |",
        f"| trained DSM | {d['dsm']['logp_error_per_dim']:.3f} nats/dim | ≤ 0.05 nats/dim | "
        f"{d['dsm']['weight']:.3f} | 0.70 ± 0.05 |",
        f"| trained SSM-VR | {d['ssm-vr']['logp_error_per_dim']:.3f} nats/dim | ≤ 0.05 "
        f"nats/dim | {d['ssm-vr']['weight']:.3f} | 0.70 ± 0.05 |", "",
        f"Hutchinson against the exact divergence on {d['hutchinson']['points']} points with "
        f"{d['hutchinson']['probes']} probes each: the largest |difference| is "
        f"{d['hutchinson']['max_abs_z']:.2f} standard errors (mean "
        f"{d['hutchinson']['mean_abs_z']:.2f}; target ≤ 3).", "",
        f"![score field](img/{d['figure']})", "",
        "The seed's density — a straight-line integral of the score from a reference point — is "
        "not offered: a learned score is not a gradient field, so the integral depends on the "
        "path (`tests/models/test_score_matching.py` shows two paths 1.35 nats apart).", "",
    ]
    reg = results["regimes"]
    lines += [
        "## 2. Injected regimes at unchanged volatility (built-in market)", "",
        f"Built-in market, 40 sessions of 1-minute bars ({reg['bars']:,} bars). The score model "
        f"(`small`, {args.steps} steps, early stop on val) and every detector are fitted on the "
        f"clean first 60 % ({reg['train_states']:,} states); the last 30 % gets 20 segments of "
        "60 bars each where the return autocorrelation (AR(1) filter of strength φ, same bar "
        "variance) or the volume-return coupling (volumes permuted toward up-bars, ρ > 0, or "
        "down-bars, ρ < 0) changes (`tapecast.sim.regimes`). Per regime: AUROC of each state's "
        "score (bar) and of its trailing mean over 20 states (window; the state lookback, fixed "
        "before any result), the share of segments detected and the median delay (bars from "
        "the segment's start to the first windowed score above the detector's train 99th "
        "percentile). Target: windowed AUROC ≥ 0.9, above Mahalanobis and volatility.", "",
        "| regime | " + " | ".join(DETECTORS) + " |",
        "|---|" + "---|" * len(DETECTORS),
    ]
    for row in reg["regimes"]:
        cells = []
        for k in DETECTORS:
            v = row["detectors"][k]
            cells.append(f"{f3(v['auroc_bar'])} / **{f3(v['auroc_window'])}**")
        lines.append(f"| {row['kind']} {row['strength']:+.1f} | " + " | ".join(cells) + " |")
    lines += ["", "AUROC per bar / **windowed** (all test states, labelled by their own bar). "
              "The same per-bar scores on the unambiguous states only — lookback wholly inside "
              "a segment against wholly outside every segment, the states straddling an edge "
              "left out — separate the detector from the lookback's blur:", "",
              "| regime | " + " | ".join(DETECTORS) + " |", "|---|" + "---|" * len(DETECTORS)]
    for row in reg["regimes"]:
        cells = [f3(row["detectors"][k]["auroc_clean"]) for k in DETECTORS]
        lines.append(f"| {row['kind']} {row['strength']:+.1f} | " + " | ".join(cells) + " |")
    lines += ["", "Detection (windowed, at the train 99th "
              "percentile): share of the 20 segments found, median delay in bars:", "",
              "| regime | " + " | ".join(DETECTORS) + " |", "|---|" + "---|" * len(DETECTORS)]
    for row in reg["regimes"]:
        cells = []
        for k in DETECTORS:
            v = row["detectors"][k]
            delay = "–" if v["median_delay"] is None else f"{v['median_delay']:.0f}"
            cells.append(f"{v['detected']:.0%}, {delay}")
        lines.append(f"| {row['kind']} {row['strength']:+.1f} | " + " | ".join(cells) + " |")
    lines += ["", "Paired block-bootstrap of the windowed AUROC difference (one-sided p of "
              f"\"not better\", {N_BOOT} draws):", "",
              "| regime | NLL − Mahalanobis | p | NLL − volatility | p | MSMA − Mahalanobis | p "
              "| MSMA − volatility | p |", "|---|---|---|---|---|---|---|---|---|"]
    for row in reg["regimes"]:
        t = row["tests"]
        lines.append(
            f"| {row['kind']} {row['strength']:+.1f} | "
            + " | ".join(f"{f3(t[k]['estimate'])} | {pval(t[k])}" for k in (
                "nll vs mahalanobis", "nll vs volatility", "msma vs mahalanobis",
                "msma vs volatility")) + " |")
    met = [row for row in reg["regimes"] if any(
        row["detectors"][k]["auroc_window"] >= 0.9 for k in SCORE_DETECTORS)
        and max(row["detectors"][k]["auroc_window"] for k in SCORE_DETECTORS)
        > max(row["detectors"][b]["auroc_window"] for b in ("mahalanobis", "volatility"))]
    lines += ["", f"**Target met on {len(met)} of {len(reg['regimes'])} regimes**"
              + (" (" + ", ".join(f"{r['kind']} {r['strength']:+.1f}" for r in met) + ")"
                 if met else "") + ".", ""]
    lines += ["## 3. Real data: false alarms and next-period volatility", "",
              "Each source: state folder 70/15/15 by time with a 20-row embargo, `small` score "
              f"model ({args.steps} steps, early stop on val); detectors and their thresholds "
              "fitted on at most 10,000 train states (seeded draw). False alarms: share of the "
              "validation states above each detector's train 99th percentile (target 0.5–2 % "
              "for the score model's NLL). AUROC on the test period against \"top 1 % of the "
              "realized volatility over the next 20 bars\" (per-bar scores).", ""]
    for name, rs in results["real"].items():
        lines += [f"### {name}", "",
                  f"States: train {rs['states']['train']:,}, val {rs['states']['val']:,}, test "
                  f"{rs['states']['test']:,} ({rs['test_positives']} positives among "
                  f"{rs['test_labelled']:,} labelled test states).", "",
                  "| detector | false alarms on val | AUROC, next-20-bar vol top 1 % |",
                  "|---|---|---|"]
        for k in DETECTORS:
            lines.append(f"| {k} | {rs['false_alarms'][k]:.2%} | {f3(rs['auroc'][k])} |")
        lines += ["", "| test | AUROC difference | 95 % interval | p |", "|---|---|---|---|"]
        for k, t in rs["tests"].items():
            lines.append(f"| {k} | {f3(t['estimate'])} | [{f3(t['low'])}, {f3(t['high'])}] | "
                         f"{pval(t)} |")
        fa = rs["false_alarms"]["nll"]
        beats = [k for k in SCORE_DETECTORS
                 if (rs["tests"][f"{k} vs mahalanobis"]["p_value"] or 1) < 0.05
                 and (rs["tests"][f"{k} vs volatility"]["p_value"] or 1) < 0.05]
        lines += ["", f"NLL false-alarm rate {fa:.2%}: **"
                  + ("met" if 0.005 <= fa <= 0.02 else "not met") + "** (0.5–2 %). "
                  "Beating both Mahalanobis and current volatility at p < 0.05: **"
                  + (", ".join(beats) + "** — met." if beats else "none** — not met."), "",
                  "Langevin samples (2,000) against the real states, in z-scores: the K-S "
                  "distance of the samples to the training states (what the model learned), "
                  "to the test states, and train's own distance to test (the shift between "
                  "periods).", "",
                  "| feature | test mean | sample mean | test std | sample std | K-S samples–train "
                  "| K-S samples–test | K-S train–test |", "|---|---|---|---|---|---|---|---|"]
        for f, m in rs["marginals"].items():
            lines.append(f"| {f} | {m['real_mean']:.2f} | {m['sample_mean']:.2f} | "
                         f"{m['real_std']:.2f} | {m['sample_std']:.2f} | "
                         f"{m['ks_samples_vs_train']:.3f} | {m['ks_samples_vs_test']:.3f} | "
                         f"{m['ks_train_vs_test']:.3f} |")
        lines += ["", f"![samples](img/{rs['figure']})", "",
                  f"Speed here: log p of 1,000 test states {rs['logp_1000_s']:.1f} s (Hutchinson, "
                  f"one thread; aim < 60 s), Langevin {rs['langevin_samples_per_s']:.0f} "
                  "states/s (the config's 20 levels × 100 steps).", ""]
    lines += ["## 4. Backtest of the score-direction signal", "",
              "The seed's signal, made sound (`tapecast.models.score_signal`): the sign of the "
              "return_1 coordinate of the score at σ_min, confidence |score| over its train 95th "
              "percentile (the seed divided by the batch maximum, always 1 for one state), the "
              "seed's 0.3 confidence threshold, no position where −log p exceeds the train 99th "
              "percentile. Positions are held over the next bar, 5 bp per unit traded. "
              "Walk-forward: 4 expanding folds, a new normalizer and a new `small` model "
              f"({args.backtest_steps} steps) per fold. SHUFFLE permutes REAL within each test "
              "fold, NAIVE is always long, RANDOM is ±1 at random; p is the one-sided block-"
              "bootstrap p of REAL's mean P&L above the arm's.", ""]
    for name, bt in results["backtest"].items():
        lines += [f"### {name}", "",
                  f"{bt['bars']:,} test bars in {bt['folds']} folds; REAL holds a position on "
                  f"{bt['traded']:.0%} of them. The seed expects a Sharpe of "
                  f"{SEED_CLAIMED_SHARPE[0]}–{SEED_CLAIMED_SHARPE[1]}; REAL's is "
                  f"**{f3(bt['real_sharpe'])}**.", "",
                  "| arm | Sharpe | Sharpe before costs | Sortino | max drawdown | win rate | "
                  "turnover | total return | p (REAL better) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for arm, v in bt["arms"].items():
            m = v["metrics"]
            p = "–" if v["versus_real"] is None else pval(v["versus_real"])
            lines.append(f"| {arm} | {f3(m['sharpe'])} | {f3(bt['gross_sharpe'][arm])} | "
                         f"{f3(m['sortino'])} | "
                         f"{f3(m['max_drawdown'])} | {f3(m['win_rate'])} | {f3(m['turnover'])} | "
                         f"{f3(m['total_return'])} | {p} |")
        lines += ["", "Sharpe is annualized with the bars a year (252 days; 525,600 minutes for "
                  "the 24/7 BTC bars), so a small negative mean per minute becomes a large "
                  "number; the costs are 5 bp of every unit traded. p compares mean P&L after "
                  "costs, so an arm that trades more (SHUFFLE's permutation breaks REAL's runs "
                  "of equal positions) also pays more.", "",
                  f"![equity](img/{bt['figure']})", ""]
    lines += ["## What is not met, plainly", ""] + results["not_met"] + [""]
    out.write_text("\n".join(lines), encoding="utf-8")


def not_met(results: dict[str, Any]) -> list[str]:
    notes = []
    d = results["density"]
    if d["ssm-vr"]["logp_error_per_dim"] > 0.05:
        notes.append(f"- SSM-VR's density error is {d['ssm-vr']['logp_error_per_dim']:.3f} "
                     "nats/dim (> 0.05); the DSM network is the one the checks require.")
    for row in results["regimes"]["regimes"]:
        best = max(row["detectors"][k]["auroc_window"] for k in SCORE_DETECTORS)
        base = max(row["detectors"][b]["auroc_window"] for b in ("mahalanobis", "volatility"))
        if best < 0.9 or best <= base:
            notes.append(f"- Regime {row['kind']} {row['strength']:+.1f}: best score-model "
                         f"windowed AUROC {best:.3f} (Mahalanobis/volatility best {base:.3f}).")
    for name, rs in results["real"].items():
        fa = rs["false_alarms"]["nll"]
        if not 0.005 <= fa <= 0.02:
            notes.append(f"- {name}: NLL false-alarm rate on val {fa:.2%}, outside 0.5–2 %.")
        if not any((rs["tests"][f"{k} vs mahalanobis"]["p_value"] or 1) < 0.05
                   and (rs["tests"][f"{k} vs volatility"]["p_value"] or 1) < 0.05
                   for k in SCORE_DETECTORS):
            notes.append(f"- {name}: no score-model detector beats both Mahalanobis and "
                         "current volatility on next-period volatility at p < 0.05.")
    for name, bt in results["backtest"].items():
        s = bt["real_sharpe"]
        notes.append(f"- {name}: REAL Sharpe {f3(s)} against the seed's 0.8–1.5"
                     + ("" if s is not None and s >= 0.8 else " — not reproduced") + ".")
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps of each model")
    parser.add_argument("--backtest-steps", type=int, default=1000,
                        help="training steps per walk-forward fold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "docs" / "results" / "score-matching.md")
    parser.add_argument("--work", type=Path, default=ROOT / ".results-score")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()
    img = args.out.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    print("1. density checks ...", flush=True)
    results["density"] = density_checks(img)
    print("2. injected regimes ...", flush=True)
    results["regimes"] = regime_study(args.steps, args.seed)
    sources: dict[str, tuple[pl.DataFrame, float]] = {"S&P 500 daily": (sp500_daily_bars(),
                                                                        252.0)}
    if BTC.exists():
        btc = read(BTC).bars
        assert btc is not None
        sources["BTC perpetual 1-minute"] = (btc, 525_600.0)
    results["real"], results["backtest"] = {}, {}
    for name, (bars, per_year) in sources.items():
        print(f"3. {name} ...", flush=True)
        results["real"][name] = real_study(name, bars, args.steps, args.seed, img)
        print(f"4. {name} backtest ...", flush=True)
        results["backtest"][name] = backtest_study(name, bars, args.backtest_steps, per_year,
                                                   args.seed, img)
    results["not_met"] = not_met(results)
    (args.work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_page(args.out, args, results, time.perf_counter() - began)
    print(f"wrote {args.out} in {(time.perf_counter() - began) / 60:.1f} min")


if __name__ == "__main__":
    main()

"""tapecast.train.fit trains each kind of model the loop is meant for, unchanged: a
Chronos-Bolt-architecture forecaster with its quantile loss and a score network trained by
denoising score matching (the diffusion denoiser is JL-CSDI's, tests/models/test_jl_csdi.py; the
decoder language model is tests/train/test_lm.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from tapecast.train import TrainConfig, fit

CONTEXT, HORIZON = 32, 8


def _eval_losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in rows if r["kind"] == "eval"]


def _sines(n: int, seed: int) -> dict[str, torch.Tensor]:
    """``n`` noisy sine waves of random phase and period: context (n, 32), target (n, 8)."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(CONTEXT + HORIZON, dtype=torch.float32)
    phase = 2 * math.pi * torch.rand(n, 1, generator=generator)
    period = 8 + 8 * torch.rand(n, 1, generator=generator)
    series = torch.sin(2 * math.pi * t / period + phase)
    series = series + 0.05 * torch.randn(series.shape, generator=generator)
    return {"context": series[:, :CONTEXT], "target": series[:, CONTEXT:]}


def test_fit_when_model_is_chronos_bolt_its_quantile_loss_falls(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    chronos_bolt = pytest.importorskip("chronos.chronos_bolt")
    config = transformers.T5Config(
        d_model=32, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=16,
        dropout_rate=0.0, feed_forward_proj="relu", decoder_start_token_id=0, pad_token_id=0,
        eos_token_id=1, chronos_config={
            "context_length": CONTEXT, "prediction_length": HORIZON, "input_patch_size": 8,
            "input_patch_stride": 8, "quantiles": [0.1, 0.5, 0.9], "use_reg_token": True})
    torch.manual_seed(0)
    model = chronos_bolt.ChronosBoltModelForForecasting(config)

    def quantile_loss(model: nn.Module, batch: dict[str, torch.Tensor],
                      generator: torch.Generator) -> torch.Tensor:
        loss: torch.Tensor = model(context=batch["context"], target=batch["target"]).loss
        return loss  # 2 x pinball loss, summed over levels, mean over samples

    train_config = TrainConfig(lr=3e-3, weight_decay=0.01, weight_decay_on="matrices",
                               batch_size=16, max_steps=40, max_epochs=None, ema_decay=None,
                               eval_every=20, seed=1, num_threads=1)
    fit(model, quantile_loss, _sines(256, 0), _sines(64, 1), train_config, run_dir=tmp_path,
        progress=False)
    first, last = _eval_losses(tmp_path)
    assert last < 0.7 * first


class ScoreNet(nn.Module):
    """s_θ(x, σ) for 2-D points: an MLP of (x, log σ), output divided by σ (NCSN's scaling)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(),
                                 nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Score estimate (B, 2) at points x (B, 2) and noise levels sigma (B, 1)."""
        out: torch.Tensor = self.net(torch.cat([x, sigma.log()], dim=-1))
        return out / sigma


def denoising_score_loss(model: nn.Module, batch: dict[str, torch.Tensor],
                         generator: torch.Generator) -> torch.Tensor:
    """Denoising score matching with weight λ(σ) = σ² (Song & Ermon 2019, arXiv 1907.05600,
    Eq. 5-6): ``E ||σ s(x + σε, σ) + ε||²`` with log σ uniform on [log 0.05, log 2]."""
    x = batch["x"]
    log_sigma = torch.empty(len(x), 1).uniform_(math.log(0.05), math.log(2.0),
                                               generator=generator)
    sigma = log_sigma.exp()
    eps = torch.randn(x.shape, generator=generator)
    score = model(x + sigma * eps, sigma)
    return ((sigma * score + eps) ** 2).sum(-1).mean()


def _two_moons(n: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    angle = math.pi * torch.rand(n, generator=generator)
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return {"x": torch.stack([x, y], dim=-1) + 0.05 * torch.randn(n, 2, generator=generator)}


def test_fit_when_model_is_a_score_network_denoising_loss_falls(tmp_path: Path) -> None:
    val = _two_moons(512, 1)
    with torch.no_grad():
        untrained = float(denoising_score_loss(ScoreNet(), val, torch.Generator().manual_seed(0)))
    config = TrainConfig(lr=3e-3, batch_size=64, max_steps=50, max_epochs=None, ema_decay=0.9,
                         eval_every=25, seed=2, num_threads=1)
    result = fit(ScoreNet(), denoising_score_loss, _two_moons(2048, 0), val, config,
                 run_dir=tmp_path, progress=False)
    assert result.best_val_loss is not None
    assert result.best_val_loss < 0.7 * untrained  # ~2.2 -> ~1.2 (the loss has a floor)

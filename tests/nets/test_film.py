"""The price denoiser (``nets/film.py``): shapes, conditioning shared without recomputation,
parameter count, float64, and a conditional law learned through the diffusion core.

The learned law: ``r | context ~ N(0.8 m, 0.3²)`` with ``m`` the mean of context channel 0 over
the window. A model that ignored its condition would put every conditional mean at 0 and every
spread at the marginal's 0.85.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tapecast.core.config import ConfigError
from tapecast.core.errors import TapecastError
from tapecast.diffusion import GaussianNoise, denoising_loss, draw_samples, get_sampler
from tapecast.nets.film import FiLMConditioning, PriceDenoiser, PriceDenoiserConfig
from tapecast.train import TensorDictDataset, TrainConfig, fit

TINY = PriceDenoiserConfig(n_features=3, context=16, target_dim=1, encoder_dim=16,
                           encoder_layers=2, width=32, depth=2, time_dim=16)
SLOPE, NOISE_STD, T = 0.8, 0.3, 1000


def _net(config: PriceDenoiserConfig = TINY, seed: int = 0) -> PriceDenoiser:
    torch.manual_seed(seed)
    return PriceDenoiser(config).eval()


def _context(config: PriceDenoiserConfig, b: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, config.n_features, config.context, generator=gen)  # (B, K, C)


@pytest.mark.parametrize("encoder", ["cnn", "transformer"])
@pytest.mark.parametrize("target_dim", [1, 30])
def test_price_denoiser_when_called_returns_the_shape_of_x_t(encoder: str, target_dim: int
                                                             ) -> None:
    config = TINY.replace(encoder=encoder, target_dim=target_dim)
    net = _net(config)
    cond = net.condition({"context": _context(config, 2)}).expand(5)
    assert cond.film.shape == (2, config.depth, 2 * config.width) and cond.rows == 10
    out = net(torch.randn(10, target_dim), torch.full((10,), 500.0), cond)
    assert out.shape == (10, target_dim) and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("encoder", ["cnn", "transformer"])
def test_price_denoiser_when_expanded_equals_recomputing_per_row(encoder: str) -> None:
    config = TINY.replace(encoder=encoder)
    net, context, n = _net(config), _context(config, 3), 4
    x = torch.randn(3 * n, 1)
    repeated = net.condition({"context": context.repeat_interleave(n, dim=0)})  # (B·n, ...)
    expanded = net.condition({"context": context}).expand(2).expand(2)
    for t in (torch.tensor(700.0).expand(3 * n), torch.arange(3 * n, dtype=torch.float32) * 50):
        torch.testing.assert_close(net(x, t, expanded), net(x, t, repeated))


def test_price_denoiser_when_rows_have_their_own_time_equals_row_by_row() -> None:
    net, context = _net(), _context(TINY, 2)
    x, t = torch.randn(2, 1), torch.tensor([10.0, 900.0])
    both = net(x, t, net.condition({"context": context}))
    for row in range(2):
        cond = net.condition({"context": context[row:row + 1]})
        alone = net(x[row:row + 1], t[row:row + 1], cond)
        torch.testing.assert_close(both[row:row + 1], alone)
    shared = net.time_conditioning(torch.tensor(10.0).expand(6))
    per_row = net.time_conditioning(torch.tensor([10.0, 11.0]))
    assert shared.shape == (1, TINY.depth, 2 * TINY.width)
    assert per_row.shape == (2, TINY.depth, 2 * TINY.width)
    torch.testing.assert_close(shared[0], per_row[0])


def test_price_denoiser_when_sampling_or_training_encodes_each_window_once() -> None:
    net, calls = _net(), []
    net.encoder.register_forward_hook(lambda module, args, out: calls.append(out.shape[0]))
    noise = GaussianNoise.from_schedule("cosine", T, prediction="v")
    sampler = get_sampler("dpm-solver++", noise)
    sampler.set_timesteps(10)
    x = draw_samples(net, sampler, {"context": _context(TINY, 2)}, 64, (1,), seed=0)
    assert x.shape == (2, 64, 1) and calls == [2]
    batch = {"context": _context(TINY, 8), "target": torch.randn(8, 1)}
    denoising_loss(noise, draws=4)(net, batch, torch.Generator().manual_seed(0))
    assert calls == [2, 8]


def test_price_denoiser_when_masked_entries_are_nan_never_reads_them() -> None:
    net, context = _net(), _context(TINY, 2)
    mask = torch.rand(context.shape, generator=torch.Generator().manual_seed(1)) > 0.3
    poisoned = torch.where(mask, context, torch.tensor(float("nan")))
    zeroed = torch.where(mask, context, torch.tensor(0.0))
    a = net.condition({"context": poisoned, "context_mask": mask}).film
    b = net.condition({"context": zeroed, "context_mask": mask.float()}).film
    assert bool(torch.isfinite(a).all())
    torch.testing.assert_close(a, b)
    unmasked = net.condition({"context": zeroed}).film
    assert not torch.allclose(a, unmasked)  # the mask channels are read
    # without a mask, NaN (a quote-less day's spread) counts as unobserved
    torch.testing.assert_close(net.condition({"context": poisoned}).film, a)


def test_price_denoiser_when_shapes_are_wrong_says_what_it_expected() -> None:
    net = _net()
    with pytest.raises(TapecastError, match=r"context must be \(B, 3, 16\)"):
        net.condition({"context": torch.zeros(2, 3, 15)})
    cond = net.condition({"context": _context(TINY, 2)}).expand(3)
    with pytest.raises(TapecastError, match=r"x_t must be \(6, 1\)"):
        net(torch.zeros(5, 1), torch.zeros(5), cond)


def test_price_denoiser_config_when_values_are_out_of_range_raises() -> None:
    with pytest.raises(ConfigError, match="time_dim: must be even"):
        PriceDenoiserConfig(time_dim=15)
    with pytest.raises(ConfigError, match="heads: must divide encoder_dim"):
        PriceDenoiserConfig(encoder="transformer", encoder_dim=30, heads=4)
    with pytest.raises(ConfigError, match="width: must be >= 1"):
        PriceDenoiserConfig(width=0)
    with pytest.raises(ConfigError, match="encoder: must be one of"):
        PriceDenoiserConfig.from_dict({"encoder": "lstm"})
    assert PriceDenoiserConfig.from_dict(TINY.to_dict()) == TINY


def _expected_parameters(c: PriceDenoiserConfig) -> int:
    """Closed form for the CNN encoder: weights plus biases of every layer."""
    d, w, film = c.encoder_dim, c.width, c.depth * 2 * c.width
    encoder = (2 * c.n_features * d + d + c.encoder_layers * (d * d * c.kernel_size + d)
               + 2 * d * d + d)
    conditioning = (d * film + film) + (c.time_dim * w + w + w * film + film)
    mlp = (c.target_dim * w + w) + c.depth * (w * w + w) + (w * c.target_dim + c.target_dim)
    return encoder + conditioning + mlp


@pytest.mark.parametrize("config", [TINY, PriceDenoiserConfig(),
                                    PriceDenoiserConfig(target_dim=30)])
def test_price_denoiser_when_built_has_the_closed_form_parameter_count(
        config: PriceDenoiserConfig) -> None:
    net = PriceDenoiser(config)
    assert sum(p.numel() for p in net.parameters()) == _expected_parameters(config)


def test_price_denoiser_default_size() -> None:
    """K = 10, C = 120, D = 1: 1.32 M parameters, of which the MLP proper is 0.26 M, the
    encoder 0.23 M and the FiLM projections (condition 0.26 M, time 0.56 M) the rest."""
    sizes = {name: sum(p.numel() for p in child.parameters())
             for name, child in PriceDenoiser(PriceDenoiserConfig()).named_children()}
    assert sizes == {"encoder": 232_704, "cond_film": 264_192, "time_film": 559_360,
                     "inp": 512, "layers": 263_168, "out": 257}


@pytest.mark.parametrize("encoder", ["cnn", "transformer"])
def test_price_denoiser_when_float64_samples_in_float64(encoder: str) -> None:
    net = _net(TINY.replace(encoder=encoder, target_dim=3)).double()
    sampler = get_sampler("ddim", GaussianNoise.from_schedule("cosine", T, prediction="v"))
    sampler.set_timesteps(5)
    x = draw_samples(net, sampler, {"context": _context(TINY, 2)}, 8, (3,), seed=0)
    assert x.dtype == torch.float64 and x.shape == (2, 8, 3) and bool(torch.isfinite(x).all())


def _law(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Context channel 0 = level + noise (level ~ N(0, 1)), the rest noise; r ~ N(0.8 m, 0.3²)."""
    gen = torch.Generator().manual_seed(seed)
    context = torch.randn(n, TINY.n_features, TINY.context, generator=gen)  # (N, K, C)
    context[:, 0] += torch.randn(n, 1, generator=gen)
    m = context[:, 0].mean(dim=1, keepdim=True)  # (N, 1)
    return {"context": context, "target": SLOPE * m + NOISE_STD * torch.randn(n, 1, generator=gen)}


def test_price_denoiser_when_trained_samples_the_conditional_law(tmp_path: Path) -> None:
    noise = GaussianNoise.from_schedule("cosine", T, prediction="v")
    net = _net(TINY.replace(encoder_dim=32, width=64))
    config = TrainConfig(lr=3e-3, batch_size=256, max_epochs=None, max_steps=500,
                         eval_every=500, log_every=100, seed=0, num_threads=1)
    fit(net, denoising_loss(noise, draws=4), TensorDictDataset(_law(4096, 1)), None, config,
        run_dir=tmp_path, progress=False)
    context = _law(3, 2)["context"]
    context[:, 0] += torch.tensor([-1.5, 0.0, 1.5])[:, None] - context[:, 0].mean(1, keepdim=True)
    expected = SLOPE * context[:, 0].mean(dim=1)  # (3,) = 0.8 × (-1.5, 0, 1.5)
    sampler = get_sampler("dpm-solver++", noise)
    sampler.set_timesteps(10)
    x = draw_samples(net.eval(), sampler, {"context": context}, 1000, (1,), seed=3)[:, :, 0]
    torch.testing.assert_close(x.mean(dim=1), expected, atol=0.12, rtol=0.0)
    std = x.std(dim=1)
    assert bool(((std > 0.7 * NOISE_STD) & (std < 1.3 * NOISE_STD)).all()), std


def test_film_conditioning_expand_copies_nothing() -> None:
    film = torch.zeros(2, 3, 8)
    cond = FiLMConditioning(film).expand(4).expand(2)
    assert cond.film is film and cond.n_samples == 8 and cond.rows == 16

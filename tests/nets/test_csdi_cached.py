"""Tests of the context-cached CSDI denoiser (nets/csdi_cached.py)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torch.nn import functional as F

from tapecast.nets import (
    CachedCSDIDenoiser,
    ContextCache,
    CSDIDenoiser,
    DenoiserConfig,
    build_denoiser,
    count_parameters,
    denoiser_config,
)
from tapecast.nets.csdi import feature_mix, grid_conditioning, merge_heads

TINY = DenoiserConfig(n_blocks=2, channels=16, heads=2, ff_dim=32, time_emb_dim=8,
                      feature_emb_dim=4, diffusion_emb_dim=8, n_features=3, context=12, horizon=4,
                      architecture="context-cached")


def tiny_net(seed: int = 0, config: DenoiserConfig = TINY) -> CachedCSDIDenoiser:
    torch.manual_seed(seed)
    net = CachedCSDIDenoiser(config)
    torch.nn.init.normal_(net.head.out.weight)  # zero at init: nothing upstream would learn
    return net


def inputs(windows: int, samples: int, seed: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn(windows, 3, 12, generator=generator)
    x_noisy = torch.randn(windows * samples, 3, 4, generator=generator)
    t = torch.rand(windows * samples, generator=generator) * 50
    return context, x_noisy, t


def prefix_grid_reference(net: CachedCSDIDenoiser, context: Tensor, x_noisy: Tensor,
                          t: Tensor) -> Tensor:
    """The cached net written as one full-grid pass with a prefix attention mask.

    Context cells get no diffusion-time embedding and attend along time to context cells only;
    horizon cells attend to every cell. No cache, no sample broadcasting: an independent
    formulation of what ``encode_context`` + ``forward`` must compute.
    """
    config = net.config
    n_context = config.context
    observed, cond_mask, timepoints = grid_conditioning(config, context, None, None)
    side = net.side_info(timepoints, cond_mask)  # (B, K, L, S)
    cond = torch.cat([observed, torch.zeros_like(x_noisy)], dim=-1)
    noisy = torch.cat([torch.zeros_like(observed), x_noisy], dim=-1)
    h = F.relu(net.input_proj(torch.stack([cond, noisy], dim=-1)))  # (B, K, L, W)
    is_horizon = torch.arange(config.length) >= n_context  # (L,)
    allowed = is_horizon[:, None] | ~is_horizon[None, :]  # (L query, L key)
    emb = net.diffusion_embedding(t)
    skip_sum = torch.zeros_like(h)
    for block in net.cached_blocks:
        y = h + block.diffusion_proj(emb)[:, None, None, :] * is_horizon[:, None]
        q, k, v = block.time_layer.qkv_heads(y)  # (B, K, heads, L, dh)
        flat = (-1, *q.shape[2:])
        attended = F.scaled_dot_product_attention(q.reshape(flat), k.reshape(flat),
                                                  v.reshape(flat), attn_mask=allowed)
        y = block.time_layer.finish(y, merge_heads(attended).view(y.shape))
        y = feature_mix(block.feature_layer, y)
        h, skip = block.gate(h, y, block.side_proj(side))
        skip_sum = skip_sum + skip
    out: Tensor = net.head(skip_sum)
    return out[..., n_context:]


def test_forward_when_called_returns_horizon_shape() -> None:
    net = tiny_net().eval()
    context, x_noisy, t = inputs(windows=2, samples=3)
    cache = net.encode_context(context).expand(3)
    assert (cache.windows, cache.rows) == (2, 6)
    assert net(x_noisy, t, cache).shape == (6, 3, 4)
    assert net(x_noisy, torch.tensor(2.0), cache).shape == (6, 3, 4)


def test_forward_when_compared_with_prefix_masked_grid_is_equal() -> None:
    net = tiny_net().eval()
    context, x_noisy, t = inputs(windows=3, samples=1)
    cached = net(x_noisy, t, net.encode_context(context))
    reference = prefix_grid_reference(net, context, x_noisy, t)
    # tight: letting context cells see the horizon moves the output by ~1e-3 here
    torch.testing.assert_close(cached, reference, rtol=1e-5, atol=1e-5)


def test_forward_when_called_twice_with_same_cache_gives_same_output() -> None:
    net = tiny_net().eval()
    context, x_noisy, t = inputs(windows=2, samples=2)
    cache = net.encode_context(context).expand(2)
    first = net(x_noisy, t, cache)
    second = net(x_noisy, t, cache)
    assert torch.equal(first, second)


def test_cache_expand_when_shared_over_samples_equals_recomputing_per_sample() -> None:
    net = tiny_net().eval()
    context, x_noisy, t = inputs(windows=2, samples=4)
    shared = net(x_noisy, t, net.encode_context(context).expand(4))
    recomputed = net(x_noisy, t, net.encode_context(context.repeat_interleave(4, dim=0)))
    torch.testing.assert_close(shared, recomputed)
    # and sample by sample through the independent reference
    reference = prefix_grid_reference(net, context.repeat_interleave(4, dim=0), x_noisy, t)
    torch.testing.assert_close(shared, reference)


def test_cache_expand_when_called_copies_no_tensor() -> None:
    cache = tiny_net().encode_context(inputs(2, 1)[0])
    expanded = cache.expand(8)
    assert expanded.rows == 16 and cache.rows == 2
    assert all(a is b for a, b in zip(cache.keys, expanded.keys, strict=True))
    with pytest.raises(ValueError, match="n_samples"):
        cache.expand(0)


def test_cache_when_horizon_inputs_change_is_unchanged() -> None:
    net = tiny_net().eval()
    context, x_noisy, t = inputs(windows=2, samples=1)
    cache = net.encode_context(context)
    before = [tensor.clone() for tensor in (*cache.keys, *cache.values, *cache.side_terms)]
    out_a = net(x_noisy, t, cache)
    out_b = net(x_noisy + 1.0, t * 0.5, cache)
    after = (*cache.keys, *cache.values, *cache.side_terms)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not torch.allclose(out_a, out_b)  # the horizon inputs do reach the output
    assert isinstance(net.encode_context(context), ContextCache)


def test_forward_when_last_context_value_changes_changes_output() -> None:
    net = tiny_net().eval()
    context, x_noisy, t = inputs(windows=1, samples=1)
    moved = context.clone()
    moved[0, 2, -1] += 1.0
    out = net(x_noisy, t, net.encode_context(context))
    out_moved = net(x_noisy, t, net.encode_context(moved))
    assert (out - out_moved).abs().max() > 1e-4


def test_weights_when_loaded_from_full_grid_net_fit_exactly() -> None:
    full = CSDIDenoiser(TINY.replace(architecture="full-grid"))
    cached = tiny_net()
    cached.load_state_dict(full.state_dict(), strict=True)
    assert count_parameters(cached) == count_parameters(full)


def test_backward_when_loss_on_output_reaches_every_parameter() -> None:
    net = tiny_net().train()
    context, x_noisy, t = inputs(windows=2, samples=2)
    out = net(x_noisy, t, net.encode_context(context).expand(2))
    (out - torch.randn_like(out)).pow(2).mean().backward()
    missing = [name for name, p in net.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_train_mode_when_dropout_set_is_random_and_eval_is_not() -> None:
    net = tiny_net(config=TINY.replace(dropout=0.2))
    context, x_noisy, t = inputs(windows=1, samples=2)
    cache = net.train().encode_context(context).expand(2)
    torch.manual_seed(5)
    first = net(x_noisy, t, cache)
    second = net(x_noisy, t, cache)
    assert not torch.equal(first, second)
    net.eval()
    cache = net.encode_context(context).expand(2)
    assert torch.equal(net(x_noisy, t, cache), net(x_noisy, t, cache))


def test_bf16_autocast_when_enabled_stays_close_to_fp32() -> None:
    net = tiny_net().eval()
    context, x_noisy, t = inputs(windows=2, samples=2)
    with torch.no_grad():
        exact = net(x_noisy, t, net.encode_context(context).expand(2))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            approx = net(x_noisy, t, net.encode_context(context).expand(2))
    assert approx.shape == exact.shape
    assert (approx.float() - exact).abs().max() < 0.05


def test_small_when_trained_one_step_runs_and_changes_weights() -> None:
    torch.manual_seed(0)
    config = denoiser_config("small")
    net = build_denoiser(config)
    assert isinstance(net, CachedCSDIDenoiser)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(6)
    context = torch.randn(2, 8, 100, generator=generator)
    noise = torch.randn(8, 8, 10, generator=generator)
    before = net.head.out.weight.detach().clone()
    out = net(noise, torch.rand(8, generator=generator) * 50,
              net.encode_context(context).expand(4))
    loss = (out - noise).pow(2).mean()
    loss.backward()
    optimizer.step()
    assert out.shape == (8, 8, 10) and torch.isfinite(loss)
    assert not torch.equal(before, net.head.out.weight)

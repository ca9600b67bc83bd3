"""One contract suite for every sampler (and the MGD wrapper), the registry, and oracle runs.

The oracle runs replace the network by the exact model output for Gaussian data ``N(mu, s^2)``
(see :mod:`tests.diffusion.oracles`), so they test the samplers' arithmetic, not a training run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.diffusion import (
    DDIMSampler,
    DDPMSampler,
    GaussianNoise,
    JumpLaplaceNoise,
    JumpLaplaceSDESampler,
    MomentGuided,
    MomentTargets,
    RowConditioning,
    Sampler,
    Unconditional,
    draw_samples,
    get_noise,
    get_sampler,
    noise_kinds,
    register_sampler,
    registry,
    sampler_names,
    samplers_for,
)
from tests.diffusion.oracles import gaussian_eps, jl_model_output

MU, S = 1.0, 0.8
SHAPE = (8, 3, 5)  # (B * S, K, H): 2 windows of 4 samples, 3 channels, 5 horizon steps
Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _gaussian_noise() -> GaussianNoise:
    return GaussianNoise.from_schedule("tanh6-1", 800)


def _targets() -> MomentTargets:
    central = torch.tensor([[S**2, 0.0, 3 * S**4]]).repeat(3, 1)[None]  # (1, K, 3)
    return MomentTargets(central, torch.eye(3)[None] * S**2)


def _build(name: str) -> tuple[Sampler, Model]:
    """A sampler and the exact model output of its noise for data N(MU, S^2)."""
    gauss, jl = _gaussian_noise(), JumpLaplaceNoise()

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return gaussian_eps(gauss, x, t, MU, S)

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return jl_model_output(jl, x, t, MU, S)

    samplers: dict[str, tuple[Sampler, Model]] = {
        "ddpm": (DDPMSampler(gauss), eps),
        "ddpm-large": (DDPMSampler(gauss, variance="fixed_large"), eps),
        "ddim": (DDIMSampler(gauss), eps),
        "ddim-eta": (DDIMSampler(gauss, eta=0.5), eps),
        "sde": (JumpLaplaceSDESampler(jl), score),
        "sde-euler": (JumpLaplaceSDESampler(jl, integrator="euler"), score),
        "sde-iso": (JumpLaplaceSDESampler(JumpLaplaceNoise(event_ndim=2)), score),
        "sde-mgd": (get_sampler("sde-mgd", jl, n_samples=4, targets=_targets()), score),
        "ddim-mgd": (MomentGuided(DDIMSampler(gauss, eta=0.5), 4, _targets()), eps),
        "dpm-solver++": (get_sampler("dpm-solver++", gauss), eps),
        "ddpm-v": (get_sampler("ddpm", _v_noise()), _exact_v),
        "ddim-v": (get_sampler("ddim", _v_noise(), eta=0.5), _exact_v),
        "dpm-solver++-v": (get_sampler("dpm-solver++", _v_noise()), _exact_v),
        "langevin": (_langevin(), _exact_ve),
        "langevin-nodenoise": (_langevin(denoise=False), _exact_ve),
        "ve-sde": (get_sampler("ve-sde", _ve_noise()), _exact_ve),
        "ve-ode": (get_sampler("ve-sde", _ve_noise(), stochasticity=0.0), _exact_ve),
    }
    return samplers[name]


NAMES = [
    "ddpm",
    "ddpm-large",
    "ddim",
    "ddim-eta",
    "sde",
    "sde-euler",
    "sde-iso",
    "sde-mgd",
    "ddim-mgd",
    "dpm-solver++",
    "ddpm-v",
    "ddim-v",
    "dpm-solver++-v",
    "langevin",
    "langevin-nodenoise",
    "ve-sde",
    "ve-ode",
]
NOISE_OF = {"sde": "jump-laplace", "langevin": "ve", "ve-": "ve"}
"""The noise kind of each NAMES entry, by prefix (gaussian otherwise)."""


def _run(
    sampler: Sampler,
    model: Model,
    shape: tuple[int, ...],
    seed: int,
    n_steps: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The loop a forecaster's sample() runs."""
    gen = torch.Generator().manual_seed(seed)
    sampler.set_timesteps(n_steps)
    x = sampler.init_noise(shape, gen, dtype=dtype)
    for i, t in enumerate(sampler.timesteps):
        time_input = sampler.model_time(t).expand(shape[0])
        assert time_input.dtype == torch.float32
        x = sampler.step(model(x, t), i, x, generator=gen)
    return x


# -- the shared contract -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_steps", [1, 7, 50])
def test_sampler_when_set_timesteps_has_non_increasing_times_ending_at_clean_data(
    name: str, n_steps: int
) -> None:
    """At least n steps, never back up in time, and the last returns clean data. A sampler may
    visit one level several times (annealed Langevin: steps are indexed, not timed)."""
    sampler, _ = _build(name)
    sampler.set_timesteps(n_steps)
    times = sampler.timesteps
    assert times.dim() == 1 and times.shape[0] >= n_steps
    assert bool((times[1:] <= times[:-1]).all())
    last = float(sampler.previous_time(times.shape[0] - 1))
    # the last step returns clean data: step -1 (Gaussian, VE with a final denoising or
    # noise-free step) or t = 0 (Jump-Laplace); langevin without denoising stops at σ_min (t = 0)
    assert last == (0.0 if name.startswith("sde") or name == "langevin-nodenoise" else -1.0)


@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("langevin")])
@pytest.mark.parametrize("n_steps", [1, 7, 50])
def test_sampler_when_one_visit_per_level_has_n_strictly_decreasing_times(
    name: str, n_steps: int
) -> None:
    sampler, _ = _build(name)
    sampler.set_timesteps(n_steps)
    times = sampler.timesteps
    assert times.shape == (n_steps,) and bool((times[1:] < times[:-1]).all())


@pytest.mark.parametrize("name", NAMES)
def test_sampler_when_same_seed_is_deterministic_and_other_seed_differs(name: str) -> None:
    sampler, model = _build(name)
    first = _run(sampler, model, SHAPE, seed=11, n_steps=10)
    again = _run(sampler, model, SHAPE, seed=11, n_steps=10)
    other = _run(sampler, model, SHAPE, seed=12, n_steps=10)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampler_when_stepping_keeps_shape_dtype_and_stays_finite(
    name: str, dtype: torch.dtype
) -> None:
    sampler, model = _build(name)
    out = _run(sampler, model, SHAPE, seed=3, n_steps=20, dtype=dtype)
    assert out.shape == SHAPE and out.dtype == dtype
    assert bool(torch.isfinite(out).all())


def _modules_inside(obj: object, seen: set[int] | None = None) -> list[str]:
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, nn.Module):
        return [type(obj).__name__]
    found: list[str] = []
    values = (
        obj.values()
        if isinstance(obj, dict)
        else vars(obj).values()
        if hasattr(obj, "__dict__")
        else []
    )
    for value in values:
        if not isinstance(value, (torch.Tensor, str, int, float, bool, type(None))):
            found += _modules_inside(value, seen)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_sampler_when_inspected_holds_no_nn_module(name: str) -> None:
    sampler, _ = _build(name)
    sampler.set_timesteps(5)
    assert _modules_inside(sampler) == []
    assert not isinstance(sampler, nn.Module)


@pytest.mark.parametrize("name", NAMES)
def test_sampler_when_noise_kind_asked_names_its_noise(name: str) -> None:
    sampler, _ = _build(name)
    expected = next((k for p, k in NOISE_OF.items() if name.startswith(p)), "gaussian")
    assert sampler.noise_kind == expected == sampler.noise.kind


def test_sampler_when_step_before_set_timesteps_raises() -> None:
    sde = JumpLaplaceSDESampler(JumpLaplaceNoise())
    with pytest.raises(TapecastError, match="set_timesteps"):
        sde.step(torch.zeros(2), 0, torch.zeros(2))
    ddpm = DDPMSampler(_gaussian_noise())
    with pytest.raises(TapecastError, match="set_timesteps"):
        ddpm.step(torch.zeros(2), 0, torch.zeros(2))


def test_respacing_when_more_steps_than_training_raises() -> None:
    with pytest.raises(TapecastError, match=r"1\.\.800"):
        DDPMSampler(_gaussian_noise()).set_timesteps(801)


def test_ddpm_when_50_of_800_steps_uses_trailing_stride_16() -> None:
    sampler = DDPMSampler(_gaussian_noise())
    sampler.set_timesteps(50)
    assert sampler.timesteps[:3].tolist() == [799, 783, 767]
    assert sampler.timesteps[-1].item() == 15
    assert int(sampler.previous_time(0)) == 783 and int(sampler.previous_time(49)) == -1


def test_jl_sde_when_card_settings_has_dt_012_from_t6() -> None:
    sampler = JumpLaplaceSDESampler(JumpLaplaceNoise(laplace_scale=1.0, t_max=6.0))
    sampler.set_timesteps(50)
    assert sampler.dt == pytest.approx(0.12)
    assert float(sampler.timesteps[0]) == pytest.approx(6.0)
    assert float(sampler.timesteps[-1]) == pytest.approx(0.12)


# -- the registry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "noise", "message"),
    [
        (
            "ddim",
            JumpLaplaceNoise(),
            "sampler 'ddim' needs a gaussian-noise model; this model uses jump-laplace noise; "
            "use 'sde' or 'sde-mgd'",
        ),
        (
            "ddpm",
            JumpLaplaceNoise(),
            "sampler 'ddpm' needs a gaussian-noise model; this model uses jump-laplace noise; "
            "use 'sde' or 'sde-mgd'",
        ),
        (
            "sde",
            GaussianNoise.from_schedule("linear", 10),
            "sampler 'sde' needs a jump-laplace-noise model; this model uses gaussian noise; "
            "use 'ddpm', 'ddim' or 'dpm-solver++'",
        ),
        (
            "sde-mgd",
            GaussianNoise.from_schedule("linear", 10),
            "sampler 'sde-mgd' needs a jump-laplace-noise model; this model uses gaussian noise; "
            "use 'ddpm', 'ddim' or 'dpm-solver++'",
        ),
    ],
)
def test_get_sampler_when_noise_does_not_fit_raises_clear_error(
    name: str, noise: GaussianNoise | JumpLaplaceNoise, message: str
) -> None:
    with pytest.raises(TapecastError) as info:
        get_sampler(name, noise)
    assert str(info.value) == message


def test_get_sampler_when_name_unknown_lists_the_samplers() -> None:
    with pytest.raises(TapecastError, match=r"unknown sampler 'euler'; expected one of 'ddpm', "
                       r"'ddim'.* or '[a-z+-]+'$"):
        get_sampler("euler", JumpLaplaceNoise())


def test_registry_when_package_imported_knows_every_built_in_sampler_and_noise() -> None:
    assert {"ddpm", "ddim", "sde", "sde-mgd"} <= set(sampler_names())
    assert {"gaussian", "jump-laplace"} <= set(noise_kinds())
    assert {"ddpm", "ddim"} <= set(samplers_for("gaussian"))
    assert isinstance(get_noise("jump-laplace"), JumpLaplaceNoise)


def test_register_sampler_when_a_new_file_registers_get_sampler_builds_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new sampler is a new file with a decorator: no edit of the registry."""
    monkeypatch.setattr(registry, "_SAMPLERS", dict(registry._SAMPLERS))

    @register_sampler("ddim-test", noise_kind="gaussian")
    class Renamed(DDIMSampler):
        pass

    assert isinstance(get_sampler("ddim-test", _gaussian_noise()), Renamed)
    assert "ddim-test" in samplers_for("gaussian")
    with pytest.raises(TapecastError, match="'ddim-test' is already registered"):
        register_sampler("ddim-test", noise_kind="gaussian")(DDPMSampler)
    with pytest.raises(TapecastError, match="unknown noise 'poisson'"):
        get_noise("poisson")


def test_get_sampler_when_option_unknown_raises_tapecast_error() -> None:
    with pytest.raises(TapecastError, match="sampler 'ddim'"):
        get_sampler("ddim", _gaussian_noise(), temperature=0.5)


def test_get_sampler_when_options_given_passes_them_on() -> None:
    ddim = get_sampler("ddim", _gaussian_noise(), eta=0.3)
    assert isinstance(ddim, DDIMSampler) and ddim.eta == 0.3
    mgd = get_sampler("sde-mgd", JumpLaplaceNoise(), n_samples=8, stochasticity=0.5, strength=0.2)
    assert isinstance(mgd, MomentGuided) and mgd.strength == 0.2
    assert isinstance(mgd.base, JumpLaplaceSDESampler) and mgd.base.stochasticity == 0.5


# -- correctness with an exact model output ----------------------------------------------------


def _recovered(sampler: Sampler, mu: float, s: float, n_steps: int) -> tuple[float, float]:
    noise = sampler.noise

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if isinstance(noise, GaussianNoise):
            return gaussian_eps(noise, x, t, mu, s)
        assert isinstance(noise, JumpLaplaceNoise)
        return jl_model_output(noise, x, t, mu, s)

    out = _run(sampler, model, (20_000, 1), seed=0, n_steps=n_steps, dtype=torch.float64)
    return float(out.mean()), float(out.std())


def test_ddpm_when_50_respaced_steps_with_exact_eps_recovers_gaussian_data() -> None:
    mean, std = _recovered(DDPMSampler(_gaussian_noise()), mu=1.0, s=0.5, n_steps=50)
    assert mean == pytest.approx(1.0, abs=0.02)
    assert std == pytest.approx(0.5, rel=0.10)  # measured 0.465: β̃ under-disperses at 50 steps
    mean, std = _recovered(DDPMSampler(_gaussian_noise(), "fixed_large"), 1.0, 0.5, 50)
    assert mean == pytest.approx(1.0, abs=0.02)
    assert std == pytest.approx(0.5, rel=0.05)  # measured 0.516


def test_ddim_when_10_steps_with_exact_eps_recovers_mean_with_first_order_spread_bias() -> None:
    """Deterministic DDIM contracts the spread at coarse steps, even with the exact ε.

    For Gaussian data one step maps ``x - sqrt(ᾱ) mu`` by
    ``[sqrt(ᾱ_prev ᾱ) s² + sqrt((1 - ᾱ_prev)(1 - ᾱ))] / v_t`` instead of ``sqrt(v_prev / v_t)``
    (``v = ᾱ s² + 1 - ᾱ``), which is smaller by Cauchy–Schwarz. On tanh6-1 with 10 trailing steps
    the first step jumps from ᾱ = 2e-6 to 0.27, and the output std is ~0.75 of the data's.
    """
    mean, std = _recovered(DDIMSampler(_gaussian_noise()), mu=1.0, s=1.0, n_steps=10)
    assert mean == pytest.approx(1.0, abs=0.03)
    assert 0.70 < std < 0.80  # measured 0.751 (0.744 with a unit-variance init)
    mean, std = _recovered(DDIMSampler(GaussianNoise.from_schedule("cosine", 800)), 1.0, 1.0, 10)
    assert mean == pytest.approx(1.0, abs=0.03)
    assert std == pytest.approx(1.0, rel=0.15)  # measured 0.89 on the cosine schedule


def test_ddim_when_many_steps_with_exact_eps_recovers_narrow_data() -> None:
    mean, std = _recovered(DDIMSampler(_gaussian_noise()), mu=1.0, s=0.5, n_steps=200)
    assert mean == pytest.approx(1.0, abs=0.02)
    assert std == pytest.approx(0.5, rel=0.03)


def test_jl_sde_when_card_settings_with_exact_score_recovers_gaussian_data() -> None:
    sampler = JumpLaplaceSDESampler(JumpLaplaceNoise(laplace_scale=1.0, t_max=6.0))
    mean, std = _recovered(sampler, mu=0.5, s=1.0, n_steps=50)
    assert mean == pytest.approx(0.5, abs=0.03)
    assert std == pytest.approx(1.0, rel=0.08)  # measured 1.04


def test_jl_ode_when_50_steps_with_exact_score_recovers_gaussian_data() -> None:
    sampler = JumpLaplaceSDESampler(JumpLaplaceNoise(), stochasticity=0.0)
    mean, std = _recovered(sampler, mu=1.0, s=0.5, n_steps=50)
    assert mean == pytest.approx(1.0, abs=0.03)
    assert std == pytest.approx(0.5, rel=0.12)  # measured 0.548


# -- v-prediction, zero terminal SNR and DPM-Solver++ ------------------------------------------


def _v_noise() -> GaussianNoise:
    """tanh6-1 rescaled to zero terminal SNR, with the v-prediction it requires."""
    return GaussianNoise.from_schedule("tanh6-1", 800, prediction="v", zero_terminal_snr=True)


def _exact_v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    from tests.diffusion.oracles import gaussian_v

    return gaussian_v(_v_noise(), x, t, MU, S)


def test_registry_when_package_imported_offers_dpm_solver_for_gaussian_noise() -> None:
    assert "dpm-solver++" in samplers_for("gaussian")
    with pytest.raises(TapecastError, match="sampler 'dpm-solver\\+\\+' needs a gaussian-noise"):
        get_sampler("dpm-solver++", JumpLaplaceNoise())


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm-solver++"])
def test_gaussian_sampler_when_v_prediction_with_zero_terminal_snr_recovers_gaussian_data(
    name: str,
) -> None:
    """End to end with ᾱ_T = 0: the first step sees x_T = ε exactly and x0_hat = -v = mu."""
    sampler = get_sampler(name, _v_noise())
    mean, std = _recovered_v(sampler, mu=1.0, s=0.5, n_steps=50)
    assert mean == pytest.approx(1.0, abs=0.02)
    tolerance = {"ddpm": 0.10, "ddim": 0.06, "dpm-solver++": 0.02}[name]
    assert std == pytest.approx(0.5, rel=tolerance)  # measured 0.465, 0.484, 0.502


def _recovered_v(sampler: Sampler, mu: float, s: float, n_steps: int) -> tuple[float, float]:
    from tests.diffusion.oracles import gaussian_model_output

    noise = sampler.noise
    assert isinstance(noise, GaussianNoise)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return gaussian_model_output(noise, x, t, mu, s)

    out = _run(sampler, model, (20_000, 1), seed=0, n_steps=n_steps, dtype=torch.float64)
    return float(out.mean()), float(out.std())


# -- variance-exploding noise and annealed Langevin dynamics -----------------------------------
# Langevin visits each level T times (timesteps repeat); it is in NAMES like every sampler.

LANGEVIN_STEPS_PER_LEVEL = 5


def _ve_noise() -> registry.NoiseProcess:
    return get_noise("ve", sigma_min=0.01, sigma_max=10.0)


def _langevin(denoise: bool = True) -> Sampler:
    return get_sampler("langevin", _ve_noise(), steps_per_level=LANGEVIN_STEPS_PER_LEVEL,
                       epsilon=5e-5, denoise=denoise)


def _exact_ve(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    from tapecast.diffusion import VENoise
    from tests.diffusion.oracles import ve_model_output

    noise = _ve_noise()
    assert isinstance(noise, VENoise)
    return ve_model_output(noise, x, t, MU, S)


@pytest.mark.parametrize("name", ["langevin", "langevin-nodenoise"])
@pytest.mark.parametrize("n_levels", [1, 7, 50])
def test_langevin_when_set_timesteps_visits_each_level_in_non_increasing_order(
    name: str, n_levels: int
) -> None:
    sampler, _ = _build(name)
    sampler.set_timesteps(n_levels)
    times = sampler.timesteps
    extra = 1 if name == "langevin" else 0
    assert times.shape == (n_levels * LANGEVIN_STEPS_PER_LEVEL + extra,)
    assert bool((times[1:] <= times[:-1]).all())
    assert times.unique().numel() == n_levels
    assert float(sampler.previous_time(times.numel() - 1)) <= 0.0


def test_registry_when_package_imported_offers_langevin_for_ve_noise() -> None:
    assert "langevin" in samplers_for("ve") and "ve" in noise_kinds()
    assert get_noise("ve").kind == "ve"
    with pytest.raises(TapecastError, match=r"^sampler 'langevin' needs a ve-noise model; this "
                       r"model uses gaussian noise; use 'ddpm', 'ddim'"):
        get_sampler("langevin", _gaussian_noise())
    with pytest.raises(TapecastError, match=r"^sampler 'ddim' needs a gaussian-noise model; "
                       r"this model uses ve noise; use 'langevin' or 've-sde'$"):
        get_sampler("ddim", _ve_noise())


def test_langevin_when_20_levels_with_exact_score_recovers_gaussian_data() -> None:
    sampler = get_sampler("langevin", _ve_noise(), steps_per_level=100, epsilon=5e-5)
    out = _run(sampler, _exact_ve, (20_000, 1), seed=0, n_steps=20, dtype=torch.float64)
    assert float(out.mean()) == pytest.approx(MU, abs=0.02)
    assert float(out.std()) == pytest.approx(S, rel=0.04)


@pytest.mark.parametrize(
    ("stochasticity", "n_steps", "mean", "std", "std_tol"),
    [(1.0, 200, MU, S, 0.04), (1.0, 1000, MU, S, 0.02), (0.0, 1000, 0.920, 0.797, 0.03)],
)
def test_ve_sde_when_exact_score_recovers_gaussian_data(
    stochasticity: float, n_steps: int, mean: float, std: float, std_tol: float
) -> None:
    """Measured (N(1, 0.8²), σ 10 → 0.01): SDE 200 steps 0.998 / 0.817, 1000 steps 0.996 / 0.801;
    ODE 1000 steps 0.905 / 0.811. The ODE is a deterministic map that cannot forget that
    ``init_noise`` is centred at 0 while ``p_1`` is centred at μ: the exact flow sends
    ``N(0, σ_max²)`` to mean ``μ (1 - s/sqrt(s² + σ_max²))`` = 0.920, std
    ``s σ_max/sqrt(s² + σ_max²)`` = 0.797 (this seed's draws of x_T are 0.18 low on average)."""
    sampler = get_sampler("ve-sde", _ve_noise(), stochasticity=stochasticity)
    out = _run(sampler, _exact_ve, (20_000, 1), seed=0, n_steps=n_steps, dtype=torch.float64)
    assert float(out.mean()) == pytest.approx(mean, abs=0.025)
    assert float(out.std()) == pytest.approx(std, rel=std_tol)


# -- the reverse loop and the registry's edges -------------------------------------------------


class _Float64Net(nn.Module):
    """An unconditional float64 network: x -> 0.5 x (so samples stay finite)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5, dtype=torch.float64))

    def condition(self, batch: object) -> Unconditional:
        return Unconditional()

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        return self.scale * x


def test_draw_samples_when_the_net_is_float64_samples_in_float64() -> None:
    sampler = get_sampler("ddim", _gaussian_noise())
    sampler.set_timesteps(4)
    x = draw_samples(_Float64Net(), sampler, {"note": "not a tensor"}, 3, (2,), seed=0, rows=2)
    assert x.shape == (2, 3, 2) and x.dtype == torch.float64 and bool(torch.isfinite(x).all())


def test_row_conditioning_when_expanded_repeats_each_row() -> None:
    cond = RowConditioning(torch.tensor([[1.0], [2.0]])).expand(3)
    assert cond.value[:, 0].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_get_sampler_when_a_constructor_raises_type_error_it_is_not_called_an_option() -> None:
    @register_sampler("broken-test", noise_kind="gaussian")
    def broken(noise: object) -> Sampler:
        raise TypeError("inside the constructor")

    try:
        with pytest.raises(TypeError, match="inside the constructor"):
            get_sampler("broken-test", _gaussian_noise())
        with pytest.raises(TapecastError, match="sampler 'broken-test'"):
            get_sampler("broken-test", _gaussian_noise(), speed=2)
    finally:
        registry._SAMPLERS.pop("broken-test")


def test_set_timesteps_when_given_a_numpy_integer_accepts_it() -> None:
    sampler = DDIMSampler(_gaussian_noise())
    sampler.set_timesteps(np.int64(5))
    assert sampler.timesteps.shape == (5,)

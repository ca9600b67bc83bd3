"""The price-distribution forecaster: conditional diffusion of the 30-second return.

The system of ``../shared/seeds/price-distribution-diffusion-plan.md``: given the last C seconds
of 1-second bars of a stock, the distribution of r = log(P(t+30 s) / P(t)) (or of the 30-step
return path) as Monte Carlo samples::

    data = PriceDataset(grid, windows, grid_config)            # tapecast.features.price_dataset
    model = PriceDiffusion("small").fit(train, val, run_dir="runs/price")
    samples = model.sample(test.batch(slice(0, 8)), 256)       # values (8, 256, 1, 1)
    model.save("runs/price"); PriceDiffusion.load("runs/price")

**Model.** :class:`tapecast.nets.film.PriceDenoiser`: a causal CNN (or transformer) encodes the
normalized context once per window into every layer's FiLM scale and shift; a FiLM-MLP
denoises the scaled target x0 = r / s. Gaussian VP noise over T = 1,000 steps with the cosine
schedule (Nichol & Dhariwal 2021, eq. 17), v-prediction (Salimans & Ho 2022, §4): the network
regresses v = √ᾱ_t ε − √(1 − ᾱ_t) x0 (Ho et al. 2020's loss, eq. 14, with v in place of ε).
Training is :func:`tapecast.diffusion.training.diffusion_loss` through :func:`tapecast.train.fit`.

**Sampling.** DDPM over all T steps (Ho et al. 2020, Alg. 2; the quality reference), DDIM (Song
et al. 2021, eq. 12) or DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095, Alg. 2; the default,
10 steps) from :mod:`tapecast.diffusion`. The samples are scaled back to returns and, with
``config.lattice``, moved to the nearest lattice price P_t + k·δ
(:func:`tapecast.features.price_lattice.snap_returns`): prices move in ticks, so most of the
probability of a 30-s return sits on a few discrete values, zero among them.

A saved model is a folder: ``config.json`` (config, data sizes, grid config, training outcome),
``model.safetensors`` (the EMA weights) and ``normalization.json``. No pickles.

Symbols: B origins, S samples, K context channels, C context seconds, H target steps (1 for
the return, 30 for the path), s the target scale, δ the lattice step, P_t the origin price.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self, cast

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn
from torch.nn import functional as F

from tapecast.core.batch import ForecastBatch, OriginSource
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Samples
from tapecast.core.forecaster import check_n_samples
from tapecast.diffusion import Sampler, get_sampler
from tapecast.diffusion.protocols import ConditionalDenoiser
from tapecast.diffusion.sampling import draw_samples
from tapecast.diffusion.training import diffusion_loss
from tapecast.features.price_lattice import lattice_step, snap_returns
from tapecast.models.folder import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    finite_or_none,
    load_weights,
    read_json,
    read_meta,
    save_model_folder,
    write_meta,
)
from tapecast.models.price_diffusion_config import (
    DEFAULT_STEPS,
    PriceDiffusionConfig,
    price_diffusion_config,
)
from tapecast.models.price_diffusion_io import NormalizedPriceOrigins, PriceNormalizer
from tapecast.nets import count_parameters
from tapecast.nets.film import PriceDenoiser
from tapecast.train import LossOutput, TrainResult
from tapecast.train import fit as train_fit

KIND, FORMAT_VERSION = "tapecast.price-diffusion", 1
NORMALIZATION_FILE = "normalization.json"
SAMPLERS = tuple(DEFAULT_STEPS)

__all__ = ["PriceDiffusion", "PriceDiffusionConfig", "price_diffusion_config"]


class PriceDiffusion:
    """Conditional diffusion forecaster of the 30-s price distribution.

    Parameters
    ----------
    config : PriceDiffusionConfig or str
        A config or a preset name (``small``, ``tiny``). The network is built at ``fit`` (its
        input sizes come from the data) or at ``load``.
    """

    name = "price-diffusion"

    def __init__(self, config: PriceDiffusionConfig | str = "small") -> None:
        self.config = price_diffusion_config(config) if isinstance(config, str) else config
        self.noise = self.config.make_noise()
        self.net: PriceDenoiser | None = None
        self.normalizer: PriceNormalizer | None = None
        self.tick_size: float | None = None
        self.training: dict[str, Any] = {}
        self._train_result: TrainResult | None = None

    def __repr__(self) -> str:
        size = f"{self.n_parameters:,} parameters" if self.net is not None else "not built"
        return (f"PriceDiffusion({self.config.name!r}, {self.config.prediction}-prediction, "
                f"T={self.config.num_train_timesteps}, {size}, fitted={self.fitted})")

    @property
    def fitted(self) -> bool:
        """Whether the network and the normalizer are set (fitted or loaded)."""
        return self.net is not None and self.normalizer is not None

    @property
    def n_parameters(self) -> int:
        """Trainable parameters of the denoiser (0 before ``fit``)."""
        return 0 if self.net is None else count_parameters(self.net)

    @property
    def train_result(self) -> TrainResult:
        """What the training loop of the last :meth:`fit` reported."""
        if self._train_result is None:
            raise TapecastError("this price model was not trained in this process (fit() "
                                "sets train_result; a loaded model has .training)")
        return self._train_result

    @property
    def device(self) -> torch.device:
        """Where the network's weights are; sampling runs there."""
        return next(self._require_net().parameters()).device

    # ------------------------------------------------------------------------------------------
    # training

    def fit(self, train: OriginSource, val: OriginSource | None = None, *,
            seed: int | None = None, run_dir: str | Path | None = None, resume: bool = True,
            callbacks: Sequence[Any] = (), progress: bool = True,
            shuffle_pairs_seed: int | None = None) -> Self:
        """Train on ``train`` (validating on ``val``); with ``run_dir``, save the model there.

        Parameters
        ----------
        train, val : OriginSource
            Price origins (a :class:`~tapecast.features.price_dataset.PriceDataset` or a batch
            of one): context (B, K, C) and the ``log_return`` target (B, 1, H).
        seed : int, optional
            Training seed; default the config's. Every call starts from fresh weights.
        run_dir : path, optional
            The training loop's folder (``best/``, ``last/``, logs) and this model's files; None
            trains in a temporary folder.
        resume : bool
            Continue from ``run_dir/last`` when it exists (an interrupted run of the same model
            on the same data: a run folder holding another config, SHUFFLE seed or training
            data is refused in one line; ``resume=False`` starts afresh).
        callbacks, progress
            Passed to :func:`tapecast.train.fit`.
        shuffle_pairs_seed : int, optional
            Train the SHUFFLE control: each context paired with the target of another origin
            (a permutation drawn from this seed).

        Returns
        -------
        PriceDiffusion
            This model, fitted.

        Raises
        ------
        TapecastError
            On origins that are not price origins, or whose channels differ between splits; on
            a run folder to resume that holds another run.
        """
        if seed is not None and seed != self.config.train.seed:
            self.config = self.config.with_train(seed=seed)
        probe = _check_price_origins(train, "train")
        if val is not None:
            other = _check_price_origins(val, "val")
            if (other.channels, other.context_length, other.horizon) != (
                    probe.channels, probe.context_length, probe.horizon):
                raise TapecastError("the val origins' channels, context or horizon differ from "
                                    "the train origins'")
        self.config = self.config.with_data(len(probe.channels), probe.context_length,
                                            probe.horizon)
        self.tick_size = _tick_size(probe)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.train.seed)
            self.net = PriceDenoiser(self.config.net)
        self.normalizer = PriceNormalizer.fit(train, self.config.context_clip)  # fixed subsample
        if run_dir is None:
            with tempfile.TemporaryDirectory(prefix="tapecast-price-") as tmp:
                return self._fit(train, val, Path(tmp), False, callbacks, progress,
                                 shuffle_pairs_seed, keep=False)
        return self._fit(train, val, Path(run_dir), resume, callbacks, progress,
                         shuffle_pairs_seed, keep=True)

    def _fit(self, train: OriginSource, val: OriginSource | None, run: Path, resume: bool,
             callbacks: Sequence[Any], progress: bool, shuffle_pairs_seed: int | None, *,
             keep: bool) -> Self:
        normalizer, net = self._require_fitted()
        self.training = {"shuffle_pairs_seed": shuffle_pairs_seed}
        if keep and resume:
            self._check_run_folder(run, normalizer)
        if keep:
            run.mkdir(parents=True, exist_ok=True)
            normalizer.save(run / NORMALIZATION_FILE)
            self._write_meta(run, state="training")
        perm = (None if shuffle_pairs_seed is None else
                np.random.default_rng([shuffle_pairs_seed, 7919]).permutation(len(train)))
        train_data = NormalizedPriceOrigins(train, normalizer, perm)
        val_data = None if val is None else NormalizedPriceOrigins(val, normalizer)
        result = train_fit(net, self._loss, train_data, val_data, self.config.train,
                           run_dir=run, resume=resume, callbacks=callbacks, progress=progress)
        self._train_result = result
        self.training = {"steps": result.step, "best_step": result.best_step,
                         "best_val_loss": finite_or_none(result.best_val_loss),
                         "wall_s": round(result.wall_s, 3), "train_origins": len(train),
                         "val_origins": None if val is None else len(val),
                         "shuffle_pairs_seed": shuffle_pairs_seed}
        if keep:
            self.save(run)
        return self

    def _check_run_folder(self, run: Path, normalizer: PriceNormalizer) -> None:
        """A run folder with a checkpoint to resume must hold this run: the same config (up
        to the training loop's fields), SHUFFLE seed and training data (its normalizer)."""
        if not (run / "last").exists() or not (run / CONFIG_FILE).exists():
            return
        stored = read_json(run / CONFIG_FILE, CONFIG_FILE, "price-diffusion")
        mine = self.config.to_dict()
        theirs = stored.get("config")
        theirs = theirs if isinstance(theirs, dict) else {}
        changed = sorted(k for k in mine if k not in ("train", "name") and theirs.get(k) != mine[k])
        training = stored.get("training")
        training = training if isinstance(training, dict) else {}
        if training.get("shuffle_pairs_seed") != self.training["shuffle_pairs_seed"]:
            changed.append("shuffle_pairs_seed")
        try:
            old = PriceNormalizer.load(run / NORMALIZATION_FILE).to_dict()
        except TapecastError:
            old = {}
        new = normalizer.to_dict()
        if not old or any(not np.allclose(old[k], new[k], rtol=1e-12, atol=0.0)
                          for k in ("mean", "std", "target_scale")) or \
                old["channels"] != new["channels"]:
            changed.append("training data (normalization.json)")
        if changed:
            raise TapecastError(f"{run}: holds a run of another model or data (different "
                                f"{', '.join(changed)}); train it with the same settings to "
                                "resume, or start afresh (resume=False, `--fresh`)")

    def _loss(self, net: nn.Module, batch: Any, generator: torch.Generator
              ) -> torch.Tensor | LossOutput:
        """The denoising loss; with the zero-move head, the diffusion part on the windows whose
        price moved plus the head's cross-entropy on all of them."""
        denoiser = cast(PriceDenoiser, net)
        if not denoiser.config.zero_head:
            return diffusion_loss(cast(ConditionalDenoiser, net), self.noise, batch, generator,
                                  draws=self.config.noise_draws)
        cond = denoiser.condition(batch)
        assert cond.zero_logit is not None
        zero = (batch["target"] == 0).all(dim=1)  # (B,)
        moved = {**batch, "target_mask": (~zero)[:, None].expand_as(batch["target"]).float()}
        diffusion = diffusion_loss(cast(ConditionalDenoiser, net), self.noise, moved, generator,
                                   draws=self.config.noise_draws, cond=cond)
        bce = F.binary_cross_entropy_with_logits(cond.zero_logit.float(), zero.float())
        return LossOutput(diffusion + bce, metrics={"diffusion": diffusion.detach(),
                                                    "zero_bce": bce.detach()})

    # ------------------------------------------------------------------------------------------
    # sampling

    @torch.no_grad()
    def sample(self, batch: ForecastBatch, n_samples: int, *, sampler: str | None = None,
               steps: int | None = None, seed: int = 0, lattice: bool | None = None
               ) -> Samples:
        """Draw ``n_samples`` forecasts of the return (or path) of every origin of ``batch``.

        Parameters
        ----------
        batch : ForecastBatch
            Raw-unit context (B, K, C) with the extras ``origin_price`` and ``lattice_step``
            (a :class:`~tapecast.features.price_dataset.PriceDataset` batch, or
            :meth:`make_batch`); the target is not read.
        n_samples : int
            S, samples per origin.
        sampler : {"dpm-solver++", "ddim", "ddpm"}, optional
            Default: the config's.
        steps : int, optional
            Reverse steps; default the config's (dpm-solver++ 10, ddim 20, ddpm 1000 = T).
        seed : int
            Seed of every draw.
        lattice : bool, optional
            Override ``config.lattice`` (False: the continuous samples).

        Returns
        -------
        Samples
            values float32 (B, S, 1, H) of log returns; the horizon's window ids and time
            stamps, instruments and regimes from ``batch``.
        """
        normalizer, net = self._require_fitted()
        check_n_samples(n_samples)
        context = torch.from_numpy(normalizer.context(batch))  # (B, K, C), checks channels
        name = sampler or self.config.sampler
        proc = self._sampler(name)
        proc.set_timesteps(steps if steps is not None else self.config.steps_for(name))
        net.eval()
        inputs = {"context": context.to(self.device)}
        cond = net.condition(inputs)  # encoder once per window: FiLM and zero-move logit
        x = draw_samples(net, proc, inputs, n_samples, (batch.horizon,), seed=seed,
                         cond=cond)  # (B, S, H), model space
        continuous = x.double().cpu().numpy() * normalizer.target_scale  # (B, S, H)
        snap = self.config.lattice if lattice is None else lattice
        r = continuous
        if snap or net.config.zero_head:
            price, step = batch.extra("origin_price"), batch.extra("lattice_step")
        if snap:
            r = snap_returns(continuous, price, step)
        if net.config.zero_head:
            assert cond.zero_logit is not None
            p0 = torch.sigmoid(cond.zero_logit.double()).cpu().numpy()  # (B,)
            r = _mix_zero_atom(p0, r, continuous, price, step, snap, seed)
        c = batch.context_length
        return Samples(r[:, :, None, :].astype(np.float32), batch.target_names,
                       batch.window_ids[:, c:], batch.timestamps[:, c:], batch.instruments,
                       batch.regimes)

    def zero_probability(self, batch: ForecastBatch) -> NDArray[np.float64]:
        """P(unchanged price after H seconds | window) of the zero-move head, (B,)."""
        normalizer, net = self._require_fitted()
        if not net.config.zero_head:
            raise TapecastError("this price model has no zero-move head (zero_atom is off or "
                                "it forecasts the path)")
        context = torch.from_numpy(normalizer.context(batch)).to(self.device)
        return self._zero_probability(net, context)

    @torch.no_grad()
    def _zero_probability(self, net: PriceDenoiser, context: torch.Tensor
                          ) -> NDArray[np.float64]:
        net.eval()
        logit = net.condition({"context": context}).zero_logit
        assert logit is not None
        out: NDArray[np.float64] = torch.sigmoid(logit.double()).cpu().numpy()
        return out

    def _sampler(self, name: str) -> Sampler:
        if name not in SAMPLERS:
            raise TapecastError(f"unknown price sampler {name!r}; expected one of "
                                f"{', '.join(SAMPLERS)}")
        return get_sampler(name, self.noise)

    def make_batch(self, context: ArrayLike, *, horizon: int | None = None,
                   timestamps: ArrayLike | None = None, instruments: ArrayLike | str | None = None,
                   extras: Mapping[str, ArrayLike] | None = None) -> ForecastBatch:
        """A batch to forecast from the last C seconds of context features a user holds.

        Parameters
        ----------
        context : array_like, float, shape (B, K, C) or (K, C)
            Raw features in the model's channel order
            (:func:`~tapecast.features.price_windows.context_features`), oldest first; the
            streaming grid (:class:`~tapecast.features.price_streaming.StreamingPriceGrid`)
            gives them live.
        horizon : int, optional
            Must equal the model's H when given.
        timestamps, instruments : optional
            As :meth:`ForecastBatch.from_context`.
        extras : mapping
            ``origin_price`` (B,) P_t and ``price_source`` (B,) ``"mid"``/``"trade"`` (or
            ``lattice_step`` (B,) δ directly); scalars for one (K, C) window.

        Returns
        -------
        ForecastBatch
            target NaN, ``target_channels`` the model's.
        """
        normalizer, _ = self._require_fitted()
        h = normalizer.target_scale.shape[0]
        if horizon is not None and horizon != h:
            raise TapecastError(f"this model forecasts {h} step(s), not {horizon}")
        given = {k: np.asarray(v) for k, v in (extras or {}).items()}
        if "origin_price" not in given:
            raise TapecastError("the price model needs each origin's price beside its context "
                                "(extras={'origin_price': ..., 'price_source': ...})")
        if "lattice_step" not in given:
            if "price_source" not in given:
                raise TapecastError("extras: give 'price_source' ('mid' or 'trade') or "
                                    "'lattice_step' per origin")
            source = given["price_source"]
            given["lattice_step"] = lattice_step(np.atleast_1d(source),
                                                 self._tick()).reshape(source.shape)
        for key in ("origin_price", "lattice_step"):  # (B,), or a scalar for one (K, C) window
            given[key] = given[key].astype(np.float64)
            if not np.all(np.isfinite(given[key]) & (given[key] > 0)):
                raise TapecastError(f"extras: {key} must be finite and > 0")
        batch = ForecastBatch.from_context(normalizer.channels, context, h,
                                           timestamps=timestamps, instruments=instruments,
                                           extras=given,
                                           target_channels=normalizer.target_names)
        if batch.context_length != self.config.net.context:
            raise TapecastError(f"this model reads {self.config.net.context} context seconds, "
                                f"got {batch.context_length}")
        return batch

    def _tick(self) -> float:
        if self.tick_size is None:
            raise TapecastError("this price model has no tick size (fit or load it first)")
        return self.tick_size

    def _require_net(self) -> PriceDenoiser:
        if self.net is None:
            raise TapecastError("the price model must be fitted or loaded first: call fit() "
                                "or PriceDiffusion.load()")
        return self.net

    def _require_fitted(self) -> tuple[PriceNormalizer, PriceDenoiser]:
        net = self._require_net()
        if self.normalizer is None:
            raise TapecastError("the price model must be fitted or loaded first: call fit() "
                                "or PriceDiffusion.load()")
        return self.normalizer, net

    # ------------------------------------------------------------------------------------------
    # persistence

    def to_dict(self) -> dict[str, Any]:
        """Config, parameter count, tick size and training outcome (forecast provenance)."""
        return {"name": self.name, "config": self.config.to_dict(),
                "n_parameters": self.n_parameters, "tick_size": self.tick_size,
                "training": dict(self.training)}

    def _write_meta(self, folder: Path, state: str) -> None:
        write_meta(folder, KIND, FORMAT_VERSION, state, self.to_dict())

    def save(self, folder: str | Path) -> Path:
        """Write config.json, model.safetensors (the current weights: the best EMA after
        ``fit``) and normalization.json; returns the folder."""
        normalizer, net = self._require_fitted()
        return save_model_folder(folder, net, self._write_meta,
                                 {NORMALIZATION_FILE: normalizer.save})

    @classmethod
    def load(cls, folder: str | Path) -> PriceDiffusion:
        """Read a folder written by :meth:`save` (or a finished ``fit`` run folder).

        Raises
        ------
        TapecastError
            One line naming the file that is missing, malformed or does not fit.
        """
        src = Path(folder)
        meta = read_meta(src, KIND, FORMAT_VERSION, "price-diffusion")
        model = cls(PriceDiffusionConfig.from_dict(meta.get("config", {})))
        model.training = dict(meta.get("training") or {})
        tick = meta.get("tick_size")
        model.tick_size = float(tick) if isinstance(tick, int | float) else None
        model.normalizer = PriceNormalizer.load(src / NORMALIZATION_FILE)
        model.net = PriceDenoiser(model.config.net)
        load_weights(model.net, src / WEIGHTS_FILE, str(meta.get("state")))
        return model


def _mix_zero_atom(p0: NDArray[np.float64], r: NDArray[np.float64],
                   continuous: NDArray[np.float64], price: NDArray[np.float64],
                   step: NDArray[np.float64], snapped: bool, seed: int) -> NDArray[np.float64]:
    """Samples (B, S, H) of the mixture p0·δ_0 + (1 - p0)·(moved part): each sample is 0 with
    its window's p0 (B,); a moved sample that landed on the zero cell goes one lattice step out
    on its own side (the moved part has no mass at 0)."""
    u = np.random.default_rng([seed, 104_729]).random(r.shape[:2])  # (B, S)
    if snapped:
        up = np.log1p(step / price)[:, None, None]  # (B, 1, 1): one step up
        down = np.log1p(-step / price)[:, None, None]
        r = np.where(r == 0, np.where(continuous < 0, down, up), r)
    out: NDArray[np.float64] = np.where((u < p0[:, None])[:, :, None], 0.0, r)
    return out


def _check_price_origins(data: OriginSource, split: str) -> ForecastBatch:
    """The first origin of ``data``, checked to be a price origin."""
    if len(data) == 0:
        raise TapecastError(f"the {split} origins are empty")
    probe = data.batch(np.arange(1))
    if probe.forecasts_its_context:
        raise TapecastError(f"the {split} origins forecast their own channels "
                            f"{list(probe.channels)}; the price model forecasts a return from "
                            "price features (tapecast.features.price_dataset.PriceDataset)")
    missing = [k for k in ("origin_price", "lattice_step") if k not in probe.extras]
    if missing:
        raise TapecastError(f"the {split} origins lack the extras {missing}; build them with "
                            "PriceDataset")
    return probe


def _tick_size(probe: ForecastBatch) -> float:
    """The tick size behind a batch's lattice step (δ is half a tick for a mid)."""
    step = float(probe.extra("lattice_step")[0])
    source = str(probe.extras.get("price_source", np.array(["trade"]))[0])
    return 2 * step if source == "mid" else step


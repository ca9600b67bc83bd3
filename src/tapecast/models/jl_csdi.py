"""The JL-CSDI order-flow forecaster: a CSDI denoiser with Gaussian or Jump-Laplace noise.

The system of the JL-CSDI ESc1 model card (``../shared/seeds/jl-csdi-esc1-model-card.txt``):
CSDI (Tashiro et al. 2021, arXiv 2107.03502) conditioned on C context windows of the 8
order-flow channels, forecasting the next H windows, with the Jump-Laplace noise of Baule (2025,
arXiv 2503.06558) or Gaussian variance-preserving noise (Ho et al. 2020), and the moment-guided
correction of Lempereur et al. (2026, arXiv 2602.17211) at sampling time::

    model = JLCSDI(jlcsdi_config("small"))
    model.fit(fs.dataset("train"), fs.dataset("val"), run_dir="runs/small",
              normalizer=fs.fit_normalizer())
    samples = model.sample(fs.dataset("test").batch(slice(0, 8)), 32, sampler="sde-mgd")
    model.save("runs/small"); JLCSDI.load("runs/small")

Training (:meth:`JLCSDI.fit`) regresses the noise process' target on the horizon only: ε for
Gaussian noise (Ho et al. 2020, eq. 14), the κ(t)-scaled generalized score for Jump-Laplace noise
(:mod:`tapecast.diffusion.noise_jump_laplace`), masked to observed entries and conditioned on
the normalized context through the denoiser's context encoding; the loop is
:func:`tapecast.train.fit` (AdamW, EMA, clipping, best-validation checkpoint, exact resume,
Ctrl-C). Sampling (:meth:`JLCSDI.sample`) encodes each context once, expands it over the
samples and runs the reverse loop, the only loop over diffusion steps (samplers hold no
network, networks loop over nothing, ``../shared/STYLE.md``). Samples come back in original units
(:mod:`tapecast.models.jl_csdi_io` describes model space and the plug-in counts).

A saved model is a folder: ``config.json`` (this config and the training outcome),
``model.safetensors`` (the EMA weights), ``normalization.json`` (the order-flow normalizer) and
``data_stats.json`` (channel scales and unconditional MGD targets). No pickles.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self, cast

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from tapecast.core.batch import ForecastBatch, OriginSource, as_batch
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Samples
from tapecast.core.forecaster import check_n_samples
from tapecast.diffusion import (
    MomentGuided,
    MomentTargets,
    Sampler,
    get_sampler,
)
from tapecast.diffusion.protocols import ConditionalDenoiser
from tapecast.diffusion.sampling import draw_samples
from tapecast.diffusion.training import diffusion_loss
from tapecast.features.channels import IMBALANCE_CHANNELS
from tapecast.features.dataset import ForecastDataset
from tapecast.features.normalize import OrderFlowNormalizer
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
from tapecast.models.jl_csdi_config import JLCSDIConfig, jlcsdi_config
from tapecast.models.jl_csdi_io import (
    DataStats,
    NormalizedOrigins,
    batch_windows,
    context_moment_targets,
    covered_windows,
    model_inputs,
    plugin_counts,
)
from tapecast.nets import CachedCSDIDenoiser, CSDIDenoiser, build_denoiser, count_parameters
from tapecast.train import TrainResult
from tapecast.train import fit as train_fit

KIND, FORMAT_VERSION = "tapecast.jl-csdi", 1
NORMALIZATION_FILE, STATS_FILE = "normalization.json", "data_stats.json"


class JLCSDI:
    """JL-CSDI forecaster: ``fit`` on forecast datasets, ``sample`` joint forecasts.

    Parameters
    ----------
    config : JLCSDIConfig or str
        A config or a preset name (``small``, ``jl-csdi-esc1``). The denoiser is built at once
        with the config's training seed.
    """

    name = "jl-csdi"

    def __init__(self, config: JLCSDIConfig | str = "small") -> None:
        self.config = jlcsdi_config(config) if isinstance(config, str) else config
        self.noise = self.config.make_noise()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.train.seed)
            self.net: CSDIDenoiser | CachedCSDIDenoiser = build_denoiser(self.config.denoiser)
        self.normalizer: OrderFlowNormalizer | None = None
        self.stats: DataStats | None = None
        self.training: dict[str, Any] = {}
        self._train_result: TrainResult | None = None

    def __repr__(self) -> str:
        return (f"JLCSDI({self.config.name!r}, noise={self.config.noise!r}, "
                f"{self.config.denoiser.architecture}, {self.n_parameters:,} parameters, "
                f"fitted={self.fitted})")

    @property
    def n_parameters(self) -> int:
        """Trainable parameters of the denoiser."""
        return count_parameters(self.net)

    @property
    def train_result(self) -> TrainResult:
        """What the training loop of the last :meth:`fit` reported (steps, losses, wall time)."""
        if self._train_result is None:
            raise TapecastError("this JL-CSDI model was not trained in this process (fit() "
                                "sets train_result; a loaded model has .training)")
        return self._train_result

    @property
    def fitted(self) -> bool:
        """Whether the normalizer and data statistics are set (fitted or loaded)."""
        return self.normalizer is not None and self.stats is not None

    # ------------------------------------------------------------------------------------------
    # training

    def fit(self, train: OriginSource, val: OriginSource | None = None, *,
            seed: int | None = None, run_dir: str | Path | None = None, resume: bool = True,
            normalizer: OrderFlowNormalizer | None = None, callbacks: Sequence[Any] = (),
            progress: bool = True, shuffle_pairs_seed: int | None = None) -> Self:
        """Train on ``train`` (validating on ``val``); with ``run_dir``, save the model there.

        Parameters
        ----------
        train, val : OriginSource
            Training origins (usually stride 1) and validation origins (or None: ``best`` is
            then the final EMA): a :class:`~tapecast.features.dataset.ForecastDataset` (batches
            built on demand) or a :class:`~tapecast.core.batch.ForecastBatch`.
        seed : int, optional
            Training seed (weight initialisation, data order, noise draws); default the
            config's ``train.seed``. Every call starts from freshly initialised weights.
        run_dir : path, optional
            Run folder: the training loop's ``best/``, ``last/``, logs, and this model's files.
            None trains in a temporary folder that is removed afterwards (nothing to resume).
        resume : bool
            Continue from ``run_dir/last`` when it exists (exactly, see :mod:`tapecast.train`).
        normalizer : OrderFlowNormalizer, optional
            Fitted on the training windows (e.g. ``FeatureSet.fit_normalizer()``); by default
            fitted here on the windows the training origins cover.
        callbacks : sequence of callables
            Passed to :func:`tapecast.train.fit` (a callback raising KeyboardInterrupt stops
            the run like Ctrl-C, leaving a resumable checkpoint).
        progress : bool
            Draw the training loop's progress bar on a terminal.
        shuffle_pairs_seed : int, optional
            Train the SHUFFLE control instead: each training context is paired with the target
            of another origin, drawn by a permutation from this seed (see
            :class:`~tapecast.models.jl_csdi_io.NormalizedOrigins`).

        Returns
        -------
        JLCSDI
            This model, fitted; the loop's :class:`~tapecast.train.TrainResult` is
            :attr:`train_result`.

        Raises
        ------
        TapecastError
            On origins whose context, horizon or channels differ from the config, or a run
            folder holding another model.
        KeyboardInterrupt
            After ``run_dir/last`` was written (call ``fit`` again to resume).
        """
        self._reseed(self.config.train.seed if seed is None else seed)
        if run_dir is None:
            with tempfile.TemporaryDirectory(prefix="tapecast-jl-csdi-") as tmp:
                return self._fit(train, val, Path(tmp), False, normalizer, callbacks,
                                 progress, shuffle_pairs_seed, keep=False)
        return self._fit(train, val, Path(run_dir), resume, normalizer, callbacks, progress,
                         shuffle_pairs_seed, keep=True)

    def _reseed(self, seed: int) -> None:
        """A fresh denoiser from training seed ``seed`` (recorded in the config): every ``fit``
        starts here, so a second ``fit`` of one object equals a first (a resumed run then loads
        its checkpoint over it)."""
        if seed != self.config.train.seed:
            self.config = self.config.with_train(seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = build_denoiser(self.config.denoiser)

    def _fit(self, train: OriginSource, val: OriginSource | None, run: Path, resume: bool,
             normalizer: OrderFlowNormalizer | None, callbacks: Sequence[Any], progress: bool,
             shuffle_pairs_seed: int | None, *, keep: bool) -> Self:
        for data, split in ((train, "train"), (val, "val")):
            if data is not None:
                self._check_origins(data, split)
        windows = (covered_windows(train) if isinstance(train, ForecastDataset)
                   else batch_windows(as_batch(train)))
        channels = tuple(self._probe(train).channels)
        normalizer = normalizer or OrderFlowNormalizer.fit(windows, channels)
        if tuple(normalizer.channels) != channels:
            raise TapecastError(f"normalizer channels {list(normalizer.channels)} differ from "
                                f"the data's {list(channels)}")
        self.normalizer = normalizer
        self.stats = DataStats.fit(windows, normalizer, self.config.standardize)
        if resume:
            self._check_run_folder(run)
        if keep and _is_main():  # an interrupted run keeps what it needs to be resumed
            run.mkdir(parents=True, exist_ok=True)
            normalizer.save(run / NORMALIZATION_FILE)
            self.stats.save(run / STATS_FILE)
            self._write_meta(run, state="training")
        perm = (None if shuffle_pairs_seed is None else
                np.random.default_rng([shuffle_pairs_seed, 7919]).permutation(len(train)))
        train_data = NormalizedOrigins(train, normalizer, self.stats.scale, perm)
        val_data = None if val is None else NormalizedOrigins(val, normalizer, self.stats.scale)
        result = train_fit(self.net, self._loss, train_data, val_data, self.config.train,
                           run_dir=run, resume=resume, callbacks=callbacks, progress=progress)
        self._train_result = result
        self.training = {"steps": result.step, "best_step": result.best_step,
                         "best_val_loss": finite_or_none(result.best_val_loss),
                         "wall_s": round(result.wall_s, 3), "train_origins": len(train),
                         "val_origins": None if val is None else len(val)}
        if keep and _is_main():
            self.save(run)
        return self

    def _loss(self, net: nn.Module, batch: Any, generator: torch.Generator) -> torch.Tensor:
        denoiser = cast(ConditionalDenoiser, net)
        return diffusion_loss(denoiser, self.noise, batch, generator,
                              draws=self.config.noise_draws)

    @staticmethod
    def _probe(data: OriginSource) -> ForecastBatch:
        """The first origin of ``data`` (shapes and channels without building them all)."""
        return data.batch(np.arange(min(1, len(data))))

    def _check_origins(self, data: OriginSource, split: str) -> None:
        probe = self._probe(data)
        if not probe.forecasts_its_context:
            raise TapecastError(f"the {split} origins forecast {list(probe.target_names)} from "
                                f"{list(probe.channels)}; JL-CSDI forecasts the context's own "
                                "channels")
        c, h = self.config.context, self.config.horizon
        if (probe.context_length, probe.horizon) != (c, h):
            raise TapecastError(f"the {split} origins have {probe.context_length} context and "
                                f"{probe.horizon} horizon windows; this model reads {c} and "
                                f"forecasts {h} (JLCSDIConfig.with_sizes)")
        if len(probe.channels) != self.config.denoiser.n_features:
            raise TapecastError(f"the data has {len(probe.channels)} channels; the denoiser "
                                f"expects {self.config.denoiser.n_features}")

    def _check_run_folder(self, run: Path) -> None:
        """A run folder with a checkpoint must hold this model (up to training-loop fields)."""
        meta_path = run / CONFIG_FILE
        if not (run / "last").exists() or not meta_path.exists():
            return
        stored = read_json(meta_path, "config.json", "JL-CSDI").get("config", {})
        mine, defaults = self.config.to_dict(), JLCSDIConfig().to_dict()
        changed = sorted(k for k in mine if k not in ("train", "name")
                         and stored.get(k, defaults.get(k)) != mine[k])
        if changed:
            raise TapecastError(f"{run}: holds a run of another model (different "
                                f"{', '.join(changed)}); train it with the same config, or "
                                "start afresh (resume=False, `--fresh`)")

    # ------------------------------------------------------------------------------------------
    # sampling

    @torch.no_grad()
    def sample(self, batch: ForecastBatch, n_samples: int, *, sampler: str | None = None,
               steps: int | None = None, seed: int = 0,
               mgd_targets: str | None = None) -> Samples:
        """Draw ``n_samples`` joint forecasts of every origin of ``batch``, original units.

        Parameters
        ----------
        batch : ForecastBatch
            Raw-unit context (B, K, C) and counts; the target is not read.
        n_samples : int
            S, samples per origin.
        sampler : {"ddpm", "ddim", "sde", "sde-mgd"}, optional
            Default: the config's (``ddim`` for Gaussian, ``sde-mgd`` for Jump-Laplace noise).
            A sampler made for the other noise is a TapecastError.
        steps : int, optional
            Reverse steps; default from the config (ddpm 50, ddim 10, sde / sde-mgd 50).
        seed : int
            Seed of every draw (initial noise, jumps, DDIM/DDPM noise).
        mgd_targets : {"conditional", "unconditional"}, optional
            Override the config's MGD targets (``sde-mgd`` only).

        Returns
        -------
        Samples
            values float32 (B, S, K, H); window ids, time stamps of the horizon, instruments and
            regimes from ``batch``.
        """
        normalizer, stats = self._require_fitted()
        self._check_batch(batch, n_samples)
        name = sampler or self.config.default_sampler
        proc = self._sampler(name, n_samples)
        proc.set_timesteps(steps if steps is not None else self.config.steps_for(name))
        inputs = model_inputs(batch, normalizer, stats.scale)
        context, mask = inputs["context"], inputs["context_mask"]
        if isinstance(proc, MomentGuided):
            proc.set_targets(self._mgd_targets(context, mask, mgd_targets))
        self.net.eval()
        device = self.device
        k, h = len(batch.channels), batch.horizon
        x = draw_samples(self.net, proc, {"context": context.to(device),
                                          "context_mask": mask.to(device)},
                         n_samples, (k, h), seed=seed, device=device)  # rows b·S + s
        z = x.double().cpu().numpy()  # (B, S, K, H), model space
        c = batch.context_length
        return Samples(self._to_raw(z, batch), batch.channels, batch.window_ids[:, c:],
                       batch.timestamps[:, c:], batch.instruments, batch.regimes)

    def make_batch(self, context: ArrayLike, *, horizon: int | None = None,
                   timestamps: ArrayLike | None = None, instruments: ArrayLike | str | None = None,
                   extras: Mapping[str, ArrayLike] | None = None) -> ForecastBatch:
        """A batch to forecast from the last C order-flow windows a user holds.

        Parameters
        ----------
        context : array_like, float, shape (B, K, C) or (K, C)
            Raw channel values in the model's channel order, oldest first.
        horizon : int, optional
            Must equal the config's H when given.
        timestamps, instruments : optional
            As :meth:`ForecastBatch.from_context`.
        extras : mapping
            ``n_trades`` and ``n_signed`` of the context windows, shape (B, C) or (C,): the
            counts that undo the T-scaling (:func:`~tapecast.models.jl_csdi_io.plugin_counts`).

        Returns
        -------
        ForecastBatch
            target NaN, counts 0 over the horizon.
        """
        normalizer, _ = self._require_fitted()
        if horizon is not None and horizon != self.config.horizon:
            raise TapecastError(f"this model forecasts {self.config.horizon} windows, not "
                                f"{horizon}")
        missing = [n for n in ("n_trades", "n_signed") if n not in (extras or {})]
        if missing:
            raise TapecastError(f"JL-CSDI needs the context windows' {' and '.join(missing)} "
                                "beside their values (extras=...)")
        given = dict(extras or {})
        n_trades = _whole_counts(given["n_trades"], "n_trades", self.config.context)
        n_signed = _whole_counts(given["n_signed"], "n_signed", self.config.context)
        if np.any(n_signed > n_trades):
            raise TapecastError("extras: n_signed must not exceed n_trades in any window")
        given.update(n_trades=n_trades, n_signed=n_signed)
        batch = ForecastBatch.from_context(normalizer.channels, context, self.config.horizon,
                                           timestamps=timestamps, instruments=instruments,
                                           extras=given)
        if batch.context_length != self.config.context:
            raise TapecastError(f"this model reads {self.config.context} context windows, got "
                                f"{batch.context_length}")
        return batch

    @property
    def device(self) -> torch.device:
        """Where the denoiser's weights are; sampling runs there (``model.net.to("cuda")``)."""
        return next(self.net.parameters()).device

    def _sampler(self, name: str, n_samples: int) -> Sampler:
        options: dict[str, Any] = {}
        if name in ("ddim", "ddpm"):
            options["clip_x0"] = self.config.gaussian_clip_x0
        if name == "ddim":
            options["eta"] = self.config.ddim_eta
        elif name == "sde-mgd":
            options.update(n_samples=n_samples, strength=self.config.mgd_strength)
        return get_sampler(name, self.noise, **options)

    def _mgd_targets(self, context: torch.Tensor, mask: torch.Tensor,
                     mode: str | None) -> MomentTargets:
        """Conditional targets from each window's context, or the training windows' moments."""
        _, stats = self._require_fitted()
        mode = mode or self.config.mgd_targets
        if mode == "unconditional":
            return stats.targets()
        if mode != "conditional":
            raise TapecastError(f"mgd_targets must be conditional or unconditional, got {mode!r}")
        window = self.config.mgd_context_windows or context.shape[-1]
        return context_moment_targets(context[..., -window:], mask[..., -window:],
                                      self.config.horizon, fallback=stats)

    def _to_raw(self, z: NDArray[np.float64], batch: ForecastBatch) -> NDArray[np.float32]:
        """Model space (B, S, K, H) -> original units with the plug-in horizon counts."""
        normalizer, stats = self._require_fitted()
        scaled = z * stats.scale[None, None, :, None]
        t_hat, n_hat = plugin_counts(batch, self.config.count_plugin)  # (B, 1, 1) each
        raw = normalizer.inverse(scaled, t_hat, n_hat, axis=2)  # (B, S, K, H)
        if self.config.clip_imbalance:
            group = [i for i, c in enumerate(batch.channels) if c in IMBALANCE_CHANNELS]
            raw[:, :, group] = np.clip(raw[:, :, group], -1.0, 1.0)
        return raw.astype(np.float32)

    def _check_batch(self, batch: ForecastBatch, n_samples: int) -> None:
        normalizer, _ = self._require_fitted()
        check_n_samples(n_samples)
        if (batch.context_length, batch.horizon) != (self.config.context, self.config.horizon):
            raise TapecastError(f"the batch has {batch.context_length} context and "
                                f"{batch.horizon} horizon windows; this model reads "
                                f"{self.config.context} and forecasts {self.config.horizon}")
        if not batch.forecasts_its_context:
            raise TapecastError(f"JL-CSDI forecasts the context's own channels; this batch "
                                f"forecasts {list(batch.target_names)} from "
                                f"{list(batch.channels)}")
        if tuple(batch.channels) != tuple(normalizer.channels):
            raise TapecastError(f"the JL-CSDI model was fitted on channels "
                                f"{list(normalizer.channels)}, the batch has "
                                f"{list(batch.channels)}")

    def _require_fitted(self) -> tuple[OrderFlowNormalizer, DataStats]:
        if self.normalizer is None or self.stats is None:
            raise TapecastError("the JL-CSDI model must be fitted before sampling or saving: "
                                "call fit() or JLCSDI.load()")
        return self.normalizer, self.stats

    # ------------------------------------------------------------------------------------------
    # persistence

    def to_dict(self) -> dict[str, Any]:
        """Config, parameter count and training outcome (for forecast provenance)."""
        return {"name": self.name, "config": self.config.to_dict(),
                "n_parameters": self.n_parameters, "training": dict(self.training)}

    def _write_meta(self, folder: Path, state: str) -> None:
        channels = None if self.normalizer is None else list(self.normalizer.channels)
        write_meta(folder, KIND, FORMAT_VERSION, state, {"channels": channels,
                                                         **self.to_dict()})

    def save(self, folder: str | Path) -> Path:
        """Write the model folder: config.json, model.safetensors (the net's current weights —
        the best EMA after ``fit``), normalization.json, data_stats.json. Returns the folder."""
        normalizer, stats = self._require_fitted()
        return save_model_folder(folder, self.net, self._write_meta,
                                 {NORMALIZATION_FILE: normalizer.save, STATS_FILE: stats.save})

    @classmethod
    def load(cls, folder: str | Path) -> JLCSDI:
        """Read a folder written by :meth:`save` (or a finished ``fit`` run folder).

        Raises
        ------
        TapecastError
            One line naming the file that is missing, malformed or does not fit.
        """
        src = Path(folder)
        meta = read_meta(src, KIND, FORMAT_VERSION, "JL-CSDI")
        model = cls(JLCSDIConfig.from_dict(meta.get("config", {})))
        model.training = dict(meta.get("training") or {})
        model.normalizer = OrderFlowNormalizer.load(src / NORMALIZATION_FILE)
        try:
            model.stats = DataStats.from_dict(read_json(src / STATS_FILE, "data_stats.json",
                                                        "JL-CSDI"))
        except TapecastError as exc:
            raise TapecastError(f"{src / STATS_FILE}: {exc}") from None
        if model.stats.channels != model.normalizer.channels:
            raise TapecastError(f"{src}: data_stats.json and normalization.json name different "
                                "channels")
        load_weights(model.net, src / WEIGHTS_FILE, str(meta.get("state")))
        return model


def _whole_counts(value: ArrayLike, name: str, context: int) -> NDArray[np.int64]:
    """Trade counts of the C context windows, (B, C) or (C,): finite whole numbers >= 0."""
    counts = np.asarray(value)
    if counts.ndim not in (1, 2) or counts.shape[-1] != context:
        raise TapecastError(f"extras: {name} must have shape (B, {context}) or ({context},) (one "
                            f"count per context window), got {counts.shape}")
    numeric = np.issubdtype(counts.dtype, np.number) and not np.issubdtype(counts.dtype,
                                                                           np.bool_)
    as_float = counts.astype(np.float64) if numeric else np.array([np.nan])
    if not numeric or not np.isfinite(as_float).all() or (as_float < 0).any() \
            or (as_float != np.round(as_float)).any():
        raise TapecastError(f"extras: {name} must hold finite whole numbers >= 0")
    return counts.astype(np.int64)


def _is_main() -> bool:
    """Rank 0 of a torchrun group (or a single process): the one that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


__all__ = ["JLCSDI", "JLCSDIConfig", "jlcsdi_config"]

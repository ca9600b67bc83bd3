"""A score model of market states: NCSN on the shared diffusion core (issue 16).

The system of ``../shared/seeds/score-matching-trading.txt``: learn ``∇ₓ log p(x)`` of
D-dimensional state vectors (z-scored, :mod:`tapecast.features.state`), draw states from it and
evaluate their log-density::

    model = ScoreMatching("small").fit(train_states, val_states, run_dir="runs/score")
    draws = model.sample(1000, seed=0)                           # (1000, D)
    filled = model.sample(64, known=states, known_mask=mask)     # (B, 64, D): inpainting
    logp = model.log_prob(states)                                # (B,) nats
    model.save("runs/score"); ScoreMatching.load("runs/score")

**Model.** :class:`tapecast.nets.score_mlp.ScoreMLP`, a residual MLP conditioned on ``log σ``,
predicting ``σ ∇log p_σ`` for the core's :class:`~tapecast.diffusion.VENoise` (geometric σ from
σ_min = 0.01 to σ_max ≈ the largest pairwise training distance). Trained through
:func:`tapecast.train.fit` with multi-scale denoising score matching (Song & Ermon 2019, eq. 6,
λ(σ) = σ²) or sliced score matching with variance reduction (Song et al. 2020);
:mod:`tapecast.models.score_matching_ops` holds both objectives, the Langevin loop with
inpainting and the probability-flow density.

**Not a forecaster.** It models the distribution of one state, not the next window given the
past, so it does not implement the forecaster contract; its sampling API is scenario generation
(unconditional, or the rest of a state given part of it).

A saved model is a folder: ``config.json`` (config, the training states' mean and covariance,
the feature names, the training outcome) and ``model.safetensors`` (the EMA weights). No pickles.

Symbols: N states, D state dimension, S samples, B conditioning states.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn

from tapecast.core.errors import TapecastError
from tapecast.diffusion import VENoise, denoising_loss
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
from tapecast.models.score_matching_config import (
    ScoreMatchingConfig,
    score_matching_config,
)
from tapecast.models.score_matching_ops import (
    estimate_sigma_max,
    sample_states,
    sliced_score_loss,
    state_log_density,
)
from tapecast.nets.score_mlp import ScoreMLP
from tapecast.train import TensorDictDataset, TrainResult
from tapecast.train import fit as train_fit

KIND, FORMAT_VERSION = "tapecast.score-matching", 1

__all__ = ["ScoreMatching", "ScoreMatchingConfig", "score_matching_config"]


class ScoreMatching:
    """NCSN score model of D-dimensional states.

    Parameters
    ----------
    config : ScoreMatchingConfig or str
        A config or a preset name (``small``, ``tiny``). The network is built at ``fit`` (D
        and σ_max come from the data) or at ``load``.
    """

    name = "score-matching"

    def __init__(self, config: ScoreMatchingConfig | str = "small") -> None:
        self.config = score_matching_config(config) if isinstance(config, str) else config
        self.net: ScoreMLP | None = None
        self.mean: Tensor | None = None  # (D,) training mean, float64
        self.cov: Tensor | None = None  # (D, D) training covariance, float64
        self.feature_names: list[str] | None = None
        self.training: dict[str, Any] = {}
        self._train_result: TrainResult | None = None

    def __repr__(self) -> str:
        fitted = self.net is not None
        dim = self.config.net.dim if fitted else "?"
        return (f"ScoreMatching({self.config.name!r}, {self.config.objective}, D={dim}, "
                f"sigma=[{self.config.sigma_min}, {self.config.sigma_max}], fitted={fitted})")

    @property
    def noise(self) -> VENoise:
        """The VE forward process (σ_max set at fit)."""
        return self.config.make_noise()

    @property
    def dim(self) -> int:
        """D, the state dimension of the fitted model."""
        self._require_net()
        return self.config.net.dim

    @property
    def train_result(self) -> TrainResult:
        """What the training loop of the last :meth:`fit` reported."""
        if self._train_result is None:
            raise TapecastError("this score model was not trained in this process")
        return self._train_result

    # ------------------------------------------------------------------------------------------
    # training

    def fit(self, train: ArrayLike, val: ArrayLike | None = None, *, seed: int | None = None,
            run_dir: str | Path | None = None, resume: bool = True,
            feature_names: Sequence[str] | None = None, callbacks: Sequence[Any] = (),
            progress: bool = True) -> Self:
        """Train on states ``train`` (N, D), validating on ``val``; save in ``run_dir``.

        Parameters
        ----------
        train, val : array_like, float, shape (N, D)
            Normalized states (:class:`~tapecast.features.state_normalize.StateNormalizer`).
        seed : int, optional
            Training seed (also the σ_max subsample's); default the config's.
        run_dir : path, optional
            The training loop's folder and this model's files; None trains in a temporary one.
        resume : bool
            Continue from ``run_dir/last`` when it exists.
        feature_names : sequence of str, optional
            Names of the D features, kept with the model and checked by nothing else.
        callbacks, progress
            Passed to :func:`tapecast.train.fit`.

        Returns
        -------
        ScoreMatching
            This model, fitted.
        """
        if seed is not None and seed != self.config.train.seed:
            self.config = self.config.with_train(seed=seed)
        x = _as_states(train, None, "train states")
        x_val = None if val is None else _as_states(val, x.shape[1], "val states")
        if feature_names is not None and len(feature_names) != x.shape[1]:
            raise TapecastError(f"{len(feature_names)} feature names for states of dimension "
                                f"{x.shape[1]}")
        self.feature_names = None if feature_names is None else list(feature_names)
        sigma_max = self.config.sigma_max or self.config.sigma_max_scale * estimate_sigma_max(
            x.numpy(), self.config.sigma_max_subsample, self.config.train.seed)
        if not sigma_max > self.config.sigma_min:
            raise TapecastError(f"the training states span {sigma_max:.3g}, not more than "
                                f"sigma_min = {self.config.sigma_min}: are they all equal?")
        self.config = self.config.replace(sigma_max=sigma_max,
                                          net=self.config.net.replace(dim=x.shape[1]))
        self.mean = x.double().mean(0)
        self.cov = torch.cov(x.double().T).reshape(x.shape[1], x.shape[1])  # (D, D)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.train.seed)
            self.net = ScoreMLP(self.config.net)
        if run_dir is None:
            with tempfile.TemporaryDirectory(prefix="tapecast-score-") as tmp:
                return self._fit(x, x_val, Path(tmp), False, callbacks, progress, keep=False)
        return self._fit(x, x_val, Path(run_dir), resume, callbacks, progress, keep=True)

    def _fit(self, x: Tensor, x_val: Tensor | None, run: Path, resume: bool,
             callbacks: Sequence[Any], progress: bool, *, keep: bool) -> Self:
        net = self._require_net()
        if keep and resume:
            self._check_run_folder(run)
        if keep:
            run.mkdir(parents=True, exist_ok=True)
            self._write_meta(run, state="training")
        val_data = None if x_val is None else TensorDictDataset({"target": x_val})
        result = train_fit(net, self._loss_fn(), TensorDictDataset({"target": x}), val_data,
                           self.config.train, run_dir=run, resume=resume, callbacks=callbacks,
                           progress=progress)
        net.eval()
        self._train_result = result
        self.training = {"steps": result.step, "best_step": result.best_step,
                         "best_val_loss": finite_or_none(result.best_val_loss),
                         "wall_s": round(result.wall_s, 3), "train_states": len(x),
                         "val_states": None if x_val is None else len(x_val)}
        if keep:
            self.save(run)
        return self

    def _check_run_folder(self, run: Path) -> None:
        """A run folder with a checkpoint to resume must hold this run: the same config (up to
        the training loop's fields) and the same training moments."""
        if not (run / "last").exists() or not (run / CONFIG_FILE).exists():
            return
        stored = read_json(run / CONFIG_FILE, CONFIG_FILE, "score-matching")
        mine, theirs = self.config.to_dict(), stored.get("config")
        theirs = theirs if isinstance(theirs, dict) else {}
        changed = sorted(k for k in mine if k not in ("train", "name") and theirs.get(k) != mine[k])
        assert self.mean is not None
        if stored.get("mean") is None or not np.allclose(stored["mean"], self.mean.numpy(),
                                                         rtol=1e-12, atol=0.0):
            changed.append("training states")
        if changed:
            raise TapecastError(f"{run}: holds a run of another model or data (different "
                                f"{', '.join(changed)}); train it with the same settings to "
                                "resume, or start afresh (resume=False)")

    def _loss_fn(self) -> Any:
        noise, cfg = self.noise, self.config
        if cfg.objective == "dsm":
            return denoising_loss(noise, draws=cfg.noise_draws)

        def loss_fn(model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
            return sliced_score_loss(model, noise, batch, generator, draws=cfg.noise_draws,
                                     n_projections=cfg.n_projections)
        return loss_fn

    # ------------------------------------------------------------------------------------------
    # use

    def score(self, states: ArrayLike, sigma: float) -> Tensor:
        """``s_θ(x, σ) ≈ ∇ₓ log p_σ(x)`` at states (B, D) and one noise level: (B, D) float32."""
        net = self._require_net()
        x = _as_states(states, self.dim, "states")
        if not (isinstance(sigma, int | float) and 0 < sigma < float("inf")):
            raise TapecastError(f"sigma must be a finite number > 0, got {sigma!r}")
        log_sigma = torch.full((len(x),), float(np.log(sigma)))
        with torch.no_grad(), self.threads():
            out: Tensor = net(x, log_sigma) / sigma
        return out

    def sample(self, n_samples: int, *, seed: int = 0, known: ArrayLike | None = None,
               known_mask: ArrayLike | None = None, n_levels: int | None = None,
               steps_per_level: int | None = None, epsilon: float | None = None) -> Tensor:
        """Annealed Langevin draws (config defaults for L, T, ε), optionally inpainted.

        Parameters
        ----------
        n_samples : int
            S (per conditioning state).
        seed : int
        known : array_like, shape (B, D) or (D,), optional
            States to complete; only their ``known_mask`` coordinates are read.
        known_mask : array_like of bool, shape (B, D) or (D,), optional
        n_levels, steps_per_level, epsilon : optional

        Returns
        -------
        Tensor
            float32 (S, D), or (B, S, D) with ``known``.
        """
        net = self._require_net()
        if not isinstance(n_samples, int) or n_samples < 1:
            raise TapecastError(f"n_samples must be an int >= 1, got {n_samples!r}")
        cfg = self.config
        fixed = mask = None
        if known is not None or known_mask is not None:
            if known is None or known_mask is None:
                raise TapecastError("inpainting needs both known and known_mask")
            mask = torch.as_tensor(np.asarray(known_mask, dtype=bool))
            if mask.shape[-1] != self.dim or mask.dim() > 2:
                raise TapecastError(f"known_mask must have shape (D,) or (B, D) with D = "
                                    f"{self.dim}, got {tuple(mask.shape)}")
            fixed = _as_states(np.where(np.asarray(mask), known, 0.0), self.dim, "known states")
        with self.threads():
            return sample_states(
                net, self.noise, n_samples, self.dim,
                n_levels=cfg.n_levels if n_levels is None else n_levels,
                steps_per_level=cfg.steps_per_level if steps_per_level is None else
                steps_per_level, epsilon=cfg.epsilon if epsilon is None else epsilon, seed=seed,
                known=fixed, known_mask=mask)

    def log_prob(self, states: ArrayLike, *, divergence: str = "exact", n_probes: int = 1,
                 steps: int | None = None, seed: int = 0) -> Tensor:
        """``log p(x)`` in nats (of the states blurred by σ_min) by the probability-flow ODE.

        Parameters
        ----------
        states : array_like, shape (B, D)
        divergence : {"exact", "hutchinson", "auto"}
        n_probes : int
            Rademacher probes for Hutchinson.
        steps : int, optional
            RK4 steps; default the config's ``likelihood_steps``.
        seed : int
            Seed of the probes.

        Returns
        -------
        Tensor
            (B,), float64.
        """
        net = self._require_net()
        x = _as_states(states, self.dim, "states")
        with self.threads():
            return state_log_density(net, self.noise, x,
                                     steps=steps or self.config.likelihood_steps,
                                     divergence=divergence, n_probes=n_probes, seed=seed,
                                     prior_mean=self.mean, prior_cov=self.cov)

    def log_prob_chunked(self, states: ArrayLike, *, divergence: str = "hutchinson",
                         n_probes: int = 1, steps: int | None = None, seed: int = 0,
                         chunk: int = 1024) -> NDArray[np.float64]:
        """:meth:`log_prob` of many states, ``chunk`` at a time (chunk k's probes seeded
        ``seed + k·chunk``), as float64 NumPy: (N,) nats. Hutchinson's divergence by default:
        the exact one costs D backward passes per ODE step."""
        x = np.asarray(states, dtype=np.float64)
        parts = [self.log_prob(x[i:i + chunk], divergence=divergence, n_probes=n_probes,
                               steps=steps, seed=seed + i).numpy()
                 for i in range(0, len(x), chunk)]
        out: NDArray[np.float64] = np.concatenate(parts).astype(np.float64)
        return out

    @contextmanager
    def threads(self) -> Iterator[None]:
        """Run torch with the config's ``train.num_threads`` (1 in the presets; None leaves
        torch's setting): the network is small, and on a busy 2-core machine two OpenMP threads
        wait for each other (log p of 1,000 states: 12 s with 2 threads, 0.13 s with one)."""
        wanted, before = self.config.train.num_threads, torch.get_num_threads()
        if wanted is not None:
            torch.set_num_threads(wanted)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _require_net(self) -> ScoreMLP:
        if self.net is None:
            raise TapecastError("the score model must be fitted or loaded first: call fit() "
                                "or ScoreMatching.load()")
        return self.net

    # ------------------------------------------------------------------------------------------
    # persistence

    def to_dict(self) -> dict[str, Any]:
        """Config, data moments, feature names and training outcome."""
        return {"name": self.name, "config": self.config.to_dict(),
                "mean": None if self.mean is None else self.mean.tolist(),
                "cov": None if self.cov is None else self.cov.tolist(),
                "feature_names": self.feature_names, "training": dict(self.training)}

    def _write_meta(self, folder: Path, state: str) -> None:
        write_meta(folder, KIND, FORMAT_VERSION, state, self.to_dict())

    def save(self, folder: str | Path) -> Path:
        """Write config.json and model.safetensors; returns the folder."""
        return save_model_folder(folder, self._require_net(), self._write_meta)

    @classmethod
    def load(cls, folder: str | Path) -> ScoreMatching:
        """Read a folder written by :meth:`save` (or a finished ``fit`` run folder).

        Raises
        ------
        TapecastError
            One line naming the file that is missing, malformed or does not fit.
        """
        src = Path(folder)
        meta = read_meta(src, KIND, FORMAT_VERSION, "score-matching")
        model = cls(ScoreMatchingConfig.from_dict(meta.get("config", {})))
        dim = model.config.net.dim
        try:
            mean = torch.tensor(meta["mean"], dtype=torch.float64).reshape(dim)
            cov = torch.tensor(meta["cov"], dtype=torch.float64).reshape(dim, dim)
        except (KeyError, TypeError, ValueError, RuntimeError):
            raise TapecastError(f"{src / 'config.json'}: mean/cov missing or not of dimension "
                                f"{dim}") from None
        model.mean, model.cov = mean, cov
        names = meta.get("feature_names")
        model.feature_names = list(names) if isinstance(names, list) else None
        model.training = dict(meta.get("training") or {})
        model.net = ScoreMLP(model.config.net)
        load_weights(model.net, src / WEIGHTS_FILE, str(meta.get("state")))
        model.net.eval()
        return model


def _as_states(states: ArrayLike | Tensor, dim: int | None, what: str) -> Tensor:
    """States as float32 (N, D), checked: 2-D (one state (D,) becomes (1, D)), D = ``dim``
    when given, at least one row, every value finite."""
    if isinstance(states, Tensor):
        states = states.detach().cpu().numpy()
    x = np.asarray(states, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or len(x) == 0:
        raise TapecastError(f"{what} must have shape (N, D) with N >= 1, got {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise TapecastError(f"{what} have dimension {x.shape[1]}; this model was fitted on "
                            f"states of dimension {dim}")
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise TapecastError(f"{what}: row {row}, field {col} is {x[row, col]} (states must be "
                            f"finite; {int(bad.any(1).sum())} row(s) are not)")
    return torch.from_numpy(x.astype(np.float32))

"""TradeFM at the model layer: the decoder of :mod:`tapecast.nets.tradefm`, its frozen
tokenizer, its training loss and per-token scores, saved as one folder.

The generative model of Level-3 order flow of Kawawa-Beaudan et al. (2026, arXiv 2602.23784):
a decoder-only transformer over composite add/cancel tokens (:mod:`tapecast.features.tokenizer`)
trained by next-token cross-entropy on a token corpus (:mod:`tapecast.workflows.tokenize`)::

    corpus = TokenCorpus.open("tokens/corpus")            # `tapecast tokenize` output
    model = TradeFMModel(tradefm_model_config("tiny"))
    model.fit(corpus, run_dir="runs/tradefm")             # train split, early stop on val
    nll = model.token_nll(corpus, corpus.select("test")[0])   # (n,) nats, NaN at position 0
    TradeFMModel.load("runs/tradefm")

A saved model is a folder: ``config.json`` (kind ``tapecast.tradefm``, this config, the training
outcome), ``model.safetensors`` (the best validation weights) and ``tokenizer.json`` (the frozen
tokenizer the model was trained with; a corpus is scored only when it was encoded by the same
tokenizer, so a zero-shot test source is tokenized with ``tapecast tokenize --tokenizer``).

Legend: V = 16,384 composite ids, L the context (window) length, B windows per batch.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.nn import functional as F

from tapecast.core.errors import TapecastError
from tapecast.features.token_corpus import Segment, TokenCorpus
from tapecast.features.tokenizer import Tokenizer
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
from tapecast.models.tradefm_config import TradeFMModelConfig, tradefm_model_config
from tapecast.nets import count_parameters
from tapecast.nets.tradefm import IGNORE_INDEX, TradeFM
from tapecast.train import LossOutput, RandomWindows, TrainResult
from tapecast.train import fit as train_fit

__all__ = ["KIND", "TOKENIZER_FILE", "TradeFMModel", "corpus_tokenizer", "tradefm_loss"]

KIND: Final = "tapecast.tradefm"
FORMAT_VERSION: Final = 1
TOKENIZER_FILE: Final = "tokenizer.json"
LABEL: Final = "TradeFM"


def tradefm_loss(model: nn.Module, batch: Mapping[str, Tensor],
                 generator: torch.Generator | None = None) -> LossOutput:
    """Token-weighted mean next-token cross-entropy, for :func:`tapecast.train.fit`.

    Parameters
    ----------
    model : nn.Module
        A :class:`TradeFM` (or a wrapper with the same call).
    batch : mapping of str to Tensor
        ``inputs`` and ``targets`` int64 (B, T) (as :class:`tapecast.train.TokenWindows` gives;
        targets of ``IGNORE_INDEX`` = −100 are padding); optional ``tier``, ``flag`` and
        ``dp_bin`` (B, T) of the inputs, zeros where absent.
    generator : torch.Generator, optional
        Unused (the loss draws nothing); part of the trainer's loss signature.

    Returns
    -------
    LossOutput
        Mean NLL in nats over the kept targets, weight = their count, ``accuracy`` of the
        argmax, perplexity of the loss.
    """
    inputs, targets = batch["inputs"], batch["targets"]  # (B, T) each
    zeros = torch.zeros_like(inputs)
    logits = model(inputs, batch.get("tier", zeros), batch.get("flag", zeros),
                   batch.get("dp_bin", zeros))  # (B, T, V)
    keep = targets != IGNORE_INDEX  # (B, T)
    n_tokens = keep.sum()
    nll_sum = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                              ignore_index=IGNORE_INDEX, reduction="sum")
    correct = ((logits.argmax(-1) == targets) & keep).sum()
    denominator = n_tokens.clamp(min=1)
    return LossOutput(nll_sum / denominator, weight=n_tokens,
                      metrics={"accuracy": (correct / denominator).detach()},
                      perplexity_of="loss")


def corpus_tokenizer(corpus: TokenCorpus) -> Tokenizer:
    """The tokenizer that encoded ``corpus`` (``tokenizer.json`` beside ``corpus/``, as
    ``tapecast tokenize`` writes it; the corpus' provenance names the path).

    Raises
    ------
    TapecastError
        When the corpus was not read from a folder or its tokenizer file is missing or bad.
    """
    if corpus.path is None:
        raise TapecastError("token corpus: built in memory, so its tokenizer is unknown (open "
                            "a `tapecast tokenize` folder's corpus/)")
    relative = str(corpus.provenance.get("tokenizer", f"../{TOKENIZER_FILE}"))
    path = (corpus.path / relative).resolve()
    if not path.exists():
        raise TapecastError(f"{path}: missing; the tokenizer of the token corpus "
                            f"{corpus.path} (a `tapecast tokenize` folder holds both)")
    return Tokenizer.load(path)


class TradeFMModel:
    """A TradeFM decoder with its tokenizer: train, score, save and load.

    Parameters
    ----------
    config : TradeFMModelConfig, optional
        Network and training loop; default ``tradefm_model_config("tiny")``.
    """

    def __init__(self, config: TradeFMModelConfig | None = None) -> None:
        self.config = config or tradefm_model_config("tiny")
        self.net: TradeFM | None = None
        self.tokenizer: Tokenizer | None = None
        self.training: dict[str, Any] = {}
        self._train_result: TrainResult | None = None

    def __repr__(self) -> str:
        size = "unfitted" if self.net is None else f"{self.n_parameters:,} parameters"
        return (f"TradeFM({self.config.name}, {self.config.net.n_layers} layers, "
                f"d {self.config.net.d_model}, context {self.config.net.context}, {size})")

    @property
    def n_parameters(self) -> int:
        """Trainable parameters of the decoder (0 before ``fit``)."""
        return 0 if self.net is None else count_parameters(self.net)

    @property
    def train_result(self) -> TrainResult:
        """What the training loop of the last :meth:`fit` reported."""
        if self._train_result is None:
            raise TapecastError("this TradeFM model was not trained in this process (fit() "
                                "sets train_result; a loaded model has .training)")
        return self._train_result

    def _require_net(self) -> TradeFM:
        if self.net is None:
            raise TapecastError("this TradeFM model is not fitted: call fit() or "
                                "TradeFMModel.load()")
        return self.net

    # ------------------------------------------------------------------------------------------
    # training

    def fit(self, corpus: TokenCorpus, *, run_dir: str | Path | None = None,
            resume: bool = True, seed: int | None = None, callbacks: Sequence[Any] = (),
            progress: bool = True) -> Self:
        """Train on the corpus' ``train`` segments, validating (early stop) on ``val``.

        Parameters
        ----------
        corpus : TokenCorpus
            A ``tapecast tokenize`` corpus (its tokenizer is read from beside it and saved with
            the model). Windows of L + 1 tokens never cross a segment.
        run_dir : path, optional
            The training loop's folder (``best/``, ``last/``, logs) and this model's files;
            None trains in a temporary folder.
        resume : bool
            Continue from ``run_dir/last`` when it exists (a folder holding another config
            or tokenizer is refused in one line; ``resume=False`` starts afresh).
        seed : int, optional
            Training seed; default the config's.
        callbacks, progress
            Passed to :func:`tapecast.train.fit`.

        Returns
        -------
        TradeFMModel
            This model, fitted (the best validation weights when there is a val split).

        Raises
        ------
        TapecastError
            A corpus without train tokens, with ids or context values the network cannot
            embed, or a run folder to resume that holds another run.
        """
        if seed is not None:
            self.config = self.config.with_train(seed=seed)
        self.tokenizer = corpus_tokenizer(corpus)
        _check_corpus_fits(corpus, self.config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.train.seed)
            self.net = TradeFM(self.config.net)
        window = self.config.net.context
        train = corpus.windows(window, split="train")
        val = (corpus.windows(window, split="val", stride=window)
               if corpus.select("val") else None)
        self.training = {"train_tokens": sum(s.length for s in corpus.select("train")),
                         "val_tokens": sum(s.length for s in corpus.select("val")),
                         "corpus": None if corpus.path is None else str(corpus.path)}
        if run_dir is None:
            with tempfile.TemporaryDirectory(prefix="tapecast-tradefm-") as tmp:
                return self._fit(train, val, Path(tmp), False, callbacks, progress, keep=False)
        return self._fit(train, val, Path(run_dir), resume, callbacks, progress, keep=True)

    def _fit(self, train: Any, val: Any, run: Path, resume: bool, callbacks: Sequence[Any],
             progress: bool, *, keep: bool) -> Self:
        net = self._require_net()
        if keep and resume:
            self._check_run_folder(run)
        from tapecast.train.device import resolve_device, resolve_precision

        # refuse an unusable device or precision before anything is written to the run folder
        resolve_precision(self.config.train.precision,
                          resolve_device(self.config.train.device))
        if keep:
            run.mkdir(parents=True, exist_ok=True)
            assert self.tokenizer is not None
            self.tokenizer.save(run / TOKENIZER_FILE)
            self._write_meta(run, state="training")
        result = train_fit(net, tradefm_loss, train, val, self.config.train, run_dir=run,
                           resume=resume, callbacks=callbacks, progress=progress,
                           sampler=RandomWindows(epoch_steps=self.config.steps_per_epoch))
        self._train_result = result
        self.training.update({
            "steps": result.step, "best_step": result.best_step,
            "best_val_loss": finite_or_none(result.best_val_loss),
            "still_improving": result.best_step == result.step and _validations(run) > 1,
            "wall_s": round(result.wall_s, 3)})
        if keep:
            self.save(run)
        return self

    def _check_run_folder(self, run: Path) -> None:
        """A run folder with a checkpoint to resume must hold this run: the same network,
        tokenizer and train / val token counts."""
        if not (run / "last").exists() or not (run / CONFIG_FILE).exists():
            return
        stored = read_json(run / CONFIG_FILE, CONFIG_FILE, LABEL)
        theirs = stored.get("config")
        theirs = theirs if isinstance(theirs, dict) else {}
        changed = ["net"] if theirs.get("net") != self.config.net.to_dict() else []
        try:
            old = Tokenizer.load(run / TOKENIZER_FILE)
        except TapecastError:
            old = None
        assert self.tokenizer is not None
        if old is None or not old.equals(self.tokenizer):
            changed.append("tokenizer (another token corpus)")
        before = stored.get("training")
        before = before if isinstance(before, dict) else {}
        if any(before.get(k) != self.training.get(k) for k in ("train_tokens", "val_tokens")):
            changed.append("training corpus (other train or val token counts)")
        if changed:
            raise TapecastError(f"{run}: holds a run of another model or corpus (different "
                                f"{', '.join(changed)}); train it with the same settings to "
                                "resume, or start afresh (`tapecast train --fresh`; "
                                "resume=False in Python)")

    # ------------------------------------------------------------------------------------------
    # scoring

    def check_corpus(self, corpus: TokenCorpus) -> None:
        """Refuse a corpus encoded by another tokenizer than this model's (its ids would mean
        other bins) or holding values the network cannot embed; one line."""
        _check_corpus_fits(corpus, self.config)
        if self.tokenizer is None:
            return
        if not corpus_tokenizer(corpus).equals(self.tokenizer):
            raise TapecastError(
                f"{corpus.path}: encoded by another tokenizer than the model's; tokenize the "
                "source again with the model's frozen tokenizer (`tapecast tokenize "
                "--tokenizer RUN/tokenizer.json`)")

    @torch.no_grad()
    def token_nll(self, corpus: TokenCorpus, segment: Segment, *, batch_size: int = 16
                  ) -> NDArray[np.float64]:
        """Per-token negative log-likelihood (nats) of one segment.

        Windows of L + 1 tokens every ``config.stride`` tokens; each token is scored once, by
        the first window that holds it after its first ``L − stride`` positions (the
        segment's first window scores from its start), so every scored token but those of the
        first window sees more than ``L − stride`` tokens of context.

        Parameters
        ----------
        corpus : TokenCorpus
        segment : Segment
            One of ``corpus.segments``.
        batch_size : int
            Windows per forward pass.

        Returns
        -------
        ndarray, float64, shape (n,)
            n = ``segment.length``; NaN at position 0 (nothing predicts the first token).
        """
        net = self._require_net()
        net.eval()
        device = next(net.parameters()).device
        window = self.config.net.context
        windows = corpus.windows_of([segment], window, stride=self.config.stride)
        out = np.full(segment.length, np.nan)
        scored = 1  # positions below this (in the segment) are done
        for first in range(0, len(windows), batch_size):
            index = torch.arange(first, min(first + batch_size, len(windows)))
            batch = {k: v.to(device) for k, v in windows.batch(index).items()}
            logits = net(batch["inputs"], batch["tier"], batch["flag"], batch["dp_bin"])
            targets = batch["targets"]  # (b, L)
            nll = F.cross_entropy(logits.float().transpose(1, 2), targets.clamp(min=0),
                                  reduction="none").cpu().numpy()  # (b, L)
            keep = (targets != IGNORE_INDEX).cpu().numpy()
            for row, start in enumerate(windows.starts[index.numpy()] - segment.offset):
                pos = start + 1 + np.arange(window)  # (L,) segment positions of the targets
                take = keep[row] & (pos >= scored)
                if start > 0:
                    take &= pos >= start + 1 + window - self.config.stride
                out[pos[take]] = nll[row][take]
                if take.any():
                    scored = int(pos[take][-1]) + 1
        return out

    # ------------------------------------------------------------------------------------------
    # folder

    def _write_meta(self, folder: Path, state: str) -> None:
        write_meta(folder, KIND, FORMAT_VERSION, state,
                   {"config": self.config.to_dict(), "n_parameters": self.n_parameters,
                    "training": self.training})

    def save(self, folder: str | Path) -> Path:
        """Write config.json, model.safetensors and tokenizer.json; returns the folder."""
        net = self._require_net()
        if self.tokenizer is None:
            raise TapecastError("this TradeFM model has no tokenizer (fit it on a "
                                "`tapecast tokenize` corpus)")
        return save_model_folder(folder, net, self._write_meta,
                                 {TOKENIZER_FILE: self.tokenizer.save})

    @classmethod
    def load(cls, folder: str | Path) -> TradeFMModel:
        """Read a folder written by :meth:`save` (or a finished ``fit`` run folder).

        Raises
        ------
        TapecastError
            One line naming the file that is missing, malformed or does not fit.
        """
        src = Path(folder)
        meta = read_meta(src, KIND, FORMAT_VERSION, LABEL)
        model = cls(TradeFMModelConfig.from_dict(meta.get("config", {})))
        model.training = dict(meta.get("training") or {})
        model.tokenizer = Tokenizer.load(src / TOKENIZER_FILE)
        model.net = TradeFM(model.config.net)
        load_weights(model.net, src / WEIGHTS_FILE, str(meta.get("state")))
        model.net.eval()
        return model


def _validations(run: Path) -> int:
    """Validations logged in ``run/train_log.jsonl`` (0 when there is no log)."""
    try:
        lines = (run / "train_log.jsonl").read_text().splitlines()
    except OSError:
        return 0
    return sum('"kind": "val"' in line for line in lines)


def _check_corpus_fits(corpus: TokenCorpus, config: TradeFMModelConfig) -> None:
    """Token ids and context values inside the network's tables; one line naming the field."""
    net = config.net
    if corpus.vocab_size != net.vocab_size:
        raise TapecastError(f"{corpus.path}: vocabulary {corpus.vocab_size:,} but the network "
                            f"predicts {net.vocab_size:,} ids")
    limits = {"tokens": net.vocab_size, "tier": net.n_tiers, "flag": net.n_flags + 1,
              "dp_bin": net.n_dp_bins}
    for field, limit in limits.items():
        values = np.asarray(corpus.arrays[field])
        if values.size and (int(values.max()) >= limit or int(values.min()) < 0):
            raise TapecastError(f"{corpus.path}: field {field} holds values outside [0, "
                                f"{limit}) (min {int(values.min())}, max {int(values.max())}), "
                                "beyond the network's embedding rows")

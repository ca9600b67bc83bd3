"""Which kind of features folder or run folder a command was given, read from its JSON header.

``tapecast train``, ``forecast`` and ``baseline`` take an order-flow features folder (JL-CSDI
and the order-flow baselines), a price one (the price-diffusion model and the ``price-``
baselines) or, for ``train`` and ``perplexity``, a ``tapecast tokenize`` folder (TradeFM); these
helpers tell them apart before anything heavy is opened, so a mismatch is refused in one line
naming the right choice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from tapecast.core.errors import TapecastError

FeaturesKind = Literal["orderflow", "price", "tokens", "state"]
RunKind = Literal["jl-csdi", "price-diffusion", "tradefm", "score-matching"]

FEATURES_FILE = "features.json"  # tapecast.features.featureset.META_FILE
RUN_CONFIG_FILE = "config.json"  # the model config both forecasters write
PRICE_MODEL_KIND = "tapecast.price-diffusion"  # tapecast.models.price_diffusion.KIND
TRADEFM_KIND = "tapecast.tradefm"  # tapecast.models.tradefm.KIND
SCORE_KIND = "tapecast.score-matching"  # tapecast.models.score_matching.KIND
CORPUS_FILE = "corpus.json"  # tapecast.features.token_corpus.META_FILE
KIND_NAMES: dict[str, str] = {"orderflow": "an order-flow features", "price": "a price features",
                              "tokens": "a token", "state": "a state features"}
BUILD: dict[str, str] = {"orderflow": "tapecast features",
                         "price": "tapecast features --kind price", "tokens": "tapecast tokenize",
                         "state": "tapecast features --kind state"}


def _kind_field(path: Path) -> object:
    """The ``kind`` field of a JSON object file; None when it is absent or unreadable (the
    folder's own reader then names what is wrong)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def features_kind(folder: Path) -> FeaturesKind:
    """``tokens`` for a ``tapecast tokenize`` folder (or its ``corpus/``), ``price`` for a
    ``tapecast features --kind price`` folder, ``state`` for a ``--kind state`` one, else
    ``orderflow`` (the default of folders written before the price kind existed, and of
    anything unreadable)."""
    if (folder / "corpus" / CORPUS_FILE).exists() or (folder / CORPUS_FILE).exists():
        return "tokens"
    kind = _kind_field(folder / FEATURES_FILE)
    return "price" if kind == "price" else "state" if kind == "state" else "orderflow"


def corpus_folder(folder: Path) -> Path:
    """The token corpus of a ``tapecast tokenize`` folder (``folder/corpus``) or ``folder``
    itself when it is the corpus."""
    return folder if (folder / CORPUS_FILE).exists() else folder / "corpus"


def run_kind(run: Path) -> RunKind:
    """The forecaster a ``tapecast train`` run folder holds, from its ``config.json``.

    Raises
    ------
    TapecastError
        When ``run`` is not a folder.
    """
    if not run.is_dir():
        raise TapecastError(f"{run}: no such model folder (a `tapecast train` run of JL-CSDI, "
                            "price-diffusion, TradeFM or the score model)")
    if not (run / RUN_CONFIG_FILE).exists() and (run / FEATURES_FILE).exists():
        raise TapecastError(f"{run}: a features folder, not a model run folder (train one with "
                            "`tapecast train -F FEATURES -o RUN`)")
    kind = _kind_field(run / RUN_CONFIG_FILE)
    if kind == PRICE_MODEL_KIND:
        return "price-diffusion"
    if kind == SCORE_KIND:
        return "score-matching"
    return "tradefm" if kind == TRADEFM_KIND else "jl-csdi"


def require_features_kind(folder: Path, expected: FeaturesKind, what: str) -> None:
    """Refuse ``folder`` unless it is a features folder of kind ``expected``; ``what`` names the
    model or baseline that needs it."""
    if not folder.is_dir():
        raise TapecastError(f"{folder}: no such folder; {what} needs {KIND_NAMES[expected]} "
                            f"folder (build it with `{BUILD[expected]}`)")
    if not (folder / FEATURES_FILE).exists() and (folder / RUN_CONFIG_FILE).exists():
        raise TapecastError(f"{folder}: a model run folder, not features; {what} needs "
                            f"{KIND_NAMES[expected]} folder (build it with `{BUILD[expected]}`)")
    kind = features_kind(folder)
    if kind != expected:
        raise TapecastError(f"{folder}: {KIND_NAMES[kind]} folder; {what} needs "
                            f"{KIND_NAMES[expected]} folder (build it with "
                            f"`{BUILD[expected]}`)")

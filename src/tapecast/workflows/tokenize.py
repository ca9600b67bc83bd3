"""L3 event sources → TradeFM token corpus: event features, a frozen tokenizer, token shards.

The path of ``tapecast tokenize`` (issue 14)::

    result = tokenize_sources([Path("esh4.mbo.dbn.zst"), Path("AAPL.zip")], Path("corpus"))
    result.corpus.windows(256, split="train")          # training windows for TradeFM

1. Each source is read (:func:`tapecast.workflows.tape.read_one`) and its token events built
   (:func:`tapecast.features.events.event_features_from_tables`).
2. **Splits inside sessions**, by time: every offline source here holds one session, so each
   (instrument, session) is cut into train / val / test by token order (60/20/20 by default)
   and ``embargo`` tokens after each cut are dropped, so no training window's context reaches
   into the val or test tokens it precedes.
3. The tokenizer is **calibrated on the train tokens only** (:meth:`Tokenizer.calibrate`) —
   or, given ``tokenizer``, a frozen one is reused as it is (a zero-shot test source encoded
   with a trained model's tokenizer) — then every token is encoded; the context inputs are
   the liquidity tier (``tiers`` per instrument from the caller, else ``default_tier``: a
   tier from prior sessions' volume needs prior sessions, which no offline source has), the
   ``market`` flag (real events) and the context Δp bin of the session drift. Each token also
   keeps its book ``level`` (better price levels on its side before the event), for scoring
   inside the top N levels.
4. ``OUT/corpus`` (:class:`tapecast.features.token_corpus.TokenCorpus`), ``OUT/tokenizer.json``
   and ``OUT/summary.json`` (the rule counts per session, tokens per split) are written
   atomically; nothing is written when a step fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_dir, file_sha256
from tapecast.data.tables import Tables
from tapecast.features.events import EventFeatureConfig, event_features_from_tables
from tapecast.features.token_corpus import TokenCorpus
from tapecast.features.tokenizer import Tokenizer
from tapecast.features.tokenizer_config import TokenizerConfig
from tapecast.workflows.tape import read_one

__all__ = ["SPLITS", "TokenizeResult", "split_positions", "tokenize_sources"]

SPLITS = ("train", "val", "test")
EVENT_FEATURES = "event_features"  # the tokenizer provenance key of the EventFeatureConfig


def _events_config(given: EventFeatureConfig | None, tokenizer: Tokenizer | None
                   ) -> EventFeatureConfig:
    """The event-feature settings: a frozen tokenizer's own (its p_mid half-life, staleness,
    outcome window), which ``given`` may repeat but not change; else ``given`` or the
    defaults."""
    if tokenizer is None:
        return given or EventFeatureConfig()
    stored = tokenizer.provenance.get(EVENT_FEATURES)
    if not isinstance(stored, dict):
        return given or EventFeatureConfig()  # a tokenizer written before this was recorded
    own = EventFeatureConfig.from_dict(stored)
    if given is not None and given != own:
        changed = [k for k, v in given.to_dict().items() if stored.get(k) != v]
        raise TapecastError(f"tokenize: the frozen tokenizer was calibrated with event features "
                            f"{', '.join(f'{k}={stored.get(k)}' for k in changed)}; encode "
                            "with the same settings (leave --half-life/--staleness out)")
    return own


@dataclass(frozen=True)
class TokenizeResult:
    """What :func:`tokenize_sources` wrote and counted."""

    tokenizer: Tokenizer
    corpus: TokenCorpus
    summary: dict[str, Any]


def split_positions(n: int, fractions: Sequence[float], embargo: int
                    ) -> list[tuple[str, int, int]]:
    """``(split, start, stop)`` of a session of ``n`` tokens cut by ``fractions`` in time order,
    ``embargo`` tokens dropped after each cut that has tokens before it (empty parts left
    out; ``0/0/100`` keeps every token in test)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1):
        raise TapecastError(f"split fractions must be three non-negative numbers summing to 1, "
                            f"got {list(fractions)}")
    if embargo < 0:
        raise TapecastError(f"the embargo must be >= 0 tokens, got {embargo}")
    cuts = np.round(np.cumsum([0.0, *fractions]) * n).astype(int)
    out = []
    for k, name in enumerate(SPLITS):
        start = int(cuts[k]) + (embargo if cuts[k] > 0 else 0)
        stop = int(cuts[k + 1])
        if stop > start:
            out.append((name, start, stop))
    return out


def _check_out(out: Path) -> None:
    """Refuse to replace a folder that is neither empty nor an earlier tokenize output (the
    write swaps the whole folder)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise TapecastError(f"{out}: is a file; give a folder for the token corpus")
    if any(out.iterdir()) and not ((out / "corpus" / "corpus.json").exists()
                                   and (out / "tokenizer.json").exists()):
        raise TapecastError(f"{out}: a folder that is not a `tapecast tokenize` output; its "
                            "contents would be replaced (give a new or empty folder)")


def tokenize_sources(sources: Sequence[Path | Tables], out: Path, *,
                     fractions: Sequence[float] = (0.6, 0.2, 0.2), embargo: int = 256,
                     events_config: EventFeatureConfig | None = None,
                     tokenizer_config: TokenizerConfig | None = None,
                     tiers: Mapping[str, str] | None = None, default_tier: str = "medium",
                     fmt: str | None = None, options: Mapping[str, Any] | None = None,
                     tokenizer: Tokenizer | None = None) -> TokenizeResult:
    """Read, featurize, split, calibrate, encode and write a token corpus (module docstring).

    ``tokenizer``, when given, is used frozen instead of calibrating one (``tokenizer_config``
    must then be None); it is saved unchanged as ``OUT/tokenizer.json``, so a model trained
    with it accepts the corpus. A source may be tables already read or generated (the
    synthetic L3 market, :func:`tapecast.sim.l3_market.generate_l3_market`): it is named by
    its ``source`` and has no sha256.

    Raises
    ------
    TapecastError
        A source without an events table or without add/cancel events, no training token, an
        unknown tier; one line naming the source.
    """
    events_config = _events_config(events_config, tokenizer)
    parts: list[tuple[str, str, str, pl.DataFrame]] = []  # instrument, session, split, tokens
    sources_meta, rules = [], {}
    for path in sources:
        tables = path if isinstance(path, Tables) else read_one(path, fmt, dict(options or {}))
        name = tables.source if isinstance(path, Tables) else str(path)
        try:
            feats = event_features_from_tables(tables, events_config)
        except TapecastError as exc:  # name the file once
            message = str(exc)
            raise TapecastError(message if name in message else f"{name}: {message}"
                                ) from None
        frame = feats.tokens
        for (instrument, session), group in frame.group_by(
                "instrument", "session_date", maintain_order=True):
            for split, start, stop in split_positions(group.height, fractions, embargo):
                parts.append((str(instrument), str(session), split,
                              group.slice(start, stop - start)))
        sources_meta.append({"path": name, "sha256": None if isinstance(path, Tables)
                             else file_sha256(path), "tokens": frame.height})
        rules[name] = feats.summary().with_columns(
            pl.col("session_date").cast(pl.String)).to_dicts()
    provenance: dict[str, Any] = {"sources": sources_meta, "fractions": list(fractions),
                                  "embargo": embargo,
                                  EVENT_FEATURES: events_config.to_dict()}
    if tokenizer is not None:
        if tokenizer_config is not None:
            raise TapecastError("tokenize: give a frozen tokenizer or a tokenizer config, not "
                                "both")
        if not parts:
            raise TapecastError(f"tokenize: no token to encode (every session is shorter than "
                                f"the split {list(fractions)} with an embargo of {embargo} "
                                "tokens after each cut; try --embargo 0)")
        provenance["frozen_tokenizer"] = tokenizer.provenance
    else:
        train = [p[3] for p in parts if p[2] == "train"]
        if not train:
            hint = ("; to encode a test source with a trained model's tokenizer, give it "
                    "with --tokenizer" if fractions[0] == 0 else "")
            raise TapecastError("tokenize: no training token to calibrate a tokenizer on "
                                f"(split {list(fractions)}, embargo {embargo}){hint}")
        train_frame = pl.concat(train)
        provenance["time_span"] = [str(train_frame["ts"].min()), str(train_frame["ts"].max())]
        tokenizer = Tokenizer.calibrate(
            {"dp": train_frame["delta_p"].to_numpy(), "v": train_frame["log_size"].to_numpy(),
             "dt": train_frame["dt"].to_numpy(), "dp_open": train_frame["drift"].to_numpy()},
            tokenizer_config, provenance=provenance)
    market = tokenizer.flag_id("market")
    corpus_parts = []
    for instrument, session, split, frame in parts:
        tier = tokenizer.tier_id((tiers or {}).get(instrument, default_tier))
        ids = tokenizer.encode((frame["action"] == "cancel").cast(pl.Int64).to_numpy(),
                               (frame["side"] == "ask").cast(pl.Int64).to_numpy(),
                               frame["delta_p"].to_numpy(), frame["log_size"].to_numpy(),
                               frame["dt"].to_numpy())
        corpus_parts.append({"instrument": instrument, "session": session, "split": split,
                             "tokens": ids, "tier": np.full(ids.size, tier),
                             "flag": np.full(ids.size, market),
                             "dp_bin": tokenizer.encode_context_dp(frame["drift"].to_numpy()),
                             "level": frame["level"].to_numpy()})
    summary = {"sources": sources_meta, "rules": rules,
               "tokens": {s: int(sum(p[3].height for p in parts if p[2] == s))
                          for s in SPLITS}}
    _check_out(out)
    with atomic_dir(out) as staging:
        tokenizer.save(staging / "tokenizer.json")
        (staging / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        TokenCorpus.write(staging / "corpus", corpus_parts, vocab_size=tokenizer.vocab_size,
                          provenance={**provenance, "tokenizer": "../tokenizer.json"})
    return TokenizeResult(Tokenizer.load(out / "tokenizer.json"),
                          TokenCorpus.open(out / "corpus"), summary)

"""A token corpus on disk and the training windows over it (TradeFM, issue 14).

A corpus folder holds, for every token of every (instrument, session) segment laid end to end,
four parallel ``.npy`` arrays read back memory-mapped (a corpus larger than memory streams from
disk; NumPy's format, no pickles):

- ``tokens.npy`` — the composite token ids (:mod:`tapecast.features.tokenizer`), int16;
- ``tier.npy``, ``flag.npy``, ``dp_bin.npy`` — the context inputs of each token (liquidity tier,
  market/participant flag, Δp bin), int16;

and ``corpus.json``: the segments (instrument, session, split, offset, length), the vocabulary
size and the caller's provenance. Writes are atomic (:func:`tapecast.core.io.atomic_dir`).

:class:`CorpusWindows` serves next-token windows of L + 1 tokens that **never cross a segment
boundary**: sample i is a window inside one segment. A segment shorter than L + 1 tokens gives
one window padded on the right (inputs 0, targets ``IGNORE_INDEX``, which the loss skips).
Batches are ``inputs``/``targets``/``tier``/``flag``/``dp_bin``, int64 (n, L), as
:func:`tapecast.models.tradefm.tradefm_loss` reads them.

Symbols: N tokens in the corpus, L the window, n windows per batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_dir

__all__ = ["FIELDS", "IGNORE_INDEX", "OPTIONAL_FIELDS", "CorpusWindows", "Segment", "TokenCorpus"]

FIELDS: Final = ("tokens", "tier", "flag", "dp_bin")
OPTIONAL_FIELDS: Final = ("level",)
"""Per-token values kept for scoring, not fed to the model: ``level``, the better price levels
on the order's side before its event (:data:`tapecast.features.events.LEVELS`)."""
IGNORE_INDEX: Final = -100
META_FILE: Final = "corpus.json"
KIND, FORMAT_VERSION = "tapecast.token-corpus", 1


@dataclass(frozen=True)
class Segment:
    """One (instrument, session[, split]) run of tokens: ``offset`` and ``length`` in the
    corpus arrays."""

    instrument: str
    session: str
    split: str
    offset: int
    length: int


class TokenCorpus:
    """The four token arrays (memory-mapped when opened) and their segments.

    Use :meth:`write` to build one and :meth:`open` to read it.
    """

    def __init__(self, arrays: Mapping[str, NDArray[Any]], segments: Sequence[Segment],
                 vocab_size: int, provenance: Mapping[str, Any], path: Path | None = None
                 ) -> None:
        self.arrays = dict(arrays)
        self.segments = tuple(segments)
        self.vocab_size = vocab_size
        self.provenance = dict(provenance)
        self.path = path

    def __len__(self) -> int:
        return int(self.arrays["tokens"].shape[0])

    @classmethod
    def write(cls, folder: str | Path, parts: Sequence[Mapping[str, Any]], *,
              vocab_size: int = 16_384, provenance: Mapping[str, Any] | None = None
              ) -> TokenCorpus:
        """Write a corpus folder from its segments.

        Parameters
        ----------
        folder : path
        parts : sequence of mappings
            One per segment: ``instrument``, ``session`` (str), optional ``split`` (``train``
            by default), ``tokens`` (n,) ids in [0, vocab_size), and optional ``tier``,
            ``flag``, ``dp_bin`` (n,) non-negative ints (zeros when absent); ``level`` (n,)
            non-negative ints, written only when every segment has it.
        vocab_size : int
        provenance : mapping, optional
            Recorded in ``corpus.json`` (sources, tokenizer hash, ...).

        Raises
        ------
        TapecastError
            No segment, an empty one, ids outside the vocabulary, context arrays of another
            length or negative; one line naming the segment and field.
        """
        if not parts:
            raise TapecastError("token corpus: no segment to write")
        extra = [f for f in OPTIONAL_FIELDS if all(p.get(f) is not None for p in parts)]
        columns: dict[str, list[NDArray[np.int16]]] = {f: [] for f in (*FIELDS, *extra)}
        segments, offset = [], 0
        for i, part in enumerate(parts):
            name = f"segment {i} ({part.get('instrument', '?')} {part.get('session', '?')})"
            tokens = _ints(part.get("tokens"), name, "tokens")
            if tokens.size == 0:
                raise TapecastError(f"token corpus: {name} has no token")
            bad = (tokens < 0) | (tokens >= vocab_size)
            if bad.any():
                raise TapecastError(f"token corpus: {name}: {int(bad.sum()):,} token id(s) "
                                    f"outside [0, {vocab_size}), first {int(tokens[bad][0])}")
            columns["tokens"].append(tokens.astype(np.int16 if vocab_size <= 32_767
                                                   else np.int32))
            for field in (*FIELDS[1:], *extra):
                given = part.get(field)
                values = (np.zeros(tokens.size, dtype=np.int64) if given is None
                          else _ints(given, name, field))
                if values.shape != tokens.shape or (values < 0).any():
                    raise TapecastError(f"token corpus: {name}: {field} must be {tokens.size} "
                                        "non-negative ints (one per token)")
                columns[field].append(values.astype(np.int16))
            segments.append(Segment(str(part["instrument"]), str(part["session"]),
                                    str(part.get("split", "train")), offset, int(tokens.size)))
            offset += int(tokens.size)
        out = Path(folder)
        with atomic_dir(out) as staging:
            for field, chunks in columns.items():
                np.save(staging / f"{field}.npy", np.concatenate(chunks), allow_pickle=False)
            meta = {"kind": KIND, "format_version": FORMAT_VERSION, "vocab_size": vocab_size,
                    "tokens": offset, "segments": [s.__dict__ for s in segments],
                    "provenance": dict(provenance or {})}
            (staging / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        return cls.open(out)

    @classmethod
    def open(cls, folder: str | Path) -> TokenCorpus:
        """Read a corpus folder, its arrays memory-mapped.

        Raises
        ------
        TapecastError
            A missing or malformed file, another kind or format, arrays of different lengths
            or segments outside them: one line naming the file.
        """
        src = Path(folder)
        meta_path = src / META_FILE
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise TapecastError(f"{meta_path}: missing (not a token corpus folder)") from None
        except (OSError, ValueError) as exc:
            raise TapecastError(f"{meta_path}: not readable JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("kind") != KIND or \
                meta.get("format_version") != FORMAT_VERSION:
            raise TapecastError(f"{meta_path}: not a token corpus of format {FORMAT_VERSION}")
        arrays = {}
        present = [f for f in OPTIONAL_FIELDS if (src / f"{f}.npy").exists()]
        for field in (*FIELDS, *present):
            path = src / f"{field}.npy"
            try:
                arrays[field] = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise TapecastError(f"{path}: not a readable .npy array ({exc})") from None
        n = int(arrays["tokens"].shape[0])
        if any(a.ndim != 1 or a.shape[0] != n for a in arrays.values()):
            raise TapecastError(f"{src}: the token arrays differ in length")
        try:
            segments = [Segment(**s) for s in meta["segments"]]
            vocab = int(meta["vocab_size"])
        except (KeyError, TypeError) as exc:
            raise TapecastError(f"{meta_path}: field 'segments' or 'vocab_size' malformed "
                                f"({exc})") from None
        if any(s.offset < 0 or s.length < 1 or s.offset + s.length > n for s in segments):
            raise TapecastError(f"{meta_path}: a segment lies outside the {n:,} tokens")
        return cls(arrays, segments, vocab, meta.get("provenance") or {}, src)

    def select(self, split: str) -> list[Segment]:
        """The segments of ``split``."""
        return [s for s in self.segments if s.split == split]

    def windows(self, window: int, *, split: str | None = None, stride: int = 1
                ) -> CorpusWindows:
        """:class:`CorpusWindows` over the segments of ``split`` (all when None)."""
        chosen = list(self.segments) if split is None else self.select(split)
        if not chosen:
            raise TapecastError(f"token corpus {self.path or ''}: no segment of split "
                                f"{split!r} (splits: {sorted({s.split for s in self.segments})})")
        return CorpusWindows(self, chosen, window, stride=stride)

    def windows_of(self, segments: Sequence[Segment], window: int, *, stride: int = 1
                   ) -> CorpusWindows:
        """:class:`CorpusWindows` over the given ``segments`` (of this corpus), in order."""
        return CorpusWindows(self, segments, window, stride=stride)


class CorpusWindows:
    """Next-token windows of ``window`` + 1 tokens inside segments (a ``train.Dataset``).

    Parameters
    ----------
    corpus : TokenCorpus
    segments : sequence of Segment
    window : int
        L, the tokens each window predicts.
    stride : int
        Offset between consecutive windows of a segment (1 for training with random windows,
        L for non-overlapping validation windows); each segment also keeps its last window.
    """

    def __init__(self, corpus: TokenCorpus, segments: Sequence[Segment], window: int, *,
                 stride: int = 1) -> None:
        if window < 1 or stride < 1:
            raise TapecastError(f"corpus windows: window and stride must be >= 1, got {window} "
                                f"and {stride}")
        self.corpus, self.window, self.stride = corpus, window, stride
        starts = []
        for s in segments:
            last = max(s.length - window - 1, 0)  # a short segment: one padded window
            offsets = np.arange(0, last + 1, stride)
            if offsets[-1] != last:
                offsets = np.append(offsets, last)
            starts.append(np.stack([s.offset + offsets,
                                    np.full(offsets.size, s.offset + s.length)], axis=1))
        self._starts: NDArray[np.int64] = np.concatenate(starts).astype(np.int64)  # (W, 2)
        self._steps = np.arange(window + 1)

    def __len__(self) -> int:
        return int(self._starts.shape[0])

    @property
    def starts(self) -> NDArray[np.int64]:
        """Corpus offset of each window's first token, shape (n_windows,)."""
        return self._starts[:, 0]

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """``inputs``, ``targets``, ``tier``, ``flag``, ``dp_bin``: int64 (n, L)."""
        rows = self._starts[np.asarray(indices.cpu().numpy(), dtype=np.int64)]  # (n, 2)
        positions = rows[:, :1] + self._steps  # (n, L + 1)
        inside = positions < rows[:, 1:]  # (n, L + 1): False past the segment's end
        clipped = np.minimum(positions, rows[:, 1:] - 1)
        out = {}
        for field in FIELDS:
            values = np.asarray(self.corpus.arrays[field][clipped], dtype=np.int64)
            out[field] = np.where(inside, values, 0)
        targets = np.where(inside[:, 1:], out["tokens"][:, 1:], IGNORE_INDEX)
        batch = {"inputs": out["tokens"][:, :-1], "targets": targets,
                 **{f: out[f][:, :-1] for f in FIELDS[1:]}}
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


def _ints(values: ArrayLike | None, name: str, field: str) -> NDArray[np.int64]:
    if values is None:
        raise TapecastError(f"token corpus: {name} has no {field}")
    array = np.asarray(values)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TapecastError(f"token corpus: {name}: {field} must be a 1-D integer array, got "
                            f"{array.dtype} {array.shape}")
    return array.astype(np.int64)

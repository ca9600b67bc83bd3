"""The token corpus: memory-mapped shards and windows that never cross a segment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tapecast.core.errors import TapecastError
from tapecast.features.token_corpus import IGNORE_INDEX, TokenCorpus
from tapecast.models.tradefm import tradefm_loss
from tapecast.nets import TradeFM, TradeFMConfig


def _parts() -> list[dict[str, object]]:
    return [
        {"instrument": "ES", "session": "2023-12-25", "tokens": np.full(50, 7),
         "tier": np.full(50, 2), "flag": np.zeros(50, dtype=int), "dp_bin": np.arange(50) % 16},
        {"instrument": "AAPL", "session": "2012-06-21", "tokens": np.full(30, 9)},
        {"instrument": "AMZN", "session": "2012-06-21", "split": "val", "tokens": np.arange(5)},
    ]


def test_write_when_opened_back_is_memory_mapped_with_its_segments(tmp_path: Path) -> None:
    corpus = TokenCorpus.write(tmp_path / "c", _parts(), provenance={"source": "test"})
    assert len(corpus) == 85 and isinstance(corpus.arrays["tokens"], np.memmap)
    assert [(s.instrument, s.offset, s.length, s.split) for s in corpus.segments] == [
        ("ES", 0, 50, "train"), ("AAPL", 50, 30, "train"), ("AMZN", 80, 5, "val")]
    np.testing.assert_array_equal(corpus.arrays["tier"][:50], 2)
    np.testing.assert_array_equal(corpus.arrays["tier"][50:], 0)  # absent: zeros
    assert TokenCorpus.open(tmp_path / "c").provenance == {"source": "test"}


def test_windows_when_built_never_cross_a_segment(tmp_path: Path) -> None:
    corpus = TokenCorpus.write(tmp_path / "c", _parts())
    windows = corpus.windows(8, split="train")
    assert len(windows) == (50 - 9 + 1) + (30 - 9 + 1)
    batch = windows.batch(torch.arange(len(windows)))
    rows = torch.cat([batch["inputs"], batch["targets"][:, -1:]], dim=1)  # (n, L + 1)
    assert all(len(set(r.tolist())) == 1 for r in rows)  # one segment's id per window
    assert set(batch) == {"inputs", "targets", "tier", "flag", "dp_bin"}


def test_windows_when_segment_is_short_pads_targets_that_the_loss_skips(tmp_path: Path) -> None:
    corpus = TokenCorpus.write(tmp_path / "c", _parts())
    windows = corpus.windows(8, split="val")
    assert len(windows) == 1
    batch = windows.batch(torch.tensor([0]))
    assert batch["inputs"][0, :5].tolist() == [0, 1, 2, 3, 4]
    assert batch["targets"][0].tolist() == [1, 2, 3, 4] + [IGNORE_INDEX] * 4
    strided = corpus.windows(8, split="train", stride=8)
    assert len(strided) == 7 + 4  # offsets 0, 8, .., 40 and the last, 41; 0, 8, 16 and 21
    first_dp = strided.batch(torch.arange(7))["dp_bin"][:, 0]  # dp_bin = offset % 16 on ES
    assert first_dp.tolist() == [o % 16 for o in (0, 8, 16, 24, 32, 40, 41)]


def test_windows_when_trained_on_give_a_finite_token_weighted_loss(tmp_path: Path) -> None:
    corpus = TokenCorpus.write(tmp_path / "c", _parts())
    config = TradeFMConfig(token_dim=16, tier_dim=4, flag_dim=4, dp_dim=4, d_model=16,
                           n_layers=1, n_heads=2, n_kv_heads=1, d_ff=32, context=8)
    out = tradefm_loss(TradeFM(config), corpus.windows(8, split="val").batch(torch.tensor([0])))
    assert torch.isfinite(out.loss) and int(out.weight) == 4  # the 4 real targets only


def test_write_and_open_when_input_is_bad_say_which_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(TapecastError, match=r"segment 0 \(ES 1\): 1 token id\(s\) outside"):
        TokenCorpus.write(tmp_path / "c", [{"instrument": "ES", "session": "1",
                                            "tokens": np.array([1, 16_384])}])
    with pytest.raises(TapecastError, match="tier must be 2 non-negative ints"):
        TokenCorpus.write(tmp_path / "c", [{"instrument": "ES", "session": "1",
                                            "tokens": np.array([1, 2]), "tier": np.array([1])}])
    assert not (tmp_path / "c").exists()  # nothing half-written
    corpus = TokenCorpus.write(tmp_path / "c", _parts())
    with pytest.raises(TapecastError, match="no segment of split 'test'"):
        corpus.windows(8, split="test")
    meta = tmp_path / "c" / "corpus.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "format_version": 9}))
    with pytest.raises(TapecastError, match="not a token corpus of format 1"):
        TokenCorpus.open(tmp_path / "c")
    with pytest.raises(TapecastError, match="missing"):
        TokenCorpus.open(tmp_path / "nothing")

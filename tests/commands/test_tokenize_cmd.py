"""``tapecast tokenize`` and the tokenize workflow: sources → tokenizer.json + token corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.core.errors import TapecastError
from tapecast.features.token_corpus import TokenCorpus
from tapecast.features.tokenizer import Tokenizer
from tapecast.workflows.tokenize import split_positions
from tests.conftest import SHARED_DATA
from tests.sim.l3_feed import l3_csv

runner = CliRunner()
AAPL = SHARED_DATA / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
ES = SHARED_DATA / "nautilus" / "databento" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"


def test_split_positions_when_cut_in_time_drops_the_embargo_after_each_cut() -> None:
    assert split_positions(1000, (0.6, 0.2, 0.2), 50) == [
        ("train", 0, 600), ("val", 650, 800), ("test", 850, 1000)]
    assert split_positions(100, (1.0, 0.0, 0.0), 10) == [("train", 0, 100)]
    with pytest.raises(TapecastError, match="summing to 1"):
        split_positions(10, (0.5, 0.2, 0.2), 0)


@pytest.mark.skipif(not AAPL.exists(), reason=f"real data not present: {AAPL}")
def test_tokenize_when_given_lobster_writes_a_corpus_whose_tokenizer_saw_train_only(
        tmp_path: Path) -> None:
    out = tmp_path / "tok"
    result = runner.invoke(app, ["tokenize", str(AAPL), "--out", str(out), "--embargo", "100",
                                 "--tier", "AAPL=high"])
    assert result.exit_code == 0, result.output
    corpus = TokenCorpus.open(out / "corpus")
    tokenizer = Tokenizer.load(out / "tokenizer.json")
    splits = {s.split: s.length for s in corpus.segments}
    summary = json.loads((out / "summary.json").read_text())
    assert splits == summary["tokens"] and set(splits) == {"train", "val", "test"}
    assert tokenizer.provenance["rows"] == splits["train"]  # calibrated on train only
    assert splits["val"] == splits["test"] and splits["train"] > 2.9 * splits["val"]
    assert np.all(np.asarray(corpus.arrays["tier"]) == tokenizer.tier_id("high"))
    assert np.all(np.asarray(corpus.arrays["flag"]) == tokenizer.flag_id("market"))
    assert "tokens per split: train" in result.output


@pytest.mark.skipif(not ES.exists(), reason=f"real data not present: {ES}")
def test_tokenize_when_input_is_bad_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "tok"
    bad = runner.invoke(app, ["tokenize", str(ES), "--out", str(out), "--split", "60/20"])
    assert bad.exit_code == 2 and "expected TRAIN/VAL/TEST percentages" in bad.output
    tier = runner.invoke(app, ["tokenize", str(ES), "--out", str(out), "--tier", "ESH4=huge"])
    assert tier.exit_code == 2 and "liquidity tier" in tier.output
    assert not out.exists()


def test_tokenize_when_given_a_frozen_tokenizer_reuses_it_and_keeps_levels(
        tmp_path: Path) -> None:
    first = tmp_path / "first"
    result = runner.invoke(app, ["tokenize", str(l3_csv(tmp_path / "a.csv", 0)), "--out",
                                 str(first), "--embargo", "10", "--half-life", "5"])
    assert result.exit_code == 0, result.output
    frozen = Tokenizer.load(first / "tokenizer.json")
    assert frozen.provenance["event_features"]["half_life_s"] == 5.0
    second = tmp_path / "second"
    source = l3_csv(tmp_path / "b.csv", 1, symbol="ABC")
    result = runner.invoke(app, ["tokenize", str(source), "--out", str(second), "--split",
                                 "0/0/100", "--tokenizer", str(first / "tokenizer.json")])
    assert result.exit_code == 0, result.output
    assert Tokenizer.load(second / "tokenizer.json").equals(frozen)
    corpus = TokenCorpus.open(second / "corpus")
    assert {s.split for s in corpus.segments} == {"test"}
    level = np.asarray(corpus.arrays["level"])
    assert level.shape == (len(corpus),) and level.max() <= 5 and (level == 0).any()
    result = runner.invoke(app, ["tokenize", str(source), "--out", str(tmp_path / "third"),
                                 "--tokenizer", str(first / "tokenizer.json"),
                                 "--half-life", "10"])
    assert result.exit_code == 2 and "half_life_s=5.0" in result.output
    assert not (tmp_path / "third").exists()


@pytest.mark.parametrize(("rows", "message"), [
    (["1700000000000,XYZ,,trade,buy,100.00,3"],  # prints only: no add or cancel
     "field 'action': expected add, cancel or modify events"),
    (["1700000000000,XYZ,1,new,buy,99.90,3", "1700000000050,XYZ,2,new,buy,99.80,4"],
     "all 2 add/cancel events would be dropped"),  # no trade, never a two-sided book
])
def test_tokenize_when_source_gives_no_token_or_no_mid_exits_2_and_writes_nothing(
        tmp_path: Path, rows: list[str], message: str) -> None:
    source = tmp_path / "feed.csv"
    source.write_text("\n".join(["timestamp,symbol,order_id,action,side,price,size", *rows])
                      + "\n")
    result = runner.invoke(app, ["tokenize", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert message in output and output.count(str(source)) == 1
    assert not (tmp_path / "out").exists()


def test_tokenize_when_frozen_tokenizer_file_is_bad_exits_2_naming_file_and_field(
        tmp_path: Path) -> None:
    first = tmp_path / "first"
    source = l3_csv(tmp_path / "a.csv", 0)
    assert runner.invoke(app, ["tokenize", str(source), "--out", str(first)]).exit_code == 0
    data = json.loads((first / "tokenizer.json").read_text())
    data["fields"]["dt"]["edges"][3] = data["fields"]["dt"]["edges"][2]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = runner.invoke(app, ["tokenize", str(source), "--out", str(tmp_path / "out"),
                                 "--tokenizer", str(bad)])
    assert result.exit_code == 2
    assert str(bad) in result.output and "fields.dt.edges" in result.output
    assert not (tmp_path / "out").exists()


def test_split_positions_when_first_cut_is_empty_keeps_every_token_and_refuses_negative() -> None:
    assert split_positions(1000, (0.0, 0.0, 1.0), 256) == [("test", 0, 1000)]
    assert split_positions(1000, (0.5, 0.0, 0.5), 10) == [("train", 0, 500), ("test", 510, 1000)]
    with pytest.raises(TapecastError, match="embargo must be >= 0"):
        split_positions(10, (0.6, 0.2, 0.2), -5)


def test_tokenize_when_out_is_another_folder_refuses_and_keeps_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.safetensors").write_text("weights")
    result = runner.invoke(app, ["tokenize", str(l3_csv(tmp_path / "a.csv", 0)), "--out",
                                 str(out)])
    assert result.exit_code == 2 and "not a `tapecast tokenize` output" in result.output
    assert (out / "model.safetensors").read_text() == "weights"

"""``tapecast generate`` and ``tapecast simulate``: rollouts from a real start, written as
Databento MBO CSV that reads back like recorded data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.data.detect import read
from tapecast.features.events import event_features_from_tables
from tapecast.features.token_corpus import TokenCorpus
from tapecast.models.tradefm import TradeFMModel
from tapecast.models.tradefm_config import tradefm_model_config
from tapecast.nets.tradefm_config import TRADEFM_CONFIGS
from tapecast.workflows.tokenize import tokenize_sources
from tests.sim.l3_feed import l3_csv

runner = CliRunner()


@pytest.fixture(scope="module")
def feed_and_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gen")
    feed = l3_csv(root / "feed.csv", seed=0)
    tokenize_sources([feed], root / "tokens", embargo=8)
    net = replace(TRADEFM_CONFIGS["tiny"], token_dim=16, d_model=16, n_layers=1, n_heads=2,
                  n_kv_heads=1, d_ff=32, tier_dim=4, flag_dim=4, dp_dim=4, context=16)
    config = tradefm_model_config("tiny").replace(net=net).with_train(
        max_steps=2, eval_every=2, batch_size=2, warmup_steps=1, precision="fp32",
        num_threads=1)
    TradeFMModel(config).fit(TokenCorpus.open(root / "tokens" / "corpus"),
                             run_dir=root / "run", progress=False)
    return feed, root / "run"


@pytest.mark.parametrize("generator", ["hawkes", "zi", "unigram"])
def test_simulate_when_calibrated_before_the_start_writes_rollouts_that_read_back(
        feed_and_run: tuple[Path, Path], tmp_path: Path, generator: str) -> None:
    feed, run = feed_and_run
    out = tmp_path / "sim"
    args = ["simulate", "-g", generator, "-s", str(feed), "-o", str(out), "--upto", "2000",
            "-n", "300", "--rollouts", "2", "--seed", "3"]
    if generator == "unigram":
        args += ["--tokenizer", str(run / "tokenizer.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generator"] == generator and summary["rollouts"] == 2
    assert [c["events"] for c in summary["counters"]] == [300, 300]
    tables = read(out / "rollout-001.mbo.csv")
    tokens = event_features_from_tables(tables).tokens
    assert tokens.height > 100  # the simulated orders tokenize like real ones
    again = tmp_path / "again"
    assert runner.invoke(app, [*args[:6], str(again), *args[7:]]).exit_code == 0
    assert (again / "rollout-001.mbo.csv").read_bytes() == \
        (out / "rollout-001.mbo.csv").read_bytes()  # seeded


def test_generate_when_given_a_model_writes_closed_loop_rollouts(
        feed_and_run: tuple[Path, Path], tmp_path: Path) -> None:
    feed, run = feed_and_run
    out = tmp_path / "gen"
    result = runner.invoke(app, ["generate", str(run), "-s", str(feed), "-o", str(out),
                                 "--upto", "2000", "-n", "50", "--rollouts", "3", "--batch",
                                 "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generator"] == "tradefm" and summary["prompt_tokens"] == 16
    assert summary["batch"] == 2 and len(summary["files"]) == 3
    assert read(out / "rollout-002.mbo.csv").events is not None


def test_generate_and_simulate_when_input_is_bad_exit_2_and_write_nothing(
        feed_and_run: tuple[Path, Path], tmp_path: Path) -> None:
    feed, run = feed_and_run
    out = tmp_path / "bad"
    cases = [
        (["simulate", "-g", "garch", "-s", str(feed), "-o", str(out)], "--generator must be"),
        (["simulate", "-g", "unigram", "-s", str(feed), "-o", str(out)], "needs --tokenizer"),
        (["simulate", "-g", "zi", "-s", str(feed), "-o", str(out), "-n", "0"],
         "--events must be at least 1"),
        (["generate", str(run), "-s", str(feed), "-o", str(out), "--upto", "5"],
         "fewer than the prompt"),
        (["generate", str(run), "-s", str(feed), "-o", str(out), "--temperature", "0"],
         "--temperature must be > 0"),
        (["generate", str(tmp_path / "nope"), "-s", str(feed), "-o", str(out)],
         "no such model folder"),
        (["generate", str(run), "-o", str(out)], "TradeFM rollouts need --source"),
        (["generate", str(run), "-s", str(feed), "-o", str(out), "--given", "rsi=0.5"],
         "fixes features of a score model"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
        assert not out.exists()

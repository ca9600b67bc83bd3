"""The synthetic L3 market: deterministic, a clean book replay, sensible tokens, the Databento
CSV round trip, ``tapecast tokenize --synthetic``, and a tiny TradeFM trained and run on it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.core.config import ConfigError
from tapecast.data.book import replay_book
from tapecast.data.detect import read
from tapecast.data.tables import Tables
from tapecast.data.writers import write_mbo_csv
from tapecast.features.events import event_features
from tapecast.features.token_corpus import TokenCorpus
from tapecast.models.tradefm import TradeFMModel
from tapecast.models.tradefm_config import tradefm_model_config
from tapecast.nets.tradefm_config import TRADEFM_CONFIGS
from tapecast.sim import SyntheticL3Config, generate_l3_market
from tapecast.sim.session import start_from_tables
from tapecast.sim.tradefm_loop import generate
from tapecast.workflows.tokenize import tokenize_sources

SMALL = SyntheticL3Config(n_sessions=2, events_per_session=3_000)
CONTEXT = 16
ANOMALIES = ("unknown_order", "duplicate_add", "negative_size_clamped", "sideless_book_event",
             "crossed_book", "locked_book", "seed_absorbed")


@pytest.fixture(scope="module", params=["zi", "hawkes"])
def market(request: pytest.FixtureRequest) -> Tables:
    return generate_l3_market(SMALL.replace(generator=request.param), seed=1)


def test_generate_l3_market_when_seed_repeats_gives_equal_tables() -> None:
    config = SMALL.replace(events_per_session=500)
    a, b = generate_l3_market(config, seed=7), generate_l3_market(config, seed=7)
    c = generate_l3_market(config, seed=8)
    assert a.events is not None and b.events is not None and c.events is not None
    assert a.trades is not None and b.trades is not None
    assert a.events.equals(b.events) and a.trades.equals(b.trades)
    assert a.counters == b.counters
    assert not a.events.equals(c.events)


def test_generate_l3_market_when_replayed_has_no_book_anomaly(market: Tables) -> None:
    events = market.events
    assert events is not None and market.trades is not None
    result = replay_book(events, full_state=True)  # raises on an unknown or duplicate order
    assert all(result.counters.get(name, 0) == 0 for name in ANOMALIES), result.counters
    assert result.counters["clears"] == SMALL.n_sessions
    assert market.counters["events"] == SMALL.n_sessions * SMALL.events_per_session
    assert market.counters["cancels_missed"] <= 0.05 * market.counters["cancels"]
    assert market.trades.height == market.counters["trades"] > 0
    assert set(market.trades["side"].to_list()) == {-1, 1}
    per_session = events.group_by(pl.col("ts_event").dt.date()).len()
    assert per_session.height == SMALL.n_sessions


def test_generate_l3_market_when_tokenized_gives_sensible_shares(market: Tables) -> None:
    assert market.events is not None
    feats = event_features(market.events)
    tokens = feats.tokens
    assert tokens.height > 0.9 * market.counters["adds"] + market.counters["cancels"] - 100
    share_add = float((tokens["action"] == "add").mean())  # type: ignore[arg-type]
    assert 0.4 < share_add < 0.65  # balanced: the book neither empties nor piles up
    summary = feats.summary()
    assert summary.height == SMALL.n_sessions
    assert float(summary["book_mid_share"].max()) < 0.05  # type: ignore[arg-type]
    assert float(tokens["delta_p"].abs().median()) < 20 * 0.01 / 100  # type: ignore[arg-type]
    assert float(tokens["dt"].mean()) < 0.1  # type: ignore[arg-type]  # liquid: > 10 events/s


def test_generate_l3_market_when_written_as_mbo_csv_reads_back_equal(
        market: Tables, tmp_path: Path) -> None:
    assert market.events is not None and market.trades is not None
    path = tmp_path / "syn.mbo.csv"
    write_mbo_csv(market.events, path)
    back = read(path)
    assert back.events is not None and back.events.equals(market.events)
    assert back.trades is not None and back.trades.equals(market.trades)


def test_synthetic_l3_config_when_values_are_bad_raises_one_line() -> None:
    with pytest.raises(ConfigError, match="hawkes_self"):
        SyntheticL3Config(generator="hawkes", hawkes_self=30.0)
    with pytest.raises(ConfigError, match="hawkes_mu"):
        SyntheticL3Config(hawkes_mu=(1.0, 2.0))
    with pytest.raises(ConfigError, match="start_price"):
        SyntheticL3Config(start_price=0.05)


def test_tokenize_cmd_when_synthetic_writes_a_corpus(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "tokens"
    result = runner.invoke(app, ["tokenize", "--synthetic", "--synthetic-sessions", "1",
                                 "--seed", "3", "--out", str(out), "--embargo", "16"])
    assert result.exit_code == 0, result.output
    assert (out / "tokenizer.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sources"][0]["path"] == "synthetic-l3:SYN:seed=3"
    assert len(TokenCorpus.open(out / "corpus")) == sum(summary["tokens"].values()) > 0
    both = runner.invoke(app, ["tokenize", str(tmp_path), "--synthetic", "--out",
                               str(tmp_path / "x")])
    neither = runner.invoke(app, ["tokenize", "--out", str(tmp_path / "y")])
    assert both.exit_code == 2 and "not both" in both.output
    assert neither.exit_code == 2 and "--synthetic" in neither.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_tradefm_when_trained_on_the_synthetic_market_fits_and_generates(tmp_path: Path) -> None:
    tables = generate_l3_market(SMALL.replace(n_sessions=1), seed=2)
    result = tokenize_sources([tables], tmp_path / "tokens", embargo=8)
    assert result.summary["sources"][0]["path"] == tables.source
    net = replace(TRADEFM_CONFIGS["tiny"], token_dim=16, d_model=16, n_layers=1, n_heads=2,
                  n_kv_heads=1, d_ff=32, tier_dim=4, flag_dim=4, dp_dim=4, context=CONTEXT)
    config = tradefm_model_config("tiny").replace(net=net).with_train(
        max_steps=2, eval_every=2, batch_size=2, warmup_steps=1, precision="fp32",
        num_threads=1)
    model = TradeFMModel(config).fit(result.corpus, progress=False)
    start = start_from_tables(tables, model.tokenizer, context=CONTEXT, upto=1_000)
    out = generate(model, start, 40, batch=1, seed=0)
    assert out.tokens.shape == (1, 40)
    assert out.counters[0]["events"] == 40

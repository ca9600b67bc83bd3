"""Closed-loop TradeFM generation and the simulated market: determinism, the one mid rule, the
feed it writes, and bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.data.detect import read
from tapecast.data.writers import write_mbo_csv
from tapecast.features.events import event_features
from tapecast.features.token_corpus import TokenCorpus
from tapecast.models.tradefm import TradeFMModel
from tapecast.models.tradefm_config import tradefm_model_config
from tapecast.nets.tradefm_config import TRADEFM_CONFIGS
from tapecast.sim.session import RolloutStart, start_from_tables
from tapecast.sim.tradefm_loop import generate
from tapecast.workflows.tokenize import tokenize_sources
from tests.sim.l3_feed import l3_csv

CONTEXT = 16
UPTO = 2000


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TradeFMModel, RolloutStart]:
    root = tmp_path_factory.mktemp("loop")
    feed = l3_csv(root / "feed.csv", seed=0)
    tokenize_sources([feed], root / "tokens", embargo=8)
    net = replace(TRADEFM_CONFIGS["tiny"], token_dim=16, d_model=16, n_layers=1, n_heads=2,
                  n_kv_heads=1, d_ff=32, tier_dim=4, flag_dim=4, dp_dim=4, context=CONTEXT)
    config = tradefm_model_config("tiny").replace(net=net).with_train(
        max_steps=2, eval_every=2, batch_size=2, warmup_steps=1, precision="fp32",
        num_threads=1)
    model = TradeFMModel(config).fit(TokenCorpus.open(root / "tokens" / "corpus"),
                                     progress=False)
    start = start_from_tables(read(feed), model.tokenizer, context=CONTEXT,  # type: ignore[arg-type]
                              upto=UPTO)
    return feed, model, start


def test_generate_when_seed_repeats_gives_same_tokens_and_books(
        setup: tuple[Path, TradeFMModel, RolloutStart]) -> None:
    _, model, start = setup
    a = generate(model, start, 60, batch=3, seed=4)
    b = generate(model, start, 60, batch=3, seed=4)
    c = generate(model, start, 60, batch=3, seed=5)
    assert a.tokens.shape == (3, 60)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.book_hash, b.book_hash)
    assert not np.array_equal(a.tokens, c.tokens)
    assert not np.array_equal(a.tokens[0], a.tokens[1])  # independent rollouts
    counts = a.counters[0]
    assert counts["events"] == 60 == counts["adds"] + counts["cancels"]
    assert 0.0 <= a.cancel_miss_share <= 1.0
    assert (np.diff(a.t_ns, axis=1) >= 0).all() and (a.t_ns[:, 0] >= start.t_ns).all()


def test_generate_when_feed_is_tokenized_again_gives_the_loop_mid_and_drift(
        setup: tuple[Path, TradeFMModel, RolloutStart], tmp_path: Path) -> None:
    feed, model, start = setup
    out = generate(model, start, 120, batch=1, seed=2)
    market = out.markets[0]
    sim = market.events()
    path = tmp_path / "sim.mbo.csv"
    write_mbo_csv(sim, path)  # the simulated session, as a venue file
    back = read(path).events
    assert back is not None and back.height == sim.height
    real = read(feed).events
    assert real is not None
    prefix = real.head(UPTO)
    both = pl.concat([prefix.with_columns(pl.col("ts_recv").fill_null(pl.col("ts_event"))),
                      back])
    tokens = event_features(both).tokens
    n_prefix = event_features(prefix).tokens.height
    again = tokens.slice(n_prefix)  # the generated part, tokenized as real data
    loop_mid = out.p_mid[0][out.visible[0]]
    loop_t = out.t_ns[0][out.visible[0]]
    got_t = again["ts"].dt.epoch("ns").to_numpy()
    # every re-tokenized event is one of the loop's visible orders, in order, same mid
    j = 0
    for t, p_mid in zip(got_t, again["p_mid"].to_numpy(), strict=True):
        while j < loop_t.size and (loop_t[j] != t or abs(loop_mid[j] - p_mid) > 1e-9):
            j += 1
        assert j < loop_t.size, (t, p_mid)
        j += 1
    assert again.height >= 0.9 * loop_mid.size  # few lost to the outcome-cancel rule


def test_start_and_generate_when_input_is_bad_raise_one_line(
        setup: tuple[Path, TradeFMModel, RolloutStart], tmp_path: Path) -> None:
    feed, model, start = setup
    tables = read(feed)
    with pytest.raises(TapecastError, match="at least 1 event"):
        generate(model, start, 0)
    with pytest.raises(TapecastError, match="fewer than the prompt"):
        start_from_tables(tables, model.tokenizer, context=CONTEXT, upto=5)  # type: ignore[arg-type]
    with pytest.raises(TapecastError, match="one-sided or empty"):
        one_side = tables.events.filter(pl.col("side") != "ask")  # type: ignore[union-attr]
        start_from_tables(replace(tables, events=one_side), model.tokenizer,  # type: ignore[arg-type]
                          context=CONTEXT)
    with pytest.raises(TapecastError, match="more than the model's context"):
        long = replace(start, tokens=np.zeros(CONTEXT + 1, dtype=np.int64))
        generate(model, long, 5)
    other = tokenize_sources([l3_csv(tmp_path / "b.csv", seed=9)], tmp_path / "t").tokenizer
    with pytest.raises(TapecastError, match="another tokenizer"):
        generate(model, start, 5, start_tokenizer=other)


def test_start_when_advance_allowed_steps_on_to_a_two_sided_book(
        setup: tuple[Path, TradeFMModel, RolloutStart]) -> None:
    feed, _, _ = setup
    tables = read(feed)
    with pytest.raises(TapecastError, match="one-sided or empty"):
        start_from_tables(tables, upto=1)
    moved = start_from_tables(tables, upto=1, advance=50)
    first_ok = next(n for n in range(1, 60) if _two_sided(tables, n))
    assert moved.events_fed == first_ok > 1


def _two_sided(tables: object, n: int) -> bool:
    try:
        start_from_tables(tables, upto=n)  # type: ignore[arg-type]
    except TapecastError:
        return False
    return True

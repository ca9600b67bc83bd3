"""TradeFMModel (fit, token_nll, save/load), the perplexity scores, and their CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from typer.testing import CliRunner

from tapecast.cli import app
from tapecast.core.errors import TapecastError
from tapecast.features.token_corpus import TokenCorpus
from tapecast.features.tokenizer import Tokenizer
from tapecast.models.tradefm import KIND, TradeFMModel
from tapecast.models.tradefm_config import TradeFMModelConfig, tradefm_model_config
from tapecast.models.tradefm_eval import score_rows, score_tokens
from tapecast.nets.tradefm_config import TRADEFM_CONFIGS

runner = CliRunner()


def small_config(steps: int = 6, context: int = 16) -> TradeFMModelConfig:
    net = replace(TRADEFM_CONFIGS["tiny"], token_dim=16, d_model=16, n_layers=1, n_heads=2,
                  n_kv_heads=1, d_ff=32, tier_dim=4, flag_dim=4, dp_dim=4, context=context)
    return tradefm_model_config("tiny").replace(net=net, name="test").with_train(
        max_steps=steps, eval_every=3, batch_size=4, warmup_steps=1, precision="fp32",
        num_threads=1, log_every=1)


def token_folder(root: Path, *, seed: int = 0,
                 instruments: tuple[tuple[str, str], ...] = (("AAA", "high"), ("BBB", "high"),
                                                             ("CCC", "low"))) -> Path:
    """A ``tapecast tokenize``-shaped folder: tokenizer.json beside corpus/, segments per
    instrument and split; each stream repeats a short motif with noise (learnable)."""
    rng = np.random.default_rng(seed)
    n = 2000
    tokenizer = Tokenizer.calibrate(
        {"dp": rng.normal(0, 1e-4, n), "v": np.log1p(rng.integers(1, 100, n)),
         "dt": rng.exponential(0.01, n) * (rng.random(n) > 0.14),
         "dp_open": rng.normal(0, 1e-3, n)}, provenance={"seed": seed})
    root.mkdir(parents=True, exist_ok=True)
    tokenizer.save(root / "tokenizer.json")
    parts = []
    for instrument, tier in instruments:
        motif = rng.integers(0, tokenizer.vocab_size, 7)
        for split, length in (("train", 300), ("val", 60), ("test", 50)):
            tokens = np.resize(motif, length)
            noise = rng.random(length) < 0.2
            tokens[noise] = rng.integers(0, tokenizer.vocab_size, int(noise.sum()))
            parts.append({"instrument": instrument, "session": "2024-01-02", "split": split,
                          "tokens": tokens, "tier": np.full(length, tokenizer.tier_id(tier)),
                          "flag": np.zeros(length, dtype=np.int64),
                          "dp_bin": rng.integers(0, 16, length)})
    TokenCorpus.write(root / "corpus", parts, vocab_size=tokenizer.vocab_size,
                      provenance={"tokenizer": "../tokenizer.json"})
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, TradeFMModel]:
    root = tmp_path_factory.mktemp("tradefm")
    folder = token_folder(root / "tokens")
    corpus = TokenCorpus.open(folder / "corpus")
    model = TradeFMModel(small_config()).fit(corpus, run_dir=root / "run", progress=False)
    return folder, root / "run", model


def test_fit_when_done_saves_a_folder_that_loads_to_the_same_scores(
        trained: tuple[Path, Path, TradeFMModel]) -> None:
    folder, run, model = trained
    meta = json.loads((run / "config.json").read_text())
    assert meta["kind"] == KIND and meta["state"] == "trained"
    assert meta["training"]["steps"] == 6 and meta["training"]["train_tokens"] == 900
    assert Tokenizer.load(run / "tokenizer.json").equals(model.tokenizer)  # type: ignore[arg-type]
    corpus = TokenCorpus.open(folder / "corpus")
    segment = corpus.select("test")[0]
    loaded = TradeFMModel.load(run)
    np.testing.assert_allclose(loaded.token_nll(corpus, segment),
                               model.token_nll(corpus, segment), rtol=1e-6, equal_nan=True)


def test_token_nll_when_segment_longer_than_context_scores_each_token_by_the_stated_window(
        trained: tuple[Path, Path, TradeFMModel]) -> None:
    folder, _, model = trained
    corpus = TokenCorpus.open(folder / "corpus")
    segment = corpus.select("train")[0]  # 300 tokens, context 16, stride 8
    got = model.token_nll(corpus, segment, batch_size=3)
    assert np.isnan(got[0]) and np.isfinite(got[1:]).all()
    L, stride = model.config.net.context, model.config.stride
    starts = corpus.windows_of([segment], L, stride=stride).starts - segment.offset
    x = torch.as_tensor(np.asarray(corpus.arrays["tokens"][segment.offset:][:segment.length],
                                   dtype=np.int64))
    ctx = {f: torch.as_tensor(np.asarray(corpus.arrays[f][segment.offset:][:segment.length],
                                         dtype=np.int64)) for f in ("tier", "flag", "dp_bin")}
    assert model.net is not None
    for t in range(1, segment.length):  # brute force: the first window holding t past its
        s = next(int(s) for s in starts  # first L − stride positions (the first window: all)
                 if s < t <= s + L and (s == 0 or t >= s + 1 + L - stride))
        with torch.no_grad():
            logits = model.net(x[None, s:s + L], *(ctx[f][None, s:s + L]
                                                    for f in ("tier", "flag", "dp_bin")))
        want = F.cross_entropy(logits[0, t - s - 1][None], x[t][None]).item()
        assert got[t] == pytest.approx(want, rel=1e-5, abs=1e-5), t


def test_score_tokens_when_two_instruments_share_a_tier_pools_them(
        trained: tuple[Path, Path, TradeFMModel]) -> None:
    folder, _, model = trained
    corpus = TokenCorpus.open(folder / "corpus")
    scores = score_tokens(model, corpus, "test")
    assert [s.group for s in scores] == ["AAA", "BBB", "CCC", "tier=high"]
    for s in scores:
        assert set(s.nll) == {"TradeFM", "unigram", "factorized", "bigram"}
        assert {v.size for v in s.nll.values()} == {s.n_tokens}
    assert scores[3].n_tokens == scores[0].n_tokens + scores[1].n_tokens == 98
    rows = score_rows(scores)
    bigram = next(r for r in rows if r["group"] == "AAA" and r["model"] == "bigram")
    assert bigram["low"] <= bigram["diff"] <= bigram["high"]
    assert bigram["note"].startswith("add-k")
    with pytest.raises(TapecastError, match="no 'level' field"):
        score_tokens(model, corpus, "test", max_level=5)


def test_check_corpus_when_tokenized_by_another_tokenizer_refuses(
        trained: tuple[Path, Path, TradeFMModel], tmp_path: Path) -> None:
    _, _, model = trained
    other = TokenCorpus.open(token_folder(tmp_path / "other", seed=1) / "corpus")
    with pytest.raises(TapecastError, match="--tokenizer"):
        model.check_corpus(other)


def test_fit_when_run_folder_holds_another_network_refuses_to_resume(
        trained: tuple[Path, Path, TradeFMModel]) -> None:
    folder, run, _ = trained
    corpus = TokenCorpus.open(folder / "corpus")
    wider = small_config().replace(net=replace(small_config().net, d_model=32, token_dim=32))
    with pytest.raises(TapecastError, match="another model or corpus"):
        TradeFMModel(wider).fit(corpus, run_dir=run, progress=False)


def test_cli_train_then_perplexity_when_given_a_token_folder(tmp_path: Path) -> None:
    folder = token_folder(tmp_path / "tokens")
    config = tmp_path / "small.json"
    config.write_text(json.dumps(small_config(steps=3).to_dict()))
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "-F", str(folder), "-o", str(run), "--preset",
                                 str(config)])
    assert result.exit_code == 0, result.output
    assert "TradeFM" in result.output and (run / "run.json").exists()
    out = tmp_path / "scores.json"
    result = runner.invoke(app, ["perplexity", str(run), "-T", str(folder), "--split", "val",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert {r["model"] for r in rows} == {"TradeFM", "unigram", "factorized", "bigram"}
    assert {r["group"] for r in rows} == {"AAA", "BBB", "CCC", "tier=high"}
    other = token_folder(tmp_path / "other", seed=3)
    for args, message in (
            (["perplexity", str(run), "-T", str(other)], "another tokenizer"),
            (["perplexity", str(run), "-T", str(folder), "--split", "train"], "val or test"),
            (["perplexity", str(run), "-T", str(folder), "--top-levels", "5"], "level"),
            (["forecast", str(run), "-F", str(folder), "-o", str(tmp_path / "f.npz")],
             "tapecast perplexity"),
            (["baseline", "climatology", "-F", str(folder), "-o", str(tmp_path / "b.npz")],
             "tapecast perplexity"),
            (["train", "-F", str(folder), "-o", str(tmp_path / "r2"), "--model",
              "price-diffusion"], "tapecast features --kind price")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
    assert not out.with_name("f.npz").exists()


def test_cli_perplexity_when_corpus_holds_ids_outside_the_vocabulary_exits_2(
        trained: tuple[Path, Path, TradeFMModel], tmp_path: Path) -> None:
    _, run, _ = trained
    folder = token_folder(tmp_path / "tokens")
    path = folder / "corpus" / "tokens.npy"
    ids = np.load(path)
    ids[5] = 20_000  # beyond 16,384
    np.save(path, ids)
    result = runner.invoke(app, ["perplexity", str(run), "-T", str(folder), "--no-baselines"])
    assert result.exit_code == 2
    assert "field tokens holds values outside [0, 16384)" in " ".join(result.output.split())


def test_cli_train_when_device_is_unusable_exits_2_and_writes_no_run_folder(
        tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    folder = token_folder(tmp_path / "tokens")
    result = runner.invoke(app, ["train", "-F", str(folder), "-o", str(tmp_path / "run"),
                                 "--device", "cuda", "--max-steps", "2"])
    assert result.exit_code == 2 and "no CUDA device" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


def test_fit_when_run_folder_holds_another_corpus_with_the_same_tokenizer_refuses(
        trained: tuple[Path, Path, TradeFMModel], tmp_path: Path) -> None:
    folder, run, _ = trained
    other = token_folder(tmp_path / "other", instruments=(("AAA", "high"),))
    (other / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    with pytest.raises(TapecastError, match="training corpus"):
        TradeFMModel(small_config()).fit(TokenCorpus.open(other / "corpus"), run_dir=run,
                                         progress=False)

"""Tests of session splits, embargo and walk-forward folds (features/splits.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from tests.features.windows_fixture import make_windows, session_dates

from tapecast.core.errors import TapecastError
from tapecast.features.splits import SplitSpec, assign_splits, session_labels, walk_forward_folds

D = session_dates(6)  # 2024-01-02 .. 2024-01-09 (weekdays)


def _counts(windows: pl.DataFrame, labels: pl.Series) -> dict[tuple[str, dt.date, str], int]:
    grouped = windows.with_columns(labels).group_by("instrument", "session_date", "split").len()
    return {(r[0], r[1], r[2]): r[3] for r in grouped.iter_rows()}


def test_assign_splits_when_default_spec_then_last_test_previous_val_embargo_before_each() -> None:
    windows = make_windows((20, 20, 20, 20), instruments=("AAA", "BBB"))
    labels = assign_splits(windows, SplitSpec(context=5, horizon=3))
    counts = _counts(windows, labels)
    for inst in ("AAA", "BBB"):  # train D0, D1; val D2; test D3
        assert counts[(inst, D[0], "train")] == 20
        assert counts[(inst, D[1], "train")] == 17 and counts[(inst, D[1], "embargo")] == 3
        assert counts[(inst, D[2], "val")] == 17 and counts[(inst, D[2], "embargo")] == 3
        assert counts[(inst, D[3], "test")] == 20
    assert len(counts) == 2 * 6


def test_assign_splits_when_four_sessions_then_exact_labels_in_window_order() -> None:
    windows = make_windows((6, 6, 6, 6))
    labels = assign_splits(windows, SplitSpec(context=2, horizon=2, embargo=4)).to_list()
    assert labels == (["train"] * 8 + ["embargo"] * 4
                      + ["val"] * 2 + ["embargo"] * 4 + ["test"] * 6)


def test_assign_splits_when_rows_shuffled_then_labels_follow_rows() -> None:
    windows = make_windows((10, 10, 10), instruments=("AAA", "BBB"))
    spec = SplitSpec(context=2, horizon=2)
    expected = windows.with_columns(assign_splits(windows, spec))
    shuffled = windows.sample(fraction=1.0, shuffle=True, seed=7)
    got = shuffled.with_columns(assign_splits(shuffled, spec))
    assert got.sort("instrument", "window").equals(expected)


def test_assign_splits_when_instrument_skips_val_session_then_train_embargoed_before_test() -> None:
    windows = make_windows((10, 10, 10), instruments=("AAA", "BBB"),
                           per_instrument={"BBB": (10, 0, 10)})
    labels = windows.with_columns(assign_splits(windows, SplitSpec(context=2, horizon=3)))
    bbb = labels.filter(pl.col("instrument") == "BBB")["split"].to_list()
    assert bbb == ["train"] * 7 + ["embargo"] * 3 + ["test"] * 10


def test_assign_splits_when_dates_spec_then_ranges_and_unused() -> None:
    windows = make_windows((5, 5, 5, 5, 5, 5))
    spec = SplitSpec(kind="dates", train_dates=(D[0], D[1]), val_dates=(D[3], D[3]),
                     test_dates=(D[5], D[5]), context=2, horizon=2)
    per_session = windows.with_columns(assign_splits(windows, spec)) \
        .group_by("session_date", maintain_order=True).agg(pl.col("split"))
    rows = dict(per_session.iter_rows())
    assert rows[D[0]] == ["train"] * 5
    assert rows[D[1]] == ["train"] * 5  # an unused session D2 (5 windows) is a gap >= embargo
    assert rows[D[2]] == ["unused"] * 5
    assert rows[D[3]] == ["val"] * 5
    assert rows[D[5]] == ["test"] * 5


def test_assign_splits_when_unused_gap_shorter_than_embargo_then_partial_embargo() -> None:
    windows = make_windows((5, 2, 5))
    spec = SplitSpec(kind="dates", train_dates=(D[0], D[0]), test_dates=(D[2], D[2]),
                     context=2, horizon=2, embargo=4)
    labels = assign_splits(windows, spec).to_list()
    assert labels == ["train"] * 3 + ["embargo"] * 2 + ["unused"] * 2 + ["test"] * 5


def test_session_labels_when_walk_forward_then_train_before_first_fold_rest_test() -> None:
    windows = make_windows((5,) * 6)
    spec = SplitSpec(kind="walk-forward", min_train_sessions=3, val_sessions=1, horizon=2,
                     context=2)
    assert list(session_labels(windows, spec).values()) == \
        ["train", "train", "val", "test", "test", "test"]
    assert list(session_labels(windows, spec, fold=1).values()) == \
        ["train", "train", "train", "val", "test", "unused"]


def test_walk_forward_folds_when_six_sessions_then_each_later_session_tested_once() -> None:
    windows = make_windows((5,) * 6, instruments=("AAA", "BBB"))
    spec = SplitSpec(kind="walk-forward", min_train_sessions=2, val_sessions=0, horizon=2,
                     context=2)
    folds = walk_forward_folds(windows, spec)
    assert [f.test_session for f in folds] == D[2:]
    for f in folds:
        assert f.train_sessions == tuple(D[:f.index + 2]) and f.val_sessions == ()
        assert max(f.train_sessions) < f.test_session and f.embargo == 2
    fold_labels = assign_splits(windows, spec, fold=1)
    test_dates = windows.filter(fold_labels == "test")["session_date"].unique().to_list()
    assert test_dates == [D[3]]
    assert (fold_labels == "embargo").sum() == 2 * 2  # end of D2, both instruments


def test_walk_forward_folds_when_two_test_sessions_per_fold_then_last_fold_shorter() -> None:
    windows = make_windows((5,) * 6)
    spec = SplitSpec(kind="walk-forward", min_train_sessions=1, val_sessions=0, test_sessions=2,
                     horizon=1, context=1)
    assert [f.test_sessions for f in walk_forward_folds(windows, spec)] == \
        [(D[1], D[2]), (D[3], D[4]), (D[5],)]


def test_assign_splits_when_too_few_sessions_then_error_says_have_and_need() -> None:
    windows = make_windows((50,))
    with pytest.raises(TapecastError, match=r"needs at least 3 sessions .* hold 1 session "
                                            r"\(2024-01-02\)"):
        assign_splits(windows, SplitSpec())
    with pytest.raises(TapecastError, match=r"needs at least 4 sessions .* hold 1 session"):
        walk_forward_folds(windows, SplitSpec(kind="walk-forward", min_train_sessions=3))


def test_assign_splits_when_val_already_zero_then_hint_does_not_suggest_it() -> None:
    windows = make_windows((50,))
    with pytest.raises(TapecastError, match="--val-sessions 0"):
        assign_splits(windows, SplitSpec())
    with pytest.raises(TapecastError, match="training and a test session") as info:
        assign_splits(windows, SplitSpec(val_sessions=0))
    assert "--val-sessions 0" not in str(info.value)


def test_split_spec_when_embargo_shorter_than_horizon_then_error() -> None:
    with pytest.raises(TapecastError, match="shorter than the horizon"):
        SplitSpec(horizon=10, embargo=9)
    assert SplitSpec(horizon=7).embargo == 7


def test_split_spec_when_dates_overlap_or_missing_then_error() -> None:
    with pytest.raises(TapecastError, match="overlap"):
        SplitSpec(kind="dates", train_dates=(D[0], D[2]), test_dates=(D[2], D[3]))
    with pytest.raises(TapecastError, match="needs train_dates and test_dates"):
        SplitSpec(kind="dates", train_dates=(D[0], D[2]))


def test_assign_splits_when_date_range_holds_no_session_then_error() -> None:
    windows = make_windows((5, 5))
    spec = SplitSpec(kind="dates", train_dates=(D[0], D[0]),
                     test_dates=(dt.date(2030, 1, 1), dt.date(2030, 2, 1)))
    with pytest.raises(TapecastError, match=r"test dates 2030-01-01\.\.2030-02-01 hold no session"):
        assign_splits(windows, spec)


def test_split_spec_when_round_trip_through_dict_then_equal() -> None:
    spec = SplitSpec(kind="dates", train_dates=(D[0], D[2]), val_dates=(D[3], D[3]),
                     test_dates=(D[4], D[5]), context=20, horizon=5, embargo=8)
    d = spec.to_dict()
    assert d["test_dates"] == ["2024-01-08", "2024-01-09"] and d["embargo"] == 8
    assert SplitSpec.from_dict(d) == spec
    with pytest.raises(TapecastError, match=r"SplitSpec: unknown key 'purge'"):
        SplitSpec.from_dict({**d, "purge": 3})


def test_assign_splits_when_random_session_lengths_then_embargo_precedes_every_change() -> None:
    rng = np.random.default_rng(4)
    counts = tuple(int(c) for c in rng.integers(0, 12, size=8))
    windows = make_windows(counts, instruments=("AAA", "BBB"), seed=4)
    spec = SplitSpec(val_sessions=2, test_sessions=2, context=2, horizon=3)
    labels = windows.with_columns(assign_splits(windows, spec))
    for _, part in labels.group_by("instrument"):
        split = part["split"].to_list()
        for i, lab in enumerate(split):
            ahead = {x for x in split[i + 1:i + 4]} - {"embargo", "unused", lab}
            if lab in ("train", "val", "test"):
                assert not ahead, (i, split)

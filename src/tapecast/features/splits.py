"""Time splits of order-flow windows by session, with an embargo between splits.

A :class:`SplitSpec` labels every window ``train``, ``val``, ``test``, ``embargo`` or ``unused``
from its ``session_date`` (sessions are the distinct session dates over all instruments, so one
date has one label everywhere). Three kinds:

``last`` (default)
    The last ``test_sessions`` sessions are test, the ``val_sessions`` before them validation, the
    rest train.
``dates``
    Explicit inclusive date ranges for train, (optionally) validation and test; sessions outside
    every range are ``unused``.
``walk-forward``
    Folds over sessions: fold ``k`` trains on every session before its test sessions (the last
    ``val_sessions`` of them as validation) and tests on the next ``test_sessions`` sessions,
    starting after ``min_train_sessions``; later sessions are ``unused`` in that fold.

Embargo (purging, López de Prado 2018, *Advances in Financial Machine Learning*, ch. 7): within
each instrument, a window that lies less than ``embargo + 1`` windows before a window of a
*different* split is relabelled ``embargo``, i.e. the last ``embargo`` windows of a segment before a
later split are never used. ``embargo`` defaults to the horizon and may not be shorter. Together
with datasets that require every window of a sample to carry the requested label, no sample's
context or horizon touches another split.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError

SplitKind = Literal["last", "dates", "walk-forward"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
LABELS: tuple[str, ...] = (*SPLITS, "embargo", "unused")
DateRange = tuple[dt.date, dt.date]


@dataclass(frozen=True)
class SplitSpec(ConfigBase):
    """How windows are split into train / validation / test (see the module docstring).

    Parameters
    ----------
    kind : {"last", "dates", "walk-forward"}
    val_sessions : int
        Validation sessions (``last``: before the test; ``walk-forward``: the end of each fold's
        training sessions). 0 means no validation split.
    test_sessions : int
        Test sessions (``last``: at the end; ``walk-forward``: per fold).
    train_dates, val_dates, test_dates : (date, date) or None
        Inclusive session-date ranges (``dates`` only; ``val_dates`` optional).
    min_train_sessions : int
        Sessions before the first walk-forward test fold (validation included).
    context, horizon : int
        Sample lengths in windows (model card: 100 and 10).
    embargo : int or None
        Windows dropped at the end of a split segment before a later split; None means
        ``horizon``; must be at least ``horizon``.
    """

    kind: SplitKind = "last"
    val_sessions: int = 1
    test_sessions: int = 1
    train_dates: DateRange | None = None
    val_dates: DateRange | None = None
    test_dates: DateRange | None = None
    min_train_sessions: int = 3
    context: int = 100
    horizon: int = 10
    embargo: int | None = None

    def validate(self) -> None:
        """Counts in range, an embargo of at least the horizon, date ranges that fit the kind."""
        for name in ("context", "horizon", "test_sessions"):
            self.check_range(name, low=1)
        for name in ("val_sessions", "min_train_sessions"):
            self.check_range(name, low=0)
        if self.embargo is None:
            object.__setattr__(self, "embargo", self.horizon)
        elif self.embargo < self.horizon:
            self.fail("embargo", f"an embargo of {self.embargo} windows is shorter than the "
                                 f"horizon ({self.horizon}); it must be at least the horizon")
        for name in ("train_dates", "val_dates", "test_dates"):
            value = getattr(self, name)
            if value is not None and value[0] > value[1]:
                self.fail(name, f"runs backwards: {value[0]} is after {value[1]}")
        if self.kind == "dates":
            self._check_dates()
        if self.kind == "walk-forward" and self.min_train_sessions <= self.val_sessions:
            self.fail("min_train_sessions", f"must exceed val_sessions ({self.val_sessions}) "
                      f"to leave training sessions, got {self.min_train_sessions}")

    def _check_dates(self) -> None:
        if self.train_dates is None or self.test_dates is None:
            self.fail(None, "a 'dates' split needs train_dates and test_dates")
        named = [(n, r) for n, r in (("train", self.train_dates), ("val", self.val_dates),
                                     ("test", self.test_dates)) if r is not None]
        for i, (a, ra) in enumerate(named):
            for b, rb in named[i + 1:]:
                if ra[0] <= rb[1] and rb[0] <= ra[1]:
                    self.fail(f"{a}_dates", f"{a} dates {ra[0]}..{ra[1]} overlap {b} dates "
                                            f"{rb[0]}..{rb[1]}")

    @property
    def embargo_windows(self) -> int:
        """The embargo in windows (``horizon`` when not given)."""
        return self.horizon if self.embargo is None else self.embargo

    @property
    def splits(self) -> tuple[str, ...]:
        """The split names this spec produces (``val`` only when it has validation)."""
        has_val = self.val_dates is not None if self.kind == "dates" else self.val_sessions > 0
        return ("train", "val", "test") if has_val else ("train", "test")


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: train (and validation) sessions, then its test sessions.

    Attributes
    ----------
    index : int
        0-based fold number.
    train_sessions, val_sessions, test_sessions : tuple of date
        Session dates of each part; every training and validation session precedes the tests.
    embargo : int
        Windows purged at the end of a segment before a later split.
    """

    index: int
    train_sessions: tuple[dt.date, ...]
    val_sessions: tuple[dt.date, ...]
    test_sessions: tuple[dt.date, ...]
    embargo: int

    @property
    def test_session(self) -> dt.date:
        """The (first) test session of the fold."""
        return self.test_sessions[0]

    def session_labels(self, sessions: Sequence[dt.date]) -> dict[dt.date, str]:
        """Label of every session: its part in this fold, ``unused`` after the test."""
        labels = dict.fromkeys(sessions, "unused")
        labels.update(dict.fromkeys(self.train_sessions, "train"))
        labels.update(dict.fromkeys(self.val_sessions, "val"))
        labels.update(dict.fromkeys(self.test_sessions, "test"))
        return labels


def sessions_of(windows: pl.DataFrame) -> list[dt.date]:
    """Distinct session dates of ``windows`` over all instruments, ascending."""
    if windows.height == 0:
        raise TapecastError("the windows table is empty: no session to split")
    if "session_date" not in windows.columns:
        raise TapecastError("the windows table lacks the 'session_date' column")
    return sorted(windows["session_date"].unique().drop_nulls().to_list())


def _too_few(spec: SplitSpec, sessions: Sequence[dt.date], need: int, parts: str) -> None:
    if len(sessions) < need:
        span = (f"{len(sessions)} session{'s' if len(sessions) != 1 else ''} "
                f"({sessions[0]}{'..' + str(sessions[-1]) if len(sessions) > 1 else ''})")
        last = ("; with fewer sessions use --val-sessions 0 (train, then test) or --split dates"
                if spec.val_sessions > 0 else "; a forecast needs a training and a test session"
                " (use --split dates to choose them)")
        hint = (last if spec.kind == "last" else "; lower --min-train-sessions" if
                spec.kind == "walk-forward" else "")
        raise TapecastError(f"the '{spec.kind}' split needs at least {need} sessions ({parts}) "
                            f"but the windows hold {span}{hint}")


def walk_forward_folds(windows: pl.DataFrame, spec: SplitSpec) -> list[Fold]:
    """The walk-forward folds of ``spec`` over the sessions of ``windows``.

    Fold ``k`` tests sessions ``m + k·t .. m + (k+1)·t − 1`` (``m = min_train_sessions``,
    ``t = test_sessions``, the last fold possibly shorter) and trains on every earlier session,
    the last ``val_sessions`` of them as validation.
    """
    if spec.kind != "walk-forward":
        raise TapecastError(f"walk-forward folds need a 'walk-forward' split spec, got "
                            f"'{spec.kind}'")
    sessions = sessions_of(windows)
    m, t, v = spec.min_train_sessions, spec.test_sessions, spec.val_sessions
    _too_few(spec, sessions, m + 1, f"{m} before the first test fold, then at least 1 to test")
    folds: list[Fold] = []
    for k, start in enumerate(range(m, len(sessions), t)):
        before = tuple(sessions[:start])
        folds.append(Fold(k, before[:len(before) - v], before[len(before) - v:],
                          tuple(sessions[start:start + t]), spec.embargo_windows))
    return folds


def session_labels(windows: pl.DataFrame, spec: SplitSpec,
                   fold: int | None = None) -> dict[dt.date, str]:
    """Label (``train``/``val``/``test``/``unused``) of every session before the embargo.

    For ``walk-forward`` with ``fold=None`` the sessions before the first test fold are train
    (their last ``val_sessions`` validation) and every later session is test: each is the test
    of exactly one fold. ``fold=k`` gives fold ``k``'s labels.
    """
    sessions = sessions_of(windows)
    if spec.kind == "walk-forward":
        folds = walk_forward_folds(windows, spec)
        if fold is None:
            first = folds[0]
            return {**first.session_labels(sessions),
                    **{s: "test" for f in folds for s in f.test_sessions}}
        if not 0 <= fold < len(folds):
            raise TapecastError(f"fold {fold} does not exist: the spec makes {len(folds)} "
                                f"folds (0..{len(folds) - 1})")
        return folds[fold].session_labels(sessions)
    if fold is not None:
        raise TapecastError(f"fold={fold} needs a 'walk-forward' split, got '{spec.kind}'")
    if spec.kind == "last":
        return _last_labels(spec, sessions)
    return _date_labels(spec, sessions)


def _last_labels(spec: SplitSpec, sessions: Sequence[dt.date]) -> dict[dt.date, str]:
    v, t = spec.val_sessions, spec.test_sessions
    _too_few(spec, sessions, 1 + v + t, f"1 train, {v} validation, {t} test")
    n = len(sessions)
    return {s: "train" if i < n - v - t else "val" if i < n - t else "test"
            for i, s in enumerate(sessions)}


def _date_labels(spec: SplitSpec, sessions: Sequence[dt.date]) -> dict[dt.date, str]:
    labels = dict.fromkeys(sessions, "unused")
    for name, rng in (("train", spec.train_dates), ("val", spec.val_dates),
                      ("test", spec.test_dates)):
        if rng is None:
            continue
        inside = [s for s in sessions if rng[0] <= s <= rng[1]]
        if not inside:
            raise TapecastError(f"the {name} dates {rng[0]}..{rng[1]} hold no session; the "
                                f"windows' sessions run from {sessions[0]} to {sessions[-1]}")
        labels.update(dict.fromkeys(inside, name))
    return labels


def _embargo(codes: NDArray[np.int8], instrument_start: NDArray[np.bool_],
             embargo: int) -> NDArray[np.bool_]:
    """True where a window (sorted by instrument, window) falls in an embargo.

    ``codes``: 0 train, 1 val, 2 test, -1 unused. A window of split ``c`` is embargoed when a
    window of another split ``c' != c`` of the same instrument follows within ``embargo`` rows.
    """
    n = codes.size
    out = np.zeros(n, dtype=bool)
    change = np.ones(n, dtype=bool)
    change[1:] = (codes[1:] != codes[:-1]) | instrument_start[1:]
    starts = np.flatnonzero(change)  # one entry per run of equal labels
    ends = np.append(starts[1:], n)
    block = np.cumsum(instrument_start)[starts]  # instrument of each run
    for r in range(starts.size):  # runs: a handful per instrument and label change
        if codes[starts[r]] < 0:
            continue
        for q in range(r + 1, starts.size):
            if block[q] != block[r] or starts[q] - ends[r] >= embargo:
                break
            if codes[starts[q]] >= 0 and codes[starts[q]] != codes[starts[r]]:
                out[max(starts[r], starts[q] - embargo):ends[r]] = True
                break
    return out


def assign_splits(windows: pl.DataFrame, spec: SplitSpec, fold: int | None = None) -> pl.Series:
    """Split label of every window of ``windows`` (in its row order).

    Parameters
    ----------
    windows : polars.DataFrame
        Windows table with ``instrument``, ``session_date`` and ``window``.
    spec : SplitSpec
    fold : int, optional
        Walk-forward fold (default: train before the first fold, test after; see
        :func:`session_labels`).

    Returns
    -------
    polars.Series, String, length ``windows.height``, named ``split``
        ``train`` / ``val`` / ``test`` / ``embargo`` / ``unused``.
    """
    labels = session_labels(windows, spec, fold)
    names = ("train", "val", "test", "unused", "embargo")
    code_of = {"train": 0, "val": 1, "test": 2, "unused": -1}
    keyed = windows.select("instrument", "session_date", "window").with_row_index("_row") \
        .sort("instrument", "window").with_columns(
            pl.col("session_date").replace_strict(list(labels), [code_of[v] for v in
                                                                  labels.values()],
                                                  return_dtype=pl.Int8).alias("_code"))
    codes = keyed["_code"].to_numpy()
    inst = keyed["instrument"].to_numpy()
    instrument_start = np.ones(len(inst), dtype=bool)
    instrument_start[1:] = inst[1:] != inst[:-1]
    embargoed = _embargo(codes, instrument_start, spec.embargo_windows)
    index = np.where(codes < 0, 3, codes)  # position in `names`
    index[embargoed] = 4
    out = np.empty(len(index), dtype=np.int64)
    out[keyed["_row"].to_numpy()] = index  # back to the caller's row order
    return pl.Series("split", out).replace_strict(list(range(len(names))), list(names),
                                                   return_dtype=pl.String)

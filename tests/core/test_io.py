from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tapecast.core import io
from tapecast.core.io import atomic_dir, atomic_path, atomic_write_text, recover_dir


def test_atomic_write_text_when_ok_replaces_content(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_atomic_path_when_writer_fails_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_dir_when_target_exists_swaps_whole_folder(tmp_path: Path) -> None:
    target = tmp_path / "store"
    with atomic_dir(target) as staging:
        (staging / "a").write_text("1")
    with atomic_dir(target) as staging:
        (staging / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_atomic_dir_when_writer_fails_keeps_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "store"
    with atomic_dir(target) as staging:
        (staging / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "b").write_text("2")
        raise RuntimeError("crash")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_atomic_writes_when_done_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as staging:
            (staging / "a").write_text("1")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


# --- crash safety of atomic_dir: a hard crash (os._exit) at every step of the swap ---------


def _write_version(target: Path, text: str) -> None:
    with atomic_dir(target) as staging:
        (staging / "version").write_text(text)
        (staging / "payload").write_text(text * 100)


def _crash_in_child(target: Path, *, exchange: bool, patch: str, at_call: int) -> int:
    """Fork; in the child, ``os._exit`` at call ``at_call`` of ``patch`` while writing "new".
    Returns the child's exit code (17: it crashed there; 0: it finished)."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 0
        try:
            if not exchange:
                io.exchange_paths = lambda first, second: False
            module, name = {"replace": (os, "replace"), "rmtree": (shutil, "rmtree"),
                            "exchange": (io, "exchange_paths")}[patch]
            real, calls = getattr(module, name), [0]

            def crashing(*args: Any, **kwargs: Any) -> Any:
                calls[0] += 1
                if calls[0] == at_call:
                    os._exit(17)
                return real(*args, **kwargs)

            setattr(module, name, crashing)
            _write_version(target, "new")
        except BaseException:  # any failure is reported through the exit code
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


CRASH_POINTS = [(False, "replace", 1), (False, "replace", 2), (False, "replace", 3),
                (False, "rmtree", 1), (True, "exchange", 1), (True, "replace", 1),
                (True, "rmtree", 1)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize(("exchange", "patch", "at_call"), CRASH_POINTS)
def test_atomic_dir_when_process_dies_mid_swap_old_or_new_folder_is_recovered(
        tmp_path: Path, exchange: bool, patch: str, at_call: int) -> None:
    target = tmp_path / "last"
    _write_version(target, "old")
    if exchange and not io.exchange_paths(tmp_path, tmp_path):
        pytest.skip("this file system cannot exchange folders atomically")
    assert _crash_in_child(target, exchange=exchange, patch=patch, at_call=at_call) == 17
    recover_dir(target)
    version = (target / "version").read_text()
    assert version in {"old", "new"}
    assert (target / "payload").read_text() == version * 100
    _write_version(target, "next")  # the next write clears what the crash left
    assert (target / "version").read_text() == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_atomic_dir_when_crash_left_no_dest_the_next_write_restores_then_replaces(
        tmp_path: Path) -> None:
    target = tmp_path / "store"
    _write_version(target, "old")
    os.replace(target, tmp_path / ".store.4242.old")  # the state between the two renames
    assert recover_dir(target) and (target / "version").read_text() == "old"
    assert not recover_dir(target)  # nothing left to do
    os.replace(target, tmp_path / ".store.4242.old")
    _write_version(target, "new")
    assert (target / "version").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_atomic_dir_when_exchange_unavailable_swaps_by_two_renames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(io, "exchange_paths", lambda first, second: False)
    target = tmp_path / "store"
    _write_version(target, "one")
    _write_version(target, "two")
    assert (target / "version").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_atomic_dir_when_second_rename_fails_puts_the_old_folder_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(io, "exchange_paths", lambda first, second: False)
    target = tmp_path / "store"
    _write_version(target, "old")
    real, calls = os.replace, [0]

    def failing(src: Any, dst: Any) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise OSError("disk gone")
        real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk gone"):
        _write_version(target, "new")
    monkeypatch.undo()
    assert (target / "version").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


# --- the folders of one destination are never taken for those of a sibling named DEST.* ------

# 2**22 + 1: above the largest pid Linux can give (pid_max <= 2**22), so never a live process
_DEAD_PID = 4194305


def _make_folder(path: Path, text: str) -> None:
    path.mkdir()
    (path / "version").write_text(text)


@pytest.mark.parametrize(("kind", "own", "others"), [
    ("old", [".a.123.old"],
     [".a.b.123.old", ".a.1.123.old", ".a.1.old.old", ".a.123.old.trash", ".ab.123.old",
      ".a.old", ".a..old", ".a.12x.old", "a.123.old", ".a.123.4567.old"]),
    ("staging", [".a.123.k3j_9x0q.staging"],
     [".a.b.123.k3j_9x0q.staging", ".a.1.123.k3j_9x0q.staging", ".a.123.staging",
      ".a.123.k3j_9x0q.staging.trash", ".ab.123.k3j_9x0q.staging"]),
    ("trash", [".a.123.old.trash", ".a.123.k3j_9x0q.staging.trash"],
     [".a.b.123.old.trash", ".a.1.123.old.trash", ".a.1.123.k3j_9x0q.staging.trash",
      ".a.b.123.k3j_9x0q.staging.trash", ".a.123.trash", ".a.123.old"]),
])
def test_siblings_when_names_start_with_dest_matches_only_its_own(
        tmp_path: Path, kind: str, own: list[str], others: list[str]) -> None:
    for name in [*own, *others]:
        (tmp_path / name).mkdir()
    found = io._siblings(tmp_path / "a", kind)
    assert sorted(p.name for p in found) == sorted(own)


def test_siblings_when_dest_name_has_regex_characters_matches_it_literally(
        tmp_path: Path) -> None:
    (tmp_path / ".a+b.7.old").mkdir()
    (tmp_path / ".aab.7.old").mkdir()
    assert [p.name for p in io._siblings(tmp_path / "a+b", "old")] == [".a+b.7.old"]


def test_recover_dir_when_only_a_sibling_has_a_backup_restores_nothing(tmp_path: Path) -> None:
    _make_folder(tmp_path / ".spy.v2.4242.old", "spy.v2")  # spy.v2 between its two renames
    _make_folder(tmp_path / ".spy.1.4242.old", "spy.1")  # spy.1 likewise; "1" looks like a pid
    assert not recover_dir(tmp_path / "spy")
    assert not (tmp_path / "spy").exists()
    assert recover_dir(tmp_path / "spy.v2") and recover_dir(tmp_path / "spy.1")
    assert (tmp_path / "spy.v2" / "version").read_text() == "spy.v2"
    assert (tmp_path / "spy.1" / "version").read_text() == "spy.1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spy.1", "spy.v2"]


def test_atomic_dir_when_sibling_folders_start_with_dest_leaves_theirs_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(io, "exchange_paths", lambda first, second: False)
    _write_version(tmp_path / "a", "old")
    theirs = {
        ".a.b.123.old": "a.b backup",  # the only complete copy of a.b
        ".a.1.123.old": "a.1 backup",
        f".a.{_DEAD_PID}.{os.getpid()}.k3j_9x0q.staging": "a live writer of a.<number>",
    }
    for name, text in theirs.items():
        _make_folder(tmp_path / name, text)
    mine = [".a.4242.old", ".a.4242.old.trash", f".a.{_DEAD_PID}.k3j_9x0q.staging",
            ".a.4242.k3j_9x0q.staging.trash"]  # stale: left by crashes of writers of a
    for name in mine:
        _make_folder(tmp_path / name, "stale")
    _write_version(tmp_path / "a", "new")
    assert (tmp_path / "a" / "version").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a", *theirs])
    for name, text in theirs.items():
        assert (tmp_path / name / "version").read_text() == text
    assert recover_dir(tmp_path / "a.b")
    assert (tmp_path / "a.b" / "version").read_text() == "a.b backup"


def test_atomic_dir_when_swapped_by_two_renames_trash_keeps_the_full_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(io, "exchange_paths", lambda first, second: False)
    target = tmp_path / "a"
    _write_version(target, "old")
    renamed: list[str] = []
    real = os.replace

    def recording(src: Any, dst: Any) -> None:
        renamed.append(Path(dst).name)
        real(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    _write_version(target, "new")
    assert renamed == [f".a.{os.getpid()}.old", "a", f".a.{os.getpid()}.old.trash"]

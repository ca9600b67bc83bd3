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
                io.exchange_paths = lambda first, second: False  # type: ignore[assignment]
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

"""Atomic writes: a crash never leaves a half-written file or folder behind.

Everything is first written next to its destination (same file system), flushed, then moved into
place with :func:`os.replace`, which is atomic on POSIX.

A folder that already exists cannot be replaced by one ``rename``. :func:`atomic_dir` swaps it
with one ``renameat2(RENAME_EXCHANGE)`` where Linux and the file system allow it (atomic), and
otherwise in two renames: ``DEST -> .DEST.<pid>.old``, then ``staging -> DEST``. A crash between
those two leaves no ``DEST`` but a complete ``.DEST.<pid>.old``; :func:`recover_dir` (called by
:func:`atomic_dir` itself and by readers such as the training checkpoints) renames it back. The
invariant that makes this safe: a folder named ``.DEST.<pid>.old`` is always a complete former
``DEST`` (it is created by one rename and only ever left by one rename, to
``.DEST.<pid>.old.trash``, before it is deleted), and there is at most one while ``DEST`` is
missing (stale ones are cleared while ``DEST`` exists, before the next swap). These names are
matched whole, so the folders of a sibling whose name starts with ``DEST`` (``DEST.v2``:
``.DEST.v2.<pid>.old``) are never taken for those of ``DEST``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _apply_umask(path: Path, mode: int) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would have given it
    (``mkstemp``/``mkdtemp`` create private 0600/0700 entries whatever the umask)."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _apply_umask(tmp, 0o666)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` (and ``root``) to disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _load_renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # no such symbol (glibc < 2.28, musl)
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,  # type: ignore[attr-defined]
                         ctypes.c_char_p, ctypes.c_uint]
    return function


_RENAMEAT2 = _load_renameat2()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns
    -------
    bool
        False when the platform or the file system cannot do it (nothing was changed).

    Raises
    ------
    OSError
        On any other failure of the call.
    """
    if _RENAMEAT2 is None:
        return False
    rc = _RENAMEAT2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                    _RENAME_EXCHANGE)
    if rc == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


# The names this module gives the folders beside ``DEST`` (``<pid>`` is decimal; ``<random>`` is
# the dot-free part :func:`tempfile.mkdtemp` adds):
#   ``.DEST.<pid>.old``                    the former DEST during a two-rename swap
#   ``.DEST.<pid>.<random>.staging``       a folder being written
#   ``.DEST.<pid>.old.trash``, ``.DEST.<pid>.<random>.staging.trash``   being deleted
# Each pattern is matched against the whole name, so the folders of a sibling whose name starts
# with DEST (``DEST.v2``, ``DEST.1``: ``.DEST.v2.<pid>.old``, ``.DEST.1.<pid>.old``) never match:
# those names have one more dot-separated part before the fixed tail.
_SIBLING_TAILS = {
    "old": r"[0-9]+\.old",
    "staging": r"[0-9]+\.[^.]+\.staging",
    "trash": r"[0-9]+\.(?:old|[^.]+\.staging)\.trash",
}


def _sibling_pattern(dest: Path, kind: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(dest.name)}\.{_SIBLING_TAILS[kind]}")


def _siblings(dest: Path, kind: str) -> list[Path]:
    """The ``old``, ``staging`` or ``trash`` folders of ``dest`` (names above), oldest first."""
    pattern = _sibling_pattern(dest, kind)
    found: list[tuple[int, str, Path]] = []
    try:
        names = os.listdir(dest.parent)
    except FileNotFoundError:  # the parent removed meanwhile
        return []
    for name in names:
        if not pattern.fullmatch(name):
            continue
        folder = dest.parent / name
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another process
            found.append((folder.lstat().st_mtime_ns, name, folder))
    return [folder for *_, folder in sorted(found)]


def _discard(folder: Path) -> None:
    """Delete ``folder`` after renaming it to ``<name>.trash`` (so a half-deleted folder never
    keeps a name a reader trusts)."""
    trash = folder.with_name(f"{folder.name}.trash")
    shutil.rmtree(trash, ignore_errors=True)  # garbage of the same name left by an earlier crash
    with contextlib.suppress(FileNotFoundError):
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _writer_alive(staging: Path, dest: Path) -> bool:
    """Whether the process that named ``.DEST.<pid>.<random>.staging`` may still be writing it
    (True when the name carries no pid, or the pid is this process or a live one)."""
    pid_text = staging.name[len(dest.name) + 2:].split(".", 1)[0]
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def recover_dir(path: str | os.PathLike[str]) -> bool:
    """Finish an interrupted :func:`atomic_dir` swap: when ``path`` is missing but a complete
    former version ``.NAME.<pid>.old`` lies beside it, rename that back to ``path``.

    Safe to call from several processes at once; call it when no :func:`atomic_dir` of ``path``
    is in progress (a reader that recovers while a writer is between its two renames makes the
    writer fail, leaving the old folder in place).

    Returns
    -------
    bool
        True when a folder was restored.
    """
    dest = Path(path)
    if dest.exists() or not dest.parent.is_dir():
        return False
    olds = _siblings(dest, "old")
    if not olds:
        return False
    try:
        os.replace(olds[-1], dest)  # the newest: normally there is only one
    except FileNotFoundError:  # another process restored it first
        return dest.exists()
    _fsync_dir(dest.parent)
    return True


def _swap_in(staging: Path, dest: Path) -> None:
    """Make the complete folder ``staging`` become ``dest`` (which exists)."""
    # left by an earlier crash after its swap; garbage while dest exists
    for trash in _siblings(dest, "trash"):
        shutil.rmtree(trash, ignore_errors=True)
    for stale in _siblings(dest, "old"):
        _discard(stale)
    if exchange_paths(staging, dest):
        _fsync_dir(dest.parent)
        _discard(staging)  # now the former folder
        return
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    os.replace(dest, old)
    try:
        os.replace(staging, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.replace(old, dest)  # put the former folder back
        raise
    _fsync_dir(dest.parent)
    _discard(old)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; on success it becomes ``path``.

    The staging folder is flushed to disk and swapped in (module docstring): a crash at any point
    leaves ``path`` as the former or the new folder, or only ``.NAME.<pid>.old`` that
    :func:`recover_dir` turns back into ``path``. On an exception in the block the staging folder
    is removed and ``path`` is untouched. Staging folders of processes that died while writing
    (``.NAME.<pid>.*.staging`` with a dead pid) are removed first.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(dest)
    for stale in _siblings(dest, "staging"):
        if not _writer_alive(stale, dest):
            _discard(stale)  # left by a process that died while writing
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=".staging",
                                    dir=dest.parent))
    try:
        yield staging
        _apply_umask(staging, 0o777)
        _fsync_tree(staging)
        if dest.exists():
            _swap_in(staging, dest)
        else:
            os.replace(staging, dest)
            _fsync_dir(dest.parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks): the provenance hash of every
    source file and written array."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""The one way codedouble replaces a file or a directory: whole or not at all.

Everything is written under a temporary name beside its destination (same directory, so the same file
system) and renamed onto it with `os.replace`, which POSIX makes atomic: a reader, or the next run after a
crash or a SIGKILL, sees the previous version or the new one, never part of one. A failed write removes its
temporary; one killed outright leaves only a dot-named `.tmp` beside the destination.

    with atomic.file(path) as f: ...           # text (or mode="wb"), committed when the block completes
    atomic.write_text(path, text)              # the same, in one call
    with atomic.staged(path) as tmp: ...       # for libraries that write to a path themselves (safetensors)
    with atomic.directory(out) as folder: ...  # a whole directory (an artifact, a checkpoint)
    AtomicFile(path)                           # a writer that stays open a while (the miner's shards)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# mkstemp creates files readable by their owner only; what codedouble writes sits in the user's own folders
# beside their code and is meant to be read like it.
FILE_MODE = 0o644


def _fsync_directory(folder: Path) -> None:
    """Make a rename durable (the directory entry itself), where the platform allows opening a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicFile:
    """A file written under a temporary name beside `path`; `commit()` renames it onto `path`, `abort()`
    drops it. `mode` is "w" (UTF-8 text) or "wb"."""

    def __init__(self, path: Path, mode: str = "w") -> None:
        if mode not in {"w", "wb"}:
            raise ValueError(f"AtomicFile writes with mode 'w' or 'wb', not {mode!r}")
        self.path = path
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self.tmp = Path(name)
        self.handle: IO[Any] = os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {}))

    def commit(self) -> None:
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            os.chmod(self.tmp, FILE_MODE)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        _fsync_directory(self.path.parent)

    def abort(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """An open file that replaces `path` when the block completes, and is dropped if it raises."""
    writer = AtomicFile(path, mode)
    try:
        yield writer.handle
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def write_text(path: Path, text: str) -> None:
    with file(path) as f:
        f.write(text)


def write_bytes(path: Path, data: bytes) -> None:
    with file(path, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` for a library that writes files itself; renamed onto `path` (fsynced)
    when the block completes, removed if it raises."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(path.parent)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the platform, its C
    library or the file system cannot, and the caller falls back to two renames."""
    if sys.platform != "linux":
        return False
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:  # a C library older than glibc 2.28
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}:  # the kernel or the file system cannot swap
        return False
    raise OSError(error, os.strerror(error), str(a), None, str(b))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def directory(out: Path) -> Iterator[Path]:
    """A fresh directory to fill; when the block completes it is put at `out` (replacing a directory there),
    and when it raises `out` is left as it was.

    rename() cannot replace a non-empty directory. On Linux the new directory and an existing `out` are swapped
    in one step (renameat2 with RENAME_EXCHANGE), so `out` is never missing, not even for a reader between two
    renames (a server loading the current double, `train --resume` looking for its last checkpoint). Elsewhere,
    or on a file system without the exchange, `out` is moved aside to `.NAME.old`, the new one renamed in and
    the old one removed; a crash between those two renames leaves no `out` but the old one aside, and the next
    write to `out` puts it back first.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.with_name(f".{out.name}.old")
    if old.exists() and not out.exists():
        os.replace(old, out)
    for stale in out.parent.glob(
        f".{glob.escape(out.name)}.*.tmp"
    ):  # staging left by a killed writer: a whole model each
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield staging
        if not out.exists():
            os.replace(staging, out)
        elif _exchange(staging, out):
            pass  # `staging` now holds the old directory, removed below
        else:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            try:
                os.replace(staging, out)
            except BaseException:
                os.replace(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        _fsync_directory(out.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

"""Read-only access to a git repository: GitPython for discovery and short commands, two long-lived git
processes for the history.

`repository` opens a repository with GitPython and `git` runs one short command through GitPython's `Git`.
The hot path stays by hand, each place with its measured figure: `git log --raw` streams every commit with
the blob ids of its changed files, and one `git cat-file --batch` process serves the blobs. Nothing writes to
the repository: optional locks are off and nothing touches its config, so mining a repository leaves it byte
for byte as it was.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import git as gitpython

from codedouble.server.contract.errors import CodedoubleError

NULL_SHA = "0" * 40
# Each log record starts with this byte, which cannot open a raw diff entry.
_RECORD = b"\x1e"
_LOG_FORMAT = "%x1e%H%x00%P%x00%aE%x00%aN%x00%aI%x00%cI%x00%ae%x00%B%x00"
# git gives up on rename detection past this many files; a generous limit keeps big moves followed.
_RENAME_LIMIT = "2000"


class GitError(CodedoubleError):
    """A git command failed, or the path is not a usable repository."""


# GIT_OPTIONAL_LOCKS=0: never refresh the index or take locks in the mined repository.
_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _env() -> dict[str, str]:
    return {**os.environ, **_ENV}


def _gitpython() -> ModuleType:
    # Imported on first use, not with this module: the miner's worker processes import gitio for `log` and
    # `BlobReader` only, and `import git` costs a process about 43 ms (python -X importtime), some 5% of the
    # 0.8 s that benchmarks/mine_bench.py takes on rich's oldest 300 commits with two workers.
    try:
        import git as gitpython
    except ImportError as exc:  # GitPython also fails to import when it finds no git executable
        raise GitError(f"cannot run git: {exc}") from None
    return gitpython


def repository(path: Path) -> gitpython.Repo:
    """The repository at `path` (its working tree or a subdirectory of it, a bare repository, a linked
    worktree), opened read-only; GitError when there is none. Close it (it is a context manager).

    Opening reads a few files and starts no process: 0.23 ms against 1.2 ms for `git rev-parse`."""
    gp = _gitpython()
    try:
        repo = gp.Repo(path, search_parent_directories=True)
    except gp.NoSuchPathError:
        raise GitError(f"{path} does not exist") from None
    except gp.InvalidGitRepositoryError:
        raise GitError(f"{path} is not a git repository") from None
    repo.git.update_environment(**_ENV)  # for any command run through repo.git
    return repo


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run one short git command in `repo` and return its stdout (GitPython's `Git.execute`: 1.39 ms a call
    against 1.35 ms for subprocess.run, median of 200)."""
    gp = _gitpython()
    # `-C` rather than GitPython's working directory: git itself then names a missing or foreign directory.
    command = ["git", "-C", str(repo), "-c", "core.quotepath=off", *args]
    try:
        status, out, err = gp.Git().execute(
            command,
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=False,
            strip_newline_in_stdout=False,
            env=_env(),
        )
    except gp.GitCommandNotFound:
        raise GitError(f"git {' '.join(args)} could not run: no git executable") from None
    if check and status != 0:
        raise GitError(f"git {' '.join(args)} failed in {repo}: {err.strip()}")
    return out.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class FileDiff:
    status: str  # A, M, D, R (renamed), T (type changed)
    old_path: str | None
    new_path: str | None
    old_blob: str | None  # None when the file was added
    new_blob: str | None  # None when the file was deleted
    old_mode: str
    new_mode: str


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parents: tuple[str, ...]
    author_email: str  # after .mailmap
    author_name: str  # after .mailmap
    raw_author_email: str  # as written in the commit
    authored_at: str  # ISO 8601 with the author's offset
    committed_at: str
    message: str
    files: tuple[FileDiff, ...]


def _parse_entries(tokens: list[bytes]) -> list[FileDiff]:
    files: list[FileDiff] = []
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip(b"\n")
        i += 1
        if not token.startswith(b":"):
            continue
        old_mode, new_mode, old_blob, new_blob, status = token[1:].decode().split(" ")
        kind = status[0]
        # Paths are bytes in git; one that is not UTF-8 keeps a readable name with U+FFFD in it.
        if kind in "RC":
            old_path, new_path = tokens[i].decode("utf-8", "replace"), tokens[i + 1].decode("utf-8", "replace")
            i += 2
        else:
            old_path = new_path = tokens[i].decode("utf-8", "replace")
            i += 1
        if kind == "C":  # a copy leaves its source in place: the new path is an addition
            kind, old_blob = "A", NULL_SHA
        files.append(
            FileDiff(
                status=kind,
                old_path=None if kind == "A" else old_path,
                new_path=None if kind == "D" else new_path,
                old_blob=None if old_blob == NULL_SHA else old_blob,
                new_blob=None if new_blob == NULL_SHA else new_blob,
                old_mode=old_mode,
                new_mode=new_mode,
            )
        )
    return files


def _parse_record(block: bytes) -> CommitInfo:
    fields = block.split(b"\0")
    sha, parents, email, name, authored, committed, raw_email, message = (
        f.decode("utf-8", errors="replace") for f in fields[:8]
    )
    return CommitInfo(
        sha=sha,
        parents=tuple(parents.split()),
        author_email=email.lower(),
        author_name=name,
        raw_author_email=raw_email.lower(),
        authored_at=authored,
        committed_at=committed,
        message=message.strip(),
        files=tuple(_parse_entries(fields[8:])),
    )


def log(
    repo: Path, revisions: list[str], extra: list[str] | None = None, shas: list[str] | None = None
) -> Iterator[CommitInfo]:
    """Stream the commits of `revisions` oldest first (or exactly `shas`, in their order), with their raw
    file diffs against the first parent.

    Merge commits come through with no files (git shows no raw diff for them without -m), so callers can
    count them and move on.

    Kept by hand, measured on rich's oldest 1,000 commits (3,044 file changes): GitPython's own objects
    (`Repo.iter_commits` + `Commit.diff`) take 4.9 s where this stream takes 33 ms (150x). Streaming the
    same command through `Git.execute(as_process=True)` is no faster (18-33 ms either way, within noise) but
    pins stderr to a pipe nobody reads until the end, and would make every worker process import GitPython
    (43 ms each).
    """
    walk = ["--no-walk=unsorted", "--stdin"] if shas is not None else ["--reverse", *(extra or []), *revisions]
    cmd = [
        "git",
        "-C",
        str(repo),
        "-c",
        "core.quotepath=off",
        "-c",
        f"diff.renameLimit={_RENAME_LIMIT}",
        "log",
        f"--format={_LOG_FORMAT}",
        "--raw",
        "-z",
        "--no-abbrev",
        "-M",
        "--root",
        "--use-mailmap",
        *walk,
        "--",
    ]
    # stderr goes to a file: a pipe nobody reads until the end could fill up and stall git.
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=errors,
        stdin=subprocess.PIPE if shas is not None else subprocess.DEVNULL,
        env=_env(),
    )
    assert proc.stdout is not None
    if shas is not None:
        # Fed from a thread so that a long list never blocks against output nobody is reading yet.
        stdin = proc.stdin
        assert stdin is not None
        payload = "".join(f"{sha}\n" for sha in shas).encode()
        threading.Thread(target=_feed, args=(stdin, payload), daemon=True).start()
    buffer = b""
    try:
        while chunk := proc.stdout.read(1 << 16):
            buffer += chunk
            *complete, buffer = buffer.split(_RECORD)
            for block in complete:
                if block:
                    yield _parse_record(block)
        if buffer:
            yield _parse_record(buffer)
    finally:
        proc.stdout.close()
        code = proc.wait()
        errors.seek(0)
        stderr = errors.read()
        errors.close()
    if code != 0:
        raise GitError(f"git log failed in {repo}: {stderr.decode('utf-8', errors='replace').strip()}")


def _feed(stream: IO[bytes], payload: bytes) -> None:
    try:
        stream.write(payload)
        stream.close()
    except BrokenPipeError:  # git stopped early; its exit status tells why
        pass


@dataclass(frozen=True)
class Blob:
    size: int
    data: bytes | None  # None when the blob was larger than the reader's limit (its bytes are skipped)


class BlobReader:
    """One `git cat-file --batch` process serving blob contents by id for the whole run.

    Kept by hand: GitPython's persistent cat-file (`Repo.odb.stream`, one request and one flush per object)
    is 2.6x slower on the miner's pattern, rich's oldest 1,000 commits read commit by commit (4,196 blobs:
    218 vs 83 ms, median of 7), and 0.2 s slower (3.75 vs 3.52 s, jobs=1) in `benchmarks/mine_bench.py`.
    """

    # Requests written before reading answers; kept well under a pipe buffer so the two sides never deadlock.
    _BATCH = 256

    def __init__(self, repo: Path, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._proc = subprocess.Popen(
            ["git", "-C", str(repo), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )

    def read_many(self, shas: list[str]) -> dict[str, Blob]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        out: dict[str, Blob] = {}
        for start in range(0, len(shas), self._BATCH):
            batch = shas[start : start + self._BATCH]
            self._proc.stdin.write("".join(f"{sha}\n" for sha in batch).encode())
            self._proc.stdin.flush()
            for sha in batch:
                header = self._proc.stdout.readline().split()
                if len(header) < 3 or header[1] == b"missing":
                    raise GitError(f"object {sha} is missing from the repository (is it corrupt or shallow?)")
                size = int(header[2])
                if size > self.max_bytes:
                    remaining = size + 1  # the object and its trailing newline
                    while remaining:
                        remaining -= len(self._proc.stdout.read(min(remaining, 1 << 20)))
                    out[sha] = Blob(size, None)
                else:
                    out[sha] = Blob(size, self._proc.stdout.read(size + 1)[:-1])
        return out

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        if self._proc.stdout:
            self._proc.stdout.close()
        self._proc.wait()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The change a message is drafted for, read from git: the staged change (index against HEAD) or a commit
against its first parent. Read-only (`GIT_OPTIONAL_LOCKS=0`): drafting runs inside `git commit`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from codedouble.server.commits.change import Change, Edit, edits_of_file, from_edits
from codedouble.server.commits.editor import SCISSORS
from codedouble.server.contract import commits
from codedouble.server.contract.errors import CodedoubleError

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's id of the empty tree: the parent of a root commit
MAX_FILES = 200  # files read for their definitions; a change larger than this is named by its paths alone
MAX_FILE_BYTES = 1_000_000


class CommitMessageError(CodedoubleError):
    """A change that cannot be drafted for; the message says why and what to do."""


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env)
    if check and done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CommitMessageError(f"git {args[0]} in {repo} failed: {message[-1] if message else done.returncode}")
    return done


def root(repo: Path) -> Path:
    """The working tree around `repo` (or the git directory of a bare repository)."""
    done = _git(repo, "rev-parse", "--show-toplevel", check=False)
    if done.returncode == 0 and done.stdout.strip():
        return Path(done.stdout.decode().strip())
    done = _git(repo, "rev-parse", "--absolute-git-dir", check=False)
    if done.returncode != 0:
        raise CommitMessageError(f"{repo} is not in a git repository; pass --repo DIR")
    return Path(done.stdout.decode().strip())


def _blob(repo: Path, spec: str) -> str | None:
    done = _git(repo, "cat-file", "blob", spec, check=False)
    if done.returncode != 0 or len(done.stdout) > MAX_FILE_BYTES or b"\0" in done.stdout[:8000]:
        return None
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _change(repo: Path, entries: list[tuple[str, str, str]], old: str, new: str) -> Change:
    """`entries` (status, old path, new path) with each file's definitions read at `old` and `new` ("" for the
    index)."""
    paths: list[str] = []
    edits: list[Edit] = []
    for n, (status, old_path, new_path) in enumerate(entries):
        paths.append(new_path)
        if n >= MAX_FILES:
            continue
        before = "" if status == "A" else _blob(repo, f"{old}:{old_path}")
        after = "" if status == "D" else _blob(repo, f"{new}:{new_path}")
        if before is None or after is None:
            continue  # binary or too large: named by its path alone
        edits += edits_of_file(new_path, before, after)
    return from_edits(paths, edits)


def _name_status(raw: bytes) -> list[tuple[str, str, str]]:
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    out: list[tuple[str, str, str]] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i][0]
        if status in "RC":
            out.append((status, fields[i + 1], fields[i + 2]))
            i += 3
        else:
            out.append((status, fields[i + 1], fields[i + 1]))
            i += 2
    return out


def staged(repo: Path) -> Change:
    """What `git commit` would commit now: the index against HEAD (against nothing before the first commit)."""
    head = "HEAD" if _git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode == 0 else EMPTY_TREE
    raw = _git(repo, "diff", "--cached", "-M", "--name-status", "-z", head).stdout
    return _change(repo, _name_status(raw), head, "")


def of_revision(repo: Path, revision: str) -> Change:
    """The change commit `revision` made against its first parent."""
    done = _git(repo, "rev-parse", "--verify", "-q", f"{revision}^{{commit}}", check=False)
    if done.returncode != 0:
        raise CommitMessageError(f"{revision!r} names no commit in {repo}; give a revision git knows (e.g. HEAD~1)")
    sha = done.stdout.decode().strip()
    parent = _git(repo, "rev-parse", "--verify", "-q", f"{sha}^", check=False)
    base = parent.stdout.decode().strip() if parent.returncode == 0 else EMPTY_TREE
    raw = _git(repo, "diff", "-M", "--name-status", "-z", base, sha).stdout
    return _change(repo, _name_status(raw), base, sha)


def committed(repo: Path, revision: str) -> tuple[str, str]:
    """(full SHA, commit time in UTC) of commit `revision`: a past commit is drafted as of when it was made."""
    out = _git(repo, "show", "-s", "--format=%H %cI", f"{revision}^{{commit}}").stdout.decode().split()
    return out[0], commits.utc(out[1])


# The characters git picks from under `core.commentChar=auto`, in its order (builtin/commit.c,
# adjust_comment_line_char): the first that starts no line of the message.
AUTO_COMMENT_CHARS = "#;@!$%^&|:"


def comment_prefix(repo: Path, message_file_text: str = "") -> str:
    """What git's comment lines in `repo`'s message file start with: `core.commentString` (git 2.45 and later)
    or `core.commentChar`, "#" by default. Under "auto" git picks the character per commit, so it is read from
    the file: the scissors line's, else the last line's that starts with one of git's candidates (its status
    comments end the file)."""
    for key in ("core.commentString", "core.commentChar"):
        value = _git(repo, "config", "--get", key, check=False).stdout.decode("utf-8", "replace").strip("\n")
        if value and value != "auto":
            return value
        if value == "auto":
            lines = [x for x in message_file_text.split("\n") if x and x[0] in AUTO_COMMENT_CHARS]
            scissors = [x for x in lines if SCISSORS in x]
            return (scissors or lines)[-1][:1] if lines else "#"
    return "#"


def identity(repo: Path) -> str | None:
    """ "Name <email>" as git would sign off with it here, if both are set."""
    name = _git(repo, "config", "user.name", check=False).stdout.decode().strip()
    email = _git(repo, "config", "user.email", check=False).stdout.decode().strip()
    return f"{name} <{email}>" if name and email else None

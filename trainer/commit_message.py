"""`codedouble commit-message`: a draft message for the staged change or a commit, in the engineer's voice
(`server/commits/draft.py`), printed, or filled into git's message file by the `prepare-commit-msg` hook."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from codedouble.server.commits import gitdiff
from codedouble.server.commits.draft import Draft, Drafter
from codedouble.server.commits.editor import SCISSORS
from codedouble.server.commits.gitdiff import CommitMessageError
from codedouble.server.contract import artifact, atomic


@dataclass(frozen=True)
class Options:
    repo: Path = Path(".")
    revision: str | None = None  # None: the staged change
    artifact: Path | None = None  # None: the repository's current double, else the user's default
    source: str | None = None  # retrieval or model; None: the one the double measured better


def choose_artifact(repo_root: Path, named: Path | None) -> tuple[Path, str]:
    """The double to draft with and why: the one named, the repository's current double, the user's default."""
    if named is not None:
        artifact.read_manifest(named)  # a double, or a clear error
        return named, "--artifact"
    current = artifact.current_artifact(str(repo_root.resolve()))
    if current is not None:
        return current, f"the current double of {repo_root}"
    mine = artifact.default_artifact()
    if mine is not None:
        return mine, f"your default double ({repo_root} has none of its own)"
    raise CommitMessageError(
        f"no double for {repo_root} and no default double: create one with `codedouble mine {repo_root} --out "
        "DATASET` then `codedouble train DATASET`, or name one with --artifact"
    )


def draft(opts: Options) -> tuple[Draft, Path]:
    root = gitdiff.root(opts.repo)
    change = gitdiff.staged(root) if opts.revision is None else gitdiff.of_revision(root, opts.revision)
    if change.empty:
        what = "nothing is staged" if opts.revision is None else f"{opts.revision} changes no file"
        raise CommitMessageError(f"{what} in {root}: stage a change (`git add`) or name a commit (REV)")
    double, _why = choose_artifact(root, opts.artifact)
    drafter = Drafter.load(double, source=opts.source)
    if opts.revision is None:
        return drafter.draft(change, gitdiff.identity(root)), double
    # A past commit is drafted as the double would have drafted it then: never from its own message (the index
    # may hold it) nor from later commits.
    sha, when = gitdiff.committed(root, opts.revision)
    return drafter.draft(change, gitdiff.identity(root), exclude={sha}, before=when), double


def has_message(text: str, comment: str = "#") -> bool:
    """Whether git's message file already holds a message: lines that are neither comments nor blank, above
    the scissors line under which `git commit --verbose` shows the diff."""
    for line in text.split("\n"):
        if line.startswith(comment) and SCISSORS in line:
            return False
        if line.strip() and not line.startswith(comment):
            return True
    return False


def fill(message_file: Path, text: str, repo: Path | None = None) -> bool:
    """Put the draft at the top of git's message file, above git's own comments (whatever `repo`'s
    `core.commentChar` makes them start with); never over a message that is already there. Returns whether it
    was filled."""
    try:
        current = message_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    comment = gitdiff.comment_prefix(repo, current) if repo is not None else "#"
    if has_message(current, comment) or not text.strip():
        return False
    atomic.write_text(message_file, text.rstrip("\n") + "\n" + ("\n" + current.lstrip("\n") if current.strip() else ""))
    return True


def watchdog(seconds: float) -> None:
    """End the process after `seconds`, whatever it is doing: the hook must never hold a commit up longer.
    The message file is replaced atomically, so an ending mid-draft leaves git's file as it was."""
    timer = threading.Timer(seconds, os._exit, (0,))
    timer.daemon = True
    timer.start()

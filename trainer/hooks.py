"""The git hooks codedouble installs: `post-commit` feeds each new commit to the double (`update --no-train`);
`prepare-commit-msg` fills a draft message in the engineer's voice (`commit-message --into`).

A hook must never block or fail the engineer's commit: post-commit starts the update detached, in the
background, writes its output to a log in the data directory, and exits 0 whatever happens; prepare-commit-msg
drafts only when git has no message source (`$2` empty: not `-m`/`-F`, a merge, a squash, a template or an
amend), gives up after DRAFT_SECONDS (the command's own watchdog, and `timeout` where the system has it)
and exits 0 whatever happens. An existing hook that is not
codedouble's is never overwritten; uninstall removes only a hook codedouble wrote (recognised by its marker).
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

from codedouble.server.contract import artifact, atomic
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.mining.gitio import GitError, git

MARKER = "# codedouble hook: "
PREPARE = "prepare-commit-msg"
HOOKS = ("post-commit", PREPARE)
DRAFT_SECONDS = 5


class HookError(CodedoubleError):
    """A hook that cannot be installed or removed as asked; nothing was changed."""


def hook_path(repo: Path, name: str) -> Path:
    """Where git runs the hook `name` for the repository at `repo` (core.hooksPath honoured)."""
    try:
        found = git(repo, "rev-parse", "--path-format=absolute", "--git-path", f"hooks/{name}").strip()
    except GitError as exc:
        raise HookError(str(exc)) from None
    return Path(found)


def log_path() -> Path:
    return artifact.data_home() / "logs" / "update.log"


def _command(name: str) -> str:
    """The line that does the hook's work: what an engineer with a hook of their own adds to it."""
    python = shlex.quote(sys.executable)
    if name == PREPARE:
        return (
            f'[ -n "$2" ] || {python} -m codedouble.trainer.cli commit-message --repo "$(pwd)" --into "$1" '
            f"--within {DRAFT_SECONDS} </dev/null >/dev/null 2>&1 || true"
        )
    log = shlex.quote(str(log_path()))
    return (
        f'( nohup {python} -m codedouble.trainer.cli update --no-train --repo "$(pwd)" >>{log} 2>&1 & ) >/dev/null 2>&1'
    )


def script(name: str) -> str:
    """The hook's text: this interpreter runs codedouble, so the hook works outside the virtualenv too."""
    head = (
        f"#!/bin/sh\n{MARKER}{name} (installed by `codedouble hook install`; `codedouble hook uninstall` removes it)\n"
    )
    if name == PREPARE:
        python = shlex.quote(sys.executable)
        return (
            head + "# Drafts a message in your voice when git has none ($2 empty: not -m/-F, merges, squashes,\n"
            f"# templates or amends); gives up after {DRAFT_SECONDS} s and never fails the commit.\n"
            '[ -z "$2" ] || exit 0\n'
            # `timeout` bounds the interpreter's start too, where the system has it; the watchdog in the command
            # bounds the rest everywhere. stdin is closed: nothing may wait on the terminal.
            f'limit=; command -v timeout >/dev/null 2>&1 && limit="timeout {DRAFT_SECONDS + 1}"\n'
            f'$limit {python} -m codedouble.trainer.cli commit-message --repo "$(pwd)" --into "$1" '
            f"--within {DRAFT_SECONDS} </dev/null >/dev/null 2>&1\n"
            "exit 0\n"
        )
    return (
        head + "# Adds each new commit's code to your double in the background; never blocks or fails the commit.\n"
        f"mkdir -p {shlex.quote(str(log_path().parent))} 2>/dev/null\n"
        f"{_command(name)}\n"
        "exit 0\n"
    )


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def install(repo: Path, name: str = "post-commit") -> Path:
    if name not in HOOKS:
        raise HookError(f"codedouble has no {name} hook; it has {', '.join(HOOKS)}")
    path = hook_path(repo, name)
    if path.exists() and not _ours(path):
        raise HookError(
            f"{path} is a hook of your own; codedouble leaves it alone. To chain, add this line to it: {_command(name)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, script(name))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def uninstall(repo: Path, name: str = "post-commit") -> Path | None:
    """Remove codedouble's hook; None when there is none. A hook of the user's own is refused, not removed."""
    path = hook_path(repo, name)
    if not path.exists():
        return None
    if not _ours(path):
        raise HookError(f"{path} was not installed by codedouble; remove it yourself if you mean to")
    path.unlink()
    return path

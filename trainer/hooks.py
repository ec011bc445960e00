"""The git hooks codedouble installs: `post-commit` feeds each new commit to the double (`update --no-train`).

A hook must never block or fail the engineer's commit: it starts the update detached, in the background,
writes its output to a log in the data directory, and exits 0 whatever happens. An existing hook that is not
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
HOOKS = ("post-commit",)


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


def script(name: str) -> str:
    """The hook's text: this interpreter runs codedouble, so the hook works outside the virtualenv too."""
    python = shlex.quote(sys.executable)
    log = shlex.quote(str(log_path()))
    return (
        "#!/bin/sh\n"
        f"{MARKER}{name} (installed by `codedouble hook install`; `codedouble hook uninstall` removes it)\n"
        "# Adds each new commit's code to your double in the background; never blocks or fails the commit.\n"
        f"mkdir -p {shlex.quote(str(log_path().parent))} 2>/dev/null\n"
        f'( nohup {python} -m codedouble.trainer.cli update --no-train --repo "$(pwd)" >>{log} 2>&1 & ) '
        ">/dev/null 2>&1\n"
        "exit 0\n"
    )


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def install(repo: Path, name: str = "post-commit") -> Path:
    path = hook_path(repo, name)
    if path.exists() and not _ours(path):
        raise HookError(
            f"{path} is a hook of your own; codedouble leaves it alone. To chain, add this line to it: "
            f'{shlex.quote(sys.executable)} -m codedouble.trainer.cli update --no-train --repo "$(pwd)" '
            f">/dev/null 2>&1 &"
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

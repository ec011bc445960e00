"""Build small git repositories in tmp_path for the miner's tests.

Every commit names its author, committer and dates explicitly, and git never reads the global or system
config of the machine running the tests, so the repositories (and their commit ids) are the same on every run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import git
import pytest


@dataclass(frozen=True)
class Person:
    name: str
    email: str

    @property
    def ident(self) -> str:
        return f"{self.name} <{self.email}>"


# No test reaches the network: huggingface_hub and transformers read these once, when they are first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ALICE = Person("Alice Example", "alice@example.com")
ALICE_OLD = Person("Alice Old", "alice@old.example")  # an alias .mailmap maps onto ALICE
BOB = Person("Bob Other", "bob@example.com")

# The first commit's date; each later commit is one day on, unless a test names its date.
START = datetime(2021, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))


def isolate_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """git (ours and the miner's) sees no global or system config and no identity from the environment.
    A function of its own so that fixtures of a wider scope can apply it with `pytest.MonkeyPatch.context()`."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_AUTHOR_DATE",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_COMMITTER_DATE",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "EMAIL",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch)


class GitRepo:
    """A working-tree repository built commit by commit."""

    def __init__(self, path: Path, user_email: str | None = ALICE.email) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.repo = git.Repo.init(path, initial_branch="main")
        self._next_date = START
        if user_email is not None:
            self.set_user_email(user_email)

    # --- configuration -------------------------------------------------------------------------------
    def set_user_email(self, email: str) -> None:
        with self.repo.config_writer() as config:
            config.set_value("user", "email", email)

    def mailmap(self, text: str) -> None:
        """Write .mailmap (commit it like any other file)."""
        self.write(".mailmap", text)

    # --- the working tree ----------------------------------------------------------------------------
    def write(self, relpath: str, content: str | bytes) -> Path:
        path = self.path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def read(self, relpath: str) -> str:
        return (self.path / relpath).read_text(encoding="utf-8")

    def remove(self, relpath: str) -> None:
        self.repo.git.rm("-q", relpath)

    def mv(self, old: str, new: str) -> None:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        self.repo.git.mv(old, new)

    def symlink(self, relpath: str, target: str) -> None:
        os.symlink(target, self.path / relpath)

    def gitlink(self, relpath: str, commit: str) -> None:
        """A submodule entry at `relpath` pointing at `commit` (of another repository), not checked out."""
        (self.path / relpath).mkdir(parents=True, exist_ok=True)  # an unpopulated submodule's empty directory
        self.repo.git.update_index("--add", "--cacheinfo", f"160000,{commit},{relpath}")

    # --- history -------------------------------------------------------------------------------------
    def _date(self, date: datetime | None) -> datetime:
        if date is None:
            date = self._next_date
        self._next_date = max(self._next_date, date) + timedelta(days=1)
        return date

    @staticmethod
    def _env(author: Person, date: datetime, committer: Person | None = None) -> dict[str, str]:
        committer = committer or author
        return {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_AUTHOR_DATE": date.isoformat(),
            "GIT_COMMITTER_NAME": committer.name,
            "GIT_COMMITTER_EMAIL": committer.email,
            "GIT_COMMITTER_DATE": date.isoformat(),
        }

    def commit(self, message: str, author: Person = ALICE, date: datetime | None = None) -> str:
        """Stage everything in the working tree and commit it as `author`; returns the commit id."""
        self.repo.git.add("-A")
        self.repo.git.commit(
            "-q", "--allow-empty", "--no-verify", "-m", message, env=self._env(author, self._date(date))
        )
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.repo.git.rev_parse(rev)

    def branch(self, name: str) -> None:
        self.repo.git.branch(name)

    def checkout(self, name: str) -> None:
        self.repo.git.checkout("-q", name)

    def merge(
        self, branch: str, message: str | None = None, author: Person = ALICE, date: datetime | None = None
    ) -> str:
        """A real merge commit (--no-ff) of `branch` into the current branch."""
        self.repo.git.merge(
            "-q",
            "--no-ff",
            "--no-edit",
            "-m",
            message or f"Merge branch {branch}",
            branch,
            env=self._env(author, self._date(date)),
        )
        return self.head()

    def clone(self, dest: Path, *args: str) -> Path:
        """`git clone ARGS file://self dest` (file:// so that --depth is honoured)."""
        git.Git().clone("-q", *args, self.path.as_uri(), str(dest))
        return dest

    def close(self) -> None:
        self.repo.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread is as fast, and on a busy 2-core machine (pytest-xdist workers side by side)
    two threads that wait on each other make every forward pass many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_repo(tmp_path: Path):
    """make_repo(name="repo", user_email=ALICE.email) -> GitRepo under tmp_path."""
    made: list[GitRepo] = []

    def make(name: str = "repo", user_email: str | None = ALICE.email) -> GitRepo:
        repo = GitRepo(tmp_path / name, user_email)
        made.append(repo)
        return repo

    yield make
    for repo in made:
        repo.close()


@pytest.fixture
def repo(make_repo) -> GitRepo:
    return make_repo()

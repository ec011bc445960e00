"""`codedouble update`, `rollback`, `default` and `hook`: the double follows new commits without a retrain.

A history is built here and a tiny double trained into a scratch data directory (XDG_DATA_HOME); then a
commit adds a function with a line nothing else holds, and the double must complete that line after an
update, while the held-out commits of the original split stay unseen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_server import TINY

from codedouble.server.contract import artifact, commits, corpus
from codedouble.server.engine.engine import load as load_engine
from codedouble.server.engine.engine import load_model
from codedouble.server.engine.ngram import Request
from codedouble.trainer import cli, hooks
from codedouble.trainer.mining import dataset
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.training.train import train
from codedouble.trainer.training.update import UpdateError, UpdateOptions, rollback, update
from conftest import GitRepo

NEW_LINE = "    return ledger.reconcile(entries, strict=True, currency=ledger.home_currency)"
NEW_FUNCTION = f"def settle_ledger(ledger, entries):\n    entries = [e for e in entries if e.amount]\n{NEW_LINE}\n"


WORDS = "alpha beta gamma delta omega sigma kappa theta lambda zeta rho tau".split()


def _helpers(n: int, stem: str) -> str:
    """`n` definitions, each its own words (the split drops training code too like held-out code)."""
    out = []
    for i in range(n):
        a, b, c = (WORDS[(len(stem) * 7 + i * k) % len(WORDS)] for k in (1, 3, 5))
        out.append(
            f"def {stem}_{a}_{i}({b}, {c}=None):\n    {stem}_{a} = [{b}_{i} for {b}_{i} in {b} if {b}_{i} != {c}]\n"
            f"    return {{{stem!r}: sorted({stem}_{a}), {a!r}: {i} * len({b})}}\n"
        )
    return "\n\n".join(out)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread) -> dict[str, object]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    repo = GitRepo(tmp_path / "repo")
    for i, stem in enumerate(("collect", "render", "gather", "order", "merge", "split")):
        repo.write(f"app/m{i}.py", _helpers(5, stem))
        repo.commit(f"Add {stem} helpers")
    out = tmp_path / "dataset"
    mine(repo.path, out, MineOptions(), progress=False)
    first = train(out, replace(TINY, heldout_fraction=0.2), progress=False).artifact
    return {"repo": repo, "dataset": out, "first": first}


def _request(before: str) -> Request:
    return Request("app/ledger.py", before, "\n", "line")


def _commit_new_function(repo: GitRepo) -> str:
    repo.write("app/ledger.py", NEW_FUNCTION)
    return repo.commit("Settle ledgers")


def test_update_puts_a_new_commit_in_the_corpus_at_once_and_keeps_the_previous_double(setup) -> None:
    repo, out, first = setup["repo"], setup["dataset"], setup["first"]
    prefix = (
        "def settle_ledger(ledger, entries):\n    entries = [e for e in entries if e.amount]\n    return ledger.rec"
    )
    rest = NEW_LINE.split("ledger.rec")[1]
    assert not load_engine(first).ngram.complete(_request(prefix)).startswith(rest)

    sha = _commit_new_function(repo)
    result = update(out, UpdateOptions(train=False), progress=False)
    now = artifact.current_artifact(str(repo.path.resolve()))
    assert now == result.artifact != first and result.previous == first
    assert result.new_commits == 1 and result.new_records == 1 and result.corpus_added >= 1
    engine = load_engine(now)
    assert engine.ngram.complete(_request(prefix)).startswith(rest)  # the n-gram's raw guess, before tidying

    manifest = artifact.read_manifest(now)
    old = artifact.read_manifest(first)
    assert manifest["split"] == old["split"]  # the held-out commits stay the original's
    assert manifest["previous"] == first.name and manifest["updates"][-1]["commits"] == [sha]
    assert manifest["updates"][-1]["trained"] is False
    assert (now / "model.safetensors").stat().st_ino == (first / "model.safetensors").stat().st_ino  # linked
    assert artifact.member_hashes(now) == manifest[artifact.FILES]
    # The new commit's message joins the commit index that drafts messages; the old ones stay.
    index = {e.commit: e.message for e in commits.load(now)}
    assert index[sha] == "Settle ledgers" and set(index) > {e.commit for e in commits.load(first)}
    held = set(old["split"]["heldout_commits"])
    assert held
    corpus_text = "".join(s.text for s in corpus.load(now))
    for record in dataset.load_records(out):
        if record.commit in held and record.after:
            assert record.after not in corpus_text  # held-out code never reaches the corpus

    assert update(out, UpdateOptions(train=False), progress=False).notes == ["up to date: nothing new to add"]


def test_update_fine_tunes_in_place_and_rollback_returns_to_the_previous_double(setup, capsys) -> None:
    repo, out, first = setup["repo"], setup["dataset"], setup["first"]
    _commit_new_function(repo)
    result = update(out, UpdateOptions(steps=3, eval_every=1, eval_batches=1, batch_size=2), progress=False)
    now = result.artifact
    manifest = artifact.read_manifest(now)
    last = manifest["updates"][-1]
    assert last["trained"] is True and last["steps"] == 3 and last["replayed_records"] >= 1
    assert (now / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()
    assert artifact.member_hashes(now) == manifest[artifact.FILES]
    load_model(now)  # the fine-tuned weights load as the server loads them

    assert cli.main(["rollback", str(out)]) == 0
    assert artifact.current_artifact(str(repo.path.resolve())) == first
    assert "serving" in capsys.readouterr().err
    with pytest.raises(UpdateError, match="no previous double"):
        rollback(dataset_dir=out)


def test_the_default_double_follows_updates_and_old_updates_are_pruned(setup) -> None:
    repo, out, first = setup["repo"], setup["dataset"], setup["first"]
    assert artifact.default_artifact() is None
    assert cli.main(["default", str(first)]) == 0
    made = []
    for i in range(3):
        repo.write(f"app/more{i}.py", _helpers(2, f"more{i}"))
        repo.commit(f"More {i}")
        made.append(update(out, UpdateOptions(train=False), progress=False).artifact)
        assert artifact.default_artifact() == made[-1]  # the default was the current double: it moves along
    assert first.exists()  # a double `train` made is the user's: never pruned
    assert not made[0].exists()  # neither served nor the one rollback returns to
    assert made[1].exists() and made[2].exists()


def test_update_refuses_what_it_cannot_do(setup, tmp_path: Path) -> None:
    with pytest.raises(UpdateError, match="no double yet"):
        update(None, UpdateOptions(train=False), repository=GitRepo(tmp_path / "other").path, progress=False)
    with pytest.raises(UpdateError, match="no interrupted update"):
        update(setup["dataset"], UpdateOptions(resume=True), progress=False)


def test_the_post_commit_hook_updates_in_the_background_and_never_fails_the_commit(setup, tmp_path: Path) -> None:
    repo, out = setup["repo"], setup["dataset"]
    path = hooks.install(repo.path)
    assert os.access(path, os.X_OK) and hooks.MARKER in path.read_text()
    assert hooks.install(repo.path) == path  # installing again replaces our own hook

    head = repo.head()
    started = time.monotonic()
    sha = _commit_new_function(repo)
    assert time.monotonic() - started < 5  # the commit did not wait for the update
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        manifest = dataset.read_manifest(out)
        current = artifact.current_artifact(str(repo.path.resolve()))
        if manifest and manifest["head"] == sha and current != setup["first"]:
            break
        time.sleep(0.5)
    assert manifest is not None and manifest["head"] == sha != head, hooks.log_path().read_text()
    assert "settle_ledger" in (current / corpus.CORPUS).read_text()

    assert hooks.uninstall(repo.path) == path and not path.exists()
    assert hooks.uninstall(repo.path) is None


def test_an_engineers_own_hook_is_never_overwritten_or_removed(setup) -> None:
    repo = setup["repo"]
    own = hooks.hook_path(repo.path, "post-commit")
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text("#!/bin/sh\necho mine\n")
    with pytest.raises(hooks.HookError, match="a hook of your own"):
        hooks.install(repo.path)
    with pytest.raises(hooks.HookError, match="not installed by codedouble"):
        hooks.uninstall(repo.path)
    assert own.read_text() == "#!/bin/sh\necho mine\n"


def test_a_failing_update_never_fails_the_commit(setup, tmp_path: Path) -> None:
    """The hook with no double to update (the data directory moved away): the commit still succeeds."""
    repo = setup["repo"]
    hooks.install(repo.path)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "empty")}
    repo.write("app/x.py", _helpers(1, "x"))
    subprocess.run(["git", "add", "-A"], cwd=repo.path, check=True, env=env)
    done = subprocess.run(
        ["git", "-c", "user.name=A", "commit", "-qm", "x"], cwd=repo.path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert sys.executable in hooks.hook_path(repo.path, "post-commit").read_text()


def test_update_of_a_double_of_two_repositories_follows_both(tmp_path: Path, monkeypatch, one_torch_thread) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    first, second = GitRepo(tmp_path / "first"), GitRepo(tmp_path / "second")
    for repo, stems in ((first, ("collect", "render", "gather")), (second, ("order", "merge", "split"))):
        for i, stem in enumerate(stems):
            repo.write(f"lib/{stem}.py", _helpers(5, stem))
            repo.commit(f"Add {stem} helpers {i}")
    out = tmp_path / "dataset"
    mine([first.path, second.path], out, MineOptions(), progress=False)
    before = train(out, replace(TINY, heldout_fraction=0.2), progress=False).artifact
    for repo in (first, second):
        assert artifact.current_artifact(str(repo.path.resolve())) == before

    _commit_new_function(second)  # in the second repository: the hook there runs `update --repo second`
    result = update(None, UpdateOptions(train=False), repository=second.path, progress=False)
    assert result.new_records == 1 and result.previous == before
    for repo in (first, second):  # one double of both: every repository's pointer moved
        assert artifact.current_artifact(str(repo.path.resolve())) == result.artifact
    assert "settle_ledger" in (result.artifact / corpus.CORPUS).read_text()
    paths = [r["path"] for r in artifact.read_manifest(result.artifact)["dataset"]["repositories"]]
    assert paths == [str(first.path.resolve()), str(second.path.resolve())]

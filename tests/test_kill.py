"""Loses nothing: `mine` (fresh and incremental), `train` and `import` killed outright (SIGKILL: no handler, no
`finally` runs) leave the dataset and the current double each the old one or the new one, whole, and the same
command run again (`train --resume` for a run that checkpointed) completes.

Where to kill: when the command's staging appears on disk (the shard or manifest being written, the checkpoint
just saved, the artifact's staging directory), which hits the dangerous windows on purpose; and after delays
spread over the command's measured duration, which hit wherever the work happens to be. Nothing in the product
knows it is being tested. The real command line runs as a subprocess in a session of its own, and the whole
session (mine's worker processes and git included) is killed at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_server import build_history, server_env

from codedouble.server.contract import artifact
from codedouble.trainer.mining import dataset
from codedouble.trainer.training import checkpoint
from conftest import GitRepo, isolate_git

FRACTIONS = (0.3, 0.7)  # of a measured run: where the delay-kills fall
COMMAND_SECONDS = 180
# A tiny double the command line can train in seconds; the loop checkpoints every 50 steps, so once here.
TRAIN = ["--from-scratch", "--steps", "52", "--batch-size", "1", "--block-size", "32", "--tune-lines", "0"]
TRAIN += ["--heldout", "0.2", "--quiet"]


def codedouble(*args: str) -> list[str]:
    return [sys.executable, "-m", "codedouble.trainer.cli", *args]


def run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run a command to the end; its duration in seconds."""
    started = time.monotonic()
    done = subprocess.run(codedouble(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_SECONDS)
    assert done.returncode == 0, f"codedouble {args[0]} failed:\n{done.stderr[-3000:]}"
    return time.monotonic() - started


def run_killed(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    *,
    after: float | None = None,
    when: Callable[[], bool] | None = None,
) -> bool:
    """Start a command and SIGKILL it (with every process it started) `after` seconds in, or as soon as `when()`
    holds; False if it finished first."""
    child = subprocess.Popen(
        codedouble(*args),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        while child.poll() is None:
            elapsed = time.monotonic() - started
            assert elapsed < COMMAND_SECONDS, f"codedouble {args[0]} never got there"
            if (after is not None and elapsed >= after) or (when is not None and when()):
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                return True
            time.sleep(0.001)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return False


def appears(folder: Path, pattern: str) -> Callable[[], bool]:
    return lambda: any(folder.glob(pattern))


# --- what "whole" means --------------------------------------------------------------------------------


def dataset_head(out: Path) -> str | None:
    """The commit a dataset was mined up to (None: no dataset), once every record of it has been read."""
    manifest = dataset.read_manifest(out)
    if manifest is None:
        return None
    assert all((out / dataset.RECORDS_DIR / name).is_file() for name in manifest["shards"])
    records = list(dataset.load_records(out))
    assert len(records) == sum(run["records"] for run in manifest["runs"])
    return str(manifest["head"])


def content(out: Path) -> set[str]:
    return {r.content_hash for r in dataset.load_records(out)}


def current_double(repo: Path) -> Path | None:
    """The repository's current double, once its manifest, config and weights have been read whole."""
    pointer = artifact.doubles_dir(str(repo.resolve())) / artifact.CURRENT
    found = artifact.current_artifact(str(repo.resolve()))
    assert pointer.exists() == (found is not None), "the current pointer names a double that is not there"
    if found is None:
        return None
    artifact.read_manifest(found)
    json.loads((found / "config.json").read_text(encoding="utf-8"))
    assert load_file(str(found / "model.safetensors"))
    return found


# --- the histories -------------------------------------------------------------------------------------


def fast_history(repo: Path, first: int, last: int) -> None:
    """Commits `first`..`last` by Alice, three new functions each across eleven modules, through `git
    fast-import` (a thousand commits in a second or two): a history long enough that mining takes seconds and
    uses worker processes."""
    modules: dict[int, list[str]] = {}
    for n in range(first * 3):  # the modules as commit `first` finds them
        modules.setdefault(n % 11, []).append(handler(n))
    stream: list[bytes] = []
    for i in range(first, last):
        when = 1614584400 + i * 3600
        message = f"Add handlers {i}\n".encode()
        stream.append(f"commit refs/heads/main\nauthor Alice Example <alice@example.com> {when} +0200\n".encode())
        stream.append(f"committer Alice Example <alice@example.com> {when} +0200\ndata {len(message)}\n".encode())
        stream.append(message)
        if i == first and first > 0:
            stream.append(b"from refs/heads/main^0\n")
        for n in range(i * 3, i * 3 + 3):
            modules.setdefault(n % 11, []).append(handler(n))
            data = "".join(modules[n % 11]).encode()
            stream.append(f"M 100644 inline pkg/mod{n % 11}.py\ndata {len(data)}\n".encode() + data + b"\n")
        stream.append(b"\n")
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(stream), check=True)


def handler(n: int) -> str:
    return (
        f"def handler_{n}(request, limit={n}):\n    items = request.items[:limit]\n"
        f"    return [item.name.upper() for item in items if item.size > {n}]\n\n\n"
    )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    isolate_git(monkeypatch)
    env = server_env(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])  # the commands' doubles are where the test looks
    return env


# --- mine ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("incremental", [False, True], ids=["fresh", "incremental"])
def test_mine_killed_anywhere_leaves_the_old_dataset_or_the_new_one(
    incremental: bool, tmp_path: Path, env: dict[str, str]
) -> None:
    repo = tmp_path / "long"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    old_head = None
    before = tmp_path / "before"
    if incremental:
        fast_history(repo, 0, 400)
        run(["mine", str(repo), "--out", str(before), "--all-authors", "--quiet"], env, tmp_path)
        old_head = dataset_head(before)
        fast_history(repo, 400, 1000)
    else:
        fast_history(repo, 0, 1000)
    reference = tmp_path / "reference"
    if incremental:
        shutil.copytree(before, reference)
    seconds = run(["mine", str(repo), "--out", str(reference), "--all-authors", "--quiet"], env, tmp_path)
    new_head = dataset_head(reference)
    assert new_head != old_head

    out = tmp_path / "dataset"
    kills: dict[str, bool] = {}
    trials: list[tuple[str, dict[str, object]]] = [
        ("shard being written", {"when": appears(out / dataset.RECORDS_DIR, ".part-*.tmp")}),
        ("manifest being written", {"when": appears(out, f".{dataset.MANIFEST}.*.tmp")}),
        *((f"after {f:.0%}", {"after": f * seconds}) for f in FRACTIONS),
    ]
    for name, kill in trials:
        shutil.rmtree(out, ignore_errors=True)
        if incremental:
            shutil.copytree(before, out)
        args = ["mine", str(repo), "--out", str(out), "--all-authors", "--quiet"]
        kills[name] = run_killed(args, env, tmp_path, **kill)  # type: ignore[arg-type]
        assert dataset_head(out) in {old_head, new_head}, f"killed ({name}): neither the old dataset nor the new"
        run(args, env, tmp_path)
        assert dataset_head(out) == new_head and content(out) == content(reference), f"after a kill ({name})"
    print(f"mine ({seconds:.1f} s) killed: {kills}", file=sys.stderr)
    assert kills["shard being written"], kills  # the long window is always hit; the others as they fall


# --- train ---------------------------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A short history and its dataset, for training."""
    repo = GitRepo(tmp_path / "work")
    try:
        build_history(repo)
    finally:
        repo.close()
    run(["mine", str(repo.path), "--out", str(tmp_path / "dataset"), "--all-authors", "--quiet"], env, tmp_path)
    return repo.path, tmp_path / "dataset"


def test_train_killed_anywhere_keeps_the_current_double_and_resumes(
    small: tuple[Path, Path], env: dict[str, str], tmp_path: Path
) -> None:
    repo, data = small
    doubles = artifact.doubles_dir(str(repo.resolve()))
    seconds = run(["train", str(data), *TRAIN], env, repo)  # the old double, current
    kills: dict[str, bool] = {}
    trials: list[tuple[str, dict[str, object]]] = [
        ("checkpoint saved", {"when": lambda: any(checkpoint.exists(w / "last") for w in doubles.glob(".*.training"))}),
        ("artifact being written", {"when": appears(doubles, ".2*.tmp")}),
        ("after 50%", {"after": 0.5 * seconds}),
    ]
    for name, kill in trials:
        time.sleep(1.1)  # a new run's default name is its start time to the second
        old = current_double(repo)
        assert old is not None
        kills[name] = run_killed(["train", str(data), *TRAIN], env, repo, **kill)  # type: ignore[arg-type]
        now = current_double(repo)
        assert now == old or (now is not None and now.name > old.name), f"killed ({name}): the current double changed"
        resumable = any(checkpoint.exists(w / "last") for w in doubles.glob(".*.training"))
        run(["train", str(data), *TRAIN, *(["--resume"] if resumable else [])], env, repo)
        done = current_double(repo)
        assert done is not None and done.name > old.name, f"after a kill ({name})"
        assert artifact.read_manifest(done)["training"]["steps_done"] == 52
        assert not (doubles / f".{done.name}.training").exists(), "a finished run leaves no checkpoints behind"
    print(f"train ({seconds:.1f} s) killed: {kills}", file=sys.stderr)
    assert kills["checkpoint saved"] and kills["artifact being written"], kills


# --- import --------------------------------------------------------------------------------------------


def test_import_killed_anywhere_keeps_the_current_double_or_installs_the_new_one_whole(
    small: tuple[Path, Path], env: dict[str, str], tmp_path: Path
) -> None:
    repo, data = small
    doubles = artifact.doubles_dir(str(repo.resolve()))
    run(["train", str(data), *TRAIN], env, repo)
    old = current_double(repo)
    assert old is not None
    shutil.copytree(old, tmp_path / "shared")  # the double as another machine would send it
    archive = tmp_path / "shared.tar"
    run(["export", str(tmp_path / "shared"), "--out", str(archive)], env, repo)
    seconds = run(["import", str(archive), "--out", str(tmp_path / "measured")], env, repo)

    kills: dict[str, bool] = {}
    trials: list[tuple[str, dict[str, object]]] = [
        ("staging being filled", {"when": appears(doubles, ".shared.*.tmp")}),
        *((f"after {f:.0%}", {"after": f * seconds}) for f in FRACTIONS),
    ]
    for name, kill in trials:
        shutil.rmtree(doubles / "shared", ignore_errors=True)
        artifact.mark_current(old)
        kills[name] = run_killed(["import", str(archive)], env, repo, **kill)  # type: ignore[arg-type]
        assert current_double(repo) in {old, doubles / "shared"}, f"killed ({name})"
        if (doubles / "shared").exists():
            artifact.read_manifest(doubles / "shared")
            assert load_file(str(doubles / "shared" / "model.safetensors"))
        run(["import", str(archive)], env, repo)
        assert current_double(repo) == doubles / "shared", f"after a kill ({name})"
        assert not list(doubles.glob(".*.tmp")), "the killed import's staging is swept"
    print(f"import ({seconds:.1f} s) killed: {kills}", file=sys.stderr)
    assert kills["staging being filled"], kills

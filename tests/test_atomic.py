"""The one atomic writer: a file or a directory is the old version or the new one, even when the writing
process is killed outright midway (SIGKILL: no exception handler, no `finally`, runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codedouble.server.contract import atomic

# The child writes half of the new content, tells the parent, and waits to be killed.
KILLED_FILE = """
import sys, time
from pathlib import Path
from codedouble.server.contract import atomic
with atomic.file(Path(sys.argv[1])) as f:
    f.write("new " * 100_000)
    f.flush()
    print("half", flush=True)
    time.sleep(60)
    f.write("rest")
"""
KILLED_DIRECTORY = """
import sys, time
from pathlib import Path
from codedouble.server.contract import atomic
with atomic.directory(Path(sys.argv[1])) as folder:
    (folder / "model.safetensors").write_bytes(b"new weights")
    print("half", flush=True)
    time.sleep(60)
    (folder / "manifest.json").write_text("{}")
"""


def kill_midway(script: str, target: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(target)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "half"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL


def test_a_file_killed_midway_keeps_its_previous_content(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text("old")
    kill_midway(KILLED_FILE, target)
    assert target.read_text() == "old"
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert all(name.startswith(".manifest.json.") and name.endswith(".tmp") for name in leftovers)
    atomic.write_text(target, "new")  # the next write is not disturbed by what the killed one left
    assert target.read_text() == "new"


def test_a_file_killed_midway_that_did_not_exist_is_still_absent(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    kill_midway(KILLED_FILE, target)
    assert not target.exists()


def test_a_directory_killed_midway_keeps_the_previous_one_and_the_next_write_sweeps_the_staging(tmp_path: Path) -> None:
    out = tmp_path / "double"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"old weights")
    kill_midway(KILLED_DIRECTORY, out)
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == b"old weights"
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the killed writer's staging
    with atomic.directory(out) as folder:
        (folder / "model.safetensors").write_bytes(b"new weights")
    assert (out / "model.safetensors").read_bytes() == b"new weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["double"]  # staging swept, nothing else beside it


def test_an_exception_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "corpus.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="disk trouble"), atomic.file(target) as f:
        f.write("new\n")
        raise RuntimeError("disk trouble")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.jsonl"]


def test_a_staged_path_for_a_library_replaces_the_file_only_when_written(tmp_path: Path) -> None:
    target = tmp_path / "tokens.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(OSError), atomic.staged(target) as tmp:
        tmp.write_bytes(b"partial")
        raise OSError("No space left on device")
    assert target.read_bytes() == b"old"
    with atomic.staged(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.safetensors"]
    assert target.stat().st_mode & 0o777 == atomic.FILE_MODE


def test_a_crash_between_the_two_renames_is_repaired_by_the_next_write(tmp_path: Path) -> None:
    """A directory swap moves the old one aside before the new one goes in; killed in between, the old one
    goes back before anything else."""
    out = tmp_path / "double"
    aside = tmp_path / ".double.old"
    aside.mkdir()
    (aside / "model.safetensors").write_bytes(b"old weights")
    with pytest.raises(RuntimeError), atomic.directory(out):
        assert (out / "model.safetensors").read_bytes() == b"old weights"
        raise RuntimeError("stop before replacing")
    assert (out / "model.safetensors").read_bytes() == b"old weights"
    assert not aside.exists()


def test_replacing_a_directory_swaps_it_in_one_step_so_it_is_never_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moving the old directory aside and the new one in leaves an instant with neither; a reader then (the
    server, `train --resume`) or a SIGKILL then sees no double. On Linux the two are swapped instead."""
    out = tmp_path / "double"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"old weights")
    moves: list[tuple[str, str]] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: moves.append((str(a), str(b))) or real_replace(a, b))
    with atomic.directory(out) as folder:
        (folder / "model.safetensors").write_bytes(b"new weights")
    assert (out / "model.safetensors").read_bytes() == b"new weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["double"]
    if sys.platform == "linux":
        assert moves == [], "swapped, not moved aside"


def test_without_the_swap_a_directory_is_still_replaced_by_two_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # another platform, or a file system without it
    out = tmp_path / "double"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"old weights")
    with atomic.directory(out) as folder:
        (folder / "model.safetensors").write_bytes(b"new weights")
    assert (out / "model.safetensors").read_bytes() == b"new weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["double"]

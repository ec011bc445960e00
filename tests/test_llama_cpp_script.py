"""scripts/llama_cpp.sh, which `make test` runs before the tests: where llama.cpp's server cannot be built it
says why and lets the tests run (tests/test_llama_cpp.py then skips), except under CI, where it fails: CI must
test against the real engine. Nothing is downloaded or built here: the machine is made to lack cmake."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "llama_cpp.sh"


def _without_cmake(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds the tools the script needs before building, and no cmake."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("dirname", "cmp", "c++"):
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"no {name} on this machine")
        (tools / name).symlink_to(found)
    return {**os.environ, "PATH": str(tools), "CI": ""}


def test_without_cmake_the_build_is_skipped_saying_why(tmp_path: Path) -> None:
    done = subprocess.run(
        ["/bin/bash", str(SCRIPT), str(tmp_path / "llama.cpp")], env=_without_cmake(tmp_path), capture_output=True
    )
    assert done.returncode == 0, done.stderr
    said = done.stderr.decode()
    assert "no cmake" in said and "tests/test_llama_cpp.py will skip" in said
    assert not (tmp_path / "llama.cpp").exists()  # nothing half-made


def test_under_ci_a_build_that_cannot_happen_fails(tmp_path: Path) -> None:
    env = {**_without_cmake(tmp_path), "CI": "true"}
    done = subprocess.run(["/bin/bash", str(SCRIPT), str(tmp_path / "llama.cpp")], env=env, capture_output=True)
    assert done.returncode == 1 and b"no cmake" in done.stderr


def test_a_server_built_from_this_pin_is_not_built_again(tmp_path: Path) -> None:
    built = tmp_path / "llama.cpp"
    (built / "bin").mkdir(parents=True)
    (built / "bin" / "llama-server").write_text("#!/bin/sh\n")
    (built / "bin" / "llama-server").chmod(0o755)
    shutil.copy(SCRIPT.parent / "llama_cpp.txt", built / "built-from")
    env = _without_cmake(tmp_path)
    done = subprocess.run(["/bin/bash", str(SCRIPT), str(built)], env=env, capture_output=True)
    assert done.returncode == 0 and done.stderr == b""  # not even the missing cmake is mentioned: nothing to do
    (built / "built-from").write_text("llama-cpp-python==0.0.1\n")  # another pin: it would build again
    done = subprocess.run(["/bin/bash", str(SCRIPT), str(built)], env=env, capture_output=True)
    assert b"no cmake" in done.stderr

"""Where a double lives and how it is written: a directory that loads with transformers as it is.

    ARTIFACT/model.safetensors, config.json, generation_config.json   the model (never pickle)
    ARTIFACT/tokenizer.json, tokenizer_config.json                   its tokenizer
    ARTIFACT/manifest.json                                           provenance: data, split, training

Written into a temporary directory beside ARTIFACT and renamed into place, so ARTIFACT is either the old
artifact, the new one, or absent: never half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ARTIFACT_FORMAT = 1
MANIFEST = "manifest.json"
CURRENT = "current"  # file in a repository's doubles folder naming its newest artifact


def data_home() -> Path:
    """The user's data directory for codedouble (XDG_DATA_HOME, else ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "codedouble"


def doubles_dir(repository: str) -> Path:
    """One folder of doubles per mined repository, named readably and made unique by the path's hash."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(repository).name).strip("-") or "repository"
    digest = hashlib.sha256(repository.encode()).hexdigest()[:8]
    return data_home() / "doubles" / f"{name}-{digest}"


def current_artifact(repository: str) -> Path | None:
    """The newest double of `repository` in the data directory, if there is one."""
    folder = doubles_dir(repository)
    pointer = folder / CURRENT
    if not pointer.is_file():
        return None
    path = folder / pointer.read_text(encoding="utf-8").strip()
    return path if (path / MANIFEST).is_file() else None


def mark_current(artifact: Path) -> None:
    pointer = artifact.parent / CURRENT
    tmp = pointer.with_name(f".{CURRENT}.tmp")
    tmp.write_text(artifact.name + "\n", encoding="utf-8")
    os.replace(tmp, pointer)


def write_atomically(out: Path, fill: Callable[[Path], None]) -> None:
    """Let `fill` write a complete artifact into a fresh directory, then put it at `out` in one rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.with_name(f".{out.name}.old")
    if old.exists() and not out.exists():
        os.replace(old, out)  # a crash mid-swap last time: the previous artifact goes back first
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        fill(staging)
        if not out.exists():
            os.replace(staging, out)
            return
        # rename() cannot replace a non-empty directory: move the old one aside, swap, then drop it.
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    data = {"tool": "codedouble", "artifact_format": ARTIFACT_FORMAT, **manifest}
    (folder / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


class ArtifactError(ValueError):
    pass


def read_manifest(artifact: Path) -> dict[str, Any]:
    path = artifact / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{artifact} is not a codedouble artifact (no {MANIFEST}); create one with `codedouble train`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("tool") != "codedouble" or manifest.get("artifact_format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{artifact} is not a codedouble artifact of format {ARTIFACT_FORMAT}")
    return manifest


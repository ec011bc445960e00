"""Where a double lives and how it is written: a directory that loads with transformers as it is.

    ARTIFACT/model.safetensors, config.json, generation_config.json   the model (never pickle)
    ARTIFACT/tokenizer.json, tokenizer_config.json                   its tokenizer
    ARTIFACT/manifest.json                                           provenance: data, split, training

The trainer writes it with `atomic.directory(ARTIFACT)` (a temporary directory beside it, renamed into
place), so ARTIFACT is either the old artifact, the new one, or absent: never half-written. The server reads
it through `read_manifest` and `current_artifact`; both sides take the layout from this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from codedouble.server.contract import atomic
from codedouble.server.contract.errors import CodedoubleError

# 2: doubles fine-tuned from the Llama base (LlamaForCausalLM, 1,024-token context); 1 was the GPT-2 era. A double
# of another format still loads in transformers, but export, update and the serving budgets assume this one.
ARTIFACT_FORMAT = 2
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


def _follow(pointer: Path) -> Path | None:
    """The double a pointer file names (a name beside it, or an absolute path), if it is one."""
    if not pointer.is_file():
        return None
    # The pointer is the artifact's folder name beside it, or an absolute path (`mark_current_of`, `default`:
    # a double of several repositories lives in its primary's folder): joining an absolute path keeps it.
    path = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    return path if (path / MANIFEST).is_file() else None


def current_artifact(repository: str) -> Path | None:
    """The newest double of `repository` in the data directory, if there is one."""
    return _follow(doubles_dir(repository) / CURRENT)


def mark_current(artifact: Path) -> None:
    """Name `artifact` its repository's current double (the file `current` beside it, replaced atomically)."""
    atomic.write_text(artifact.parent / CURRENT, artifact.name + "\n")


def mark_current_of(repository: str, artifact: Path) -> None:
    """Name `artifact` (which lives elsewhere) the current double of `repository` too: its doubles folder's
    `current` holds the artifact's absolute path."""
    folder = doubles_dir(repository)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / CURRENT, str(artifact.resolve()) + "\n")


DEFAULT = "default"  # file in the data directory naming the user's own default double (absolute path)


def default_artifact() -> Path | None:
    """The user's default double (`codedouble train --default`): served where a repository has none."""
    return _follow(data_home() / DEFAULT)


def mark_default(artifact: Path) -> None:
    data_home().mkdir(parents=True, exist_ok=True)
    atomic.write_text(data_home() / DEFAULT, str(artifact.resolve()) + "\n")


def served() -> list[tuple[Path, Path]]:
    """Every pointer in the data directory (each repository's `current`, the user's default) and the double
    it names."""
    pointers = [data_home() / DEFAULT, *(data_home() / "doubles").glob(f"*/{CURRENT}")]
    return [(pointer, named) for pointer in pointers if (named := _follow(pointer)) is not None]


def repoint(old: Path, new: Path) -> list[Path]:
    """Every pointer naming `old` (a repository's `current`, the user's default) made to name `new`: a double
    replaced by `update` or `rollback` keeps every place it was served from. Returns the pointers changed."""
    changed: list[Path] = []
    for pointer, named in served():
        if named.resolve() != old.resolve():
            continue
        same_folder = pointer.parent.resolve() == new.parent.resolve() and pointer.name == CURRENT
        atomic.write_text(pointer, (new.name if same_folder else str(new.resolve())) + "\n")
        changed.append(pointer)
    return changed


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    data = {"tool": "codedouble", "artifact_format": ARTIFACT_FORMAT, **manifest}
    atomic.write_text(folder / MANIFEST, json.dumps(data, indent=2, sort_keys=True) + "\n")


FILES = "files"  # the manifest's record of every other file's SHA-256, which `audit` and `import` verify
# Written into the artifact later by `codedouble eval` (its default report folder): not part of the double.
REPORTS = "eval"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def member_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of the double but its manifest (which holds them) and eval's reports, by relative
    POSIX path."""
    hashes: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name != MANIFEST and name.split("/")[0] != REPORTS:
            hashes[name] = sha256_file(path)
    return hashes


def update_manifest(folder: Path, changes: dict[str, Any]) -> None:
    """Rewrite an artifact's manifest with `changes` merged in (e.g. `forget` marking it stale)."""
    manifest = read_manifest(folder)
    kept = {k: v for k, v in manifest.items() if k not in {"tool", "artifact_format"}}
    write_manifest(folder, {**kept, **changes})


class ArtifactError(CodedoubleError):
    """A directory that is not a double this codedouble can read."""


def read_manifest(artifact: Path) -> dict[str, Any]:
    path = artifact / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{artifact} is not a codedouble artifact (no {MANIFEST}); create one with `codedouble train`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("tool") != "codedouble":
        raise ArtifactError(f"{artifact} is not a codedouble artifact of format {ARTIFACT_FORMAT}")
    found = manifest.get("artifact_format")
    if found != ARTIFACT_FORMAT:
        older = isinstance(found, int) and found < ARTIFACT_FORMAT
        raise ArtifactError(
            f"{artifact} is a double of artifact format {found}, made by "
            f"{'an older' if older else 'another'} codedouble; this one reads format {ARTIFACT_FORMAT}: "
            "train the double again (`codedouble train`)"
        )
    return manifest

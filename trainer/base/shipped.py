"""The base installed with the package (`trainer/base/weights/`), and how an artifact names the base it came from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from codedouble.server.contract.errors import CodedoubleError

WEIGHTS = Path(__file__).resolve().parent / "weights"
REQUIRED = ("manifest.json", "config.json", "model.safetensors", "tokenizer.json")


class NoBaseError(CodedoubleError):
    """This installation has no pretrained base to fine-tune from."""


def shipped_base() -> Path | None:
    """The installed base's folder, or None when this installation has none (a source tree without weights)."""
    return WEIGHTS if all((WEIGHTS / name).is_file() for name in REQUIRED) else None


def require_shipped_base() -> Path:
    base = shipped_base()
    if base is None:
        raise NoBaseError(
            f"this codedouble installation has no pretrained base ({WEIGHTS} lacks {', '.join(REQUIRED)}); "
            "train with --from-scratch, or name one with --base PATH"
        )
    return base


def identity(base: Path) -> dict[str, Any]:
    """What an artifact records of its base: name, the weights' SHA-256, where it was, its corpus."""
    digest = hashlib.sha256()
    with (base / "model.safetensors").open("rb") as weights:
        for chunk in iter(lambda: weights.read(1 << 20), b""):
            digest.update(chunk)
    try:
        manifest = json.loads((base / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    corpus = manifest.get("corpus")
    corpus = corpus if isinstance(corpus, dict) else {}
    return {
        "name": manifest.get("name") or base.name,
        "sha256": digest.hexdigest(),
        "path": str(base),
        "shipped": base == WEIGHTS,
        "corpus_sha256": corpus.get("sha256"),
    }

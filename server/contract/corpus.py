"""The completion corpus: the engineer's own code the count-based systems (cache n-gram, BM25) draw on,
shipped inside the artifact as JSON lines (no pickle). The trainer writes the after-text of every
training-split definition, each once; held-out commits are never in it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from codedouble.server.contract import atomic
from codedouble.server.contract.errors import CodedoubleError

CORPUS = "corpus.jsonl"


@dataclass(frozen=True)
class Snippet:
    path: str
    language: str
    text: str


class CorpusError(CodedoubleError):
    """An artifact whose completion corpus is missing or damaged."""


def write(folder: Path, items: list[Snippet]) -> None:
    with atomic.file(folder / CORPUS) as f:
        for s in items:
            f.write(json.dumps({"path": s.path, "language": s.language, "text": s.text}, ensure_ascii=False) + "\n")


def load(artifact: Path) -> list[Snippet]:
    path = artifact / CORPUS
    if not path.is_file():
        raise CorpusError(f"{artifact} has no {CORPUS} (it was trained by an older codedouble): train it again")
    out: list[Snippet] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                data = json.loads(line)
                out.append(Snippet(data["path"], data["language"], data["text"]))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CorpusError(f"{path}:{number}: not a corpus entry ({exc})") from exc
    return out

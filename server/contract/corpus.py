"""The completion corpus: the engineer's own code the count-based systems (cache n-gram, BM25) draw on,
shipped inside the artifact as JSON lines (no pickle). The trainer writes the after-text of every
training-split definition, each once, and the module-level lines (imports, constants, top-level statements)
the engineer's training commits added; held-out commits are never in it.

The first line names the format; a corpus of another format is refused with "train it again"."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codedouble.server.contract import atomic
from codedouble.server.contract.errors import CodedoubleError

CORPUS = "corpus.jsonl"
# 2: a format line first, and each snippet's kind (module-level lines joined the definitions).
CORPUS_FORMAT = 2

Kind = Literal["definition", "module"]


@dataclass(frozen=True)
class Snippet:
    path: str
    language: str
    text: str
    kind: Kind = "definition"  # a whole definition, or a run of module-level lines (no body to retrieve)


class CorpusError(CodedoubleError):
    """An artifact whose completion corpus is missing, damaged or of another format."""


def write(folder: Path, items: list[Snippet]) -> None:
    with atomic.file(folder / CORPUS) as f:
        f.write(json.dumps({"corpus_format": CORPUS_FORMAT}) + "\n")
        for s in items:
            entry = {"path": s.path, "language": s.language, "kind": s.kind, "text": s.text}
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def load(artifact: Path) -> list[Snippet]:
    path = artifact / CORPUS
    if not path.is_file():
        raise CorpusError(f"{artifact} has no {CORPUS} (it was trained by an older codedouble): train it again")
    out: list[Snippet] = []
    with path.open(encoding="utf-8") as f:
        first = f.readline()
        try:
            found = json.loads(first).get("corpus_format") if first.strip() else None
        except (json.JSONDecodeError, AttributeError):
            found = None
        if found != CORPUS_FORMAT:
            raise CorpusError(
                f"{path} is in corpus format {found or 1}; this codedouble reads format {CORPUS_FORMAT} (it also "
                "holds your module-level code): train it again (`codedouble train`)"
            )
        for number, line in enumerate(f, 2):
            try:
                data = json.loads(line)
                kind = data["kind"]
                if kind not in ("definition", "module"):
                    raise KeyError(f"kind {kind!r}")
                out.append(Snippet(data["path"], data["language"], data["text"], kind))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CorpusError(f"{path}:{number}: not a corpus entry ({exc})") from exc
    return out

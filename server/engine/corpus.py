"""The engineer's own code the count-based systems draw on, shipped inside the artifact (JSON lines, no
pickle): the after-text of every training-split definition, each once. Held-out commits are never in it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from codedouble.trainer.mining.records import ChangeRecord

CORPUS = "corpus.jsonl"


@dataclass(frozen=True)
class Snippet:
    path: str
    language: str
    text: str


class CorpusError(ValueError):
    pass


def snippets(records: Iterable[ChangeRecord]) -> list[Snippet]:
    seen: set[str] = set()
    out: list[Snippet] = []
    for r in records:
        if r.after and r.after.strip() and r.after not in seen:
            seen.add(r.after)
            out.append(Snippet(r.path, r.language, r.after))
    return out


def write(folder: Path, items: list[Snippet]) -> None:
    tmp = folder / f".{CORPUS}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        for s in items:
            f.write(json.dumps({"path": s.path, "language": s.language, "text": s.text}, ensure_ascii=False) + "\n")
    os.replace(tmp, folder / CORPUS)


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

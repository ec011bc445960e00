"""The engineer's recurring edits, as a double ships them for the language server to propose again: each
rewrite rule with its evidence (how often, in which commits, when, and how often the engineer left the old
form standing after first making the change). JSON lines, no pickle.

    ARTIFACT/edits.jsonl   {"edits_format": 1, "classes": {"rename/named/literal": [17, 13], ...}}
                           {"language": "python", "before": [...], "template": [...], "count": 7, ...}  one per rule

`classes` is what train measured of the edits just made, replayed on the training commits (eval's next-edit
task): per class of rewrite (`rules.edit_class`), how many edits of it were proposed elsewhere and how many of
those mostly right, then how many proposals they made and how many were placed right.

A pattern element is `["text", "kind"]` (a token to find as it is) or `{"var": N, "klass": "node"}`; a
template piece is a string (written as is) or `{"var": N}`. Only training-split commits feed it. A double
trained before the file existed has none: the server then proposes only the edit just made again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedouble.server.contract import atomic
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.edits.rules import Element, Lit, Piece, Rewrite, Var

EDITS = "edits.jsonl"
EDITS_FORMAT = 1
# The newest commits kept as evidence per rule: enough to audit it, bounded for a rule made 500 times.
COMMITS_KEPT = 20


@dataclass(frozen=True)
class EditPattern:
    language: str
    rewrite: Rewrite
    count: int  # occurrences in the history
    commits: tuple[str, ...]  # distinct commits that made it, newest first (at most COMMITS_KEPT)
    distinct_commits: int
    first: str  # ISO 8601 dates of the first and the newest occurrence
    last: str
    left: int  # places the old form was still written in definitions changed after the first occurrence

    @property
    def precision(self) -> float:
        """How often the engineer, facing the old form after adopting the rewrite, made it: the share of
        proposals of this rule their own history says are right."""
        return self.count / (self.count + self.left)


class EditsError(CodedoubleError):
    """An artifact whose edit patterns are damaged or of another format."""


def _element(e: Element) -> Any:
    return {"var": e.index, "klass": e.klass} if isinstance(e, Var) else [e.text, e.kind]


def _piece(p: Piece) -> Any:
    return {"var": p.index} if isinstance(p, Var) else p


def to_json(p: EditPattern) -> dict[str, Any]:
    return {
        "language": p.language,
        "before": [_element(e) for e in p.rewrite.before],
        "template": [_piece(x) for x in p.rewrite.template],
        "count": p.count,
        "distinct_commits": p.distinct_commits,
        "commits": list(p.commits),
        "first": p.first,
        "last": p.last,
        "left": p.left,
    }


def from_json(data: dict[str, Any]) -> EditPattern:
    before: list[Element] = []
    klasses: dict[int, Any] = {}
    for e in data["before"]:
        if isinstance(e, dict):
            var = Var(int(e["var"]), e["klass"])
            if var.klass not in ("word", "literal", "node"):
                raise ValueError(f"unknown variable class {var.klass!r}")
            klasses[var.index] = var.klass
            before.append(var)
        else:
            text, kind = e
            before.append(Lit(str(text), str(kind)))
    template: list[Piece] = []
    for p in data["template"]:
        if isinstance(p, dict):
            index = int(p["var"])
            if index not in klasses:
                raise ValueError(f"variable {index} is written but never matched")
            template.append(Var(index, klasses[index]))
        else:
            template.append(str(p))
    return EditPattern(
        language=str(data["language"]),
        rewrite=Rewrite(tuple(before), tuple(template)),
        count=int(data["count"]),
        distinct_commits=int(data["distinct_commits"]),
        commits=tuple(str(c) for c in data["commits"]),
        first=str(data["first"]),
        last=str(data["last"]),
        left=int(data["left"]),
    )


# class of rewrite -> (edits proposed elsewhere, those mostly placed right[, their proposals, those placed
# right]), measured on the training commits
Evidence = dict[str, tuple[int, ...]]


def write(folder: Path, patterns: list[EditPattern], classes: Evidence | None = None) -> None:
    with atomic.file(folder / EDITS) as f:
        header: dict[str, Any] = {"edits_format": EDITS_FORMAT}
        if classes is not None:
            header["classes"] = {k: list(v) for k, v in sorted(classes.items())}
        f.write(json.dumps(header) + "\n")
        for p in patterns:
            f.write(json.dumps(to_json(p), ensure_ascii=False) + "\n")


def load(artifact: Path) -> list[EditPattern] | None:
    """The artifact's edit patterns, or None when it has none (trained by an older codedouble)."""
    found = load_all(artifact)
    return None if found is None else found[0]


def load_all(artifact: Path) -> tuple[list[EditPattern], Evidence | None] | None:
    """The artifact's edit patterns and the measured classes of edits just made (None when not measured), or
    None when it has no edits.jsonl (trained by an older codedouble)."""
    path = artifact / EDITS
    if not path.is_file():
        return None
    out: list[EditPattern] = []
    classes: Evidence | None = None
    with path.open(encoding="utf-8") as f:
        first = f.readline()
        try:
            header = json.loads(first) if first.strip() else {}
            found = header.get("edits_format")
        except (json.JSONDecodeError, AttributeError):
            found = None
        if found == EDITS_FORMAT and header.get("classes") is not None:
            try:
                classes = {str(k): tuple(int(x) for x in v) for k, v in header["classes"].items()}
                if any(len(v) not in (2, 4) for v in classes.values()):
                    raise ValueError("each class needs 2 or 4 counts")
            except (TypeError, ValueError, IndexError, AttributeError, KeyError) as exc:
                raise EditsError(f"{path}:1: the measured classes are damaged ({exc}): train the double again") from exc
        if found != EDITS_FORMAT:
            raise EditsError(
                f"{path} is in edit pattern format {found}; this codedouble reads format {EDITS_FORMAT}: "
                "train the double again (`codedouble train`)"
            )
        for number, line in enumerate(f, 2):
            try:
                out.append(from_json(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise EditsError(f"{path}:{number}: not an edit pattern ({exc}): train the double again") from exc
    return out, classes

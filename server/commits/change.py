"""A change as commit messages are drafted from it: the files it touches and its changed definitions (before →
after), built the same way from the miner's records (training, eval) and from two texts of a file (a staged
diff, a commit), so that retrieval and the model see a draft's change as they saw the training commits."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from codedouble.grammars import definitions
from codedouble.grammars.languages import language_for_path

MAX_TERMS = 400  # per change: a sweeping commit's bag of words would otherwise match everything a little
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_PATH_PARTS = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class Edit:
    """One changed definition: its text before and after ("" where it did not exist)."""

    path: str
    before: str
    after: str


@dataclass(frozen=True)
class Change:
    paths: tuple[str, ...]  # every file the change touches, sorted
    edits: tuple[Edit, ...]  # its changed definitions, in path order

    @property
    def empty(self) -> bool:
        return not self.paths


def changed_lines(before: str, after: str) -> list[str]:
    """The lines the change removed or added (a definition's own diff)."""
    a, b = before.split("\n"), after.split("\n")
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            out += a[i1:i2] + b[j1:j2]
    return out


def _words(text: str) -> list[str]:
    """An identifier and its parts (`render_table` → render_table, render, table; `getValue` → getvalue, get,
    value), lowercased: a message names a change by its words more often than by its whole identifiers."""
    out: list[str] = []
    for identifier in _IDENTIFIER.findall(text):
        whole = identifier.lower()
        out.append(whole)
        parts = [p.lower() for p in _PARTS.findall(identifier)]
        if len(parts) > 1:
            out += [p for p in parts if len(p) > 1]
    return out


def terms(change: Change) -> list[str]:
    """What retrieval compares changes by: the words of every path and of every changed line."""
    out: list[str] = []
    for path in change.paths:
        out += ["path:" + p.lower() for p in _PATH_PARTS.findall(path)]
    for edit in change.edits:
        for line in changed_lines(edit.before, edit.after):
            out += _words(line)
            if len(out) >= MAX_TERMS:
                return out[:MAX_TERMS]
    return out


def from_edits(paths: Iterable[str], edits: Iterable[Edit]) -> Change:
    return Change(tuple(sorted(set(paths))), tuple(sorted(edits, key=lambda e: e.path)))


def edits_of_file(path: str, before: str, after: str) -> list[Edit]:
    """The innermost definitions whose text differs between two versions of a file (a method, not the class
    around it), as the miner records them; none for a file no grammar reads."""
    language = language_for_path(path)
    if language is None or before == after:
        return []
    texts = [_definitions(language, text) for text in (before, after)]
    names = [n for n in dict.fromkeys([*texts[0], *texts[1]]) if texts[0].get(n) != texts[1].get(n)]
    changed = set(names)
    innermost = [n for n in names if not any(other.startswith(n + ".") for other in changed)]
    return [Edit(path, texts[0].get(n, ""), texts[1].get(n, "")) for n in innermost]


def _definitions(language: str, text: str) -> dict[str, str]:
    if not text:
        return {}
    source = text.encode("utf-8", "surrogatepass")
    parsed = definitions.parse(language, source)
    out: dict[str, str] = {}
    for d in parsed.definitions:
        out.setdefault(d.qualified_name, source[d.start_byte : d.end_byte].decode("utf-8", "replace"))
    return out


def generic_message(change: Change) -> str:
    """The baseline every draft must beat: what a tool that knows nothing of the engineer would write."""
    if len(change.paths) == 1:
        return f"Update {change.paths[0].rsplit('/', 1)[-1]}"
    return f"Update {len(change.paths)} files"

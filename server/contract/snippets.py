"""The snippets a double ships: shapes the engineer wrote again and again, mined from the training records by
`trainer/snippets/` and served as completion items of kind Snippet (`server/snippets.py`), as JSON lines (no
pickle).

    ARTIFACT/snippets.jsonl   {"snippets_format": 1}
                              {"language": "python", "body": "def ${1:test_x}():\\n    ...$0", ...}   one per snippet

Only training-split records are mined for it (held-out code never is). A double trained before snippets
existed has no file: it serves as before, without snippet items.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from codedouble.server.contract import atomic
from codedouble.server.contract.errors import CodedoubleError

SNIPPETS = "snippets.jsonl"
SNIPPETS_FORMAT = 1


@dataclass(frozen=True)
class Snippet:
    language: str  # codedouble's language name (grammars/languages.py)
    node: str  # tree-sitter type of the shape's root: function_definition, if_statement, ...
    scope: str  # "definition" or "block" (a statement block inside a definition)
    body: str  # the LSP snippet: `${1:default}` placeholders, `${1}` mirrors, `$0` at the end
    example: str  # the body with every placeholder at its default, as plain text
    label: str  # its first line, as a completion list shows it
    occurrences: int  # how many times the engineer wrote it
    commits: int  # in how many distinct commits
    first: str  # the first and last time, as dates (YYYY-MM-DD, UTC)
    last: str
    enclosing: str  # where it was mostly written: "" (top level), "class" or "function" (server/snippets.py)
    test_share: float  # the part of its occurrences written in test files


class SnippetsError(CodedoubleError):
    """An artifact whose snippets file is damaged or of another format."""


def write(folder: Path, items: list[Snippet]) -> None:
    with atomic.file(folder / SNIPPETS) as f:
        f.write(json.dumps({"snippets_format": SNIPPETS_FORMAT}) + "\n")
        for s in items:
            f.write(json.dumps(asdict(s), ensure_ascii=False) + "\n")


_FIELDS = tuple(f.name for f in fields(Snippet))


def load(artifact: Path) -> list[Snippet] | None:
    """The artifact's snippets, or None when it has none (trained by an older codedouble)."""
    path = artifact / SNIPPETS
    if not path.is_file():
        return None
    out: list[Snippet] = []
    with path.open(encoding="utf-8") as f:
        first = f.readline()
        try:
            found = json.loads(first).get("snippets_format") if first.strip() else None
        except (json.JSONDecodeError, AttributeError):
            found = None
        if found != SNIPPETS_FORMAT:
            raise SnippetsError(
                f"{path} is in snippets format {found}; this codedouble reads format {SNIPPETS_FORMAT}: "
                "train the double again (`codedouble train`)"
            )
        for number, line in enumerate(f, 2):
            try:
                data = json.loads(line)
                out.append(Snippet(**{name: data[name] for name in _FIELDS}))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise SnippetsError(f"{path}:{number}: not a snippet ({exc!r}): train the double again") from exc
    return out

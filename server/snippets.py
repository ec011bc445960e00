"""The engineer's snippets as completion items: which of the double's snippets (`contract/snippets.py`) fit
the cursor, in what order, and the LSP items for them. Pure helpers; `server.py` calls `items` from its
completion handler.

A snippet is offered at the start of a statement, while what is typed there (the line after its
indentation) begins its first line, or runs past the literal text before its first placeholder (`def ` of
`def ${1:test_x}():`). Ranking: how often and how recently the engineer wrote it, and how well it fits the
cursor: the kind of definition around it (top level, a class body, a function body) and whether the file is
a test file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import PurePosixPath

from lsprotocol import types

from codedouble.grammars.definitions import parse
from codedouble.server.contract.snippets import Snippet

MAX_PARSED_CHARS = 300_000  # documents longer than this are not parsed for the enclosing definition
MAX_ITEMS = 5  # snippet items per answer: a completion list is read at a glance
# Kinds of definition grouped by what may be written inside them: a method body takes what a function body
# takes, a struct's or an interface's what a class's does.
_FUNCTION_KINDS = frozenset({"function", "method", "constructor", "arrow_function", "closure", "lambda"})

_TEST_FOLDERS = frozenset({"test", "tests", "testing", "__tests__", "spec", "specs"})
_TEST_FILE = re.compile(r"(^test_.*|.*_test\.\w+$|.*\.(test|spec)\.\w+$|.*Tests?\.java$|^conftest\.py$)")


def family(kind: str | None) -> str:
    """What a definition of `kind` holds, as snippets and cursors compare it: "" (nothing: the top level),
    "function" (statements) or "class" (members)."""
    if not kind:
        return ""
    return "function" if kind in _FUNCTION_KINDS else "class"


def is_test_path(path: str) -> bool:
    """Whether `path` is a test file by the usual conventions (a tests/ folder, test_*.py, *_test.go, *.spec.ts)."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return bool(parts) and (any(p in _TEST_FOLDERS for p in parts[:-1]) or bool(_TEST_FILE.match(parts[-1])))


def enclosing_family(language: str, source: str, offset: int) -> str:
    """The family of the innermost definition around character `offset` of `source` ("" at the top level).
    One tree-sitter parse of the document: linear in it, and done only when a snippet is a candidate."""
    if len(source) > MAX_PARSED_CHARS:
        # A parse of a document this long could take a good part of a second on every keystroke: an indented
        # line is taken to be in a function body, an unindented one at the top level.
        start = source.rfind("\n", 0, offset) + 1
        return "function" if source[start : start + 1] in (" ", "\t") else ""
    encoded = source.encode("utf-8", errors="surrogatepass")
    at = len(source[:offset].encode("utf-8", errors="surrogatepass"))
    inner = ""
    for d in parse(language, encoded).definitions:  # outer before inner: the last one around `at` is innermost
        if d.start_byte < at <= d.end_byte:
            inner = d.kind
    return family(inner)


def _unescaped_head(body: str) -> str:
    """The literal text of an LSP snippet before its first placeholder."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
            continue
        if c == "$":
            break
        out.append(c)
        i += 1
    return "".join(out)


def matches(snippet: Snippet, typed: str) -> bool:
    """Whether `typed` (the statement typed so far) may be the start of `snippet`."""
    if snippet.label.startswith(typed):
        return True
    head = _unescaped_head(snippet.body).split("\n", 1)[0]
    return bool(head.strip()) and typed.startswith(head)


@dataclass(frozen=True)
class Cursor:
    language: str
    path: str
    typed: str  # the line before the cursor, after its indentation
    enclosing: str  # `family` of the innermost definition around it


def score(snippet: Snippet, cursor: Cursor, newest: date) -> float:
    """Higher is better: distinct commits first, occurrences a little, then recency and fit multiply."""
    base = math.log1p(snippet.commits) + 0.3 * math.log1p(snippet.occurrences)
    age_days = max(0, (newest - date.fromisoformat(snippet.last)).days)
    recency = 1 / (1 + age_days / 365)  # a habit of last year counts half as much as one of today
    fit = 1.5 if snippet.enclosing == cursor.enclosing else 0.6
    share = snippet.test_share if is_test_path(cursor.path) else 1 - snippet.test_share
    return base * recency * fit * (0.5 + share)


def rank(snippets: list[Snippet], cursor: Cursor, limit: int = MAX_ITEMS) -> list[Snippet]:
    """The snippets of the cursor's language that match what it typed, best first."""
    fitting = [s for s in snippets if s.language == cursor.language and matches(s, cursor.typed)]
    if not fitting:
        return []
    newest = max(date.fromisoformat(s.last) for s in fitting)
    fitting.sort(key=lambda s: (-score(s, cursor, newest), s.label))
    return fitting[:limit]


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def detail(snippet: Snippet) -> str:
    times = "once" if snippet.occurrences == 1 else f"{snippet.occurrences} times"
    return f"codedouble snippet: written {times} in {snippet.commits} commits, last {snippet.last}"


def completion_items(ranked: list[Snippet], line: int, character: int, typed: str) -> list[types.CompletionItem]:
    """LSP items for `ranked`: each replaces what was typed of the statement (from the end of the indentation
    to the cursor at `line`:`character`, UTF-16) with the snippet, indented like that line."""
    start = types.Position(line, character - len(typed.encode("utf-16-le")) // 2)
    end = types.Position(line, character)
    out = []
    for number, s in enumerate(ranked):
        fence = _fence(s.example)
        out.append(
            types.CompletionItem(
                label=s.label,
                kind=types.CompletionItemKind.Snippet,
                detail=detail(s),
                documentation=types.MarkupContent(
                    types.MarkupKind.Markdown,
                    f"{fence}{s.language}\n{s.example}\n{fence}\n\nWritten in {s.commits} commits "
                    f"from {s.first} to {s.last}.",
                ),
                # Clients keep an item while the text of its range begins its filter text.
                filter_text=s.label if s.label.startswith(typed) else typed,
                text_edit=types.TextEdit(types.Range(start, end), s.body),
                insert_text_format=types.InsertTextFormat.Snippet,
                insert_text_mode=types.InsertTextMode.AdjustIndentation,
                sort_text=f"1{number:02d}",  # after the double's own completion ("0")
            )
        )
    return out


def typed_before(source: str, offset: int) -> str:
    """The line before `offset`, after its indentation: the statement being started. Scanned back to the
    line's start only (bounded by that line's length)."""
    line_start = source.rfind("\n", 0, offset) + 1
    return source[line_start:offset].lstrip(" \t")


def items(
    snippets: list[Snippet] | None, language: str, path: str, source: str, offset: int, line: int, character: int
) -> list[types.CompletionItem]:
    """The snippet items for the cursor at `offset` of `source` (also `line`:`character` in UTF-16): none unless
    the line before the cursor is a statement being started."""
    if not snippets:
        return []
    typed = typed_before(source, offset)
    if not typed or len(typed) > 200:
        return []
    candidates = [s for s in snippets if s.language == language and matches(s, typed)]
    if not candidates:
        return []
    cursor = Cursor(language, path, typed, enclosing_family(language, source, offset))
    return completion_items(rank(candidates, cursor), line, character, typed)

"""Which definitions a file change touched, from the before and after versions of the file.

A changed line belongs to the innermost definition around it. Rather than diffing lines and looking up
their definitions, each definition's own lines (its text with nested definitions cut out) are compared
between the two versions, matched by qualified name: the same changed-definition set, with no line diff
to compute, and a definition that merely moved within the file is not reported as changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from codedouble.grammars.definitions import Definition, ParsedFile
from codedouble.grammars.incremental import changed_span


@dataclass(frozen=True)
class DefinitionChange:
    qualified_name: str
    kind: str
    change: str  # added, modified, deleted
    before: str | None
    after: str | None
    line: int  # 1-based, in the after version (before, when deleted)
    enclosing: tuple[str, ...]
    has_error: bool  # tree-sitter could not parse one of the two versions of this definition


def _line_start(source: bytes, start: int) -> int:
    """Widen a definition to the start of its line when only indentation precedes it, so methods keep theirs."""
    line_start = source.rfind(b"\n", 0, start) + 1
    return line_start if not source[line_start:start].strip() else start


def _text(source: bytes, d: Definition) -> str:
    return source[_line_start(source, d.start_byte) : d.end_byte].decode("utf-8")


def _own_lines(source: bytes, parsed: ParsedFile, index: int) -> tuple[str, ...]:
    d = parsed.definitions[index]
    pieces: list[bytes] = []
    cursor = d.start_byte
    for child in parsed.children(index):
        pieces.append(source[cursor : _line_start(source, child.start_byte)])
        cursor = child.end_byte
    pieces.append(source[cursor : d.end_byte])
    text = b"".join(pieces).decode("utf-8")
    return tuple(line.rstrip() for line in text.splitlines() if line.strip())


def _pair(before: ParsedFile | None, after: ParsedFile | None) -> dict[int, int]:
    """Match after-definitions to before-definitions: {after index: before index}.

    Same qualified name and signature first, so an overload added before an existing one does not shift the
    pairing; then same qualified name in order of appearance, so a changed signature is a modification.
    """
    if before is None or after is None:
        return {}
    pairs: dict[int, int] = {}
    for key in (lambda d: (d.qualified_name, d.signature), lambda d: d.qualified_name):
        free: dict[object, list[int]] = {}
        taken = set(pairs.values())
        for i, d in enumerate(before.definitions):
            if i not in taken:
                free.setdefault(key(d), []).append(i)
        for j, d in enumerate(after.definitions):
            if j not in pairs and free.get(key(d)):
                pairs[j] = free[key(d)].pop(0)
    return pairs


def definition_changes(
    before_src: bytes | None,
    before: ParsedFile | None,
    after_src: bytes | None,
    after: ParsedFile | None,
) -> Iterator[DefinitionChange]:
    """The definitions added, modified or deleted between two versions of one file (either may be absent)."""
    pairs = _pair(before, after)
    if after is not None:
        assert after_src is not None
        for j, d in enumerate(after.definitions):
            i = pairs.get(j)
            if i is None:
                yield DefinitionChange(
                    d.qualified_name,
                    d.kind,
                    "added",
                    None,
                    _text(after_src, d),
                    d.start_line + 1,
                    after.enclosing_signatures(j),
                    d.has_error,
                )
                continue
            assert before is not None and before_src is not None
            if _own_lines(before_src, before, i) == _own_lines(after_src, after, j):
                continue
            b = before.definitions[i]
            yield DefinitionChange(
                d.qualified_name,
                d.kind,
                "modified",
                _text(before_src, b),
                _text(after_src, d),
                d.start_line + 1,
                after.enclosing_signatures(j),
                d.has_error or b.has_error,
            )
    if before is not None:
        assert before_src is not None
        paired = set(pairs.values())
        for i, b in enumerate(before.definitions):
            if i not in paired:
                yield DefinitionChange(
                    b.qualified_name,
                    b.kind,
                    "deleted",
                    _text(before_src, b),
                    None,
                    b.start_line + 1,
                    before.enclosing_signatures(i),
                    b.has_error,
                )


@dataclass(frozen=True)
class Region:
    """The one span two versions of a file differ in: [start, old_end) before, [start, new_end) after."""

    start: int
    old_end: int
    new_end: int

    def to_before(self, offset: int) -> int:
        """Map an offset in the after-version to the before-version (offsets inside the change clamp to it)."""
        if offset <= self.start:
            return offset
        return offset - self.new_end + self.old_end if offset >= self.new_end else self.old_end

    def to_after(self, offset: int) -> int:
        if offset <= self.start:
            return offset
        return offset - self.old_end + self.new_end if offset >= self.old_end else self.new_end


def changed_region(before: bytes, after: bytes) -> Region:
    """The smallest single span outside which `before` and `after` are byte for byte the same."""
    return Region(*changed_span(before, after))

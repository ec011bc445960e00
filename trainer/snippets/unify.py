"""Anti-unification: the most specific template of several occurrences of one shape, as an LSP snippet.

Occurrences of one shape (`shapes.Piece.key`) have the same tokens but for names and literals. A position
where every occurrence has the same token stays literal text; a position where they differ becomes a
placeholder whose default is the value written most often. Two positions that hold the same value in every
occurrence (a parameter and its use, say) are the same variable: one placeholder number, mirrored by the
editor, so filling the template with an occurrence's values gives that occurrence back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from codedouble.trainer.snippets.shapes import SYNTAX, Piece

Part = str | int  # literal text, or a placeholder number (1-based)


@dataclass(frozen=True)
class Template:
    parts: tuple[Part, ...]
    defaults: tuple[str, ...]  # default value of placeholder k at index k - 1
    values: tuple[tuple[str, ...], ...]  # per placeholder, its value in each occurrence (occurrence order)
    constant_names: int  # names and literals every occurrence shares: how much of it is the engineer's own

    def fill(self, values: Sequence[str]) -> str:
        """The text with placeholder k replaced by values[k - 1]."""
        return "".join(p if isinstance(p, str) else values[p - 1] for p in self.parts)

    @property
    def example(self) -> str:
        return self.fill(self.defaults)

    def occurrence(self, index: int) -> str:
        """Occurrence `index` (in the order given to `anti_unify`), rebuilt from the template."""
        return self.fill([v[index] for v in self.values])


def anti_unify(occurrences: Sequence[Piece]) -> Template:
    """The template of `occurrences`, all of one shape. Ties for a default go to the value of the earliest
    occurrence in the sequence (callers put the newest first)."""
    first = occurrences[0]
    assert all(o.key == first.key for o in occurrences), "anti_unify takes occurrences of one shape"
    parts: list[Part] = []
    numbers: dict[tuple[str, ...], int] = {}
    constant = 0
    for i, token in enumerate(first.tokens):
        parts.append(token.gap)
        values = tuple(o.tokens[i].text for o in occurrences)
        if token.category == SYNTAX or len(set(values)) == 1:
            parts.append(token.text)
            constant += token.category != SYNTAX
            continue
        if values not in numbers:
            numbers[values] = len(numbers) + 1
        parts.append(numbers[values])
    ordered = sorted(numbers, key=numbers.__getitem__)
    defaults = tuple(_most_common(v) for v in ordered)
    return Template(_merged(parts), defaults, tuple(ordered), constant)


def _most_common(values: tuple[str, ...]) -> str:
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)  # the first (newest) of the most written


def _merged(parts: list[Part]) -> tuple[Part, ...]:
    """Adjacent literal texts joined, empty ones dropped."""
    out: list[Part] = []
    for p in parts:
        if isinstance(p, str):
            if not p:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += p
                continue
        out.append(p)
    return tuple(out)


def escape(text: str) -> str:
    """Literal text for the LSP snippet grammar: `\\`, `$` and `}` are escaped with a backslash (a `}` only
    matters inside a placeholder, but escaping it everywhere is allowed and always safe)."""
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("}", "\\}")


def to_lsp(template: Template) -> str:
    """The template as an LSP snippet: `${k:default}` at a placeholder's first position, `${k}` where it
    repeats (the editor mirrors what is typed there; braced, since a bare `$1` before a digit reads as `$12`),
    and `$0`, where the cursor ends, after it all."""
    out: list[str] = []
    seen: set[int] = set()
    for p in template.parts:
        if isinstance(p, str):
            out.append(escape(p))
        elif p in seen:
            out.append(f"${{{p}}}")
        else:
            seen.add(p)
            out.append(f"${{{p}:{escape(template.defaults[p - 1])}}}")
    out.append("$0")
    return "".join(out)

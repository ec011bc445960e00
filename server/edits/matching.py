"""Where a rewrite applies in a document: its pattern found token by token, each variable standing for one
named node (or one identifier or literal, as the rule says), the same text wherever it appears twice."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from codedouble.server.edits.rules import Lit, Rewrite, Var
from codedouble.server.edits.tokens import Tokens

# Leading variables before the first literal token are matched back from it at most this far (tokens).
_REACH = 40


@dataclass(frozen=True)
class Match:
    start: int  # string indices of the text the rewrite replaces
    end: int
    replacement: str
    first: int  # token indices of that text: [first, last)
    last: int


class Index:
    """A document's tokens by text, and its named nodes by where they end: built once per document version."""

    def __init__(self, doc: Tokens) -> None:
        self.doc = doc
        self.at: dict[str, list[int]] = defaultdict(list)
        for i, token in enumerate(doc.tokens):
            self.at[token.text].append(i)
        self.starts_ending: dict[int, list[int]] = defaultdict(list)
        for start, ends in doc.node_ends.items():
            for end in ends:
                self.starts_ending[end].append(start)

    def span_text(self, first: int, last: int) -> str:
        tokens = self.doc.tokens
        return self.doc.text[tokens[first].start : tokens[last - 1].end]


def find(rewrite: Rewrite, index: Index, most: int = 200) -> list[Match]:
    """The places `rewrite` applies, in document order, none overlapping, none where it would change nothing."""
    pattern = rewrite.before
    anchor = next((k for k, e in enumerate(pattern) if isinstance(e, Lit)), None)
    if anchor is None:
        return []
    starts: set[int] = set()
    for p in index.at.get(pattern[anchor].text, []):  # type: ignore[union-attr]
        if anchor == 0:
            starts.add(p)
        elif anchor == 1:
            var = pattern[0]
            starts.update(s for s in index.starts_ending.get(p, []) if _fits(index, var, s, p))  # type: ignore[arg-type]
        else:
            starts.update(range(max(0, p - _REACH), p))
    found: list[Match] = []
    after = 0
    for s in sorted(starts):
        if s < after:
            continue
        bindings: dict[int, tuple[int, int]] = {}
        end = _match(pattern, 0, index, s, bindings, s)
        if end is None or end <= s:
            continue
        tokens = index.doc.tokens
        start_char, end_char = tokens[s].start, tokens[end - 1].end
        replacement = rewrite.render({k: index.span_text(a, b) for k, (a, b) in bindings.items()})
        if replacement == index.doc.text[start_char:end_char]:
            continue
        found.append(Match(start_char, end_char, replacement, s, end))
        after = end
        if len(found) >= most:
            break
    return found


def _stray(index: Index, bindings: dict[int, tuple[int, int]], start: int, end: int) -> bool:
    """Whether a variable stands for a node that is no part of something inside the match: the node holding it
    (named nodes nest, so the smallest one holding it is inside the match if any is) lies beyond the match. A
    variable learnt as `(x)` of `print(x)` must not take the next statement: `print $1` would turn `print\nx = 1`
    into `log.debugx = 1`, nor the head `alpha` of a call `alpha(b)`, leaving `(b)` behind (tests/test_edit_rules.py).
    Without a tree (the fallback lexer) there is nothing to check."""
    if not index.doc.parsed:
        return False
    for first, last in bindings.values():
        held = any(
            e >= last and (a, e) != (first, last)
            for a in range(start, first + 1)
            for e in index.doc.node_ends.get(a, [])
            if e <= end
        )
        if not held:
            return True
    return False


def _fits(index: Index, var: Var, start: int, end: int) -> bool:
    if var.klass == "node":
        return True
    return end == start + 1 and index.doc.tokens[start].kind == var.klass


def _match(
    pattern: tuple[Lit | Var, ...],
    i: int,
    index: Index,
    p: int,
    bindings: dict[int, tuple[int, int]],
    start: int,
) -> int | None:
    """The end of a match of pattern[i:] starting at token p (filling `bindings`), or None; `start` is where the
    whole match starts."""
    tokens = index.doc.tokens
    if i == len(pattern):
        # A variable standing for a node outside the match's syntax: the next way of binding them is tried.
        return None if _stray(index, bindings, start, p) else p
    element = pattern[i]
    if isinstance(element, Lit):
        if p < len(tokens) and tokens[p].text == element.text:
            return _match(pattern, i + 1, index, p + 1, bindings, start)
        return None
    if element.index in bindings:
        a, b = bindings[element.index]
        want = index.span_text(a, b)
        for end in index.doc.node_ends.get(p, []):
            if index.span_text(p, end) == want:
                return _match(pattern, i + 1, index, end, bindings, start)
        return None
    for end in index.doc.node_ends.get(p, []):
        if not _fits(index, element, p, end):
            continue
        bindings[element.index] = (p, end)
        found = _match(pattern, i + 1, index, end, bindings, start)
        if found is not None:
            return found
        del bindings[element.index]
    return None

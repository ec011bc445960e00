"""Rewrite rules: an edit the engineer made, cut down to the syntax it changed, with what it carried over left
as variables, so that it can be found and made again elsewhere.

From a before/after pair of texts, each changed hunk of tokens grows to the smallest named tree-sitter node that
holds it and at least one unchanged token (`print(x)` for `print` → `log.debug`; the argument list for an
inserted `ctx,`). Inside that region, the largest named nodes the edit left untouched become variables (`x`,
or the whole `(a, b)`), so the same change is found whatever the arguments are. One change seen once is a
`Change`; several are joined into a `Rewrite` by anti-unification: a variable every occurrence agrees on
becomes literal text again (`foo` in `foo(ctx, …)`), the others stay variables."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from codedouble.server.edits.tokens import Token, Tokens, index_at

Klass = Literal["word", "literal", "node"]

# Tokens of a replacement's text, for comparing it with its pattern (`kind`): words and single punctuation.
_PIECE_TOKEN = re.compile(r"\w+|[^\w\s]")
# What a rename replaces: identifiers and the dots or `::` between their parts (a changed number is not one).
_NAME_PART = re.compile(r"[^\W\d]\w*|\.|::|\$\d+")

# A hunk changing more tokens than this is a rewrite of the code, not a routine edit to make again; a region
# larger than this is context too specific to recur. Both measured on rich's history: 95 % of the hunks of
# the rewrites that recur in two commits change ≤ 6 tokens and sit in regions of ≤ 14.
MAX_CHANGED = 16
MAX_REGION = 24


@dataclass(frozen=True)
class Var:
    index: int  # 1-based, numbered by first appearance in the before side
    klass: Klass = "node"  # what it may stand for: one identifier, one literal, or any named node


@dataclass(frozen=True)
class Lit:
    """A token the pattern must find as it is."""

    text: str
    kind: str  # the token's kind (tokens.Kind): whether a pattern has an identifier to anchor on


Element = Lit | Var
Piece = str | Var  # of a replacement: text as the engineer wrote it (spacing included), or a variable's value


@dataclass(frozen=True)
class Value:
    text: str
    tokens: tuple[Lit, ...]

    @property
    def klass(self) -> Klass:
        if len(self.tokens) == 1 and self.tokens[0].kind in ("word", "literal"):
            return self.tokens[0].kind  # type: ignore[return-value]
        return "node"


@dataclass(frozen=True)
class Change:
    """One edit as it was made: the region before and after, every carried node a variable."""

    before: tuple[Element, ...]
    after: tuple[Element, ...]  # the replacement as tokens: what identifies the edit whatever its spacing
    template: tuple[Piece, ...]  # the replacement as text: how to write it
    values: tuple[Value, ...]  # values[k - 1] is what variable k stood for here
    start: int  # string indices of the region in the before text
    end: int

    def shape(self) -> tuple[tuple[str | int, ...], tuple[str | int, ...]]:
        """What occurrences of the same rewrite share: the tokens, with variables by number only."""

        def key(elements: tuple[Element, ...]) -> tuple[str | int, ...]:
            return tuple(e.index if isinstance(e, Var) else e.text for e in elements)

        return key(self.before), key(self.after)


@dataclass(frozen=True)
class Rewrite:
    before: tuple[Element, ...]
    template: tuple[Piece, ...]

    def specific(self, anchors: Sequence[str] = ("word", "keyword", "literal")) -> bool:
        """Whether the pattern names something: a rewrite of `$1 = $2` would fire on every assignment."""
        return any(isinstance(e, Lit) and e.kind in anchors for e in self.before)

    def render(self, bindings: dict[int, str]) -> str:
        return "".join(p if isinstance(p, str) else bindings[p.index] for p in self.template)

    def describe(self) -> str:
        """`print … → log.debug(…)`: the rule as a title shows it, shortened."""
        after = "".join("…" if isinstance(p, Var) else " ".join(p.split()) for p in self.template)
        return f"{_joined(self.before)} → {_short(after)}"


def _joined(elements: Sequence[Element]) -> str:
    """Tokens joined as code is usually spaced: no space around brackets, dots and commas' left side."""
    out = ""
    for e in elements:
        text = "…" if isinstance(e, Var) else e.text
        if out and not (out[-1] in "([{.@" or text in ")]},.:;([" or text.startswith(".")):
            if out[-1].isalnum() or out[-1] in "_…)]}'\"" or text[0].isalnum() or text[0] in "_…'\"":
                out += " "
        out += text
    return _short(out)


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def generalise(change: Change) -> Rewrite:
    """The edit just made, as a rule for other places: carried nodes stay variables, except that a pattern
    left without any identifier keeps its first carried identifier as it was (`foo(ctx, …)`, not `…(ctx, …)`)."""
    keep = {v.index for v in change.before if isinstance(v, Var)}
    rewrite = _rewrite(change, keep, [v.klass for v in change.values])
    if not rewrite.specific(("word",)):
        first_word = next(
            (e.index for e in change.before if isinstance(e, Var) and change.values[e.index - 1].klass == "word"), None
        )
        if first_word is not None:
            rewrite = _rewrite(change, keep - {first_word}, [v.klass for v in change.values])
    return rewrite if rewrite.specific(("word",)) else literal(change)


def literal(change: Change) -> Rewrite:
    """The edit only where the very same text is: nothing left variable."""
    return _rewrite(change, set(), [v.klass for v in change.values])


def anti_unify(changes: Sequence[Change]) -> Rewrite:
    """One rule for several occurrences of the same shape (`Change.shape`): a variable bound to the same text
    everywhere is written out; the rest stay variables, as narrow as what they stood for allows."""
    first = changes[0]
    keep: set[int] = set()
    klasses: list[Klass] = []
    for index in range(1, len(first.values) + 1):
        seen = [c.values[index - 1] for c in changes]
        if len({v.text for v in seen}) > 1:
            keep.add(index)
        kinds = {v.klass for v in seen}
        klasses.append(kinds.pop() if len(kinds) == 1 else "node")
    # The newest occurrence's spacing is how the engineer writes it now.
    return _rewrite(changes[-1], keep, klasses)


def _rewrite(change: Change, keep: set[int], klasses: list[Klass]) -> Rewrite:
    renumber: dict[int, int] = {}
    before: list[Element] = []
    for e in change.before:
        if isinstance(e, Var) and e.index in keep:
            renumber.setdefault(e.index, len(renumber) + 1)
            before.append(Var(renumber[e.index], klasses[e.index - 1]))
        elif isinstance(e, Var):
            before.extend(change.values[e.index - 1].tokens)
        else:
            before.append(e)
    template: list[Piece] = []
    for p in change.template:
        if isinstance(p, Var) and p.index in keep:
            template.append(Var(renumber[p.index], klasses[p.index - 1]))
        else:
            text = change.values[p.index - 1].text if isinstance(p, Var) else p
            if template and isinstance(template[-1], str):
                template[-1] += text
            else:
                template.append(text)
    return Rewrite(tuple(before), tuple(template))


def changes(old: Tokens, new: Tokens) -> list[Change]:
    """Every routine-sized edit between two versions of a text, as `Change`s (hunks of comments or
    whitespace only are not edits to repeat)."""
    a, b = old.texts(), new.texts()
    ops = SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    out: list[Change] = []
    done = 0  # before-token index up to which hunks are already inside an emitted region
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal" or (i1 < done) or (i1 == done and i2 == i1 and out):
            continue
        if i2 - i1 > MAX_CHANGED or j2 - j1 > MAX_CHANGED:
            continue
        touched = old.tokens[i1:i2] + new.tokens[j1:j2]
        if all(t.kind == "comment" for t in touched):
            continue
        change = None
        grow = i2 - i1
        side = _insertion_side(old, new, i1, i2, j1, j2)
        # A region that is only a bracketed list grows once to what the list belongs to: `foo(a, b)` rather
        # than `(a, b)` for an inserted `ctx,`, so that occurrences can agree on `foo` and keep it literal. A
        # region that does not reach the inserted tokens (` + 1` after `compute(a)`: the call's node ends
        # before them) grows until one does (`x = compute(a)`).
        while True:
            found = _region(old, i1, i2, grow, side)
            region = None if found is None else _mapped(ops, *found)
            if region is None:
                break
            lo, hi, ja, jb = _extended(new, ops, *region)
            if hi - lo > MAX_REGION + MAX_CHANGED or jb - ja > MAX_REGION + MAX_CHANGED:
                break
            candidate = _change(old, new, ops, lo, hi, ja, jb)
            if candidate is None:
                break
            if candidate.shape()[0] == candidate.shape()[1]:
                grow = found[1] - found[0]
                continue
            change = candidate
            if not _bare_list(change.before) or grow > i2 - i1:
                break
            grow = found[1] - found[0]
        if change is not None:
            out.append(change)
            done = max(done, index_at(old, change.end))
    return out


def _named(before: tuple[Element, ...]) -> bool:
    return any(isinstance(e, Lit) and e.kind == "word" for e in before)


def _bare_list(before: tuple[Element, ...]) -> bool:
    first = before[0] if before else None
    return isinstance(first, Lit) and first.text in ("(", "[", "{", "<") and not _named(before)


def _insertion_side(old: Tokens, new: Tokens, i1: int, i2: int, j1: int, j2: int) -> str:
    """Which old neighbours a pure insertion belongs to: `left` when it starts on the line of the token before
    it and ends on another line than the token after (` + 1` appended to a line), `right` the other way
    round, else `both`."""
    if i2 > i1 or j2 <= j1 or i1 == 0 or i1 >= len(old.tokens):
        return "both"
    left = new.line_of(j1 - 1) == new.line_of(j1) if j1 > 0 else False
    right = new.line_of(j2 - 1) == new.line_of(j2) if j2 < len(new.tokens) else False
    if left and not right:
        return "left"
    if right and not left:
        return "right"
    return "both"


def _region(old: Tokens, i1: int, i2: int, bigger_than: int, side: str = "both") -> tuple[int, int] | None:
    """The smallest named node holding tokens [i1, i2) and more than `bigger_than` tokens (at least one
    unchanged token besides the hunk; for an insertion, the tokens on the side or sides it belongs to); else
    the hunk with one token of context each side on its own lines."""
    n = len(old.tokens)
    if i2 > i1:
        c0, c1 = i1, i2
    elif side == "left":
        c0, c1 = i1 - 1, i1
    elif side == "right":
        c0, c1 = i1, i1 + 1
    else:
        c0, c1 = max(i1 - 1, 0), min(i1 + 1, n)
    if c1 <= c0:
        return None
    best: tuple[int, int] | None = None
    for start, ends in old.node_ends.items():
        if start > c0:
            continue
        for end in ends:
            if end >= c1 and end - start > bigger_than and end - start <= MAX_REGION:
                if best is None or end - start < best[1] - best[0]:
                    best = (start, end)
                break  # ends are sorted: the first that holds the hunk is the smallest from this start
    if best is not None:
        return best
    if bigger_than > i2 - i1:
        return None  # already grown as far as a node allows
    lo, hi = c0, c1
    if lo > 0 and old.line_of(lo - 1) == old.line_of(lo):
        lo -= 1
    if hi < n and old.line_of(hi) == old.line_of(hi - 1):
        hi += 1
    return (lo, hi) if hi - lo > i2 - i1 or i2 == i1 else None


def _mapped(ops: list[tuple[str, int, int, int, int]], lo: int, hi: int) -> tuple[int, int, int, int] | None:
    """The region [lo, hi) of the old tokens and where it is in the new ones, grown to whole hunks: a region
    boundary inside a changed hunk takes all of it."""
    while True:
        ja = jb = None
        grown = False
        for tag, i1, i2, j1, j2 in ops:
            if ja is None:
                if tag == "equal" and i1 <= lo < i2:
                    ja = j1 + lo - i1
                elif tag in ("replace", "delete") and i1 == lo:
                    ja = j1
                elif tag != "equal" and i1 < lo < i2:
                    lo, grown = i1, True
                    break
            if jb is None:
                if tag == "equal" and i1 < hi <= i2:
                    jb = j1 + hi - i1
                elif tag != "equal" and i2 == hi and i2 > i1:
                    jb = j2
                elif tag != "equal" and i1 < hi < i2:
                    hi, grown = i2, True
                    break
        if grown:
            continue
        if ja is None or jb is None or jb < ja:
            return None
        return lo, hi, ja, jb


def _extended(
    new: Tokens, ops: list[tuple[str, int, int, int, int]], lo: int, hi: int, ja: int, jb: int
) -> tuple[int, int, int, int]:
    """Tokens inserted right at a region's edge belong to the edit when the new text's smallest named node
    around the region reaches into them: the `)` closing `fmt.Errorf(…, err` that `return err` became."""
    best: tuple[int, int] | None = None
    for start, ends in new.node_ends.items():
        if start > ja:
            continue
        for end in ends:
            if end >= jb and (best is None or end - start < best[1] - best[0]):
                best = (start, end)
                break
    if best is None:
        return lo, hi, ja, jb
    for tag, i1, _, j1, j2 in ops:
        if tag == "insert" and i1 == lo and j2 == ja and best[0] < ja:
            ja = max(j1, best[0])
        if tag == "insert" and i1 == hi and j1 == jb and best[1] > jb:
            jb = min(j2, best[1])
    return lo, hi, ja, jb


def _equal_runs(ops: list[tuple[str, int, int, int, int]], lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(old start, old end, new start) of the unchanged stretches inside [lo, hi)."""
    runs = []
    for tag, i1, i2, j1, _ in ops:
        if tag == "equal" and i2 > lo and i1 < hi:
            start = max(i1, lo)
            runs.append((start, min(i2, hi), j1 + start - i1))
    return runs


def _lit(token: Token) -> Lit:
    return Lit(token.text, token.kind)


def _change(
    old: Tokens, new: Tokens, ops: list[tuple[str, int, int, int, int]], lo: int, hi: int, ja: int, jb: int
) -> Change | None:
    if hi <= lo:
        return None  # nothing to find: a pure insertion with no context
    # Carried nodes: the largest named nodes inside the unchanged stretches, smaller than the region itself.
    units_old: dict[int, int] = {}  # old start -> old end
    units_new: dict[int, tuple[int, int]] = {}  # new start -> (new end, old start)
    for start, end, new_start in _equal_runs(ops, lo, hi):
        p = start
        while p < end:
            longest = max((e for e in old.node_ends.get(p, []) if e <= end and e - p < hi - lo), default=None)
            if longest is None:
                p += 1
                continue
            units_old[p] = longest
            units_new[new_start + p - start] = (new_start + longest - start, p)
            p = longest
    values: list[Value] = []
    by_text: dict[str, int] = {}

    def var_for(tokens: list[Token], text: str) -> Var:
        if text not in by_text:
            values.append(Value(text, tuple(_lit(t) for t in tokens)))
            by_text[text] = len(values)
        return Var(by_text[text], values[by_text[text] - 1].klass)

    before: list[Element] = []
    p = lo
    while p < hi:
        if p in units_old:
            end = units_old[p]
            before.append(var_for(old.tokens[p:end], old.text[old.tokens[p].start : old.tokens[end - 1].end]))
            p = end
        else:
            token = old.tokens[p]
            # A changed token that is also what a carried node holds (a swapped or moved argument) is that node.
            if token.text in by_text and token.kind in ("word", "literal"):
                before.append(Var(by_text[token.text], values[by_text[token.text] - 1].klass))
            else:
                before.append(_lit(token))
            p += 1
    after: list[Element] = []
    template: list[Piece] = []
    q = ja
    cursor = new.tokens[ja].start if jb > ja else 0
    while q < jb:
        token = new.tokens[q]
        gap = new.text[cursor : token.start]
        if q in units_new:
            end, _ = units_new[q]
            text = new.text[token.start : new.tokens[end - 1].end]
            var = var_for(new.tokens[q:end], text)
            after.append(var)
            _add(template, gap)
            template.append(var)
            cursor, q = new.tokens[end - 1].end, end
            continue
        if token.text in by_text and token.kind in ("word", "literal"):
            var = Var(by_text[token.text], values[by_text[token.text] - 1].klass)
            after.append(var)
            _add(template, gap)
            template.append(var)
        else:
            after.append(_lit(token))
            _add(template, gap + token.text)
        cursor, q = token.end, q + 1
    # A variable only on the after side was not carried: it is text the edit wrote, so it stays literal.
    carried = {e.index for e in before if isinstance(e, Var)}
    after = [
        e if not isinstance(e, Var) or e.index in carried else Lit(values[e.index - 1].text, "node") for e in after
    ]
    template = [p if not isinstance(p, Var) or p.index in carried else values[p.index - 1].text for p in template]
    merged: list[Piece] = []
    for piece in template:
        _add(merged, piece) if isinstance(piece, str) else merged.append(piece)
    values = values[: max(carried, default=0)]
    start = old.tokens[lo].start
    return Change(tuple(before), tuple(after), tuple(merged), tuple(values), start, old.tokens[hi - 1].end)


def _add(template: list[Piece], text: str) -> None:
    if not text:
        return
    if template and isinstance(template[-1], str):
        template[-1] += text
    else:
        template.append(text)


def kind(rewrite: Rewrite) -> str:
    """What the rewrite does to the tokens it finds: `rename` (identifiers replaced by identifiers, as a rename
    or an API change makes them), `insert`, `delete`, or `replace` (anything else)."""
    before = [e.text if isinstance(e, Lit) else f"${e.index}" for e in rewrite.before]
    after: list[str] = []
    for piece in rewrite.template:
        after += [f"${piece.index}"] if isinstance(piece, Var) else _PIECE_TOKEN.findall(piece)
    ops = [op for op in SequenceMatcher(None, before, after, autojunk=False).get_opcodes() if op[0] != "equal"]
    tags = {op[0] for op in ops}
    if tags == {"insert"}:
        return "insert"
    if tags == {"delete"}:
        return "delete"
    if tags == {"replace"} and all(
        _NAME_PART.fullmatch(t) for _, i1, i2, j1, j2 in ops for t in before[i1:i2] + after[j1:j2]
    ):
        return "rename"
    return "replace"


def edit_class(rewrite: Rewrite) -> str:
    """The class whose measured precision decides whether a rewrite just made is proposed elsewhere
    (`server/edits/propose.py`): its kind, whether its pattern names an identifier, whether it has variables."""
    named = "named" if rewrite.specific(("word",)) else "unnamed"
    general = "general" if any(isinstance(e, Var) for e in rewrite.before) else "literal"
    return f"{kind(rewrite)}/{named}/{general}"

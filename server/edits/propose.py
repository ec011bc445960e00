"""Next-edit proposals for one document: where a recent rewrite of the engineer's, or one of their habitual
rewrites from the history, applies again. Pure: the language server turns these into code actions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from codedouble.server.contract.edits import EditPattern
from codedouble.server.edits import matching, tokens
from codedouble.server.edits.live import MadeEdit

# Mined rules proposed by default only where the engineer's own history says they are right at least this
# often (`EditPattern.precision`): the bar for what is proposed is 50 %.
MIN_PRECISION = 0.5
# Proposals per document: a rewrite that matches 500 places is a job for search-and-replace, and the list
# of code actions must stay readable.
MOST = 100


@dataclass(frozen=True)
class EditProposal:
    start: int  # string indices in the document of the text replaced
    end: int
    new_text: str
    title: str
    source: Literal["session", "history"]
    confidence: float  # the share of such proposals expected right (1.0 for the edit just made)
    rule: str  # the rule in short, `print … → log.debug…`


def propose(
    text: str,
    language: str | None,
    made: Sequence[MadeEdit],
    patterns: Sequence[EditPattern] = (),
    min_precision: float = MIN_PRECISION,
    doc: tokens.Tokens | None = None,
) -> list[EditProposal]:
    """Proposals in document order, none overlapping: the edits just made win over habits from the history."""
    if not made and not patterns:
        return []
    index = matching.Index(doc if doc is not None else tokens.tokenize(text, language))
    found: list[EditProposal] = []
    for edit in made:
        if edit.language != language:
            continue  # a rewrite of Python code is not one for Go
        where = "" if edit.uri is None else f" at line {edit.line + 1}"
        for m in matching.find(edit.rewrite, index, MOST):
            title = f"Same rewrite as you just made{where}: {edit.rewrite.describe()}"
            found.append(EditProposal(m.start, m.end, m.replacement, title, "session", 1.0, edit.rewrite.describe()))
    for pattern in sorted(patterns, key=lambda p: (-p.precision, -p.count)):
        if pattern.language != language or pattern.precision < min_precision:
            continue
        rule = pattern.rewrite.describe()
        times = f"{pattern.count} time{'s' if pattern.count != 1 else ''}"
        title = f"Your usual edit: {rule} ({times} since {pattern.first[:7]})"
        for m in matching.find(pattern.rewrite, index, MOST):
            found.append(EditProposal(m.start, m.end, m.replacement, title, "history", pattern.precision, rule))
    kept: list[EditProposal] = []
    taken: list[tuple[int, int]] = []
    for p in found:  # session proposals first, then the likeliest habits
        if any(p.start < end and start < p.end for start, end in taken):
            continue
        kept.append(p)
        taken.append((p.start, p.end))
        if len(kept) >= MOST:
            break
    return sorted(kept, key=lambda p: p.start)

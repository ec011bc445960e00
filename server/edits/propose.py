"""Next-edit proposals for one document: where a recent rewrite of the engineer's, or one of their habitual
rewrites from the history, applies again. Pure: the language server turns these into code actions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from codedouble.server.contract.edits import EditPattern, Evidence
from codedouble.server.edits import matching, tokens
from codedouble.server.edits.live import MadeEdit
from codedouble.server.edits.rules import Rewrite, edit_class

# Proposed by default only what the engineer's own history says is right at least this often: the issue's
# bar for what is proposed is 50 %. Said of the lower bound of a one-sided 95 % Wilson interval, not of the
# raw share: a habit seen twice and never left standing is 2/2, which says little (its bound is 0.43; 3/3 is
# 0.53). Measured on rich's held-out commits (eval's next-edit task, 148 files): habits with a raw share ≥ 50 %
# were placed right 7 times in 47 proposals.
MIN_PRECISION = 0.5
_Z = 1.6449  # the normal quantile of a one-sided 95 % interval
# Classes of the edit just made (`rules.edit_class`) proposed when the double measured too few of the class in
# its own training commits (or predates the measure): measured on rich's training commits (eval's next-edit
# replay, 600 files): a rename repeated where the same text is was mostly right for 10 of 11 edits, and 13 of
# its 15 proposals were placed right; generalised renames 13 of 17 edits but 24 of 41 proposals, literal
# replacements 10 of 22 edits, inserts 18-27 % of edits.
PRIOR: Evidence = {"rename/named/literal": (11, 10, 15, 13)}
# Edits of a class a double must have measured before its own figures replace the prior.
MIN_EVIDENCE = 5
# Proposals per document: a rewrite that matches 500 places is a job for search-and-replace, and the list
# of code actions must stay readable.
MOST = 100


def confident(right: int, total: int, z: float = _Z) -> float:
    """The Wilson score lower bound of the share right: what `right` of `total` promises at least."""
    if total <= 0:
        return 0.0
    p = right / total
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return (p + z * z / (2 * total) - spread) / (1 + z * z / total)


@dataclass(frozen=True)
class Gate:
    """What may be proposed: the edit just made where its class was precise enough in the engineer's history,
    and the habits precise enough on their own evidence. A minimum precision of 0 lets everything through."""

    min_precision: float = MIN_PRECISION
    classes: Evidence | None = None  # measured on the double's training commits

    def allows(self, rewrite: Rewrite) -> bool:
        """Both counts must clear the bar: edits as trials (one mass rename is one piece of evidence, not 19)
        and their proposals (an edit mostly right may still be wrong in many places)."""
        if self.min_precision <= 0:
            return True
        found = (self.classes or {}).get(edit_class(rewrite))
        if found is None or found[0] < MIN_EVIDENCE:
            found = PRIOR.get(edit_class(rewrite))
        if found is None:
            return False
        pairs = [(found[0], found[1])] + ([(found[2], found[3])] if len(found) >= 4 else [])
        return all(confident(right, total) >= self.min_precision for total, right in pairs)

    def choose(self, edit: MadeEdit) -> Rewrite | None:
        """The edit's generalised form if its class is precise enough, else its literal form if that is."""
        if self.allows(edit.rewrite):
            return edit.rewrite
        if edit.literal is not None and edit.literal != edit.rewrite and self.allows(edit.literal):
            return edit.literal
        return None

    def trusts(self, pattern: EditPattern) -> bool:
        return self.min_precision <= 0 or confident(pattern.count, pattern.count + pattern.left) >= self.min_precision


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
    classes: Evidence | None = None,
) -> list[EditProposal]:
    """Proposals in document order, none overlapping: the edits just made win over habits from the history.
    Only what `Gate(min_precision, classes)` lets through is proposed."""
    gate = Gate(min_precision, classes)
    if not made and not patterns:
        return []
    index = matching.Index(doc if doc is not None else tokens.tokenize(text, language))
    found: list[EditProposal] = []
    for edit in made:
        if edit.language != language:
            continue  # a rewrite of Python code is not one for Go
        rewrite = gate.choose(edit)
        if rewrite is None:
            continue  # edits of this kind were rarely made again elsewhere in the engineer's history
        where = "" if edit.uri is None else f" at line {edit.line + 1}"
        for m in matching.find(rewrite, index, MOST):
            title = f"Same rewrite as you just made{where}: {rewrite.describe()}"
            found.append(EditProposal(m.start, m.end, m.replacement, title, "session", 1.0, rewrite.describe()))
    for pattern in sorted(patterns, key=lambda p: (-p.precision, -p.count)):
        if pattern.language != language or not gate.trusts(pattern):
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

"""The engineer's recurring edits, mined from the records' before/after pairs: every routine-sized hunk of a
changed definition becomes a rewrite rule (`server/edits/rules.py`), occurrences of the same shape are joined
by anti-unification, and a rule is kept when the engineer made it in at least two distinct commits.

Each kept rule carries its evidence, and one more count: how many times the old form was still written in
definitions the engineer changed after first making the rewrite (`left`). A rule they apply everywhere has
few; a rule that was a one-off fix of two call sites among fifty has many, and its measured precision
(`count / (count + left)`) keeps the server from proposing it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from codedouble.server.contract.edits import COMMITS_KEPT, EditPattern, Evidence
from codedouble.server.edits import matching, rules, tokens
from codedouble.server.edits.propose import Gate, confident
from codedouble.trainer.evaluation.replay import Source
from codedouble.trainer.mining.records import ChangeRecord

# A rewrite made in one commit only may be one change spread over several call sites; the bar for a
# habit is two distinct commits.
MIN_COMMITS = 2
# Definitions larger than this are not diffed: one rewrite of a 3,000-line generated table costs seconds and
# is never a routine edit (the records' 99th percentile on rich is about 9 kB).
MAX_DEFINITION_CHARS = 20_000
# Files of the training commits replayed to measure the classes of the edit just made: 600 files of rich
# took 161 s here; 200 keep it under a minute on a history that size and still give tens of proposals of the
# common classes.
CLASS_SAMPLES = 200
# Rules kept at most, the likeliest first: the server matches each one against every open document.
MOST = 500


@dataclass(frozen=True)
class Occurrence:
    change: rules.Change
    commit: str
    committed_at: str


def occurrences(records: Iterable[ChangeRecord]) -> dict[tuple[str, object], list[Occurrence]]:
    """Every rewrite hunk of the modified definitions, grouped by language and shape."""
    groups: dict[tuple[str, object], list[Occurrence]] = defaultdict(list)
    for r in records:
        if r.change != "modified" or r.before is None or r.after is None or r.before == r.after:
            continue
        if len(r.before) > MAX_DEFINITION_CHARS or len(r.after) > MAX_DEFINITION_CHARS:
            continue
        old, new = tokens.tokenize(r.before, r.language), tokens.tokenize(r.after, r.language)
        for change in rules.changes(old, new):
            groups[(r.language, change.shape())].append(Occurrence(change, r.commit, r.committed_at))
    return groups


def mine(records: Sequence[ChangeRecord], min_commits: int = MIN_COMMITS) -> list[EditPattern]:
    """The rules the engineer made in at least `min_commits` distinct commits, likeliest first."""
    candidates: list[tuple[str, rules.Rewrite, list[Occurrence]]] = []
    for (language, _), found in occurrences(records).items():
        if len({o.commit for o in found}) < min_commits:
            continue
        found.sort(key=lambda o: o.committed_at)
        rewrite = rules.anti_unify([o.change for o in found])
        # A rule must name an identifier: `$1 = 1 → $1 = 2` would fire on every assignment.
        if rewrite.specific(("word",)):
            candidates.append((language, rewrite, found))
    left = _left_standing(
        records, [(language, rewrite, found[0].committed_at) for language, rewrite, found in candidates]
    )
    patterns = []
    for (language, rewrite, found), kept in zip(candidates, left, strict=True):
        commits: list[str] = []
        for o in reversed(found):  # newest first
            if o.commit not in commits:
                commits.append(o.commit)
        patterns.append(
            EditPattern(
                language=language,
                rewrite=rewrite,
                count=len(found),
                commits=tuple(commits[:COMMITS_KEPT]),
                distinct_commits=len(commits),
                first=found[0].committed_at,
                last=found[-1].committed_at,
                left=kept,
            )
        )
    # Likeliest first: by what the evidence promises at least (a rule made 9 times of 10 before one made 2 of 2).
    patterns.sort(key=lambda p: (-confident(p.count, p.count + p.left), -p.distinct_commits, -p.count, p.last))
    return patterns[:MOST]


def _left_standing(records: Sequence[ChangeRecord], rules_since: list[tuple[str, rules.Rewrite, str]]) -> list[int]:
    """For each (language, rule, first date): places its pattern still matches in the after-text of
    definitions changed since that date: the engineer saw the old form there and left it."""
    counts = [0] * len(rules_since)
    by_language: dict[str, list[int]] = defaultdict(list)
    anchors: dict[int, set[str]] = {}
    for k, (language, rewrite, _) in enumerate(rules_since):
        by_language[language].append(k)
        anchors[k] = {e.text for e in rewrite.before if isinstance(e, rules.Lit)}
    if not rules_since:
        return counts
    for r in records:
        if r.after is None or len(r.after) > MAX_DEFINITION_CHARS or r.language not in by_language:
            continue
        # Only rules whose literal tokens all appear in this definition can match it: most are skipped unparsed.
        relevant = [
            k
            for k in by_language[r.language]
            if r.committed_at >= rules_since[k][2] and all(text in r.after for text in anchors[k])
        ]
        if not relevant:
            continue
        index = matching.Index(tokens.tokenize(r.after, r.language))
        for k in relevant:
            counts[k] += len(matching.find(rules_since[k][1], index))
    return counts


def summary(patterns: Sequence[EditPattern]) -> dict[str, object]:
    """What the artifact manifest says of its rules: how many, and how many the server proposes by default."""
    return {
        "rules": len(patterns),
        # What the server proposes by default: its gate, the Wilson bound of the share made at least 50 %.
        "proposed": sum(Gate().trusts(p) for p in patterns),
        "min_commits": MIN_COMMITS,
    }


def measure_classes(sources: Iterable[Source], seed: int, count: int = CLASS_SAMPLES) -> Evidence:
    """Per class of edit just made, its proposals and how many were placed right, replayed on up to `count`
    files of the training commits changed in two hunks or more (eval's next-edit task, never held-out commits)."""
    from codedouble.trainer.evaluation import next_edit

    return next_edit.class_evidence(next_edit.samples(sources, count, seed))

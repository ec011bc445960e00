"""The next-edit task of `codedouble eval`: in each sampled held-out commit's file with two or more changed
hunks, the first hunk is applied to the parent's text, and each system proposes the rest (as the language
server would after the engineer made that first edit). Scored against what the commit really did next:

- **where**: a proposal is placed right when it starts within ±2 lines of a hunk still to make (precision:
  the share of proposals placed right; location recall: the share of those hunks with a proposal there);
- **what**: a hunk is made exactly when the proposals inside it turn its lines into the commit's (edit EM,
  over the hunks still to make; exact precision, over the proposals).

Systems: the double (the edit just made, generalised, plus the engineer's mined rewrites above the serving
threshold: `server/edits/propose.py`), the literal edit repeated where the same text is, and none (no
proposal: every hunk missed, nothing wrong shown). Only the same file is looked at: what the server
proposes in one document."""

from __future__ import annotations

import difflib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from codedouble.server.contract.edits import EditPattern, Evidence
from codedouble.server.edits import live, propose, rules
from codedouble.server.stats import percentile
from codedouble.trainer.evaluation.replay import Source
from codedouble.trainer.evaluation.summary import EditRow
from codedouble.trainer.mining.file_changes import file_changes

SYSTEMS = ("double", "literal", "none")
DESCRIPTIONS = {
    "double": "the edit just made, generalised, and the engineer's mined rewrites (precision ≥ threshold)",
    "literal": "the edit just made, repeated where exactly the same text is",
    "none": "no proposal",
}
NEAR = 2  # lines: how far from a hunk a proposal may start and still be placed right (the issue's ±2)
MAX_FILE_CHARS = 200_000  # tokenising and matching cost grows with the file; a larger one is data, not code


@dataclass(frozen=True)
class EditSample:
    id: str  # commit:path
    repository: str
    commit: str
    path: str
    language: str
    parent: str  # the file before the commit
    started: str  # the parent with the commit's first hunk applied
    final: str  # the file after the commit


Hunk = tuple[int, int, int, int]  # lines [t1, t2) of one text that become lines [c1, c2) of the other


def _lines(text: str) -> list[str]:
    return text.split("\n")


def hunks(old: str, new: str) -> list[Hunk]:
    ops = difflib.SequenceMatcher(None, _lines(old), _lines(new), autojunk=False).get_opcodes()
    return [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def first_applied(old: str, new: str) -> str:
    """`old` with only the first changed hunk of `new` made."""
    a, b = _lines(old), _lines(new)
    i1, i2, j1, j2 = hunks(old, new)[0]
    return "\n".join(a[:i1] + b[j1:j2] + a[i2:])


def samples(sources: Iterable[Source], count: int, seed: int) -> list[EditSample]:
    """Up to `count` (commit, file) pairs of the held-out commits whose change has two hunks or more, the same
    ones for the same seed."""
    if count <= 0:
        return []
    pool: list[EditSample] = []
    for repository, commits, path_filter in sources:
        for change in file_changes(repository, commits, path_filter):
            if not change.before or max(len(change.before), len(change.after)) > MAX_FILE_CHARS:
                continue
            if len(hunks(change.before, change.after)) < 2:
                continue
            pool.append(
                EditSample(
                    id=f"{change.commit[:12]}:{change.path}",
                    repository=str(repository),
                    commit=change.commit,
                    path=change.path,
                    language=change.language,
                    parent=change.before,
                    started=first_applied(change.before, change.after),
                    final=change.after,
                )
            )
    pool.sort(key=lambda s: (s.repository, s.id))
    return random.Random(seed).sample(pool, min(count, len(pool)))


def proposer(
    system: str, patterns: Sequence[EditPattern], min_precision: float, classes: Evidence | None
) -> Callable[[EditSample], list[propose.EditProposal]]:
    """What `system` proposes once a sample's first hunk is made: the double as the server gates it (its
    measured classes, its habits, the minimum precision), the literal edit wherever the same text is."""

    def run(sample: EditSample) -> list[propose.EditProposal]:
        if system == "none":
            return []
        made = live.rewrites(sample.parent, sample.started, sample.language)
        if system == "literal":
            edits = [live.MadeEdit(literal, sample.path, line, sample.language) for _, literal, line in made]
            return propose.propose(sample.started, sample.language, edits, [], min_precision=0.0)
        edits = [live.MadeEdit(g, sample.path, line, sample.language, literal) for g, literal, line in made]
        return propose.propose(sample.started, sample.language, edits, patterns, min_precision, classes=classes)

    return run


def class_evidence(chosen: Sequence[EditSample]) -> Evidence:
    """Per class of edit just made (`rules.edit_class`), in both its generalised and its literal form: how many
    times an edit of the class, made in one file of `chosen`, was proposed elsewhere in it, how many of those
    times at least half its proposals were placed right, then how many proposals and how many placed right. What the gate is tuned on, from the training
    commits: the engineer's own way of repeating (or not repeating) an edit.

    One edit is one trial however many places it matched: the proposals of one edit are not independent (a
    rename across one file is right 19 times or wrong 19 times together), and counted one by one they made a
    Go history's one mass rename look like 19 of 19 evidence for its whole class (cobra: its double then
    proposed at 23 % on held-out commits)."""
    evidence: dict[str, list[int]] = {}
    for sample in chosen:
        for general, literal, line in live.rewrites(sample.parent, sample.started, sample.language):
            for rewrite in {general, literal}:
                made = [live.MadeEdit(rewrite, sample.path, line, sample.language)]
                proposals = propose.propose(sample.started, sample.language, made, [], min_precision=0.0)
                if proposals:
                    scored = score(sample, proposals)
                    counts = evidence.setdefault(rules.edit_class(rewrite), [0, 0, 0, 0])
                    counts[0] += 1
                    counts[1] += 2 * scored.located >= scored.proposals
                    counts[2] += scored.proposals
                    counts[3] += scored.located
    return {k: tuple(v) for k, v in evidence.items()}


@dataclass(frozen=True)
class Scored:
    hunks: int
    proposals: int
    located: int
    exact: int
    hunks_found: int
    hunks_exact: int


def score(sample: EditSample, proposals: Sequence[propose.EditProposal]) -> Scored:
    text = sample.started
    remaining = hunks(text, sample.final)
    starts = [0]
    for line in _lines(text)[:-1]:
        starts.append(starts[-1] + len(line) + 1)

    def line_of(offset: int) -> int:
        return text.count("\n", 0, offset)

    def near(p: propose.EditProposal, h: Hunk) -> bool:
        line = line_of(p.start)
        return h[0] - NEAR <= line <= max(h[1] - 1, h[0]) + NEAR

    located = sum(any(near(p, h) for h in remaining) for p in proposals)
    found = sum(any(near(p, h) for p in proposals) for h in remaining)
    exact_proposals = 0
    exact_hunks = 0
    final_lines = _lines(sample.final)
    for t1, t2, c1, c2 in remaining:
        if t2 <= t1:
            continue  # a pure insertion of lines: a rewrite of existing text cannot make it
        low, high = starts[t1], starts[t2 - 1] + len(_lines(text)[t2 - 1])
        inside = [p for p in proposals if low <= p.start and p.end <= high]
        if not inside:
            continue
        made = text[low:high]
        for p in sorted(inside, key=lambda p: p.start, reverse=True):
            made = made[: p.start - low] + p.new_text + made[p.end - low :]
        if _lines(made) == final_lines[c1:c2]:
            exact_hunks += 1
            exact_proposals += len(inside)
    return Scored(len(remaining), len(proposals), located, exact_proposals, found, exact_hunks)


def evaluate(
    chosen: Sequence[EditSample],
    patterns: Sequence[EditPattern],
    min_precision: float = propose.MIN_PRECISION,
    classes: Evidence | None = None,
    progress: bool = False,
) -> tuple[EditRow, ...]:
    from tqdm import tqdm

    rows = []
    for system in SYSTEMS:
        run = proposer(system, patterns, min_precision, classes)
        totals = [0] * 6
        latencies: list[float] = []
        for sample in tqdm(chosen, desc=f"next edits ({system})", unit="file", disable=None if progress else True):
            started = time.perf_counter()
            proposals = run(sample)
            latencies.append((time.perf_counter() - started) * 1000)
            scored = score(sample, proposals)
            for k, value in enumerate(
                (scored.hunks, scored.proposals, scored.located, scored.exact, scored.hunks_found, scored.hunks_exact)
            ):
                totals[k] += value
        rows.append(
            EditRow(
                system,
                len(chosen),
                *totals,
                p50_ms=percentile(latencies, 50) if latencies else 0.0,
                p95_ms=percentile(latencies, 95) if latencies else 0.0,
            )
        )
    return tuple(rows)

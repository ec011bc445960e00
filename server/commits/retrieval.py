"""Past commits with changes like this one: BM25 over the terms of what each training commit changed (the
commit index), then the summary line those neighbours agree on.

The nearest neighbour's message is a strong published baseline (NNGen: Liu et al., "Neural-machine-
translation-based commit message generation: how far are we?", ASE 2018). Among the NEIGHBOURS nearest,
this takes the summary the others agree with most (minimum-Bayes-risk selection, each neighbour weighted by
its BM25 score), agreement measured as the drafts are scored: ROUGE-L, edit similarity and the same first
word. A one-off neighbour says something particular to its own change; the agreed summary is the engineer's
usual way to name such a change. NEIGHBOURS and the agreement were chosen on the newest 200 training commits
of Textualize/rich (each left out of its own neighbours), not on held-out commits (README, "Commit messages").

Only the engineer's RECENT newest commits are searched: how they name changes drifts (rich's summaries went
from "Fix for …" sentences to "typing fix", "simplify"), and a neighbour from years ago drafts in a voice
they no longer use.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from codedouble.server.commits.similarity import edit_similarity, first_words_match, rouge_l, summary
from codedouble.server.contract.commits import IndexedCommit, made_before
from codedouble.server.engine.retrieval import Bm25

NEIGHBOURS = 40
# Measured on rich's 142 validation commits, each drafted from the commits before it: the newest 300 against
# all of them, B-Norm 9.5 against 8.4, first word 15.5 % against 10.6, first two words 3.5 % against 0.7, edit
# similarity 22.9 against 22.2; windows of 150 to 800 all beat every commit on the first words, and 300 was
# best on three of the five measures. An exponential decay of the BM25 weight instead did less (README).
RECENT = 300


@dataclass(frozen=True)
class Neighbour:
    commit: str
    message: str  # its summary line
    score: float  # BM25 of the query against it


class CommitRetrieval:
    def __init__(self, index: Sequence[IndexedCommit]) -> None:
        # Oldest first. An entry without a time comes from an index of training commits only, older than any
        # entry with one; among themselves they keep the index's order (mined oldest first).
        self.index = sorted((entry for entry in index if summary(entry.message)), key=lambda e: e.time or "")
        self._pool: tuple[str | None, list[IndexedCommit], Bm25] | None = None

    def pool(self, before: str | None = None) -> tuple[list[IndexedCommit], Bm25]:
        """The RECENT newest commits made before `before` (UTC ISO 8601; None: all of them), and their index.
        The last pool is kept: the server and the hook always ask for the newest."""
        if self._pool is None or self._pool[0] != before:
            entries = made_before(self.index, before)[-RECENT:]
            self._pool = (before, entries, Bm25([list(entry.terms) for entry in entries]))
        return self._pool[1], self._pool[2]

    def neighbours(
        self, terms: Sequence[str], exclude: Collection[str] = (), top: int = NEIGHBOURS, before: str | None = None
    ) -> list[Neighbour]:
        """The past commits whose changes are most like `terms`, best first, among the newest made before
        `before`, leaving out those in `exclude` (a commit never retrieves itself when eval or training measures
        on commits of the index)."""
        entries, bm25 = self.pool(before)
        hits = bm25.scored(list(dict.fromkeys(terms)), top=top + len(exclude))
        found = [Neighbour(entries[i].commit, summary(entries[i].message), s) for i, s in hits]
        return [n for n in found if n.commit not in exclude][:top]

    def nearest(
        self, terms: Sequence[str], exclude: Collection[str] = (), before: str | None = None
    ) -> Neighbour | None:
        """The neighbour whose summary the others agree with most; None when no past change shares a term."""
        found = self.neighbours(terms, exclude, before=before)
        if len(found) < 3:
            return found[0] if found else None

        def agreement(i: int) -> float:
            return sum(n.score * _alike(found[i].message, n.message) for j, n in enumerate(found) if j != i)

        return found[max(range(len(found)), key=agreement)]


def _alike(a: str, b: str) -> float:
    return rouge_l(a, b) + edit_similarity(a, b) + first_words_match(a, b, 1)

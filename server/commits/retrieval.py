"""Past commits with changes like this one: BM25 over the terms of what each training commit changed (the
commit index), then the summary line those neighbours agree on.

The nearest neighbour's message is a strong published baseline (NNGen: Liu et al., "Neural-machine-
translation-based commit message generation: how far are we?", ASE 2018). Among the NEIGHBOURS nearest,
this takes the summary the others agree with most (minimum-Bayes-risk selection, each neighbour weighted by
its BM25 score), agreement measured as the drafts are scored: ROUGE-L, edit similarity and the same first
word. A one-off neighbour says something particular to its own change; the agreed summary is the engineer's
usual way to name such a change. NEIGHBOURS and the agreement were chosen on the newest 200 training commits
of Textualize/rich (each left out of its own neighbours), not on held-out commits (README, "Commit messages").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from codedouble.server.commits.similarity import edit_similarity, first_words_match, rouge_l, summary
from codedouble.server.contract.commits import IndexedCommit
from codedouble.server.engine.retrieval import Bm25

NEIGHBOURS = 40


@dataclass(frozen=True)
class Neighbour:
    commit: str
    message: str  # its summary line
    score: float  # BM25 of the query against it


class CommitRetrieval:
    def __init__(self, index: Sequence[IndexedCommit]) -> None:
        self.index = [entry for entry in index if summary(entry.message)]
        self.bm25 = Bm25([list(entry.terms) for entry in self.index])

    def neighbours(self, terms: Sequence[str], exclude: Collection[str] = (), top: int = NEIGHBOURS) -> list[Neighbour]:
        """The past commits whose changes are most like `terms`, best first, leaving out those in `exclude` (a
        commit never retrieves itself when eval or training measures on commits of the index)."""
        hits = self.bm25.scored(list(dict.fromkeys(terms)), top=top + len(exclude))
        found = [Neighbour(self.index[i].commit, summary(self.index[i].message), s) for i, s in hits]
        return [n for n in found if n.commit not in exclude][:top]

    def nearest(self, terms: Sequence[str], exclude: Collection[str] = ()) -> Neighbour | None:
        """The neighbour whose summary the others agree with most; None when no past change shares a term."""
        found = self.neighbours(terms, exclude)
        if len(found) < 3:
            return found[0] if found else None

        def agreement(i: int) -> float:
            return sum(n.score * _alike(found[i].message, n.message) for j, n in enumerate(found) if j != i)

        return found[max(range(len(found)), key=agreement)]


def _alike(a: str, b: str) -> float:
    return rouge_l(a, b) + edit_similarity(a, b) + first_words_match(a, b, 1)

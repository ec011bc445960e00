"""Past commits with changes like this one: BM25 over the terms of what each training commit changed (the
commit index), then the summary line those neighbours agree on.

The nearest neighbour's message is a strong published baseline (NNGen: Liu et al., "Neural-machine-
translation-based commit message generation: how far are we?", ASE 2018). Measured on Textualize/rich,
the single nearest neighbour lost to "Update FILE" on first-word match: the nearest change is often a
one-off whose message says something particular. Among the NEIGHBOURS nearest, the summary with the most
ROUGE-L agreement with the others (weighted by their BM25 scores; minimum-Bayes-risk selection) is the
engineer's usual way to name such a change. NEIGHBOURS was chosen on a validation split (the newest tenth
of rich's training commits), not on held-out commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from codedouble.server.commits.similarity import rouge_l, summary
from codedouble.server.contract.commits import IndexedCommit
from codedouble.server.engine.retrieval import Bm25

NEIGHBOURS = 20


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
            return sum(n.score * rouge_l(found[i].message, n.message) for j, n in enumerate(found) if j != i)

        return found[max(range(len(found)), key=agreement)]

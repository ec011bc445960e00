"""The retrieval baseline: BM25 over the engineer's own lines (and definitions, for bodies); the completion
is what followed the best hit in their code."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from codedouble.server.engine import blocks, lexer
from codedouble.server.engine.document import NOTHING, Proposal, Request

K1 = 1.2
B = 0.75
TOP = 20  # hits considered for one that continues what is typed
# A hit that only holds the end of what is typed is weaker evidence than one that starts alike: its score
# counts for less when abstention decides whether to show it.
TAIL_MATCH_DISCOUNT = 0.5
# The longest tail of the typed line looked for inside a hit. Each size is one search of the hit, so trying every
# tail of a long line was quadratic (a 4 MB line before the cursor never finished); a tail longer than a hit can
# never be found in it, and a line typed longer than this is not code one completes.
TAIL_MATCH_CHARS = 1000


class _Bm25:
    def __init__(self, docs: Sequence[list[str]]) -> None:
        postings: dict[str, dict[int, int]] = defaultdict(dict)
        lengths = np.zeros(len(docs), dtype=np.float32)
        for d, terms in enumerate(docs):
            lengths[d] = len(terms)
            for t in terms:
                postings[t][d] = postings[t].get(d, 0) + 1
        n = max(len(docs), 1)
        average = float(lengths.mean()) if len(docs) else 1.0
        norm = K1 * (1 - B + B * lengths / max(average, 1e-9))
        self.count = len(docs)
        self.terms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, hits in postings.items():
            ids = np.fromiter(hits.keys(), dtype=np.int64, count=len(hits))
            tf = np.fromiter(hits.values(), dtype=np.float32, count=len(hits))
            idf = math.log(1 + (n - len(hits) + 0.5) / (len(hits) + 0.5))
            self.terms[term] = (ids, (idf * tf * (K1 + 1) / (tf + norm[ids])).astype(np.float32))

    def search(self, query: Sequence[str], top: int = TOP) -> list[int]:
        return [index for index, _ in self.scored(query, top)]

    def scored(self, query: Sequence[str], top: int = TOP) -> list[tuple[int, float]]:
        """The best `top` entries for `query` with their BM25 scores, best first."""
        scores = np.zeros(self.count, dtype=np.float32)
        for term in query:
            hit = self.terms.get(term)
            if hit is not None:
                scores[hit[0]] += hit[1]
        if not self.count or not scores.any():
            return []
        best = np.argpartition(-scores, min(top, self.count - 1))[:top]
        best = best[scores[best] > 0]
        ranked = best[np.argsort(-scores[best], kind="stable")]
        return [(int(i), float(scores[i])) for i in ranked]


Bm25 = _Bm25  # also ranks past commits by their changes (codedouble.server.commits.retrieval)


def _previous_line(prefix: str) -> str:
    lines = prefix.split("\n")[:-1]
    return next((line for line in reversed(lines) if line.strip()), "")


class Lines:
    """The distinct lines of some texts, each found by its own words and its predecessor's (`for x in` alone
    matches too much), with the text each first came from (so one file can be left out of a request)."""

    def __init__(self, texts: Iterable[str]) -> None:
        lines: dict[tuple[str, str], int] = {}
        for number, text in enumerate(texts):
            previous = ""
            for raw in text.split("\n"):
                line = raw.strip()
                if line:
                    lines.setdefault((previous, line), number)
                    previous = line
        self.lines = [line for _, line in lines]
        self.texts = np.fromiter(lines.values(), dtype=np.int32, count=len(lines))
        self.index = _Bm25([lexer.words(prev) + 2 * lexer.words(line) for prev, line in lines])

    def scored(self, query: Sequence[str], skip: int | None = None) -> list[tuple[str, float]]:
        """The best lines for `query` with their scores, none of text number `skip`."""
        hits = self.index.scored(query, TOP + (TOP if skip is not None else 0))
        return [(self.lines[i], score) for i, score in hits if skip is None or self.texts[i] != skip][:TOP]


class Bm25Lines:
    name = "bm25"
    description = "BM25 retrieval of your training-split lines and definitions; the completion continues the best hit"

    def __init__(
        self, texts: Sequence[str], languages: Sequence[str | None], kinds: Sequence[str] | None = None
    ) -> None:
        """One index per language: a completion only draws on the document's own language. Bodies come from
        definitions only (`kinds`: "definition" or "module" per text; all definitions without it)."""
        grouped: dict[str | None, list[int]] = defaultdict(list)
        for i, language in enumerate(languages):
            grouped[language].append(i)
        self.lines = {language: Lines(texts[i] for i in members) for language, members in grouped.items()}
        self.bodies: dict[str | None, list[tuple[str, str]]] = {}
        self.body_index: dict[str | None, _Bm25] = {}
        for language, members in grouped.items():
            split = [
                blocks.split_definition(texts[i], language)
                for i in members
                if kinds is None or kinds[i] == "definition"
            ]
            self.bodies[language] = [(sig, body) for sig, body in split if body.strip()]
            self.body_index[language] = _Bm25([lexer.words(sig) for sig, _ in self.bodies[language]])

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.propose(request, cancelled).text

    def propose(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Proposal:  # noqa: ARG002 - instant
        """The best hit's continuation, scored by the hit's BM25 score."""
        prefix, mode, language = request.prefix, request.mode, request.language
        if mode == "block":
            if language not in self.body_index:
                return NOTHING
            # The signature may span lines: its last three carry the name and the parameters.
            signature = "\n".join([line for line in prefix.split("\n") if line.strip()][-3:])
            found = self.body_index[language].scored(lexer.words(signature), top=1)
            if not found:
                return NOTHING
            sig, body = self.bodies[language][found[0][0]]
            # The hit's body, moved to one indentation step inside the signature being completed.
            line = _previous_line(prefix)
            indent = line[: blocks.indent_of(line)]
            closed = language not in blocks.INDENTED
            inner = body.rstrip().removesuffix("}") if closed else body
            # A file with nothing indented before the cursor says nothing of its step: the hit's own decides.
            unit = (
                blocks.indent_unit(prefix)
                if any(line[:1] in (" ", "\t") for line in prefix.split("\n"))
                else blocks.indent_unit(sig + body)
            )
            moved = blocks.reindent(inner.rstrip(), indent + unit)
            return Proposal(f"{moved}\n{indent}}}" if closed else moved, found[0][1])
        typed = prefix.rsplit("\n", 1)[-1].lstrip()
        query = lexer.words(_previous_line(prefix)) + 2 * lexer.words(typed)
        hits = self._hits(request, query)
        for hit, score in hits:
            if hit.startswith(typed) and len(hit) > len(typed):
                return Proposal(hit[len(typed) :], score)
        # No hit starts like the typed text: continue the best hit after the longest tail of it that it holds.
        for hit, score in hits[:1]:
            for size in range(min(len(typed), len(hit) - 1, TAIL_MATCH_CHARS), 0, -1):
                at = hit.find(typed[-size:])
                if at >= 0 and at + size < len(hit):
                    return Proposal(hit[at + size :], score * TAIL_MATCH_DISCOUNT)
        return NOTHING

    def _hits(self, request: Request, query: Sequence[str]) -> list[tuple[str, float]]:
        """The corpus's hits in the document's language and the workspace's (its other files), best first."""
        hits: list[tuple[str, float]] = []
        own = self.lines.get(request.language)
        if own is not None:
            hits.extend(own.scored(query))
        workspace = request.workspace.lines(request.language, request.path) if request.workspace else None
        if workspace is not None:
            hits.extend(workspace[0].scored(query, workspace[1]))
        hits.sort(key=lambda hit: -hit[1])
        return hits[:TOP]

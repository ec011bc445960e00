"""The retrieval baseline: BM25 over the engineer's own lines (and definitions, for bodies); the completion
is what followed the best hit in their code."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from codedouble.server.engine import blocks, lexer
from codedouble.server.engine.document import Request

K1 = 1.2
B = 0.75
TOP = 20  # hits considered for one that continues what is typed


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
        scores = np.zeros(self.count, dtype=np.float32)
        for term in query:
            hit = self.terms.get(term)
            if hit is not None:
                scores[hit[0]] += hit[1]
        if not self.count or not scores.any():
            return []
        best = np.argpartition(-scores, min(top, self.count - 1))[:top]
        best = best[scores[best] > 0]
        return best[np.argsort(-scores[best], kind="stable")].tolist()


def _previous_line(prefix: str) -> str:
    lines = prefix.split("\n")[:-1]
    return next((line for line in reversed(lines) if line.strip()), "")


class Bm25Lines:
    name = "bm25"
    description = "BM25 retrieval of your training-split lines and definitions; the completion continues the best hit"

    def __init__(self, texts: Sequence[str], languages: Sequence[str | None]) -> None:
        # A line is found by its own words and its predecessor's: `for x in` alone matches too much.
        lines: dict[tuple[str, str], None] = {}
        for text in texts:
            previous = ""
            for raw in text.split("\n"):
                line = raw.strip()
                if line:
                    lines.setdefault((previous, line), None)
                    previous = line
        self.lines = [line for _, line in lines]
        self.line_index = _Bm25([lexer.words(prev) + 2 * lexer.words(line) for prev, line in lines])
        bodies = [(blocks.split_definition(t, lang)) for t, lang in zip(texts, languages, strict=True)]
        self.bodies = [(sig, body) for sig, body in bodies if body.strip()]
        self.body_index = _Bm25([lexer.words(sig) for sig, _ in self.bodies])

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:  # noqa: ARG002 - instant
        prefix, mode, language = request.prefix, request.mode, request.language
        if mode == "block":
            # The signature may span lines: its last three carry the name and the parameters.
            signature = "\n".join([line for line in prefix.split("\n") if line.strip()][-3:])
            hits = self.body_index.search(lexer.words(signature), top=1)
            if not hits:
                return ""
            sig, body = self.bodies[hits[0]]
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
            return f"{moved}\n{indent}}}" if closed else moved
        typed = prefix.rsplit("\n", 1)[-1].lstrip()
        query = lexer.words(_previous_line(prefix)) + 2 * lexer.words(typed)
        hits = self.line_index.search(query)
        for hit in hits:
            if self.lines[hit].startswith(typed) and len(self.lines[hit]) > len(typed):
                return self.lines[hit][len(typed) :]
        # No hit starts like the typed text: continue the best hit after the longest tail of it that it holds.
        for hit in hits[:1]:
            line = self.lines[hit]
            for size in range(len(typed), 0, -1):
                at = line.find(typed[-size:])
                if at >= 0 and at + size < len(line):
                    return line[at + size :]
        return ""

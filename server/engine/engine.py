"""The completion engine `codedouble serve` uses and `codedouble eval` scores: the double's model, the
cache n-gram and BM25 retrieval over the engineer's own code, and their combination."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from codedouble.server.engine import corpus
from codedouble.server.engine.document import Request
from codedouble.server.engine.neural import Neural
from codedouble.server.engine.ngram import CacheNgram
from codedouble.server.engine.retrieval import Bm25Lines


class System(Protocol):
    name: str
    description: str

    def complete(self, request: Request) -> str: ...


@dataclass(frozen=True)
class Candidate:
    source: str
    text: str


class Combined:
    """Candidates from the n-gram, retrieval and the model; the model ranks them by how likely it finds each
    one at the cursor, and a candidate two systems agree on wins outright."""

    name = "engine"
    description = "default engine: n-gram, retrieval and model candidates, ranked by the model"

    def __init__(self, model: Neural, ngram: CacheNgram, bm25: Bm25Lines) -> None:
        self.model, self.ngram, self.bm25 = model, ngram, bm25

    def candidates(self, request: Request) -> list[Candidate]:
        found = [Candidate("ngram", self.ngram.complete(request)), Candidate("bm25", self.bm25.complete(request))]
        return [c for c in found if c.text.strip()]

    def complete(self, request: Request) -> str:
        found = self.candidates(request)
        if not found:
            return self.model.complete(request)
        texts = [c.text for c in found]
        if len(texts) > 1 and texts.count(texts[0]) > 1:
            return texts[0]
        scores = self.model.score(request, texts)
        best = max(range(len(texts)), key=lambda i: scores[i] if not math.isnan(scores[i]) else -math.inf)
        return texts[best]


@dataclass
class Engine:
    """Every system one artifact offers, loaded once."""

    artifact: Path
    model: Neural
    ngram: CacheNgram
    bm25: Bm25Lines
    combined: Combined

    @property
    def systems(self) -> list[System]:
        return [self.combined, self.model, self.ngram, self.bm25]

    def complete(self, request: Request) -> str:
        return self.combined.complete(request)


def load(artifact: Path, threads: int | None = None, log: Callable[[str], None] = lambda _: None) -> Engine:
    model = Neural(artifact, threads)
    snippets = corpus.load(artifact)
    log(f"indexing {len(snippets):,} snippets of your code")
    texts = [s.text for s in snippets]
    ngram = CacheNgram(texts)
    bm25 = Bm25Lines(texts, [s.language for s in snippets])
    return Engine(artifact, model, ngram, bm25, Combined(model, ngram, bm25))

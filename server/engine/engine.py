"""The completion engine `codedouble serve` uses and `codedouble eval` scores: the double's model, the
cache n-gram and BM25 retrieval over the engineer's own code, and their combination."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from codedouble.server.contract import corpus, prompt
from codedouble.server.contract.artifact import read_manifest
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.engine.document import Request
from codedouble.server.engine.neural import Neural
from codedouble.server.engine.ngram import CacheNgram
from codedouble.server.engine.retrieval import Bm25Lines


class System(Protocol):
    name: str
    description: str

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str: ...


class Combined:
    """The default: the cache n-gram first, the model where the n-gram has no evidence, retrieval last.

    Measured, not assumed (README, "codedouble eval"): on the engineer's own future code the n-gram over
    their past code completes lines far better than a model small enough for a laptop CPU, and ranking its
    candidate against retrieval's and the model's by the model's likelihood lost exact matches (26 → 21 %
    next-line EM on Textualize/rich). The model earns its place where the n-gram is silent: a context the
    engineer never wrote before.
    """

    name = "engine"
    description = "default engine: cache n-gram, the model where the n-gram has no evidence, then retrieval"

    def __init__(self, model: Neural, ngram: CacheNgram, bm25: Bm25Lines) -> None:
        self.model, self.ngram, self.bm25 = model, ngram, bm25

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        for system in (self.ngram, self.model, self.bm25):
            text = system.complete(request, cancelled)
            if text.strip() or (cancelled is not None and cancelled()):
                return text
        return ""


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

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.combined.complete(request, cancelled)


class EngineError(CodedoubleError):
    """An artifact the engine cannot serve; the message says what is wrong and how to fix it."""


def load_model(artifact: Path, threads: int | None = None) -> Neural:
    """An artifact's model, once its manifest says this codedouble can prompt it."""
    manifest = read_manifest(artifact)
    if manifest.get("prompt_format") != prompt.PROMPT_FORMAT_VERSION:
        raise EngineError(
            f"{artifact} was trained with prompt format {manifest.get('prompt_format')}; this codedouble speaks "
            f"format {prompt.PROMPT_FORMAT_VERSION}: train the double again (`codedouble train`)"
        )
    try:
        model = Neural(artifact, threads)
    except Exception as exc:  # noqa: BLE001 - transformers and safetensors signal a damaged file many ways; all mean this
        raise EngineError(f"{artifact}: the model cannot be loaded ({exc})") from exc
    return model


def load(artifact: Path, threads: int | None = None, log: Callable[[str], None] = lambda _: None) -> Engine:
    model = load_model(artifact, threads)
    snippets = corpus.load(artifact)
    log(f"indexing {len(snippets):,} snippets of your code")
    texts = [s.text for s in snippets]
    ngram = CacheNgram(texts)
    bm25 = Bm25Lines(texts, [s.language for s in snippets])
    return Engine(artifact, model, ngram, bm25, Combined(model, ngram, bm25))

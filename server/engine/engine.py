"""The completion engine `codedouble serve` uses and `codedouble eval` scores: the double's model, the
cache n-gram and BM25 retrieval over the engineer's own code, and their combination."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from codedouble.server.contract import corpus, prompt
from codedouble.server.contract.artifact import read_manifest
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.engine import routing
from codedouble.server.engine.abstention import AGREE, AGREE_BM25, Abstention
from codedouble.server.engine.bodies import Bodies, BodyTuning
from codedouble.server.engine.document import NOTHING, Proposal, Request
from codedouble.server.engine.neural import Generated, Neural
from codedouble.server.engine.ngram import CacheNgram
from codedouble.server.engine.remote import Backend, RemoteModel
from codedouble.server.engine.retrieval import Bm25Lines
from codedouble.server.engine.routing import ByLanguage


class System(Protocol):
    name: str
    description: str

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str: ...


class Proposer(Protocol):
    name: str

    def propose(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Proposal: ...


class Model(Protocol):
    """The double's model, here (`Neural`) or on a remote engine (`RemoteModel`)."""

    name: str
    description: str

    def generate(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Generated: ...

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str: ...


class ModelProposer:
    """The model as a proposer: its greedy completion, scored by the probability it gives those tokens."""

    name = "model"

    def __init__(self, model: Model) -> None:
        self.model = model

    def propose(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Proposal:
        generated = self.model.generate(request, cancelled)
        return Proposal(generated.text, math.exp(generated.logprob)) if generated.text else NOTHING

    def confirm(self, request: Request, line: str, cancelled: Callable[[], bool] | None = None) -> float | None:
        """The model's score for `line` when its own greedy completion is exactly that line, else None: checked
        in one forward pass where the model runs here (`Neural.confirm`), generated and compared elsewhere."""
        local = getattr(self.model, "confirm", None)
        if local is not None:
            return local(request, line)
        return confirmed_by_generation(self, request, line, cancelled)


def confirmed_by_generation(
    proposer: Proposer, request: Request, line: str, cancelled: Callable[[], bool] | None = None
) -> float | None:
    """`line` confirmed by generating: the proposer's score when its first line is exactly `line`."""
    proposal = proposer.propose(request, cancelled)
    same = bool(line.strip()) and proposal.text.split("\n", 1)[0].rstrip() == line.rstrip()
    return proposal.score if same else None


class Combined:
    """The default: the cache n-gram first, the model where the n-gram has no evidence, retrieval last, each
    shown only when its calibrated confidence reaches the double's threshold (abstention.py).

    Measured, not assumed (README, "codedouble eval"): on the engineer's own future code the n-gram over
    their past code completes lines far better than a model small enough for a laptop CPU, and ranking its
    candidate against retrieval's and the model's by the model's likelihood lost exact matches (26 → 21 %
    next-line EM on Textualize/rich). The model earns its place where the n-gram is silent or unsure: a
    context the engineer never wrote before; and as a second opinion: a line the n-gram was unsure of is shown
    when the model proposes the same one (abstention.AGREE), or else retrieval does (abstention.AGREE_BM25),
    each agreement calibrated like a system of its own.

    A system whose calibration never reaches the threshold is not asked at all (nor the model for agreement
    when the n-gram has nothing to agree with): its answer could only be thrown away, after costing the
    editor its latency.
    """

    name = "engine"
    description = (
        "default engine: a retrieved past body where measured better; else the cache n-gram, what it and the "
        "model or retrieval agree on, the model where the n-gram has no evidence, then retrieval"
    )
    # No retrieved bodies unless given (an engine assembled from stand-in proposers has none).
    bodies: Bodies | None = None
    body_tuning: BodyTuning = BodyTuning.default()

    def __init__(
        self,
        model: Model,
        ngram: CacheNgram,
        bm25: Bm25Lines,
        abstention: Abstention | None = None,
        bodies: Bodies | None = None,
        body_tuning: BodyTuning | None = None,
    ) -> None:
        self.model, self.ngram, self.bm25 = model, ngram, bm25
        self.abstention = abstention or Abstention()
        self.proposers: tuple[Proposer, ...] = (ngram, ModelProposer(model), bm25)
        self.bodies = bodies
        self.body_tuning = body_tuning or BodyTuning.default()

    @property
    def order(self) -> tuple[str, ...]:
        """The order `propose` asks in, as tuning simulates it: the n-gram, its agreement with the model, its
        agreement with BM25, the model, BM25."""
        names = [p.name for p in self.proposers]
        at = names.index(CacheNgram.name) + 1 if CacheNgram.name in names else 0
        return (*names[:at], AGREE, AGREE_BM25, *names[at:])

    def retrieved_body(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Proposal:
        """On a block request, the engineer's most similar past body adapted to the signature, when its
        measured edit similarity at this score beats the other systems' (bodies.py); else nothing."""
        if self.bodies is None or request.mode != "block":
            return NOTHING
        proposal = self.bodies.propose(request, cancelled)
        return proposal if proposal.text.strip() and self.body_tuning.prefers(proposal.score) else NOTHING

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        """One forced answer (the next-line and block tasks of `codedouble eval`): a retrieved body where it is
        measured to beat the others, else the first system with one."""
        body = self.retrieved_body(request, cancelled)
        return body.text if body.text else self.complete_without_bodies(request, cancelled)

    def complete_without_bodies(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        """The forced answer of the n-gram, the model and retrieval alone: the first system with one (what a
        retrieved body is measured against)."""
        for system in self.proposers:
            proposal = system.propose(request, cancelled)
            if proposal.text.strip() or (cancelled is not None and cancelled()):
                return proposal.text
        return ""

    def propose(
        self, request: Request, cancelled: Callable[[], bool] | None = None, threshold: float | None = None
    ) -> Proposal:
        """What the editor is shown: the first system whose suggestion is confident enough (the double's
        tuned threshold, or `threshold`), its score the calibrated probability of being right; else nothing.
        A retrieved body is shown when its calibrated probability of being exactly right reaches the bodies'
        own threshold (`threshold` overrides it too); otherwise the others are asked as for any request."""
        body = self.retrieved_body(request, cancelled)
        if body.text and self.body_tuning.shows(body.score, threshold):
            return Proposal(body.text, self.body_tuning.confidence(body.score), system=Bodies.name)
        # A double tuned before an agreement was measured has no calibration for it: never shown.
        agreement = self._may_show(AGREE, threshold)
        retrieval_agreement = self._may_show(AGREE_BM25, threshold)
        ngram, retrieved = NOTHING, None
        bm25 = next((p for p in self.proposers if p.name == Bm25Lines.name), None)
        for system in self.proposers:
            if system.name == ModelProposer.name and ngram.text.strip():
                line = first_line(ngram.text)
                if agreement:
                    score = confirm(system, request, line, cancelled)
                    if score is not None and self.abstention.shows(AGREE, score, threshold):
                        return Proposal(ngram.text, self.abstention.confidence(AGREE, score), system=AGREE)
                if retrieval_agreement and bm25 is not None:
                    retrieved = bm25.propose(request, cancelled)
                    if first_line(retrieved.text) == line and self.abstention.shows(
                        AGREE_BM25, retrieved.score, threshold
                    ):
                        confidence = self.abstention.confidence(AGREE_BM25, retrieved.score)
                        return Proposal(ngram.text, confidence, system=AGREE_BM25)
            # The n-gram is asked for a line another system may agree with, even when never confident alone.
            asked_for_agreement = (agreement or retrieval_agreement) and system.name == CacheNgram.name
            if self.abstention.never_shows(system.name, threshold) and not asked_for_agreement:
                continue  # nothing it could say would be shown: spare the editor its latency
            if system.name == Bm25Lines.name and retrieved is not None:
                proposal = retrieved  # asked already, for agreement
            else:
                proposal = system.propose(request, cancelled)
            if cancelled is not None and cancelled():
                return NOTHING
            if not proposal.text.strip():
                continue
            if self.abstention.shows(system.name, proposal.score, threshold):
                confidence = self.abstention.confidence(system.name, proposal.score)
                return Proposal(proposal.text, confidence, system=system.name)
            if system.name == CacheNgram.name:
                ngram = proposal
        return NOTHING

    def _may_show(self, agreement: str, threshold: float | None) -> bool:
        return self.abstention.calibrates(agreement) and not self.abstention.never_shows(agreement, threshold)


def first_line(text: str) -> str:
    """The part of a suggestion two systems are compared on: its first line, trailing spaces aside."""
    return text.split("\n", 1)[0].rstrip()


def confirm(model: Proposer, request: Request, line: str, cancelled: Callable[[], bool] | None = None) -> float | None:
    """Whether the model's own first line would be exactly `line` (the n-gram's), with its score: two systems
    that learned differently landing on the same line are right far more often than either alone
    (abstention.AGREE). Tuning observes agreement through this same function, so what it calibrates is what
    the engine scores."""
    check = getattr(model, "confirm", None)
    if check is not None:
        return check(request, line, cancelled)
    return confirmed_by_generation(model, request, line, cancelled)


@dataclass
class Engine:
    """Every system one artifact offers, loaded once."""

    artifact: Path
    model: Model
    ngram: CacheNgram
    bm25: Bm25Lines
    combined: Combined

    @property
    def systems(self) -> list[System]:
        return [self.combined, self.model, self.ngram, self.bm25]

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.combined.complete(request, cancelled)

    def propose(
        self, request: Request, cancelled: Callable[[], bool] | None = None, threshold: float | None = None
    ) -> Proposal:
        return self.combined.propose(request, cancelled, threshold)


class EngineError(CodedoubleError):
    """An artifact the engine cannot serve; the message says what is wrong and how to fix it."""


def _check_format(artifact: Path) -> None:
    manifest = read_manifest(artifact)
    if manifest.get("prompt_format") != prompt.PROMPT_FORMAT_VERSION:
        raise EngineError(
            f"{artifact} was trained with prompt format {manifest.get('prompt_format')}; this codedouble speaks "
            f"format {prompt.PROMPT_FORMAT_VERSION}: train the double again (`codedouble train`)"
        )


def load_model(artifact: Path, threads: int | None = None) -> Neural:
    """An artifact's model, once its manifest says this codedouble can prompt it."""
    _check_format(artifact)
    try:
        model = Neural(artifact, threads)
    except Exception as exc:  # noqa: BLE001 - transformers and safetensors signal a damaged file many ways; all mean this
        raise EngineError(f"{artifact}: the model cannot be loaded ({exc})") from exc
    return model


def load(
    artifact: Path,
    threads: int | None = None,
    log: Callable[[str], None] = lambda _: None,
    backend: Backend | None = None,
) -> Engine:
    """The engine for `artifact`; with a `backend` its model runs there (the weights here are not loaded: the
    engine serves the same double as an adapter), the n-gram, retrieval and abstention here."""
    if backend is not None:
        _check_format(artifact)
        model: Model = RemoteModel(backend, artifact)
        log(f"the model runs on {backend.kind} at {backend.url}")
    else:
        model = load_model(artifact, threads)
    manifest = read_manifest(artifact)
    answering = _by_language(model, manifest, threads, log)
    abstention = Abstention.from_manifest(manifest)
    snippets = corpus.load(artifact)
    log(f"indexing {len(snippets):,} snippets of your code")
    texts, languages = [s.text for s in snippets], [s.language for s in snippets]
    ngram = CacheNgram(texts, languages)
    kinds = [s.kind for s in snippets]
    bm25 = Bm25Lines(texts, languages, kinds)
    bodies = Bodies(texts, languages, [s.path for s in snippets], kinds)
    combined = Combined(answering, ngram, bm25, abstention, bodies, BodyTuning.from_manifest(manifest))
    return Engine(artifact, model, ngram, bm25, combined)


def _by_language(model: Model, manifest: dict[str, Any], threads: int | None, log: Callable[[str], None]) -> Model:
    """The model the combined engine asks: the double's, or in the languages it did not learn, its base's
    (routing.py). A remote model stays as it is: asking the remote engine's base would need its name there, a
    setting not built."""
    languages = routing.double_languages(manifest)
    if isinstance(model, RemoteModel) or languages is None:
        return model
    base = routing.base_of(manifest)
    if base is None:
        log("the double answers in every language: its base is gone, changed, or lacks the prompt's tokens")
        return model
    log(f"the double answers in {', '.join(sorted(languages)) or 'no language'}; the base in the others")
    return ByLanguage(model, languages, lambda: Neural(base, threads))

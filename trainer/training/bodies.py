"""Tune the retrieved bodies (server/engine/bodies.py) on the engineer's validation commits, as line
abstention is tuned (abstention.py): the block task's samples cut from those commits (the cursor after a
function's signature, the target its body), with a completion corpus that holds neither their code nor the
training code that nearly repeats it (the held-out commits' near-duplicates are dropped the same way before
`codedouble eval`; without this the earlier version of a function changed in a validation commit is in the
corpus almost verbatim and the calibration promises exact bodies the eval never sees).

For each sample: the retrieved body's raw score, whether it is exactly the engineer's body and its edit
similarity, and the edit similarity of what the other systems answer (the engine's forced answer without
retrieved bodies). Then:

1. `prefer_from`: the raw score from which the retrieved body answers instead of the others, the cut that
   gives the forced answer the best mean edit similarity (none: the others always answer);
2. `exact` calibrates the raw score into the probability of an exact body (isotonic, abstention.fit);
3. the threshold on `exact` is the one that shows the most exact bodies while at least `PRECISION_TARGET` of
   those shown are exact; none reaching it, the target itself (the double then declines bodies).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codedouble.server.contract.corpus import Snippet
from codedouble.server.engine.abstention import fit
from codedouble.server.engine.bodies import Bodies, BodyTuning
from codedouble.server.engine.document import Request
from codedouble.server.engine.engine import Combined
from codedouble.server.engine.neural import Neural
from codedouble.server.engine.ngram import CacheNgram
from codedouble.server.engine.retrieval import Bm25Lines
from codedouble.server.engine.workspace import WorkspaceContext
from codedouble.trainer.evaluation import metrics, tasks
from codedouble.trainer.evaluation.context import RepositoryWorkspaces
from codedouble.trainer.mining.records import ChangeRecord
from codedouble.trainer.training.abstention import MIN_LINES, PRECISION_TARGET, THRESHOLDS
from codedouble.trainer.training.examples import corpus_snippets
from codedouble.trainer.training.split import drop_near_duplicates

# Block samples cut from the validation commits; each costs one forced answer of the engine (about 0.15 s on
# rich's double, the n-gram answering) and one retrieval (milliseconds).
SAMPLES = 100


@dataclass(frozen=True)
class Observed:
    score: float  # the retrieved body's raw score (0 when retrieval found nothing)
    exact: bool  # the retrieved body is the engineer's
    similarity: float  # its edit similarity to the engineer's
    fallback_similarity: float  # the other systems' answer's


def observe(
    engine: Combined,
    bodies: Bodies,
    samples: Sequence[tasks.Sample],
    seconds: float,
    context: Callable[[tasks.Sample], WorkspaceContext | None] | None = None,
) -> list[Observed]:
    """The retrieved body and the others' answer on each block sample, until `seconds` have passed; with
    `context`, each sample's workspace as the server would have had it."""
    deadline = time.monotonic() + seconds
    out: list[Observed] = []
    for sample in samples:
        if time.monotonic() > deadline:
            break
        workspace = context(sample) if context is not None else None
        request = Request(sample.path, sample.prefix, sample.suffix, "block", workspace)
        proposal = bodies.propose(request)
        others = engine.complete_without_bodies(request)
        out.append(
            Observed(
                proposal.score,
                metrics.exact_match(proposal.text, sample.target, "block") if proposal.text else False,
                metrics.edit_similarity(proposal.text, sample.target, "block") if proposal.text else 0.0,
                metrics.edit_similarity(others, sample.target, "block"),
            )
        )
    return out


def tune(observed: Sequence[Observed]) -> BodyTuning:
    """The cut, the calibration and the threshold (see the module's docstring)."""
    if not observed:
        return BodyTuning.default()

    def forced(cut: float | None) -> float:
        """Mean edit similarity of the forced answer when retrieval answers from raw score `cut` on."""
        chosen = (o.similarity if cut is not None and o.score >= cut else o.fallback_similarity for o in observed)
        return sum(chosen) / len(observed)

    # Ties go to the higher cut: retrieval answers only where it was measured to help.
    cuts: list[float | None] = [None, *sorted({o.score for o in observed if o.score > 0}, reverse=True)]
    prefer = max(cuts, key=lambda c: forced(c))
    exact = fit([o.score for o in observed], [o.exact for o in observed])
    tuning = BodyTuning(PRECISION_TARGET, exact, prefer)

    def measured(threshold: float) -> tuple[int, int]:
        """(bodies shown, of which exact) at `threshold`."""
        shown = [o for o in observed if tuning.prefers(o.score) and exact(o.score) >= threshold]
        return len(shown), sum(o.exact for o in shown)

    results = {t: measured(t) for t in THRESHOLDS}
    feasible = [t for t, (shown, right) in results.items() if shown and right / shown >= PRECISION_TARGET]
    enough = len(observed) >= MIN_LINES
    threshold = max(feasible, key=lambda t: (results[t][1], t)) if feasible and enough else PRECISION_TARGET
    shown, right = results.get(threshold) or measured(threshold)
    answered = [o for o in observed if tuning.prefers(o.score)]
    validation = {
        "samples": len(observed),
        "precision_target": PRECISION_TARGET,
        "tuned": bool(feasible and enough),
        "retrieved_answers": len(answered),
        "retrieved_exact": sum(o.exact for o in answered),
        "forced_similarity": round(forced(prefer), 4),
        "others_similarity": round(forced(None), 4),
        "shown": shown,
        "shown_exact": right,
    }
    return BodyTuning(threshold, exact, prefer, validation)


def tune_artifact(
    folder: Path,
    snippets: Sequence[Snippet],
    samples: Sequence[tasks.Sample],
    seconds: float,
    threads: int | None = None,
    workspace: bool = True,
) -> BodyTuning:
    """Tune the double being written in `folder` on `samples` (block samples of the validation commits), with
    a completion corpus of `snippets`, which must hold neither those commits' code nor its near-duplicates.
    With `workspace`, each sample sees its repository at its commit's parent, as the server's workspace
    context (on by default) would show it: its files' definitions are body candidates too."""
    texts, languages = [s.text for s in snippets], [s.language for s in snippets]
    kinds = [s.kind for s in snippets]
    bodies = Bodies(texts, languages, [s.path for s in snippets], kinds)
    engine = Combined(Neural(folder, threads), CacheNgram(texts, languages), Bm25Lines(texts, languages, kinds))
    if not workspace:
        return tune(observe(engine, bodies, samples, seconds))
    # In commit order, as eval asks: a commit's samples share its parent's workspace, built once. On rich's 100
    # validation bodies as sampled, 99 workspaces were built (60 s); in this order, 60 (36 s).
    samples = sorted(samples, key=lambda s: (s.repository, s.commit, s.path))
    with RepositoryWorkspaces() as workspaces:

        def context(sample: tasks.Sample) -> WorkspaceContext | None:
            if not (sample.repository and sample.commit):
                return None
            return workspaces(sample.repository, sample.commit, sample.path)

        return tune(observe(engine, bodies, samples, seconds, context))


def tune_on_validation(
    folder: Path,
    fit_records: Sequence[ChangeRecord],
    module: Sequence[tuple[str, Snippet]],
    validation_records: Sequence[ChangeRecord],
    samples: int,
    seconds: float,
    seed: int = 0,
    threads: int | None = None,
) -> BodyTuning | None:
    """Tune the double in `folder` on up to `samples` block samples of `validation_records` (the validation
    commits' definitions, files read from their repositories), the corpus being `fit_records` less those that
    nearly repeat validation code, and `module`; None when the validation commits hold no body to sample."""
    cut = tasks.sample(list(validation_records), 0, samples, seed) if samples else []
    if not cut:
        return None
    kept, _ = drop_near_duplicates(list(fit_records), list(validation_records))
    return tune_artifact(folder, corpus_snippets(kept, module), cut, seconds, threads)

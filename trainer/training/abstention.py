"""Tune when the double shows a suggestion, on the engineer's validation commits (the newest training
commits, never the held-out ones; their code is kept out of the completion corpus while tuning, as the
held-out commits are kept out of it for `codedouble eval`).

Their added lines are typed key by key, as `codedouble eval`'s typing replay does. At every keystroke each
system's proposal is recorded with its own score and whether its first line is exactly the rest of the line.
Then:

1. each system's score is calibrated into the probability of being right (isotonic, server/engine/abstention.py);
2. the threshold on that probability is the one that saves the most characters for a user who takes only
   exact suggestions, among those whose shown suggestions are right at least `PRECISION_TARGET` of the time
   with confidence (the Wilson lower bound of their precision reaches it: `CONFIDENCE_Z`). None reaching it: the target itself, which a calibrated probability keeps by construction. A double that
   is rarely right then shows little or nothing, and its manifest says so (`validation.tuned` false): a
   ghost text right a few times in a hundred is the noise this is here to remove.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codedouble.server import suggest
from codedouble.server.contract.corpus import Snippet
from codedouble.server.engine.abstention import AGREE, AGREE_BM25, Abstention, Calibration, fit
from codedouble.server.engine.document import Request, mode_at
from codedouble.server.engine.engine import Combined, ModelProposer, Proposer, confirm, first_line
from codedouble.server.engine.neural import Neural
from codedouble.server.engine.ngram import CacheNgram
from codedouble.server.engine.retrieval import Bm25Lines
from codedouble.server.engine.workspace import WorkspaceContext
from codedouble.trainer.evaluation.context import RepositoryWorkspaces
from codedouble.trainer.evaluation.replay import Line

# A ghost text right less than half the time is noise: the floor for what the double shows.
PRECISION_TARGET = 0.5
# The target must hold with confidence, not just on the lines seen: tuning types 40 of them, and on cobra's
# double a threshold that met the target exactly there (50.0 %) showed suggestions right 35 % of the time on
# held-out lines. So the shown suggestions' precision must reach it at its Wilson lower bound, one-sided 95 %.
# Two-fold over five shuffles of validation lines: on rich's 200, held-half precision 56.6 → 62.9 % on average
# (worst fold 41.4 → 56.5 %), characters saved 22.7 → 21.0 %; on cobra's 120, 59.6 → 65.7 % (worst 40.0 →
# 55.6 %), saved 20.9 → 19.2 %.
CONFIDENCE_Z = 1.64
# Thresholds tried, in calibrated probability.
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
# Below this many lines the calibration says little: the target itself is the threshold.
MIN_LINES = 8


@dataclass(frozen=True)
class Seen:
    """One system's proposal at one keystroke: its score, whether it was exactly the rest of the line, and
    whether it only continues the system's proposal at the keystroke before (the user typed its first
    character): the same suggestion still on screen, not a new one."""

    score: float
    right: bool
    continues: bool = False


@dataclass(frozen=True)
class Typing:
    """One line typed key by key: what each system proposed at each keystroke (None: nothing)."""

    rests: tuple[int, ...]  # characters left to type at each keystroke
    seen: tuple[dict[str, Seen | None], ...]


def observe(
    proposers: Sequence[Proposer],
    lines: Sequence[Line],
    seconds: float,
    context: Callable[[Line], WorkspaceContext | None] | None = None,
) -> list[Typing]:
    """Every proposer at every keystroke of `lines`, as the server would ask and tidy, with the workspace
    `context` gives for each line (the server's context, so that the scores calibrated are the ones it will
    see); stops taking new lines once `seconds` have passed."""
    deadline = time.monotonic() + seconds
    out: list[Typing] = []
    for line in lines:
        if time.monotonic() > deadline:
            break
        workspace = context(line) if context is not None else None
        rests: list[int] = []
        seen: list[dict[str, Seen | None]] = []
        previous: dict[str, str] = {}  # each system's first line at the keystroke before
        for typed in range(len(line.typed)):
            prefix, suffix = line.before + line.typed[:typed], line.after
            mode = mode_at(prefix, line.language)
            rest = line.typed[typed:]
            here: dict[str, Seen | None] = {}
            request = Request(line.path, prefix, suffix, mode, workspace)
            raw: dict[str, str] = {}
            for proposer in proposers:
                proposal = proposer.propose(request)
                raw[proposer.name] = proposal.text
                first = suggest.tidy(proposal.text, prefix, suffix, mode, 1).split("\n", 1)[0].rstrip()
                before = previous.get(proposer.name, "")
                continues = bool(before) and typed > 0 and before[0] == line.typed[typed - 1] and before[1:] == first
                here[proposer.name] = Seen(proposal.score, first == rest, continues) if first else None
                previous[proposer.name] = first
            here[AGREE] = _agreement(proposers, request, here, raw)
            here[AGREE_BM25] = _retrieval_agreement(here, raw)
            rests.append(len(rest))
            seen.append(here)
        out.append(Typing(tuple(rests), tuple(seen)))
    return out


def _agreement(
    proposers: Sequence[Proposer], request: Request, here: dict[str, Seen | None], raw: dict[str, str]
) -> Seen | None:
    """The model confirming the n-gram's first line, scored as the engine scores it (`engine.confirm`); right
    when the n-gram is, and typed into when both suggestions were."""
    ngram = here.get(CacheNgram.name)
    model = next((p for p in proposers if p.name == ModelProposer.name), None)
    if ngram is None or model is None:
        return None
    score = confirm(model, request, raw[CacheNgram.name].split("\n", 1)[0])
    if score is None:
        return None
    typed_into = here.get(ModelProposer.name)
    return Seen(score, ngram.right, ngram.continues and typed_into is not None and typed_into.continues)


def _retrieval_agreement(here: dict[str, Seen | None], raw: dict[str, str]) -> Seen | None:
    """The n-gram and BM25 proposing the same first line (`Combined.propose` compares them so), scored by BM25's
    score; right when the n-gram is, and typed into when both suggestions were."""
    ngram, bm25 = here.get(CacheNgram.name), here.get(Bm25Lines.name)
    if ngram is None or bm25 is None or first_line(raw[CacheNgram.name]) != first_line(raw[Bm25Lines.name]):
        return None
    return Seen(bm25.score, ngram.right, ngram.continues and bm25.continues)


@dataclass(frozen=True)
class Replayed:
    """What the line user met over some typed lines: the counts behind `simulate`'s rates."""

    chars: int  # characters of the lines
    saved: int  # characters the user did not type
    shown: int  # suggestions shown (one typed into counts once)
    displayed: int  # keystrokes with a suggestion on screen
    right: int  # shown suggestions that were exactly the rest of the line
    requests: int  # keystrokes


def replay(
    typings: Sequence[Typing], order: Sequence[str], calibrations: dict[str, Calibration], threshold: float
) -> Replayed:
    """The combined engine at `threshold` for a user who takes a suggestion only when it is exactly the rest of
    the line. Suggestions are counted as editors count acceptance: one the user types into (the same system's
    continuation) is still the one shown before."""
    chars = saved = shown = displayed = right = requests = 0
    for typing in typings:
        chars += typing.rests[0] if typing.rests else 0
        last = None  # the system shown at the keystroke before
        for rest, here in zip(typing.rests, typing.seen, strict=True):
            requests += 1
            chosen = next(
                (
                    (name, seen)
                    for name in order
                    if (seen := here.get(name)) is not None and calibrations[name](seen.score) >= threshold
                ),
                None,
            )
            if chosen is None:
                last = None
                continue
            name, seen = chosen
            displayed += 1
            if not (seen.continues and name == last):
                shown += 1
            last = name
            if seen.right:
                right += 1
                saved += rest
                break
    return Replayed(chars, saved, shown, displayed, right, requests)


def simulate(
    typings: Sequence[Typing], order: Sequence[str], calibrations: dict[str, Calibration], threshold: float
) -> tuple[float, float | None, float]:
    """(characters saved, precision, shown rate) of `replay`."""
    return rates(replay(typings, order, calibrations, threshold))


def rates(got: Replayed) -> tuple[float, float | None, float]:
    return (
        got.saved / got.chars if got.chars else 0.0,
        got.right / got.shown if got.shown else None,
        got.displayed / got.requests if got.requests else 0.0,
    )


def precision_lower_bound(right: int, shown: int, z: float = CONFIDENCE_Z) -> float:
    """The Wilson score lower bound of the precision `right / shown` (0 with nothing shown)."""
    if shown == 0:
        return 0.0
    p, n, c = right / shown, shown, z * z
    return (p + c / (2 * n) - z * math.sqrt(p * (1 - p) / n + c / (4 * n * n))) / (1 + c / n)


def trajectory(typings: Sequence[Typing], name: str) -> list[Seen]:
    """What the line user sees of one system: its proposals from the line's first keystroke up to the first
    one that is right, where the user takes it and the line ends. The keystrokes after it are left out:
    there the system keeps being right about a rest the user no longer types, and counting them made a
    score of 0.99 look right half of the time when, on this repository's validation lines, it was right 5 %
    of the time the user would have seen it."""
    out: list[Seen] = []
    for typing in typings:
        for here in typing.seen:
            seen = here.get(name)
            if seen is not None:
                if not seen.continues or seen.right:  # a suggestion typed into is one suggestion, counted once
                    out.append(seen)
                if seen.right:
                    break
    return out


def tune(typings: Sequence[Typing], order: Sequence[str]) -> Abstention:
    """Calibrations and the threshold from what was observed (see the module's docstring)."""
    calibrations = {}
    for name in order:
        seen = trajectory(typings, name)
        calibrations[name] = fit([s.score for s in seen], [s.right for s in seen])
    counted = {t: replay(typings, order, calibrations, t) for t in THRESHOLDS}
    results = {t: rates(got) for t, got in counted.items()}
    feasible = [t for t, got in counted.items() if precision_lower_bound(got.right, got.shown) >= PRECISION_TARGET]
    enough = len(typings) >= MIN_LINES
    threshold = max(feasible, key=lambda t: (results[t][0], t)) if feasible and enough else PRECISION_TARGET
    saved, precision, shown = results.get(threshold) or simulate(typings, order, calibrations, threshold)
    validation = {
        "lines": len(typings),
        "keystrokes": sum(len(t.rests) for t in typings),
        "precision_target": PRECISION_TARGET,
        "tuned": bool(feasible and enough),
        "saved": round(saved, 4),
        "precision": None if precision is None else round(precision, 4),
        "shown": round(shown, 4),
        "shown_without_abstention": round(simulate(typings, order, calibrations, 0.0)[2], 4),
        "precision_without_abstention": _rounded(simulate(typings, order, calibrations, 0.0)[1]),
    }
    return Abstention(threshold, calibrations, validation)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def tune_artifact(
    folder: Path,
    snippets: Sequence[Snippet],
    lines: Sequence[Line],
    seconds: float,
    threads: int | None = None,
    workspace: bool = True,
) -> Abstention:
    """Tune the double being written in `folder` (its model and tokenizer already there), with a completion
    corpus of `snippets`, which must not hold the validation lines' own commits. With `workspace`, each line
    is typed with its repository at the commit's parent as context, as `codedouble eval` and the server do
    (the server's `workspaceContext` is on by default)."""
    texts, languages = [s.text for s in snippets], [s.language for s in snippets]
    ngram = CacheNgram(texts, languages)
    engine = Combined(Neural(folder, threads), ngram, Bm25Lines(texts, languages, [s.kind for s in snippets]))
    order = list(engine.order)
    if not workspace:
        return tune(observe(engine.proposers, lines, seconds), order)
    with RepositoryWorkspaces() as workspaces:

        def context(line: Line) -> WorkspaceContext | None:
            return workspaces(line.repository, line.commit, line.path) if line.repository and line.commit else None

        return tune(observe(engine.proposers, lines, seconds, context), order)

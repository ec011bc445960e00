"""The commit-message task of `codedouble eval`: each sampled held-out commit's change drafted by the double's
model, by retrieval of the engineer's nearest past commits, and by the generic "Update FILE", each scored
against the message the engineer wrote (`commit_metrics.py`: on the summary line). A held-out commit is
drafted as the double would have drafted it when it was made: from the commits before it only, as the line
and block tasks complete a file from its repository at the commit's parent."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codedouble.server.commits.change import Change, generic_message
from codedouble.server.commits.draft import Drafter
from codedouble.server.engine.neural import Neural
from codedouble.server.stats import percentile
from codedouble.trainer.evaluation import commit_metrics
from codedouble.trainer.evaluation.summary import CommitRow
from codedouble.trainer.mining.records import ChangeRecord
from codedouble.trainer.training.commit_index import changes

SYSTEMS = ("model", "retrieval", "generic")
DESCRIPTIONS = {
    "model": "the double's model with the commit-message prompt, in the engineer's style",
    "retrieval": "the message its nearest earlier commits agree on (BM25 over their changes), in their style",
    "generic": 'a tool that knows nothing of the engineer: "Update FILE" / "Update N files"',
}
EXAMPLES = 3


@dataclass(frozen=True)
class CommitResult:
    rows: tuple[CommitRow, ...]
    default: str  # the source `codedouble commit-message` drafts with (the one train measured better)
    examples: tuple[dict[str, str], ...]  # commit, message, and one draft per system


@dataclass(frozen=True)
class Sample:
    commit: str
    message: str
    change: Change
    time: str  # when it was committed (UTC): its draft reads only the commits made before


def sample(heldout: list[ChangeRecord], n: int, seed: int) -> list[Sample]:
    """Up to `n` held-out commits with a message, the same for the same seed."""
    found = sorted((c for c in changes(heldout) if c.message.strip()), key=lambda c: (c.repository, c.commit))
    chosen = random.Random(seed).sample(found, min(n, len(found)))
    return [Sample(c.commit, c.message.strip(), c.change, c.time) for c in chosen]


def evaluate(artifact: Path, model: Neural, samples: list[Sample], progress: bool) -> CommitResult:
    from tqdm import tqdm

    drafter = Drafter.load(artifact, lambda: model)

    def styled(raw: str, at: Sample) -> str:
        return drafter.style_before(at.time).apply(raw) if raw.strip() else ""

    systems: dict[str, Callable[[Sample], str]] = {
        "model": lambda at: styled(drafter.generated(at.change), at),
        "retrieval": lambda at: styled(drafter.retrieved(at.change, {at.commit}, at.time)[0], at),
        "generic": lambda at: generic_message(at.change),
    }
    scores: dict[str, list[commit_metrics.MessageScore]] = {s: [] for s in SYSTEMS}
    latencies: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    examples: list[dict[str, str]] = []
    for at in tqdm(samples, desc="commit messages", unit="commit", disable=None if progress else True):
        drafts: dict[str, str] = {}
        for name, system in systems.items():
            started = time.perf_counter()
            drafts[name] = system(at)
            latencies[name].append((time.perf_counter() - started) * 1000)
            scores[name].append(commit_metrics.score(drafts[name], at.message))
        if len(examples) < EXAMPLES:
            examples.append({"commit": at.commit, "message": at.message, **drafts})
    rows = []
    for name in SYSTEMS:
        got = scores[name]
        if not got:
            continue
        n = len(got)
        rows.append(
            CommitRow(
                name,
                n,
                sum(s.b_norm for s in got) / n,
                sum(s.rouge_l for s in got) / n,
                sum(s.first_word for s in got) / n,
                sum(s.first_two_words for s in got) / n,
                sum(s.edit_similarity for s in got) / n,
                percentile(latencies[name], 50),
            )
        )
    return CommitResult(tuple(rows), drafter.preferred, tuple(examples))

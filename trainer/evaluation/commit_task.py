"""The commit-message task of `codedouble eval`: each sampled held-out commit's change drafted by the double's
model, by retrieval of the engineer's nearest training commits, and by the generic "Update FILE", each
scored against the message the engineer wrote (`commit_metrics.py`: on the summary line)."""

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
    "retrieval": "the message its nearest training commits agree on (BM25 over their changes), in their style",
    "generic": 'a tool that knows nothing of the engineer: "Update FILE" / "Update N files"',
}
EXAMPLES = 3


@dataclass(frozen=True)
class CommitResult:
    rows: tuple[CommitRow, ...]
    default: str  # the source `codedouble commit-message` drafts with (the one train measured better)
    examples: tuple[dict[str, str], ...]  # commit, message, and one draft per system


def sample(heldout: list[ChangeRecord], n: int, seed: int) -> list[tuple[str, str, Change]]:
    """Up to `n` held-out commits with a message, as (commit, message, change), the same for the same seed."""
    found = sorted((c for c in changes(heldout) if c.message.strip()), key=lambda c: (c.repository, c.commit))
    chosen = random.Random(seed).sample(found, min(n, len(found)))
    return [(c.commit, c.message.strip(), c.change) for c in chosen]


def evaluate(artifact: Path, model: Neural, samples: list[tuple[str, str, Change]], progress: bool) -> CommitResult:
    from tqdm import tqdm

    drafter = Drafter.load(artifact, lambda: model)
    style = drafter.style

    def styled(raw: str) -> str:
        return style.apply(raw) if raw.strip() else ""

    systems: dict[str, Callable[[Change], str]] = {
        "model": lambda change: styled(drafter.generated(change)),
        "retrieval": lambda change: styled(drafter.retrieved(change)[0]),
        "generic": generic_message,
    }
    scores: dict[str, list[commit_metrics.MessageScore]] = {s: [] for s in SYSTEMS}
    latencies: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    examples: list[dict[str, str]] = []
    for commit, message, change in tqdm(
        samples, desc="commit messages", unit="commit", disable=None if progress else True
    ):
        drafts: dict[str, str] = {}
        for name, system in systems.items():
            started = time.perf_counter()
            drafts[name] = system(change)
            latencies[name].append((time.perf_counter() - started) * 1000)
            scores[name].append(commit_metrics.score(drafts[name], message))
        if len(examples) < EXAMPLES:
            examples.append({"commit": commit, "message": message, **drafts})
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

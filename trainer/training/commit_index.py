"""The commit index a double ships (`server/contract/commits.py`) built from the mined records, and the
measurement that picks a double's commit-message source: retrieval and the model, each scored by B-Norm on
the validation commits (never in the model's training text; retrieval reads only the commits made before)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedouble.server.commits.change import Change, Edit, from_edits, terms
from codedouble.server.commits.draft import MANIFEST_KEY, Drafter
from codedouble.server.contract import commits
from codedouble.trainer.evaluation import commit_metrics
from codedouble.trainer.mining.records import ChangeRecord

MEASURED_COMMITS = 40  # validation commits each source drafts for when train picks the source


@dataclass(frozen=True)
class CommitChange:
    commit: str
    repository: str
    message: str
    change: Change
    time: str  # when it was committed, UTC (`commits.utc`)


def changes(records: Iterable[ChangeRecord]) -> list[CommitChange]:
    """Each commit of `records` as one change (its changed definitions and their paths), in first-seen order."""
    grouped: dict[str, list[ChangeRecord]] = {}
    for r in records:
        grouped.setdefault(r.commit, []).append(r)
    out = []
    for sha, members in grouped.items():
        paths = [p for r in members for p in (r.path, r.old_path) if p]
        edits = [Edit(r.path, r.before or "", r.after or "") for r in members]
        first = members[0]
        out.append(
            CommitChange(
                sha, first.repository, first.message, from_edits(paths, edits), commits.utc(first.committed_at)
            )
        )
    return out


def entries(records: Iterable[ChangeRecord]) -> list[commits.IndexedCommit]:
    """The index entries of the commits of `records` that have a message."""
    return [
        commits.IndexedCommit(c.commit, c.message.strip(), tuple(terms(c.change)), c.time)
        for c in changes(records)
        if c.message.strip()
    ]


def measure(folder: Path, validation: list[ChangeRecord]) -> dict[str, Any]:
    """Which source drafts the validation commits' messages better (mean B-Norm of the summary lines), for
    the manifest's MANIFEST_KEY. Ties and an empty measurement keep retrieval: it costs no model run."""
    from codedouble.server.engine.neural import Neural  # the manifest is written after: no `load_model` check

    sample = [c for c in changes(validation) if c.message.strip()][:MEASURED_COMMITS]
    if not sample:
        return {"source": "retrieval", "validation_commits": 0}
    drafter = Drafter(commits.load(folder), lambda: Neural(folder))
    scores: dict[str, float] = {}
    for source in ("retrieval", "model"):
        total = 0.0
        for c in sample:
            if source == "retrieval":
                raw = drafter.retrieved(c.change, {c.commit}, c.time)[0]
            else:
                raw = drafter.generated(c.change)
            style = drafter.style_before(c.time)
            total += commit_metrics.score(style.apply(raw) if raw.strip() else "", c.message).b_norm
        scores[source] = total / len(sample)
    best = "model" if scores["model"] > scores["retrieval"] else "retrieval"
    return {"source": best, "validation_commits": len(sample), "b_norm": {k: round(v, 4) for k, v in scores.items()}}


__all__ = ["MANIFEST_KEY", "CommitChange", "changes", "entries", "measure"]

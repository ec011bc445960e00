"""The commit index: what a double ships so that `codedouble commit-message` and the language server can draft a
message in the engineer's voice without the dataset: each mined commit's message, when it was committed, and
the bag of terms (identifiers, path parts) of what it changed, as JSON lines (no pickle).

    ARTIFACT/commits.jsonl   {"commits_format": 1}
                             {"commit": SHA, "message": "...", "terms": "word word ...", "time": "…+00:00"}

Held-out commits are in it too (nothing of theirs is trained on): a draft reads the engineer's newest commits,
and the newest are the held-out ones. Eval drafts each held-out commit from the commits made before it only
(`before`), as the double would have drafted it then. `time` (UTC, ISO 8601) came after the format: an entry
without it is from a double whose index held training commits only, older than any held-out one. A double
trained before the index existed has no file: drafting then falls back to the model alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from codedouble.server.contract import atomic
from codedouble.server.contract.errors import CodedoubleError

COMMITS = "commits.jsonl"
COMMITS_FORMAT = 1


@dataclass(frozen=True)
class IndexedCommit:
    commit: str
    message: str
    terms: tuple[str, ...]  # what the commit changed, as retrieval compares changes (`commits.change.terms`)
    time: str | None = None  # when it was committed (UTC, ISO 8601: compares as text); None in older indexes


def utc(when: str) -> str:
    """A commit time (ISO 8601, any offset) in UTC, the form `time` is stored in: two compare as text."""
    return datetime.fromisoformat(when).astimezone(UTC).isoformat()


def made_before(entries: list[IndexedCommit], before: str | None) -> list[IndexedCommit]:
    """The entries committed strictly before `before` (UTC ISO 8601; None: all). An entry without a time is from
    an index of training commits only, older than any held-out commit: always before. Retrieval and the style
    both read through this, so that a past commit's draft never sees its own or a later message."""
    if before is None:
        return list(entries)
    return [e for e in entries if e.time is None or e.time < before]


class CommitIndexError(CodedoubleError):
    """An artifact whose commit index is damaged or of another format."""


def write(folder: Path, entries: list[IndexedCommit]) -> None:
    with atomic.file(folder / COMMITS) as f:
        f.write(json.dumps({"commits_format": COMMITS_FORMAT}) + "\n")
        for e in entries:
            entry = {"commit": e.commit, "message": e.message, "terms": " ".join(e.terms)}
            if e.time is not None:
                entry["time"] = e.time
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def load(artifact: Path) -> list[IndexedCommit] | None:
    """The artifact's commit index, or None when it has none (trained by an older codedouble)."""
    path = artifact / COMMITS
    if not path.is_file():
        return None
    out: list[IndexedCommit] = []
    with path.open(encoding="utf-8") as f:
        first = f.readline()
        try:
            found = json.loads(first).get("commits_format") if first.strip() else None
        except (json.JSONDecodeError, AttributeError):
            found = None
        if found != COMMITS_FORMAT:
            raise CommitIndexError(
                f"{path} is in commit index format {found}; this codedouble reads format {COMMITS_FORMAT}: "
                "train the double again (`codedouble train`)"
            )
        for number, line in enumerate(f, 2):
            try:
                data = json.loads(line)
                time = data.get("time")
                if time is not None and not isinstance(time, str):
                    raise TypeError(f"time is {time!r}, not a date")
                out.append(IndexedCommit(data["commit"], data["message"], tuple(data["terms"].split()), time))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise CommitIndexError(
                    f"{path}:{number}: not a commit index entry ({exc}): train the double again"
                ) from exc
    return out

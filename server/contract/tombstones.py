"""What `codedouble forget` leaves behind, read by every side that must honour it.

A tombstone says what the engineer took back out of a dataset (the rule they gave: commits, path globs,
authors, a date range) and fingerprints of what it removed. It lives in the dataset's manifest
(`tombstones`, oldest first) and is copied into the manifest of every double trained afterwards
(`forgotten`), so a double carries the proof of what it excludes even without its dataset (an exported one).

- `mine` drops every record a tombstone's rule matches, and every repeat of a removed change (content hash),
  incremental or `--fresh`: forgotten data never comes back.
- `train` honours them through the dataset (the records are gone, the globs join the path filter) and
  records which tombstones it saw; `--resume` refuses a checkpoint that predates one.
- The server warns about (or, with `refuseStale`, refuses) a double trained on data a later tombstone
  removed; `audit` checks the double's corpus holds none of the removed texts.

Fingerprints are SHA-256 digests of whole definition texts: enough to prove a text is absent, not to read it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

DATASET_KEY = "tombstones"  # in the dataset's manifest
ARTIFACT_KEY = "forgotten"  # in a double's manifest: the tombstones its training honoured
STALE_KEY = "stale"  # in a double's manifest, written by `forget`: the tombstone that made it stale


def text_hash(text: str) -> str:
    """The fingerprint of one definition's text, as tombstones hold and audit compares."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_when(value: str, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time as an aware UTC datetime. A bare date is a whole day: `--until 2024-03-31`
    includes that day. Naive times are taken as UTC (commit times in records carry their offset)."""
    try:
        if len(value) == 10:
            day = datetime.fromisoformat(value).date()
            moment = datetime.combine(day, time.max if end_of_day else time.min)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO date (2024-03-31) or date-time (2024-03-31T18:00:00+02:00)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Rule:
    """What the engineer asked to forget. A change is forgotten when any part matches: one of the commits
    (full SHA or a prefix), one of the path globs (as `mine --exclude`: the whole repository-relative path, a
    `*` also crosses folders; the old path of a rename counts too), one of the authors (e-mail, any case), or
    its commit date within since..until (either end may be open). With `repositories`, only changes mined
    from those (absolute paths, as the dataset records them) are looked at; without, every repository's."""

    commits: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    repositories: tuple[str, ...] = ()

    def empty(self) -> bool:
        return not (self.commits or self.paths or self.authors or self.since or self.until)

    def applies_to(self, repository: str | None) -> bool:
        """Whether the rule looks at changes of `repository` at all (None: a repository not known)."""
        return not self.repositories or repository in self.repositories

    def path_matches(self, path: str | None) -> bool:
        return path is not None and any(fnmatch.fnmatchcase(path, glob) for glob in self.paths)

    def matches(
        self,
        commit: str,
        path: str,
        old_path: str | None,
        author_email: str,
        committed_at: str,
        repository: str | None = None,
    ) -> bool:
        if not self.applies_to(repository):
            return False
        if any(commit.startswith(prefix.lower()) for prefix in self.commits):
            return True
        if self.path_matches(path) or self.path_matches(old_path):
            return True
        if author_email.lower() in {a.lower() for a in self.authors}:
            return True
        if self.since is None and self.until is None:
            return False
        when = datetime.fromisoformat(committed_at).astimezone(UTC)
        after_start = self.since is None or when >= parse_when(self.since)
        before_end = self.until is None or when <= parse_when(self.until, end_of_day=True)
        return after_start and before_end

    def describe(self) -> str:
        parts = [f"commit {c}" for c in self.commits] + [f"path {p}" for p in self.paths]
        parts += [f"author {a}" for a in self.authors]
        if self.since or self.until:
            parts.append(f"committed {self.since or '…'} to {self.until or '…'}")
        scope = f" in {', '.join(self.repositories)}" if self.repositories else ""
        return ", ".join(parts) + scope

    def to_dict(self) -> dict[str, Any]:
        return {
            "commits": list(self.commits),
            "paths": list(self.paths),
            "authors": list(self.authors),
            "since": self.since,
            "until": self.until,
            "repositories": list(self.repositories),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        return cls(
            tuple(data.get("commits", ())),
            tuple(data.get("paths", ())),
            tuple(data.get("authors", ())),
            data.get("since"),
            data.get("until"),
            tuple(data.get("repositories", ())),  # a tombstone written before scoping looked at every repository
        )


@dataclass(frozen=True)
class Tombstone:
    id: int  # 1, 2, … within a dataset
    created: str  # ISO 8601, UTC
    rule: Rule
    records: int  # how many change records it removed
    commits: tuple[str, ...] = ()  # full SHAs of the commits it removed records of
    paths: tuple[str, ...] = ()  # the paths those records had
    shards: tuple[str, ...] = ()  # the dataset shards they were in: a double trained on any of them saw them
    content_hashes: tuple[str, ...] = ()  # the removed changes' identities: a repeat of one is never mined again
    text_hashes: tuple[str, ...] = field(default=())  # `text_hash` of each removed definition's after-text

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "rule": self.rule.to_dict(),
            "records": self.records,
            "commits": list(self.commits),
            "paths": list(self.paths),
            "shards": list(self.shards),
            "content_hashes": list(self.content_hashes),
            "text_hashes": list(self.text_hashes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tombstone:
        return cls(
            id=int(data["id"]),
            created=str(data["created"]),
            rule=Rule.from_dict(data.get("rule", {})),
            records=int(data.get("records", 0)),
            commits=tuple(data.get("commits", ())),
            paths=tuple(data.get("paths", ())),
            shards=tuple(data.get("shards", ())),
            content_hashes=tuple(data.get("content_hashes", ())),
            text_hashes=tuple(data.get("text_hashes", ())),
        )

    @property
    def day(self) -> str:
        return self.created[:10]


def from_manifest(manifest: dict[str, Any], key: str = DATASET_KEY) -> list[Tombstone]:
    return [Tombstone.from_dict(t) for t in manifest.get(key) or ()]


def of_dataset(dataset: Path) -> list[Tombstone] | None:
    """The tombstones of the dataset at `dataset`, None when it is gone or unreadable (a double moved to
    another machine): then only what the double's own manifest says can be judged."""
    try:
        manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
        return from_manifest(manifest) if isinstance(manifest, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stale_by(artifact_manifest: dict[str, Any], tombstones: list[Tombstone]) -> Tombstone | None:
    """The first of `tombstones` that removed data the double in `artifact_manifest` was trained on, if any.

    A tombstone the training already honoured does not count. Otherwise the double saw the removed records if
    it trained on a shard they were in; a double too old to list its shards is judged by date."""
    dataset = artifact_manifest.get("dataset") or {}
    honoured = {t.id for t in from_manifest(artifact_manifest, ARTIFACT_KEY)}
    shards = dataset.get("shards")
    for tombstone in tombstones:
        if tombstone.id in honoured or tombstone.records == 0:
            continue
        if shards is None:
            if str(artifact_manifest.get("created", "")) < tombstone.created:
                return tombstone
        elif set(tombstone.shards) & set(shards):
            return tombstone
    return None


def stale(artifact_manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Why the double in `artifact_manifest` is stale, or None: what `forget` wrote into it, else what its
    dataset's tombstones say (the dataset may be gone; the double may sit where `forget` did not look)."""
    marked = artifact_manifest.get(STALE_KEY)
    if isinstance(marked, dict):
        return marked
    path = (artifact_manifest.get("dataset") or {}).get("path")
    tombstones = of_dataset(Path(path)) if isinstance(path, str) else None
    found = stale_by(artifact_manifest, tombstones or [])
    return stale_mark(found, path) if found is not None else None


def stale_mark(tombstone: Tombstone, dataset: str | None) -> dict[str, Any]:
    return {
        "tombstone": tombstone.id,
        "since": tombstone.created,
        "rule": tombstone.rule.describe(),
        "dataset": dataset,
    }


def stale_message(name: str, mark: dict[str, Any]) -> str:
    dataset = mark.get("dataset") or "DATASET"
    return (
        f"codedouble: the double {name} was trained on data you removed on {str(mark.get('since', ''))[:10]} "
        f"({mark.get('rule', 'codedouble forget')}): run `codedouble train {dataset}` again"
    )

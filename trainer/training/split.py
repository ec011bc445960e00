"""The time split: the newest commits are held out for `codedouble eval` and never trained on."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from codedouble.trainer.mining.records import ChangeRecord

DEFAULT_HELDOUT_FRACTION = 0.1
# Training code this similar to held-out code (Jaccard of token trigrams) would leak the answer into training.
NEAR_DUPLICATE_JACCARD = 0.8

_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Split:
    heldout_commits: frozenset[str]
    cutoff: str | None  # commit time (UTC, ISO 8601) of the oldest held-out commit
    heldout_fraction: float

    def is_heldout(self, record: ChangeRecord) -> bool:
        return record.commit in self.heldout_commits

    def to_dict(self) -> dict[str, Any]:
        return {
            "heldout_fraction": self.heldout_fraction,
            "cutoff": self.cutoff,
            "heldout_commits": sorted(self.heldout_commits),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Split:
        return cls(frozenset(data["heldout_commits"]), data["cutoff"], float(data["heldout_fraction"]))


def _utc(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).isoformat()


def time_split(records: Iterable[ChangeRecord], heldout_fraction: float = DEFAULT_HELDOUT_FRACTION) -> Split:
    """Hold out the newest `heldout_fraction` of the commits (by commit time), at least one when there are two."""
    if not 0 <= heldout_fraction < 1:
        raise ValueError(f"the held-out fraction must be in [0, 1), not {heldout_fraction}")
    times: dict[str, str] = {}
    for r in records:
        times[r.commit] = _utc(r.committed_at)
    ordered = sorted(times, key=lambda sha: (times[sha], sha))
    count = round(len(ordered) * heldout_fraction)
    if heldout_fraction > 0 and len(ordered) >= 2:
        count = max(count, 1)
    count = min(count, len(ordered) - 1) if ordered else 0
    heldout = ordered[len(ordered) - count :] if count else []
    return Split(frozenset(heldout), times[heldout[0]] if heldout else None, heldout_fraction)


def _shingles(text: str) -> set[int]:
    tokens = _TOKEN.findall(text)
    if len(tokens) < 3:
        return {hash(" ".join(tokens))}
    return {hash((tokens[i], tokens[i + 1], tokens[i + 2])) for i in range(len(tokens) - 2)}


def _normalised(text: str) -> str:
    return hashlib.sha1("".join(text.split()).encode()).hexdigest()


def drop_near_duplicates(train: list[ChangeRecord], heldout: list[ChangeRecord]) -> tuple[list[ChangeRecord], int]:
    """Training records whose code nearly repeats held-out code (copies, reverts, cherry-picks) removed."""
    exact = {_normalised(r.after) for r in heldout if r.after}
    held_sets = [_shingles(r.after) for r in heldout if r.after]
    index: dict[int, list[int]] = defaultdict(list)
    for i, shingles in enumerate(held_sets):
        for s in shingles:
            index[s].append(i)

    def leaks(text: str) -> bool:
        if _normalised(text) in exact:
            return True
        mine = _shingles(text)
        overlap: dict[int, int] = defaultdict(int)
        for s in mine:
            for i in index.get(s, ()):
                overlap[i] += 1
        return any(n / (len(mine) + len(held_sets[i]) - n) >= NEAR_DUPLICATE_JACCARD for i, n in overlap.items())

    # Both sides of a training change are shown to the model (the before-text in edit and commit examples),
    # so a revert whose before-text is held-out code leaks it as surely as a copy does.
    kept = [r for r in train if not any(text and leaks(text) for text in (r.after, r.before))]
    return kept, len(train) - len(kept)


def validation_commits(records: list[ChangeRecord], share: float, min_chars: int) -> frozenset[str]:
    """The newest training commits whose code makes up `share` of the text, and at least `min_chars` of it
    (so a tiny newest commit never leaves validation empty), but never more than half the commits."""
    size: dict[str, int] = defaultdict(int)
    when: dict[str, str] = {}
    for r in records:
        size[r.commit] += len(r.after or "") + len(r.before or "")
        when[r.commit] = _utc(r.committed_at)
    target = max(share * sum(size.values()), min_chars)
    chosen: list[str] = []
    total = 0
    for sha in sorted(size, key=lambda c: (when[c], c), reverse=True):
        if total >= target or len(chosen) + 1 > len(size) // 2:
            break
        chosen.append(sha)
        total += size[sha]
    return frozenset(chosen)

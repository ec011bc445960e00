"""The data report: what was kept and what was left out, and why, per reason, language, year and identity."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

KEPT = "kept"


@dataclass
class Counts:
    commits: Counter[str] = field(default_factory=Counter)  # kept, or the reason a commit was left out
    files: Counter[str] = field(default_factory=Counter)  # file changes: kept, or the reason
    records: Counter[str] = field(default_factory=Counter)  # changed definitions: kept, or the reason
    secrets: Counter[str] = field(default_factory=Counter)  # secrets scrubbed, by kind
    languages: Counter[str] = field(default_factory=Counter)  # kept records per language
    years: Counter[str] = field(default_factory=Counter)  # kept records per authored year
    identities: Counter[str] = field(default_factory=Counter)  # kept records per `Name <email>`

    def add(self, other: Counts) -> None:
        for f in fields(self):
            getattr(self, f.name).update(getattr(other, f.name))

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {f.name: dict(sorted(getattr(self, f.name).items())) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counts:
        return cls(**{f.name: Counter(data.get(f.name, {})) for f in fields(cls)})


def _section(title: str, counter: Counter[str], kept_first: bool, sort_keys: bool = False) -> list[str]:
    if not counter:
        return ["", f"{title}: none"]
    total = sum(counter.values())
    items = sorted(counter.items()) if sort_keys else counter.most_common()
    if kept_first:
        items = sorted(items, key=lambda kv: kv[0] != KEPT)
    width = max(len(k) for k, _ in items)
    lines = ["", f"{title} ({total:,})"]
    for key, n in items:
        lines.append(f"  {key:<{width}}  {n:>9,}  {100 * n / total:5.1f}%")
    return lines


def render(counts: Counts, heading: str) -> str:
    """A plain-text table, for the terminal and report.txt alike."""
    parts = [
        heading,
        *_section("Commits", counts.commits, kept_first=True),
        *_section("File changes", counts.files, kept_first=True),
        *_section("Changed definitions", counts.records, kept_first=True),
        *_section("Kept definitions per language", counts.languages, kept_first=False),
        *_section("Kept definitions per year", counts.years, kept_first=False, sort_keys=True),
        *_section("Kept definitions per identity", counts.identities, kept_first=False),
        *_section("Secrets scrubbed", counts.secrets, kept_first=False),
    ]
    return "\n".join(parts) + "\n"

"""The repositories of one dataset: an engineer's output is spread over many, and one double learns from all.

The manifest's `repositories` list is the truth, one entry per mined repository in the order they joined
(the first is the primary: its doubles folder is where `train` puts the dataset's doubles):

    path                 the resolved root, as every record of it names it (`ChangeRecord.repository`)
    name                 a short display name, unique within the dataset
    head                 the commit mined up to; the next run mines from there
    identities           the engineer's e-mail addresses in that repository (--author and .mailmap resolve
                         per repository; every repository's are the same person)
    options, options_fingerprint, counts, time_span, shards, runs   as one repository's dataset had them

The top-level keys readers of a one-repository dataset know (`repository` and `head` of the primary;
`identities`, `counts`, `shards`, `time_span` and `runs` over all) are derived from the list by `summary`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from codedouble.trainer.mining.records import ChangeRecord
from codedouble.trainer.mining.report import KEPT, Counts, render

KEY = "repositories"


def entries(manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((manifest or {}).get(KEY) or [])


def paths(manifest: dict[str, Any] | None) -> list[str]:
    """Every repository of the dataset, primary first (a manifest older than the list names one)."""
    listed = [e["path"] for e in entries(manifest)]
    single = (manifest or {}).get("repository")
    return listed or ([single] if isinstance(single, str) else [])


def entry(manifest: dict[str, Any] | None, repository: str) -> dict[str, Any] | None:
    return next((e for e in entries(manifest) if e["path"] == repository), None)


def display_name(root: Path, taken: Iterable[str]) -> str:
    """The folder's name, numbered when another repository of the dataset already has it."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", root.name).strip("-") or "repository"
    taken = set(taken)
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def summary(listed: list[dict[str, Any]]) -> dict[str, Any]:
    """The top-level manifest keys, derived from the repositories' entries (primary first)."""
    primary = listed[0]
    counts = Counts()
    for e in listed:
        counts.add(Counts.from_dict(e["counts"]))
    firsts = [e["time_span"]["first"] for e in listed if e["time_span"]["first"]]
    lasts = [e["time_span"]["last"] for e in listed if e["time_span"]["last"]]
    return {
        "repository": primary["path"],
        "head": primary["head"],
        "identities": sorted({i for e in listed for i in e["identities"]}),
        "all_authors": any(e["all_authors"] for e in listed),
        "options": primary["options"],
        "options_fingerprint": primary["options_fingerprint"],
        "counts": counts.to_dict(),
        "time_span": {"first": min(firsts, default=None), "last": max(lasts, default=None)},
        # Shard names start with their run's number: sorted, the records load in the order they were mined.
        "shards": sorted(s for e in listed for s in e["shards"]),
        "runs": sorted(({**run, "repository": e["path"]} for e in listed for run in e["runs"]), key=lambda r: r["run"]),
    }


def commits_by_repository(records: Iterable[ChangeRecord], commits: Iterable[str] | None = None) -> dict[str, set[str]]:
    """The commits of `records` (those in `commits`, when given) grouped by the repository to read them from.

    A SHA names the same commit wherever it is found (its tree, parents, author and time are hashed into it),
    so a commit two repositories share (a fork mined beside its origin) is read from one of them only: the
    first, in sorted order, that has records of it."""
    wanted = None if commits is None else set(commits)
    owner: dict[str, str] = {}
    for r in records:
        if wanted is None or r.commit in wanted:
            owner[r.commit] = min(owner.get(r.commit, r.repository), r.repository)
    grouped: dict[str, set[str]] = defaultdict(set)
    for commit, repository in owner.items():
        grouped[repository].add(commit)
    return dict(sorted(grouped.items()))


def names(manifest: dict[str, Any] | None) -> dict[str, str]:
    """Repository path -> display name."""
    return {e["path"]: e["name"] for e in entries(manifest)}


def report(manifest: dict[str, Any]) -> str:
    """The data report of the whole dataset: totals, and a row per repository when it holds several."""
    listed = entries(manifest)
    counts = Counts.from_dict(manifest["counts"])
    who = "all authors (bots excluded)" if manifest.get("all_authors") else ", ".join(manifest.get("identities", []))
    if len(listed) <= 1:
        heading = f"codedouble data report — {manifest['repository']} @ {manifest['head'][:12]}\nidentities: {who}"
        return render(counts, heading)
    width = max(len(e["name"]) for e in listed)
    heading = "\n".join(
        [
            f"codedouble data report — {len(listed)} repositories",
            *(f"  {e['name']:<{width}}  {e['path']} @ {e['head'][:12]}" for e in listed),
            f"identities: {who}",
        ]
    )
    return render(counts, heading) + "\n".join(_per_repository(listed)) + "\n"


def _per_repository(listed: list[dict[str, Any]]) -> list[str]:
    rows = [("repository", "commits", "definitions", "languages")]
    for e in listed:
        counts = Counts.from_dict(e["counts"])
        languages = ", ".join(f"{language} {n:,}" for language, n in counts.languages.most_common())
        rows.append((e["name"], f"{counts.commits[KEPT]:,}", f"{counts.records[KEPT]:,}", languages or "-"))
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    lines = ["", f"Kept per repository ({len(listed)})"]
    for name, commits, records, languages in rows:
        lines.append(f"  {name:<{widths[0]}}  {commits:>{widths[1]}}  {records:>{widths[2]}}  {languages}")
    return lines

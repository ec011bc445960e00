"""`codedouble forget`: take changes back out of a dataset, and say which doubles still hold them.

The dataset is rewritten the way `mine` writes it, so it is always whole: each shard that loses records is
written anew under a new name (`…-forgetN.jsonl`), the manifest naming the new shards and the tombstone is
replaced atomically (the commit point), and only then are the old shards deleted. A run killed before the
manifest leaves the old dataset and an unlisted new shard, swept by the next `forget` or `mine`; one killed
after it leaves the new dataset and unlisted old shards, swept the same way.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codedouble.server.contract import artifact, atomic, tombstones
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.mining import dataset, repositories
from codedouble.trainer.mining.miner import FORGOTTEN
from codedouble.trainer.mining.records import ChangeRecord
from codedouble.trainer.mining.report import KEPT, Counts


class ForgetError(CodedoubleError):
    """A forget request that cannot be carried out as asked; nothing was changed."""


@dataclass
class ForgetResult:
    tombstone: tombstones.Tombstone
    commits: Counter[str] = field(default_factory=Counter)  # records removed per commit
    paths: Counter[str] = field(default_factory=Counter)  # records removed per path
    stale: list[Path] = field(default_factory=list)  # doubles trained on what was removed
    dry_run: bool = False


def _shard_name(name: str, tombstone: int) -> str:
    stem = name.removesuffix(".jsonl").split("-forget")[0]
    return f"{stem}-forget{tombstone}.jsonl"


def _check_prefixes(records: dict[str, set[str]], rule: tombstones.Rule) -> None:
    """Every --commit must name at most one commit: a short prefix that fits two would forget both."""
    for prefix in rule.commits:
        if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix.lower()):
            raise ForgetError(f"--commit {prefix}: give a commit SHA (at least 4 hexadecimal digits)")
        fits = sorted(c for c in records if c.startswith(prefix.lower()))
        if len(fits) > 1:
            raise ForgetError(
                f"--commit {prefix} fits {len(fits)} commits ({', '.join(c[:12] for c in fits[:4])}…): "
                "give more of the SHA"
            )


def _scoped(rule: tombstones.Rule, manifest: dict[str, Any]) -> tombstones.Rule:
    """`rule` with each of its repositories named as the dataset records it (the path `mine` was given, however
    the engineer spells it now); one the dataset was not mined from is an error that lists those it was."""
    if not rule.repositories:
        return rule
    known = {Path(path).resolve(): path for path in repositories.paths(manifest)}
    named = []
    for given in rule.repositories:
        found = known.get(Path(given).expanduser().resolve())
        if found is None:
            raise ForgetError(
                f"--repo {given}: this dataset was not mined from it (it holds {', '.join(known.values())})"
            )
        named.append(found)
    return replace(rule, repositories=tuple(dict.fromkeys(named)))


def forget(dataset_dir: Path, rule: tombstones.Rule, dry_run: bool = False) -> ForgetResult:
    """Remove every record of `dataset_dir` that `rule` matches and record the tombstone (see module doc)."""
    if rule.empty():
        raise ForgetError("say what to forget: --commit SHA, --path GLOB, --author EMAIL, or --since/--until DATE")
    for value, end in ((rule.since, False), (rule.until, True)):
        if value is not None:
            try:
                tombstones.parse_when(value, end)
            except ValueError as exc:
                raise ForgetError(f"--since/--until: {exc}") from None
    manifest = dataset.read_manifest(dataset_dir)
    if manifest is None:
        raise ForgetError(f"{dataset_dir} holds no codedouble dataset (no {dataset.MANIFEST}); nothing to forget")
    dataset.sweep_unlisted_shards(dataset_dir, manifest["shards"])  # what a killed forget or mine left
    rule = _scoped(rule, manifest)

    graves = tombstones.from_manifest(manifest)
    number = max((t.id for t in graves), default=0) + 1
    commits_seen: dict[str, set[str]] = {}
    removed: list[tuple[str, ChangeRecord]] = []
    writers: dict[str, dataset.ShardWriter] = {}
    shards: list[str] = []
    renamed: dict[str, str] = {}
    try:
        for name in manifest["shards"]:
            lines = list(dataset.shard_lines(dataset_dir, name))
            records = [ChangeRecord.from_dict(json.loads(line)) for line in lines]
            for r in records:
                commits_seen.setdefault(r.commit, set()).add(r.path)
            gone = [
                rule.matches(r.commit, r.path, r.old_path, r.author_email, r.committed_at, r.repository)
                for r in records
            ]
            if not any(gone):
                shards.append(name)
                continue
            new_name = renamed[name] = _shard_name(name, number)
            writer = writers[new_name] = dataset.ShardWriter(dataset_dir, new_name)
            for line, record, drop in zip(lines, records, gone, strict=True):
                if drop:
                    removed.append((name, record))
                else:
                    writer.write_line(line)
            shards.append(new_name)
        _check_prefixes(commits_seen, rule)
        tombstone = tombstones.Tombstone(
            id=number,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            rule=rule,
            records=len(removed),
            commits=tuple(sorted({r.commit for _, r in removed})),
            paths=tuple(sorted({r.path for _, r in removed})),
            shards=tuple(sorted({name for name, _ in removed})),
            content_hashes=tuple(sorted({r.content_hash for _, r in removed})),
            text_hashes=tuple(sorted({tombstones.text_hash(r.after) for _, r in removed if r.after})),
        )
        result = ForgetResult(
            tombstone,
            Counter(r.commit for _, r in removed),
            Counter(r.path for _, r in removed),
            dry_run=dry_run,
        )
        if dry_run:
            for writer in writers.values():
                writer.abort()
            result.stale = [path for path, _ in _doubles(dataset_dir, manifest) if _would_stale(path, tombstone)]
            return result
        for writer in writers.values():
            writer.commit()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise

    # Each repository's entry loses its own removed records; the totals are derived from the entries again.
    entries = [
        {
            **e,
            "counts": _less(
                Counts.from_dict(e["counts"]), [r for _, r in removed if r.repository == e["path"]]
            ).to_dict(),
            "shards": [renamed.get(name, name) for name in e["shards"]],
        }
        for e in repositories.entries(manifest)
    ]
    updated = {
        **{k: v for k, v in manifest.items() if k not in {"tool", "dataset_format", "record_format"}},
        **repositories.summary(entries),
        repositories.KEY: entries,
        tombstones.DATASET_KEY: [*(t.to_dict() for t in graves), tombstone.to_dict()],
    }
    dataset.write_manifest(dataset_dir, updated)  # the commit point
    atomic.write_text(dataset_dir / "report.txt", repositories.report(updated))
    dataset.sweep_unlisted_shards(dataset_dir, shards)
    result.stale = _mark_stale(dataset_dir, manifest, tombstone)
    return result


def _less(counts: Counts, removed: list[ChangeRecord]) -> Counts:
    """The data report's counts without the removed records, which are counted as forgotten instead."""
    for r in removed:
        counts.records[KEPT] -= 1
        counts.records[FORGOTTEN] += 1
        counts.languages[r.language] -= 1
        counts.years[r.authored_at[:4]] -= 1
        counts.identities[f"{r.author_name} <{r.author_email}>"] -= 1
    for counter in (counts.records, counts.languages, counts.years, counts.identities):
        for key in [k for k, n in counter.items() if n <= 0]:
            del counter[key]
    return counts


def _doubles(dataset_dir: Path, manifest: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """The doubles in the data directory trained on this dataset (a double elsewhere is judged by the server
    and `audit` from the dataset's tombstones)."""
    folder = artifact.doubles_dir(manifest["repository"])
    found: list[tuple[Path, dict[str, Any]]] = []
    if not folder.is_dir():
        return found
    here = str(dataset_dir.resolve())
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not (path / artifact.MANIFEST).is_file():
            continue
        try:
            double = artifact.read_manifest(path)
        except artifact.ArtifactError:
            continue
        if (double.get("dataset") or {}).get("path") == here:
            found.append((path, double))
    return found


def _would_stale(path: Path, tombstone: tombstones.Tombstone) -> bool:
    double = artifact.read_manifest(path)
    return tombstones.STALE_KEY in double or tombstones.stale_by(double, [tombstone]) is not None


def _mark_stale(dataset_dir: Path, manifest: dict[str, Any], tombstone: tombstones.Tombstone) -> list[Path]:
    stale: list[Path] = []
    for path, double in _doubles(dataset_dir, manifest):
        if tombstones.STALE_KEY in double:
            stale.append(path)  # already stale from an earlier forget: keep the first reason
        elif tombstones.stale_by(double, [tombstone]) is not None:
            mark = tombstones.stale_mark(tombstone, str(dataset_dir.resolve()))
            artifact.update_manifest(path, {tombstones.STALE_KEY: mark})
            stale.append(path)
    return stale


def describe(result: ForgetResult, dataset_dir: Path) -> str:
    """What the command prints: what was (or would be) removed, and what is now stale."""
    t = result.tombstone
    verb = "would remove" if result.dry_run else "removed"
    lines = [f"forget {t.rule.describe()}: {verb} {t.records} change record(s) of {len(result.commits)} commit(s)"]
    for commit, n in result.commits.most_common(10):
        lines.append(f"  commit {commit[:12]}  {n} record(s)")
    if len(result.commits) > 10:
        lines.append(f"  … and {len(result.commits) - 10} more commits")
    for path, n in result.paths.most_common(10):
        lines.append(f"  path {path}  {n} record(s)")
    if len(result.paths) > 10:
        lines.append(f"  … and {len(result.paths) - 10} more paths")
    if not result.dry_run:
        lines.append(f"tombstone {t.id} written to {dataset_dir / dataset.MANIFEST}: later `mine` runs leave these out")
    stale = "would be stale" if result.dry_run else "now stale"
    if result.stale:
        lines.append(f"doubles trained on it, {stale} (run `codedouble train {dataset_dir}` again):")
        lines.extend(f"  {path}" for path in result.stale)
    elif t.records:
        lines.append("no double in the data directory was trained on it")
    else:
        lines.append(
            "nothing in the dataset matched; the rule still keeps later `mine` runs from bringing such changes in"
        )
    return "\n".join(lines)

"""`codedouble mine`: walk a repository's history and write the engineer's changed definitions as a dataset."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codedouble.server.contract import atomic, tombstones
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.contract.version import tool_version
from codedouble.trainer.mining import dataset, filters, repositories
from codedouble.trainer.mining.extract import CommitResult
from codedouble.trainer.mining.gitio import GitError, git, repository
from codedouble.trainer.mining.identity import Identities, UnknownAuthorError, resolve
from codedouble.trainer.mining.report import KEPT, Counts
from codedouble.trainer.mining.walk import Walk, mine_chunk, mine_commits

DUPLICATE = "exact duplicate"
FORGOTTEN = "forgotten (codedouble forget)"

# Below this many commits the cost of starting worker processes outweighs a second core.
PARALLEL_MIN_COMMITS = 150


class MineError(CodedoubleError):
    """A problem the user must fix before mining can run; the message says what."""


@dataclass(frozen=True)
class MineOptions:
    authors: tuple[str, ...] = ()
    all_authors: bool = False
    since: str | None = None
    until: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_bytes: int = filters.DEFAULT_MAX_FILE_BYTES
    revision: str = "HEAD"
    jobs: int | None = None  # worker processes; None picks by history size and cores
    fresh: bool = False  # ignore an existing dataset and mine everything again

    def fingerprint(self) -> str:
        """What decides the dataset's content; an incremental run must have been mined the same way."""
        keep = asdict(self)
        for transient in ("jobs", "fresh"):
            keep.pop(transient)
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class MineResult:
    dataset: Path
    new_commits: int
    new_records: int
    incremental: bool
    counts: Counts
    report: str
    notes: list[str] = field(default_factory=list)


def open_repository(path: Path) -> tuple[Path, str, frozenset[str]]:
    """The commit HEAD names and the shallow-clone boundary, with clear errors for a path that is not a
    repository or has no commits."""
    try:
        repo = repository(path)
    except GitError as exc:
        raise MineError(str(exc)) from None
    with repo:
        boundary = _shallow_boundary(Path(repo.common_dir))
        # rev-parse rather than repo.head.commit, which would start a persistent `git cat-file` to check the object.
        status, head, err = repo.git.rev_parse(
            "--verify", "-q", "HEAD^{commit}", with_extended_output=True, with_exceptions=False
        )
    if err:  # git refuses the repository (say, its owner is not a safe.directory): git says why
        raise MineError(f"{path} cannot be read: {err.strip()}")
    if status != 0:  # quiet rev-parse fails silently only when HEAD names no commit
        raise MineError(f"{path} is an empty repository: it has no commits to mine")
    return path.resolve(), head, boundary


def _prepare_output(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MineError(f"cannot create the output directory {out}: {exc.strerror}") from None
    if not out.is_dir():
        raise MineError(f"{out} exists and is not a directory")
    if not os.access(out, os.R_OK | os.W_OK | os.X_OK):
        raise MineError(f"the output directory {out} is not readable and writable by you")


def _shallow_boundary(common_dir: Path) -> frozenset[str]:
    # A shallow clone's oldest commits look like roots that added every file; they are not anyone's change.
    path = common_dir / "shallow"
    return frozenset(path.read_text().split()) if path.exists() else frozenset()


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _mine_parallel(
    walk: Walk, shas: list[str], jobs: int, counts: Counts, on_commits: Callable[[int], None]
) -> Iterator[CommitResult]:
    """Contiguous chunks of the commit list mined in worker processes; results come back in commit order."""
    # Small enough to keep both cores busy to the end, big enough that a chunk's git processes pay off.
    size = max(32, min(512, len(shas) // (jobs * 8) or 1))
    # forkserver: workers start clean instead of as forks of a process holding threads and open pipes.
    context = multiprocessing.get_context("forkserver")
    window: deque[tuple[int, Future[tuple[Counts, list[CommitResult]]]]] = deque()

    def oldest() -> list[CommitResult]:
        n, future = window.popleft()
        chunk_counts, results = future.result()
        counts.add(chunk_counts)
        on_commits(n)
        return results

    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        for chunk in _chunks(shas, size):
            window.append((len(chunk), pool.submit(mine_chunk, walk, chunk)))
            if len(window) >= jobs * 2:  # a bounded window keeps the history's records out of memory
                yield from oldest()
        while window:
            yield from oldest()


def _time_span(span: tuple[str | None, str | None], authored_at: str) -> tuple[str | None, str | None]:
    first, last = span
    when = datetime.fromisoformat(authored_at).astimezone(UTC).isoformat()
    return (min(first, when) if first else when, max(last, when) if last else when)


@dataclass(frozen=True)
class _Source:
    """One repository named on the command line, opened and its engineer's identities resolved."""

    root: Path
    head: str
    shallow_boundary: frozenset[str]
    identities: Identities


@dataclass
class _Plan:
    """What this run mines of one repository: everything, or only the commits since its last head."""

    revisions: list[str]
    previous: dict[str, Any] | None  # the repository's entry this run extends; None for a full run
    notes: list[str]
    up_to_date: bool = False


def _open(repo_path: Path, options: MineOptions, several: bool) -> _Source:
    root, head, shallow_boundary = open_repository(repo_path)
    if options.revision != "HEAD":
        try:
            head = git(root, "rev-parse", "--verify", f"{options.revision}^{{commit}}").strip()
        except GitError:
            raise MineError(f"{options.revision!r} does not name a commit in {root}") from None
    try:
        identities = resolve(root, head, list(options.authors), options.all_authors)
    except UnknownAuthorError as exc:
        if not several:
            raise
        # Each repository must hold commits of one of the person's identities; say which one does not.
        raise UnknownAuthorError(f"{root}: {exc}") from None
    return _Source(root, head, shallow_boundary, identities)


def _plan(source: _Source, entry: dict[str, Any] | None, options: MineOptions) -> _Plan:
    if entry is None:
        return _Plan([source.head], None, [])
    if entry.get("options_fingerprint") != options.fingerprint():
        return _Plan(
            [source.head], None, ["the mining options changed since the last run: mining the whole history again"]
        )
    if not _is_ancestor(source.root, entry["head"], source.head):
        return _Plan(
            [source.head], None, ["the history was rewritten since the last run: mining the whole history again"]
        )
    if entry["head"] == source.head:
        return _Plan([], entry, [f"up to date: no new commits since {source.head[:12]}"], up_to_date=True)
    return _Plan([source.head, f"^{entry['head']}"], entry, [])


def mine(repos: Path | Sequence[Path], out: Path, options: MineOptions, progress: bool = True) -> MineResult:
    """Mine each of `repos` into the dataset directory `out`. A repository already in the dataset is mined
    from its last head on; another one joins the dataset beside those in it (`--fresh`: the dataset is
    replaced by the repositories named)."""
    named = [repos] if isinstance(repos, Path) else list(repos)
    if not named:
        raise MineError("name at least one repository to mine")
    sources: list[_Source] = []
    for path in named:
        source = _open(path, options, several=len(named) > 1)
        if all(s.root != source.root for s in sources):  # the same repository named twice is mined once
            sources.append(source)
    _prepare_output(out)
    # Read even with --fresh: a manifest another tool wrote is refused, never replaced.
    previous = dataset.read_manifest(out, check_format=not options.fresh)
    previous = None if options.fresh else previous
    listed = repositories.entries(previous)
    graves = tombstones.from_manifest(previous) if previous else _tombstones(out, [s.root for s in sources])
    plans = [(s, _plan(s, repositories.entry(previous, str(s.root)), options)) for s in sources]
    several = len({*(e["path"] for e in listed), *(str(s.root) for s in sources)}) > 1

    def noted(source: _Source, notes: list[str]) -> list[str]:
        name = (repositories.entry(previous, str(source.root)) or {}).get("name", source.root.name)
        return [f"{name}: {n}" for n in notes] if several else notes

    notes = [n for s, plan in plans for n in noted(s, plan.notes)]
    if previous is not None and all(plan.up_to_date for _, plan in plans):
        counts = Counts.from_dict(previous["counts"])
        return MineResult(out, 0, 0, True, counts, repositories.report(previous), notes)

    # The shards of a repository mined whole again are replaced: their records are not repeats to drop.
    replaced = {str(s.root) for s, plan in plans if plan.previous is None}
    kept_shards = [name for e in listed if e["path"] not in replaced for name in e["shards"]]
    seen = dataset.content_hashes(out, {"shards": kept_shards}) if kept_shards else set()
    run = max((int(r["run"]) for r in (previous or {}).get("runs", [])), default=0) + 1
    mined: dict[str, dict[str, Any]] = {}
    new_commits = new_records = 0
    for source, plan in plans:
        if plan.up_to_date:
            continue
        old = repositories.entry(previous, str(source.root))
        taken = [e["name"] for e in listed] + [e["name"] for e in mined.values()]
        name = old["name"] if old else repositories.display_name(source.root, taken)
        entry, commits, records = _mine_repository(source, plan, name, out, options, seen, graves, run, progress)
        mined[entry["path"]] = entry
        new_commits += commits
        new_records += records
        run += 1
        if plan.previous is not None:
            notes += noted(source, [f"incremental: mined {commits} new commits since {plan.previous['head'][:12]}"])
        elif old is None and listed:
            notes.append(f"added {source.root} to the dataset as {name!r}: mined {commits} commits")

    # In the order they joined, the primary first; new ones after, in the order named.
    entries = [mined.pop(e["path"], e) for e in listed] + list(mined.values())
    manifest = {
        "tool_version": tool_version(),
        **repositories.summary(entries),
        "filters": {  # the primary's, as `options`; every repository's own are in its entry
            "max_file_bytes": entries[0]["options"]["max_file_bytes"],
            "include": list(entries[0]["options"]["include"]),
            "exclude": list(entries[0]["options"]["exclude"]),
            "always": "vendored, generated, minified, binary, non-UTF-8, oversized, symlinks and submodules, "
            "syntax errors, exact duplicates, bots, merges",
        },
        repositories.KEY: entries,
        tombstones.DATASET_KEY: [t.to_dict() for t in graves],
    }
    dataset.write_manifest(out, manifest)
    report = repositories.report(manifest)
    atomic.write_text(out / "report.txt", report)  # derived from the manifest, rewritten after it
    dataset.sweep_unlisted_shards(out, manifest["shards"])
    incremental = all(plan.previous is not None for _, plan in plans)
    counts = Counts.from_dict(manifest["counts"])
    return MineResult(out, new_commits, new_records, incremental, counts, report, notes)


def _mine_repository(
    source: _Source,
    plan: _Plan,
    name: str,
    out: Path,
    options: MineOptions,
    seen: set[str],
    graves: list[tombstones.Tombstone],
    run: int,
    progress: bool,
) -> tuple[dict[str, Any], int, int]:
    """Mine one repository's new commits into a shard of its own; its manifest entry, commits and records.
    `seen` (the content hashes in the dataset) grows with what this run keeps."""
    from tqdm import tqdm

    root, head, previous = source.root, source.head, plan.previous
    walk = Walk(
        root=root,
        identities=source.identities,
        authors_named=bool(options.authors),
        shallow_boundary=source.shallow_boundary,
        path_filter=filters.PathFilter(options.include, options.exclude),
        max_file_bytes=options.max_file_bytes,
    )
    dates = [f"--since={options.since}"] if options.since else []
    dates += [f"--until={options.until}"] if options.until else []
    shas = git(root, "rev-list", "--reverse", *dates, *plan.revisions, "--").split()
    jobs = options.jobs or (min(2, os.cpu_count() or 1) if len(shas) >= PARALLEL_MIN_COMMITS else 1)

    rules = [t.rule for t in graves]
    forgotten_changes = {h for t in graves for h in t.content_hashes}
    shard_name = f"part-{run:04d}-{head[:12]}.jsonl"
    span = (previous["time_span"]["first"], previous["time_span"]["last"]) if previous else (None, None)
    new_counts = Counts()
    writer = dataset.ShardWriter(out, shard_name)
    bar = tqdm(total=len(shas), unit="commit", desc=f"mining {name}", disable=None if progress else True, leave=False)
    try:
        if jobs > 1:
            results = _mine_parallel(walk, shas, jobs, new_counts, bar.update)
        else:
            results = mine_commits(walk, plan.revisions, new_counts, lambda: bar.update(), extra=dates)
        for result in results:
            new_counts.files.update(result.files)
            new_counts.records.update(result.rejected_records)
            new_counts.secrets.update(result.secrets)
            for record in result.records:
                key = record.content_hash
                if key in seen:
                    new_counts.records[DUPLICATE] += 1
                    continue
                if key in forgotten_changes or any(
                    rule.matches(
                        record.commit,
                        record.path,
                        record.old_path,
                        record.author_email,
                        record.committed_at,
                        record.repository,
                    )
                    for rule in rules
                ):
                    new_counts.records[FORGOTTEN] += 1
                    continue
                seen.add(key)
                writer.write(record)
                new_counts.records[KEPT] += 1
                new_counts.languages[record.language] += 1
                new_counts.years[record.authored_at[:4]] += 1
                new_counts.identities[f"{record.author_name} <{record.author_email}>"] += 1
                span = _time_span(span, record.authored_at)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()

    counts = Counts.from_dict(previous["counts"]) if previous else Counts()
    counts.add(new_counts)
    entry = {
        "path": str(root),
        "name": name,
        "head": head,
        "identities": sorted(source.identities.emails),
        "all_authors": source.identities.all_authors,
        "options": {k: v for k, v in asdict(options).items() if k not in {"jobs", "fresh"}},
        "options_fingerprint": options.fingerprint(),
        "counts": counts.to_dict(),
        "time_span": {"first": span[0], "last": span[1]},
        "shards": [*(previous["shards"] if previous else []), shard_name],
        "runs": [
            *(previous["runs"] if previous else []),
            {
                "run": run,
                "head": head,
                "from": previous["head"] if previous else None,
                "commits": len(shas),
                "records": writer.count,
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        ],
    }
    return entry, len(shas), writer.count


def _tombstones(out: Path, roots: list[Path]) -> list[tombstones.Tombstone]:
    """What `forget` removed from the dataset `--fresh` replaces at `out`: honoured still when it shares a
    repository with this run (a fresh mine must not bring forgotten data back)."""
    try:
        manifest = dataset.read_manifest(out, check_format=False)
    except dataset.DatasetError:
        return []
    if manifest is None or not set(repositories.paths(manifest)) & {str(root) for root in roots}:
        return []  # other repositories' dataset: its tombstones spoke of other commits
    return tombstones.from_manifest(manifest)


def _is_ancestor(root: Path, older: str, newer: str) -> bool:
    try:
        git(root, "merge-base", "--is-ancestor", older, newer)
        return True
    except GitError:
        return False

"""`codedouble mine`: walk a repository's history and write the engineer's changed definitions as a dataset."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codedouble.server.contract import atomic, tombstones
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.contract.version import tool_version
from codedouble.trainer.mining import dataset, filters
from codedouble.trainer.mining.extract import CommitResult
from codedouble.trainer.mining.gitio import GitError, git, repository
from codedouble.trainer.mining.identity import Identities, resolve
from codedouble.trainer.mining.report import KEPT, Counts, render
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


@dataclass
class _Plan:
    """What this run mines: everything, or only the commits since the dataset's last head."""

    revisions: list[str]
    previous: dict[str, Any] | None  # the manifest this run extends; None for a full run
    notes: list[str]


def _plan(root: Path, head: str, out: Path, options: MineOptions) -> _Plan:
    previous = dataset.read_manifest(out, check_format=not options.fresh)
    if previous is None or options.fresh:
        return _Plan([head], None, [])
    if previous.get("repository") != str(root):
        raise MineError(
            f"{out} holds a dataset of another repository ({previous.get('repository')}); "
            "choose another --out, or pass --fresh to replace it"
        )
    if previous.get("options_fingerprint") != options.fingerprint():
        return _Plan([head], None, ["the mining options changed since the last run: mining the whole history again"])
    if not _is_ancestor(root, previous["head"], head):
        return _Plan([head], None, ["the history was rewritten since the last run: mining the whole history again"])
    return _Plan([head, f"^{previous['head']}"], previous, [])


def mine(repo_path: Path, out: Path, options: MineOptions, progress: bool = True) -> MineResult:
    """Mine `repo_path` into the dataset directory `out`; only new commits when `out` already holds its dataset."""
    from tqdm import tqdm

    root, head, shallow_boundary = open_repository(repo_path)
    if options.revision != "HEAD":
        try:
            head = git(root, "rev-parse", "--verify", f"{options.revision}^{{commit}}").strip()
        except GitError:
            raise MineError(f"{options.revision!r} does not name a commit in {root}") from None
    identities = resolve(root, head, list(options.authors), options.all_authors)
    _prepare_output(out)
    plan = _plan(root, head, out, options)
    previous = plan.previous
    counts = Counts.from_dict(previous["counts"]) if previous else Counts()
    if previous is not None and previous["head"] == head:
        report = render(counts, _heading(root, head, identities))
        return MineResult(out, 0, 0, True, counts, report, [f"up to date: no new commits since {head[:12]}"])

    walk = Walk(
        root=root,
        identities=identities,
        authors_named=bool(options.authors),
        shallow_boundary=shallow_boundary,
        path_filter=filters.PathFilter(options.include, options.exclude),
        max_file_bytes=options.max_file_bytes,
    )
    dates = [f"--since={options.since}"] if options.since else []
    dates += [f"--until={options.until}"] if options.until else []
    shas = git(root, "rev-list", "--reverse", *dates, *plan.revisions, "--").split()
    jobs = options.jobs or (min(2, os.cpu_count() or 1) if len(shas) >= PARALLEL_MIN_COMMITS else 1)

    seen = dataset.content_hashes(out, previous) if previous else set()
    graves = _tombstones(out, root)
    rules = [t.rule for t in graves]
    forgotten_changes = {h for t in graves for h in t.content_hashes}
    run = int(previous["runs"][-1]["run"]) + 1 if previous else 1
    shard_name = f"part-{run:04d}-{head[:12]}.jsonl"
    span = (previous["time_span"]["first"], previous["time_span"]["last"]) if previous else (None, None)
    new_counts = Counts()
    writer = dataset.ShardWriter(out, shard_name)
    bar = tqdm(total=len(shas), unit="commit", desc="mining", disable=None if progress else True, leave=False)
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
                    rule.matches(record.commit, record.path, record.old_path, record.author_email, record.committed_at)
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

    counts.add(new_counts)
    shards = [*(previous["shards"] if previous else []), shard_name]
    runs = [
        *(previous["runs"] if previous else []),
        {
            "run": run,
            "head": head,
            "from": previous["head"] if previous else None,
            "commits": len(shas),
            "records": writer.count,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    ]
    report = render(counts, _heading(root, head, identities))
    dataset.write_manifest(
        out,
        {
            "tool_version": tool_version(),
            "repository": str(root),
            "head": head,
            "identities": sorted(identities.emails),
            "all_authors": identities.all_authors,
            "options": {k: v for k, v in asdict(options).items() if k not in {"jobs", "fresh"}},
            "options_fingerprint": options.fingerprint(),
            "filters": {
                "max_file_bytes": options.max_file_bytes,
                "include": list(options.include),
                "exclude": list(options.exclude),
                "always": "vendored, generated, minified, binary, non-UTF-8, oversized, symlinks and submodules, "
                "syntax errors, exact duplicates, bots, merges",
            },
            "counts": counts.to_dict(),
            "time_span": {"first": span[0], "last": span[1]},
            "shards": shards,
            "runs": runs,
            tombstones.DATASET_KEY: [t.to_dict() for t in graves],
        },
    )
    atomic.write_text(out / "report.txt", report)  # derived from the manifest, rewritten after it
    dataset.sweep_unlisted_shards(out, shards)
    notes = list(plan.notes)
    if previous:
        notes.append(f"incremental: mined {len(shas)} new commits since {previous['head'][:12]}")
    return MineResult(out, len(shas), writer.count, previous is not None, counts, report, notes)


def _tombstones(out: Path, root: Path) -> list[tombstones.Tombstone]:
    """What `forget` removed from the dataset at `out`: honoured by every later run, `--fresh` ones included
    (a fresh mine of the same repository must not bring forgotten data back)."""
    try:
        manifest = dataset.read_manifest(out, check_format=False)
    except dataset.DatasetError:
        return []
    if manifest is None or manifest.get("repository") != str(root):
        return []  # another repository's dataset, replaced by --fresh: its tombstones spoke of other commits
    return tombstones.from_manifest(manifest)


def _is_ancestor(root: Path, older: str, newer: str) -> bool:
    try:
        git(root, "merge-base", "--is-ancestor", older, newer)
        return True
    except GitError:
        return False


def _heading(root: Path, head: str, identities: Identities) -> str:
    return f"codedouble data report — {root} @ {head[:12]}\nidentities: {identities.describe()}"

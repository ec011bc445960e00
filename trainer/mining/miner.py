"""`codedouble mine`: walk a repository's history and write the engineer's changed definitions as a dataset."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from codedouble.grammars.languages import language_for_path
from codedouble.trainer.mining import dataset, filters
from codedouble.trainer.mining.extract import CommitResult, CommitWork, Extractor, FileWork, process_batch
from codedouble.trainer.mining.gitio import BlobReader, CommitInfo, FileDiff, GitError, git, log
from codedouble.trainer.mining.identity import Identities, is_bot, resolve
from codedouble.trainer.mining.report import KEPT, Counts, render

# Reasons a commit is left out, as the report names them.
MERGE = "merge commit"
BOT = "bot"
OTHER_AUTHOR = "another author"
SHALLOW = "shallow-clone boundary"
DUPLICATE = "exact duplicate"

# Below this many commits the cost of starting worker processes outweighs a second core.
PARALLEL_MIN_COMMITS = 400
_REGULAR_FILE_MODES = frozenset({"100644", "100755"})


class MineError(RuntimeError):
    """A problem the user must fix before mining can run; the message says what."""


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("codedouble")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


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


def open_repository(path: Path) -> tuple[Path, str]:
    """The commit HEAD names, with clear errors for a path that is not a repository or has no commits."""
    if not path.exists():
        raise MineError(f"{path} does not exist")
    try:
        git(path, "rev-parse", "--absolute-git-dir")
    except GitError:
        raise MineError(f"{path} is not a git repository") from None
    head = git(path, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip()
    if not head:
        raise MineError(f"{path} is an empty repository: it has no commits to mine")
    return path.resolve(), head


def _prepare_output(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MineError(f"cannot create the output directory {out}: {exc.strerror}") from None
    if not out.is_dir():
        raise MineError(f"{out} exists and is not a directory")
    if not os.access(out, os.R_OK | os.W_OK | os.X_OK):
        raise MineError(f"the output directory {out} is not readable and writable by you")


def _shallow_boundary(root: Path) -> frozenset[str]:
    # A shallow clone's oldest commits look like roots that added every file; they are not anyone's change.
    path = Path(git(root, "rev-parse", "--git-path", "shallow").strip())
    path = path if path.is_absolute() else root / path
    return frozenset(path.read_text().split()) if path.exists() else frozenset()


def _commit_reason(c: CommitInfo, identities: Identities, explicitly_named: bool, boundary: frozenset[str]) -> str | None:
    if len(c.parents) > 1:
        return MERGE
    if c.sha in boundary:
        return SHALLOW
    if not identities.matches(c.author_email, c.raw_author_email):
        return OTHER_AUTHOR
    if is_bot(c.author_name, c.author_email) and not explicitly_named:
        return BOT
    return None


def _file_work(
    diff: FileDiff, blobs: dict[str, Any], path_filter: filters.PathFilter, files: Counts
) -> FileWork | None:
    """Pair a diff with its blobs, or count why it is left out."""
    path = diff.new_path or diff.old_path
    assert path is not None
    reason = path_filter.reject(path)
    modes = {m for m in (diff.old_mode, diff.new_mode) if m != "000000"}
    if reason is None and not modes <= _REGULAR_FILE_MODES:
        reason = filters.NOT_A_FILE
    sides: list[bytes | None] = []
    for sha in (diff.old_blob, diff.new_blob):
        if reason is not None or sha is None:
            sides.append(None)
            continue
        blob = blobs[sha]
        if blob.data is None:
            reason = filters.TOO_LARGE
        else:
            reason = filters.reject_content(blob.data)
        sides.append(blob.data)
    if reason is not None:
        files.files[reason] += 1
        return None
    language = language_for_path(path)
    assert language is not None
    old_path = diff.old_path if diff.status == "R" else None
    return FileWork(
        path=path, old_path=old_path, language=language, before=sides[0], after=sides[1],
        before_blob=diff.old_blob, after_blob=diff.new_blob,
    )  # fmt: skip


def _commit_works(
    root: Path,
    revisions: list[str],
    options: MineOptions,
    identities: Identities,
    counts: Counts,
    on_commit: Callable[[], None],
) -> Iterator[CommitWork]:
    """Read the history and the blobs it needs; yields only commits with files worth parsing."""
    boundary = _shallow_boundary(root)
    path_filter = filters.PathFilter(options.include, options.exclude)
    extra = [f"--since={options.since}"] if options.since else []
    extra += [f"--until={options.until}"] if options.until else []
    with BlobReader(root, options.max_file_bytes) as reader:
        for c in log(root, revisions, extra):
            on_commit()
            reason = _commit_reason(c, identities, bool(options.authors), boundary)
            if reason is not None:
                counts.commits[reason] += 1
                continue
            counts.commits[KEPT] += 1
            wanted = [d for d in c.files if path_filter.reject(d.new_path or d.old_path or "") is None]
            shas = sorted({sha for d in wanted for sha in (d.old_blob, d.new_blob) if sha})
            blobs = reader.read_many(shas) if shas else {}
            works = [w for d in c.files if (w := _file_work(d, blobs, path_filter, counts)) is not None]
            if works:
                yield CommitWork(commit=c, files=tuple(works))


def _batches(works: Iterable[CommitWork], size: int) -> Iterator[list[CommitWork]]:
    batch: list[CommitWork] = []
    for work in works:
        batch.append(work)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _process_all(works: Iterable[CommitWork], jobs: int) -> Iterator[CommitResult]:
    """Results in commit order; with jobs > 1, parsing and scrubbing run in worker processes."""
    if jobs <= 1:
        extractor = Extractor()
        yield from map(extractor.process, works)
        return
    # forkserver: workers must not inherit the pipes of the git processes (git would never see EOF).
    # A bounded window of batches in flight keeps the history's blobs out of memory.
    context = multiprocessing.get_context("forkserver")
    window: deque[Future[list[CommitResult]]] = deque()
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        for batch in _batches(works, 8):
            window.append(pool.submit(process_batch, batch))
            if len(window) >= jobs * 4:
                yield from window.popleft().result()
        while window:
            yield from window.popleft().result()


def _time_span(records_span: tuple[str | None, str | None], authored_at: str) -> tuple[str | None, str | None]:
    first, last = records_span
    when = datetime.fromisoformat(authored_at).astimezone(timezone.utc).isoformat()
    return (min(first, when) if first else when, max(last, when) if last else when)


def mine(repo_path: Path, out: Path, options: MineOptions, progress: bool = True) -> MineResult:
    from tqdm import tqdm

    root, head = open_repository(repo_path)
    head = git(root, "rev-parse", "--verify", f"{options.revision}^{{commit}}").strip() if options.revision != "HEAD" else head
    identities = resolve(root, head, list(options.authors), options.all_authors)
    _prepare_output(out)

    previous = None if options.fresh else dataset.read_manifest(out)
    notes: list[str] = []
    revisions = [head]
    counts = Counts()
    incremental = False
    if previous is not None:
        same_repo = previous.get("repository") == str(root.resolve())
        same_options = previous.get("options_fingerprint") == options.fingerprint()
        if same_repo and same_options and _is_ancestor(root, previous["head"], head):
            incremental = True
            revisions = [head, f"^{previous['head']}"]
            counts = Counts.from_dict(previous["counts"])
        elif not same_repo:
            raise MineError(
                f"{out} holds a dataset of another repository ({previous.get('repository')}); "
                "choose another --out, or pass --fresh to replace it"
            )
        else:
            why = "the mining options changed" if not same_options else "the history was rewritten"
            notes.append(f"{why} since the last run: mining the whole history again")

    if incremental and previous is not None and previous["head"] == head:
        report = render(counts, _heading(root, head, identities, incremental=True))
        return MineResult(out, 0, 0, True, counts, report, [f"up to date: no new commits since {head[:12]}"])

    total = int(git(root, "rev-list", "--count", *revisions, "--").strip() or 0)
    jobs = options.jobs or (min(2, os.cpu_count() or 1) if total >= PARALLEL_MIN_COMMITS else 1)
    seen = dataset.content_hashes(out, previous) if incremental and previous is not None else set()
    run = int(previous.get("runs", [{}])[-1].get("run", 0)) + 1 if incremental and previous else 1
    shard_name = f"part-{run:04d}-{head[:12]}.jsonl"
    writer = dataset.ShardWriter(out, shard_name)
    bar = tqdm(total=total, unit="commit", desc="mining", disable=None if progress else True, leave=False)
    new_counts = Counts()
    span = (previous.get("time_span", {}).get("first"), previous.get("time_span", {}).get("last")) if incremental and previous else (None, None)
    try:
        works = _commit_works(root, revisions, options, identities, new_counts, lambda: bar.update())
        for result in _process_all(works, jobs):
            new_counts.files.update(result.files)
            new_counts.records.update(result.rejected_records)
            new_counts.secrets.update(result.secrets)
            for record in result.records:
                key = record.content_hash
                if key in seen:
                    new_counts.records[DUPLICATE] += 1
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
    shards = (list(previous.get("shards", [])) if incremental and previous else []) + [shard_name]
    runs = (list(previous.get("runs", [])) if incremental and previous else []) + [
        {
            "run": run,
            "head": head,
            "from": previous["head"] if incremental and previous else None,
            "commits": new_counts.commits.total(),
            "records": writer.count,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    ]
    report = render(counts, _heading(root, head, identities, incremental))
    (out / "report.txt").write_text(report, encoding="utf-8")  # derived from the manifest; safe to rewrite
    dataset.write_manifest(
        out,
        {
            "tool_version": tool_version(),
            "repository": str(root.resolve()),
            "head": head,
            "revision": options.revision,
            "identities": sorted(identities.emails),
            "all_authors": identities.all_authors,
            "options": {k: v for k, v in asdict(options).items() if k not in {"jobs", "fresh"}},
            "options_fingerprint": options.fingerprint(),
            "filters": {
                "max_file_bytes": options.max_file_bytes,
                "include": list(options.include),
                "exclude": list(options.exclude),
                "skipped": "vendored, generated, minified, binary, non-UTF-8, oversized, symlinks/submodules, exact duplicates",
            },
            "counts": counts.to_dict(),
            "time_span": {"first": span[0], "last": span[1]},
            "shards": shards,
            "runs": runs,
        },
    )
    dataset.sweep_unlisted_shards(out, shards)
    if incremental:
        notes.append(f"incremental: mined {new_counts.commits.total()} new commits since {previous['head'][:12]}")  # type: ignore[index]
    return MineResult(out, new_counts.commits.total(), writer.count, incremental, counts, report, notes)


def _is_ancestor(root: Path, older: str, newer: str) -> bool:
    try:
        git(root, "merge-base", "--is-ancestor", older, newer)
        return True
    except GitError:
        return False


def _heading(root: Path, head: str, identities: Identities, incremental: bool) -> str:
    return f"codedouble data report — {root} @ {head[:12]}\nidentities: {identities.describe()}"

"""The mining pipeline over a list of commits: read them and their blobs, filter, extract records.

Runs whole in one process for small histories; on long ones the commit list is cut into contiguous chunks
that worker processes mine side by side, each with its own `git log` and `git cat-file` and its own cache
of recent syntax trees (contiguous, so a file's previous version is usually still in the cache).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from codedouble.grammars.languages import language_for_path
from codedouble.trainer.mining import filters
from codedouble.trainer.mining.extract import CommitResult, CommitWork, Extractor, FileWork
from codedouble.trainer.mining.gitio import Blob, BlobReader, CommitInfo, FileDiff, log
from codedouble.trainer.mining.identity import Identities, is_bot
from codedouble.trainer.mining.report import KEPT, Counts

# Reasons a commit is left out, as the report names them.
MERGE = "merge commit"
BOT = "bot"
OTHER_AUTHOR = "another author"
SHALLOW = "shallow-clone boundary"

_REGULAR_FILE_MODES = frozenset({"100644", "100755"})


@dataclass(frozen=True)
class Walk:
    """Everything a worker needs to mine commits of one repository (picklable)."""

    root: Path
    identities: Identities
    authors_named: bool  # bots named with --author are the user's choice, not automation to drop
    shallow_boundary: frozenset[str]
    path_filter: filters.PathFilter
    max_file_bytes: int


def _commit_reason(c: CommitInfo, walk: Walk) -> str | None:
    if len(c.parents) > 1:
        return MERGE
    if c.sha in walk.shallow_boundary:
        return SHALLOW
    if not walk.identities.matches(c.author_email, c.raw_author_email):
        return OTHER_AUTHOR
    if is_bot(c.author_name, c.author_email) and not walk.authors_named:
        return BOT
    return None


def _diff_reason(diff: FileDiff, walk: Walk) -> str | None:
    """Why a changed file is left out, judged from its path and modes alone, or None to read its blobs."""
    reason = walk.path_filter.reject(diff.new_path or diff.old_path or "")
    if reason is None and not {m for m in (diff.old_mode, diff.new_mode) if m != "000000"} <= _REGULAR_FILE_MODES:
        return filters.NOT_A_FILE  # a submodule's "blob" is a commit of another repository
    return reason


def _file_work(diff: FileDiff, blobs: dict[str, Blob]) -> FileWork | str:
    """Pair a diff with its blobs, or say why its content is left out."""
    sides: list[bytes | None] = []
    for sha in (diff.old_blob, diff.new_blob):
        data = blobs[sha].data if sha is not None else None
        if sha is not None:
            reason = filters.TOO_LARGE if data is None else filters.reject_content(data)
            if reason is not None:
                return reason
        sides.append(data)
    path = diff.new_path or diff.old_path
    assert path is not None
    language = language_for_path(path)
    assert language is not None
    return FileWork(
        path=path,
        old_path=diff.old_path if diff.status == "R" else None,
        language=language,
        before=sides[0],
        after=sides[1],
        before_blob=diff.old_blob,
        after_blob=diff.new_blob,
    )


def _commit_works(
    walk: Walk, commits: Iterator[CommitInfo], counts: Counts, on_commit: Callable[[], None]
) -> Iterator[CommitWork]:
    with BlobReader(walk.root, walk.max_file_bytes) as reader:
        for c in commits:
            on_commit()
            reason = _commit_reason(c, walk)
            if reason is not None:
                counts.commits[reason] += 1
                continue
            counts.commits[KEPT] += 1
            wanted: list[FileDiff] = []
            for diff in c.files:
                if (reason := _diff_reason(diff, walk)) is not None:
                    counts.files[reason] += 1
                else:
                    wanted.append(diff)
            shas = sorted({sha for d in wanted for sha in (d.old_blob, d.new_blob) if sha})
            blobs = reader.read_many(shas) if shas else {}
            works: list[FileWork] = []
            for diff in wanted:
                work = _file_work(diff, blobs)
                if isinstance(work, str):
                    counts.files[work] += 1
                else:
                    works.append(work)
            if works:
                yield CommitWork(commit=c, files=tuple(works), repository=str(walk.root))


_extractor: Extractor | None = None


def _process_extractor() -> Extractor:
    # One per process, kept across chunks: parsers, the tree cache and the secret scanner's cache live on.
    global _extractor
    if _extractor is None:
        _extractor = Extractor()
    return _extractor


def mine_commits(
    walk: Walk,
    revisions: list[str],
    counts: Counts,
    on_commit: Callable[[], None] = lambda: None,
    extra: list[str] | None = None,
    shas: list[str] | None = None,
) -> Iterator[CommitResult]:
    """Mine `revisions` (or exactly `shas`, in that order), oldest first, counting what is left out."""
    extractor = _process_extractor()
    commits = log(walk.root, revisions, extra, shas)
    for work in _commit_works(walk, commits, counts, on_commit):
        yield extractor.process(work)


def mine_chunk(walk: Walk, shas: list[str]) -> tuple[Counts, list[CommitResult]]:
    """Worker entry point: mine exactly these commits."""
    counts = Counts()
    results = list(mine_commits(walk, [], counts, shas=shas))
    return counts, results

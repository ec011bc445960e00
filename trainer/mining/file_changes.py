"""The code files some commits changed, each with its text before and after the commit, read from the mined
repository and scrubbed as the miner scrubs records. Eval's typing replay types the lines such commits added;
the completion corpus keeps the module-level ones the training commits added."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from codedouble.grammars.languages import language_for_path
from codedouble.trainer.mining import filters
from codedouble.trainer.mining.gitio import BlobReader, GitError, log
from codedouble.trainer.mining.secrets import SecretScrubber

MAX_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class FileChange:
    commit: str
    path: str
    language: str
    before: str  # "" when the commit added the file
    after: str


def file_changes(
    repository: Path, commits: Iterable[str], path_filter: filters.PathFilter | None = None
) -> Iterator[FileChange]:
    """Every code file `commits` added, modified or renamed, in commit order. Paths the miner skips (vendored,
    generated, other languages, the dataset's --include/--exclude) are skipped, and so are files that are
    missing, not UTF-8 or over `MAX_FILE_BYTES`."""
    wanted = sorted(set(commits))
    if not wanted or not repository.exists():
        return
    path_filter = path_filter or filters.PathFilter()
    scrubber = SecretScrubber()
    with BlobReader(repository, MAX_FILE_BYTES) as reader:
        for commit in log(repository, [], shas=wanted):
            for diff in commit.files:
                path = diff.new_path
                if path is None or diff.new_blob is None or diff.status not in "AMR":
                    continue
                language = language_for_path(path)
                if language is None or path_filter.reject(path) is not None:
                    continue
                try:
                    blobs = reader.read_many([b for b in (diff.old_blob, diff.new_blob) if b is not None])
                    after = _text(blobs[diff.new_blob].data)
                    before = _text(blobs[diff.old_blob].data) if diff.old_blob else ""
                except (GitError, UnicodeDecodeError, TypeError):
                    continue  # missing, not UTF-8, or over the size limit
                yield FileChange(commit.sha, path, language, scrubber.scrub(before).text, scrubber.scrub(after).text)


def added_lines(before: str, after: str) -> list[int]:
    """Indices of the lines of `after` that are not in `before` (inserted or replaced)."""
    matcher = difflib.SequenceMatcher(a=before.split("\n"), b=after.split("\n"), autojunk=False)
    return [j for tag, _, _, j1, j2 in matcher.get_opcodes() if tag in ("replace", "insert") for j in range(j1, j2)]


def _text(data: bytes | None) -> str:
    if data is None:
        raise TypeError("blob over the size limit")
    return data.decode("utf-8")

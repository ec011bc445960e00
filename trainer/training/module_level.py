"""The engineer's module-level code for the completion corpus: the lines outside every definition (imports,
constants, `if __name__ == "__main__":`, Go's `package`/`import` blocks) that their training commits added.

Records hold definitions only (and each file's imports as prompt context), so this reads the commits from
the mined repository, the one place the rest of a file lives. Only lines a commit added count: the file's
other module-level lines may be someone else's, and the corpus is the engineer's own code. Commits are the
training split's, so held-out code never gets in.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from codedouble.grammars import definitions
from codedouble.grammars.languages import language_for_path
from codedouble.server.contract.corpus import Snippet
from codedouble.trainer.evaluation.replay import added_lines
from codedouble.trainer.mining import filters
from codedouble.trainer.mining.gitio import BlobReader, GitError, log
from codedouble.trainer.mining.secrets import SecretScrubber

MAX_FILE_BYTES = 1_000_000
# A longer line is data (rich's tests assert on rendered ANSI strings of 2-5 k characters), not code to
# complete from: it would be a sixth of the module-level text on rich and match nothing anyone types.
MAX_LINE_CHARS = 400


def outside_definitions(language: str, text: str) -> list[bool]:
    """For each line of `text`, whether it lies outside every definition (decorators belong to theirs)."""
    parsed = definitions.parse(language, text.encode("utf-8", "surrogatepass"))
    outside = [True] * (text.count("\n") + 1)
    for d in parsed.definitions:
        if d.parent is None:
            for i in range(d.start_line, min(d.end_line, len(outside) - 1) + 1):
                outside[i] = False
    return outside


def runs(text: str, wanted: Iterable[int]) -> list[str]:
    """The lines of `text` at the `wanted` indices, each maximal run of consecutive ones joined into one text
    (a run is what the n-gram may read across); lines over `MAX_LINE_CHARS` and runs of blank lines dropped, blank lines at a run's ends cut."""
    lines = text.split("\n")
    out: list[str] = []
    current: list[str] = []
    last = -2
    for i in sorted(wanted):
        if len(lines[i]) > MAX_LINE_CHARS:
            continue  # and the run breaks here
        if i != last + 1 and current:
            out.append("\n".join(current))
            current = []
        current.append(lines[i])
        last = i
    if current:
        out.append("\n".join(current))
    return [run.strip("\n") for run in out if run.strip()]


def snippets(
    repository: Path, commits: Iterable[str], path_filter: filters.PathFilter | None = None
) -> list[tuple[str, Snippet]]:
    """(commit, snippet) for each run of module-level lines `commits` added, secrets scrubbed as the miner
    scrubs records; paths the miner skips (vendored, generated, other languages, --include/--exclude) skipped."""
    wanted = sorted(set(commits))
    if not wanted or not repository.exists():
        return []
    path_filter = path_filter or filters.PathFilter()
    scrubber = SecretScrubber()
    out: list[tuple[str, Snippet]] = []
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
                    new = _text(blobs[diff.new_blob].data)
                    old = _text(blobs[diff.old_blob].data) if diff.old_blob else ""
                except (GitError, UnicodeDecodeError, TypeError):
                    continue  # missing, not UTF-8, or over the size limit
                outside = outside_definitions(language, new)
                added = [i for i in added_lines(old, new) if outside[i]]
                for run in runs(new, added):
                    out.append((commit.sha, Snippet(path, language, scrubber.scrub(run).text, "module")))
    return out


def _text(data: bytes | None) -> str:
    if data is None:
        raise TypeError("blob over the size limit")
    return data.decode("utf-8")

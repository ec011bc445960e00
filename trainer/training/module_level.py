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
from codedouble.server.contract.corpus import Snippet
from codedouble.trainer.mining import filters
from codedouble.trainer.mining.file_changes import added_lines, file_changes

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
    out: list[tuple[str, Snippet]] = []
    for change in file_changes(repository, commits, path_filter):
        outside = outside_definitions(change.language, change.after)
        added = [i for i in added_lines(change.before, change.after) if outside[i]]
        for run in runs(change.after, added):
            out.append((change.commit, Snippet(change.path, change.language, run, "module")))
    return out

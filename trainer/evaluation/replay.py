"""The typing-replay task: the held-out commits' added lines typed again, keystroke by keystroke, against each
system, as the language server would ask it (the same tidy step, the same typed-ahead reuse).

This is what a user lives, not one forced answer per sample: at every keystroke a system may show a ghost
text or nothing, and a simulated user takes it when it is right. Two users are simulated on the same lines:

- **line**: accepts a suggestion only when its first line is exactly the rest of the line (Tab);
- **word**: accepts as many whole words of it as match what they were about to type (VS Code's Ctrl+→,
  Neovim's accept-word), then types on.

Per system and language: characters saved (share of the lines' characters the user did not type), shown
rate (keystrokes with a suggestion), precision (suggestions shown that were right: exactly the rest of the
line for the line user, at least one whole word for the word user), latency per request. Precision counts
suggestions as editors count acceptance: one the user keeps typing into (answered from what was shown, as
the server answers it) is the same suggestion, not a new one at every keystroke.
"""

from __future__ import annotations

import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codedouble.server import suggest
from codedouble.server.engine.document import Request, mode_at
from codedouble.server.stats import percentile
from codedouble.trainer.mining import filters
from codedouble.trainer.mining.file_changes import added_lines, file_changes
from codedouble.trainer.mining.secrets import PLACEHOLDER

ALL = "all"
USERS = ("line", "word")
MAX_LINE_CHARS = 200  # a longer line is data or generated code, and costs as many requests as characters
# A word as an editor's accept-word takes it: a run of word characters or of punctuation, with the spaces
# before it.
_WORD = re.compile(r"\s*(?:\w+|[^\w\s]+)|\s+$")


@dataclass(frozen=True)
class Line:
    """One added line of a held-out commit, set up to be typed: `before` ends with the line's indentation."""

    id: str  # commit:path:line, stable across runs
    language: str
    path: str
    before: str
    typed: str  # what the user types after the indentation, trailing whitespace left out
    after: str  # from the line's end (its newline) to the end of the file
    commit: str = ""  # the commit that added it
    repository: str = ""  # the repository of that commit (a dataset may hold several)


@dataclass(frozen=True)
class Typed:
    """One system, one line, one simulated user."""

    system: str
    user: str
    language: str
    line_id: str
    chars: int
    saved: int
    requests: int
    shown: int  # keystrokes with a suggestion on screen
    suggestions: int  # distinct suggestions shown (one typed into counts once)
    right: int  # suggestions taken, whole (line user) or in part (word user)
    latencies_ms: tuple[float, ...]
    repository: str = ""  # the line's repository, by its display name


@dataclass(frozen=True)
class ReplayRow:
    system: str
    user: str  # "line" or "word"
    language: str  # ALL for the overall row
    lines: int
    chars: int
    saved: float  # share of the characters the user did not type, 0..1
    shown: float  # share of requests answered with a suggestion
    precision: float | None  # share of suggestions shown that were taken; None when none was shown
    p50_ms: float
    p95_ms: float
    repository: str = ALL  # a repository's display name for its own row, when the lines span several


def _worth_typing(line: str) -> bool:
    return any(c.isalnum() for c in line) and PLACEHOLDER not in line and len(line) <= MAX_LINE_CHARS


def lines(
    repository: Path, commits: Iterable[str], count: int, seed: int, path_filter: filters.PathFilter | None = None
) -> list[Line]:
    """Up to `count` added lines of `commits` (module level included), the same ones for the same seed.

    Files are read at each commit and its first parent, secrets scrubbed as the miner scrubs records; paths
    the miner skipped (vendored, generated, other languages, the dataset's --include/--exclude) are skipped.
    """
    return lines_of([(repository, commits, path_filter)], count, seed)


# A repository, the commits to type lines of, and the paths it was mined from.
Source = tuple[Path, Iterable[str], filters.PathFilter | None]


def lines_of(sources: Iterable[Source], count: int, seed: int) -> list[Line]:
    """`lines` over several repositories: up to `count` lines drawn from all of their commits together."""
    if count <= 0:
        return []
    pool: list[Line] = []
    for repository, commits, path_filter in sources:
        pool += _added(repository, commits, path_filter)
    pool.sort(key=lambda line: (line.repository, line.id))
    return random.Random(seed).sample(pool, min(count, len(pool)))


def _added(repository: Path, commits: Iterable[str], path_filter: filters.PathFilter | None) -> list[Line]:
    pool: list[Line] = []
    for change in file_changes(repository, commits, path_filter):
        file_lines = change.after.split("\n")
        starts = [0]
        for text in file_lines[:-1]:
            starts.append(starts[-1] + len(text) + 1)
        for i in added_lines(change.before, change.after):
            text = file_lines[i].rstrip()
            indent = len(text) - len(text.lstrip())
            if not _worth_typing(text[indent:]):
                continue
            start = starts[i]
            pool.append(
                Line(
                    id=f"{change.commit[:12]}:{change.path}:{i + 1}",
                    language=change.language,
                    path=change.path,
                    before=change.after[: start + indent],
                    typed=text[indent:],
                    after=change.after[start + len(file_lines[i]) :],
                    commit=change.commit,
                    repository=str(repository),
                )
            )
    return pool


def accepted_words(suggestion: str, rest: str) -> int:
    """How many characters of `rest` the word user takes from `suggestion`: whole words, while they match."""
    taken = 0
    for word in _WORD.finditer(suggestion.split("\n", 1)[0]):
        if not rest.startswith(suggestion[: word.end()]):
            break
        taken = word.end()
    return taken


def type_line(
    complete: Callable[[Request], str],
    system: str,
    line: Line,
    user: str,
    max_lines: int = 8,
    memo: dict[int, tuple[str, float]] | None = None,
    repository: str = "",
) -> Typed:
    """Type `line` into the document against `complete`, as the server would ask it, for one `user`.

    `memo` (characters typed → the tidied suggestion there and the milliseconds it took) may be shared by
    the users of one system and line: the two type the same prefixes until one of them accepts something,
    and a system answers the same prefix the same way, so each prefix is computed once.
    """
    memo = {} if memo is None else memo
    recent = suggest.Recent()
    uri = line.path
    typed = 0
    saved = requests = shown = suggestions = right = 0
    credited = False  # the suggestion on screen has been taken from already (word user)
    latencies: list[float] = []
    target = line.typed
    while typed < len(target):
        prefix, suffix = line.before + target[:typed], line.after
        started = time.perf_counter()
        suggestion = recent.reuse(uri, prefix, suffix)
        fresh = suggestion is None  # else the user typed into the suggestion on screen: still the same one
        if suggestion is not None:
            latencies.append((time.perf_counter() - started) * 1000)
        elif typed in memo:
            suggestion, elapsed = memo[typed]
            latencies.append(elapsed)
            recent.remember(uri, prefix, suffix, suggestion)
        else:
            mode = mode_at(prefix, line.language)
            raw = complete(Request(line.path, prefix, suffix, mode))
            suggestion = suggest.tidy(raw, prefix, suffix, mode, max_lines if mode == "block" else 1)
            latencies.append((time.perf_counter() - started) * 1000)
            memo[typed] = (suggestion, latencies[-1])
            recent.remember(uri, prefix, suffix, suggestion)
        requests += 1
        rest = target[typed:]
        first = suggestion.split("\n", 1)[0].rstrip()
        if not first:
            typed += 1
            continue
        shown += 1
        if fresh:
            suggestions += 1
            credited = False
        if user == "line":
            if first == rest:
                right += 1
                saved += len(rest)
                break
            typed += 1
        else:
            taken = accepted_words(first, rest)
            if taken:
                right += 0 if credited else 1
                credited = True
                saved += taken
                typed += taken
            else:
                typed += 1
    return Typed(
        system,
        user,
        line.language,
        line.id,
        len(target),
        saved,
        requests,
        shown,
        suggestions,
        right,
        tuple(latencies),
        repository,
    )


def _row(system: str, user: str, language: str, members: Sequence[Typed], repository: str = ALL) -> ReplayRow:
    chars = sum(t.chars for t in members)
    requests = sum(t.requests for t in members)
    shown = sum(t.shown for t in members)
    suggestions = sum(t.suggestions for t in members)
    latencies = [ms for t in members for ms in t.latencies_ms]
    return ReplayRow(
        system=system,
        user=user,
        language=language,
        lines=len(members),
        chars=chars,
        saved=sum(t.saved for t in members) / chars if chars else 0.0,
        shown=shown / requests if requests else 0.0,
        precision=sum(t.right for t in members) / suggestions if suggestions else None,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        repository=repository,
    )


def aggregate(results: Iterable[Typed], systems: Sequence[str]) -> list[ReplayRow]:
    """One row per (user, system) over all languages, plus one per language when the lines span several, and
    one per repository (over all languages) when they span several repositories."""
    groups: dict[tuple[str, str, str], list[Typed]] = defaultdict(list)
    by_repository: dict[tuple[str, str, str], list[Typed]] = defaultdict(list)
    languages: set[str] = set()
    for t in results:
        groups[(t.system, t.user, ALL)].append(t)
        groups[(t.system, t.user, t.language)].append(t)
        by_repository[(t.system, t.user, t.repository)].append(t)
        languages.add(t.language)
    shown = [ALL] + (sorted(languages) if len(languages) > 1 else [])
    repositories = sorted({repository for _, _, repository in by_repository})
    rows = []
    for user in USERS:
        for language in shown:
            for system in systems:
                members = groups.get((system, user, language))
                if members:
                    rows.append(_row(system, user, language, members))
        for repository in repositories if len(repositories) > 1 else []:
            for system in systems:
                members = by_repository.get((system, user, repository))
                if members:
                    rows.append(_row(system, user, ALL, members, repository))
    return rows

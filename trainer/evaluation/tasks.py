"""Eval samples cut from the engineer's held-out commits, as an editor would present them: the whole file at
that commit before and after the cursor, and the code the engineer actually wrote there as the target."""

from __future__ import annotations

import difflib
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from codedouble.server.engine import blocks
from codedouble.trainer.mining.gitio import BlobReader, GitError
from codedouble.trainer.mining.records import ChangeRecord
from codedouble.trainer.mining.secrets import PLACEHOLDER, SecretScrubber

MAX_FILE_BYTES = 1_000_000
# Bodies longer than this would make an eval run slow and say little more than shorter ones.
MAX_BODY_LINES = 40
BLOCK_KINDS = frozenset({"function", "method"})


@dataclass(frozen=True)
class Sample:
    id: str  # commit:path:line:column, stable across runs
    task: str  # "line" or "block"
    language: str
    path: str
    prefix: str  # the file before the cursor
    suffix: str  # after the target
    target: str
    commit: str = ""  # the held-out commit it was cut from (its parent is the workspace the engineer had)
    repository: str = ""  # the repository of that commit (a dataset may hold several)


def _added_lines(record: ChangeRecord) -> list[int]:
    """Indices of the lines of `after` that the commit added or changed."""
    after = (record.after or "").split("\n")
    if record.before is None:
        return list(range(len(after)))
    matcher = difflib.SequenceMatcher(a=record.before.split("\n"), b=after, autojunk=False)
    return [j for tag, _, _, j1, j2 in matcher.get_opcodes() if tag in ("replace", "insert") for j in range(j1, j2)]


def _body_written(record: ChangeRecord, body: str) -> bool:
    """Whether the commit wrote the definition's body: the definition is new, or its body differs from the one
    before beyond whitespace. A definition whose signature, decorators or place alone changed keeps the body
    it had: nobody writes that body again, and the earlier version of the same function (in the corpus, or
    in the document the engineer had open) would score it as an exact body. On rich, 42 of 100 block samples
    were such bodies, and all 8 of the engine's exact bodies were among them."""
    if record.before is None:
        return True
    _, before = blocks.split_definition(record.before, record.language)
    return before.split() != body.split()


def _worth_completing(line: str) -> bool:
    # A lone bracket or a blank line is no test of anything; a scrubbed secret is no target.
    return any(c.isalnum() for c in line) and PLACEHOLDER not in line


def _locate(text: str, record: ChangeRecord) -> int | None:
    """Offset of the record's definition in the file, starting the search at its recorded line."""
    assert record.after is not None
    line_start = 0
    for _ in range(record.line - 1):
        line_start = text.find("\n", line_start) + 1
        if line_start == 0:
            return None
    at = text.find(record.after, line_start)
    return at if at >= 0 and text.count("\n", line_start, at) == 0 else None


def _files(wanted: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """Each (repository, commit, path)'s text, secrets scrubbed as the miner scrubbed the records; unreadable
    ones (and those of a repository that is gone) left out."""
    scrubber = SecretScrubber()
    out: dict[tuple[str, str, str], str] = {}
    by_repository: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for repository, commit, path in sorted(set(wanted)):
        by_repository[repository].append((commit, path))
    for repository, files in by_repository.items():
        if not Path(repository).exists():
            continue
        with BlobReader(Path(repository), MAX_FILE_BYTES) as reader:
            for commit, path in files:
                try:
                    blob = reader.read_many([f"{commit}:{path}"])[f"{commit}:{path}"]
                except GitError:
                    continue
                if blob.data is None:
                    continue
                try:
                    out[(repository, commit, path)] = scrubber.scrub(blob.data.decode("utf-8")).text
                except UnicodeDecodeError:
                    continue
    return out


def sample(heldout: list[ChangeRecord], line_samples: int, block_samples: int, seed: int) -> list[Sample]:
    """Up to `line_samples` next-line and `block_samples` block samples, the same ones for the same seed; each
    record's file is read from the record's own repository."""
    rng = random.Random(seed)
    records = sorted(
        (r for r in heldout if r.after and r.change in ("added", "modified")),
        key=lambda r: (r.repository, r.commit, r.path, r.line, r.qualified_name),
    )
    files = _files((r.repository, r.commit, r.path) for r in records)
    line_pool: list[tuple[ChangeRecord, int, int]] = []  # record, its offset in the file, line index
    block_pool: list[tuple[ChangeRecord, int]] = []
    covered: dict[tuple[str, str, str], set[int]] = defaultdict(set)  # an added class repeats its methods' lines
    for r in records:
        key = (r.repository, r.commit, r.path)
        text = files.get(key)
        at = _locate(text, r) if text is not None else None
        if at is None:
            continue
        first_line = text.count("\n", 0, at)  # type: ignore[union-attr]
        lines = r.after.split("\n")  # type: ignore[union-attr]
        for i in _added_lines(r):
            if _worth_completing(lines[i]) and first_line + i not in covered[key]:
                covered[key].add(first_line + i)
                line_pool.append((r, at, i))
        signature, body = blocks.split_definition(r.after, r.language)  # type: ignore[arg-type]
        if (
            r.kind in BLOCK_KINDS
            and _worth_completing(body)
            and body.count("\n") < MAX_BODY_LINES
            and PLACEHOLDER not in body
            and _body_written(r, body)
        ):
            block_pool.append((r, at))

    samples: list[Sample] = []
    for r, at, i in rng.sample(line_pool, min(line_samples, len(line_pool))):
        text = files[(r.repository, r.commit, r.path)]
        lines = r.after.split("\n")  # type: ignore[union-attr]
        start = at + sum(len(x) + 1 for x in lines[:i])
        line = lines[i].rstrip()
        indent = blocks.indent_of(line) if i else 0
        column = rng.randrange(indent, len(line))
        cursor = start + column
        end = start + len(lines[i])
        samples.append(
            Sample(
                f"{r.commit[:12]}:{r.path}:{text.count(chr(10), 0, start) + 1}:{column + 1}",
                "line",
                r.language,
                r.path,
                text[:cursor],
                text[end:],
                line[column:],
                r.commit,
                r.repository,
            )
        )
    for r, at in rng.sample(block_pool, min(block_samples, len(block_pool))):
        text = files[(r.repository, r.commit, r.path)]
        signature, body = blocks.split_definition(r.after, r.language)  # type: ignore[arg-type]
        cursor = at + len(signature)
        end = at + len(r.after)  # type: ignore[arg-type]
        samples.append(
            Sample(
                f"{r.commit[:12]}:{r.path}:{text.count(chr(10), 0, cursor) + 1}:1",
                "block",
                r.language,
                r.path,
                text[:cursor],
                text[end:],
                body,
                r.commit,
                r.repository,
            )
        )
    return samples

"""Snippets from change records: the shapes (`shapes.py`) the engineer wrote in enough distinct commits,
each anti-unified (`unify.py`) into an LSP snippet with placeholders where the occurrences differ.

An occurrence is a shape a commit *wrote*: a definition or a statement block in the record's `after` whose
shape its `before` did not already hold (so a function edited in ten commits is not ten occurrences of itself,
and an untouched `if` inside a modified function is no occurrence at all).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import tree_sitter as ts

from codedouble.grammars.languages import LANGUAGES, parser
from codedouble.server.contract.snippets import Snippet
from codedouble.server.snippets import family, is_test_path
from codedouble.trainer.mining.records import ChangeRecord
from codedouble.trainer.mining.secrets import PLACEHOLDER, SecretScrubber
from codedouble.trainer.snippets.shapes import Piece, pieces
from codedouble.trainer.snippets.unify import anti_unify, to_lsp

# A shape becomes a snippet once it was written in this many distinct commits. Two could be one change
# split in two commits, or a copy made once; three separate times is a habit. (The done-means history writes
# its shape five times.)
MIN_COMMITS = 3
# A snippet spans 2..MAX_LINES lines: one line is what the inline completion already offers, and a long
# template is more to delete than to fill in.
MIN_LINES = 2
MAX_LINES = 25
MAX_CHARS = 1500
# At least this many names or literals shared by every occurrence: a template made only of syntax
# (`if ${1:x}:\n    return ${2:y}`) is no habit of this engineer's, just the language.
MIN_CONSTANT = 2
# The newest occurrences of a shape that anti-unification looks at (it is linear in them; the defaults come
# from the most written values, and the newest are the engineer's current habits).
MAX_OCCURRENCES = 200
# Snippets kept, the most written first: the server ranks them per cursor, so this bounds its work.
MAX_SNIPPETS = 300


@dataclass(frozen=True)
class Occurrence:
    piece: Piece
    commit: str
    when: datetime
    path: str
    enclosing: str  # family of where it was written (server/snippets.py `family`)


_CLASSY = re.compile(r"\b(class|struct|interface|enum|trait|impl|record|type|object)\b")


def _signature_family(signature: str) -> str:
    """The family of a definition named by its signature alone (records keep the enclosing ones' signatures)."""
    return "class" if _CLASSY.search(signature.split("(", 1)[0]) else "function"


def _when(record: ChangeRecord) -> datetime:
    stamp = datetime.fromisoformat(record.committed_at)
    return stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _fits(piece: Piece) -> bool:
    text = piece.text
    lines = text.count("\n") + 1
    return MIN_LINES <= lines <= MAX_LINES and len(text) <= MAX_CHARS


def occurrences(records: Iterable[ChangeRecord]) -> dict[tuple[str, tuple[str, ...]], list[Occurrence]]:
    """Every shape each record wrote, grouped by (language, shape key)."""
    parsers: dict[str, ts.Parser] = {}
    groups: dict[tuple[str, tuple[str, ...]], list[Occurrence]] = defaultdict(list)
    for r in records:
        if r.after is None or r.language not in LANGUAGES:
            continue
        p = parsers.get(r.language)
        if p is None:
            p = parsers[r.language] = parser(r.language)
        written = [piece for piece in pieces(r.language, r.after, p) if _fits(piece)]
        if not written:
            continue
        there = Counter(piece.key for piece in pieces(r.language, r.before, p)) if r.before else Counter()
        when = _when(r)
        outer = _signature_family(r.context.enclosing[-1]) if r.context.enclosing else ""
        for piece in written:
            if there[piece.key] > 0:  # the commit kept this one (or one of its shape) from before
                there[piece.key] -= 1
                continue
            # A definition sits in whatever encloses it; a block in the definition itself.
            enclosing = outer if piece.scope == "definition" else family(r.kind)
            groups[(r.language, piece.key)].append(Occurrence(piece, r.commit, when, r.path, enclosing))
    return groups


def mine(records: Iterable[ChangeRecord], scrubber: SecretScrubber | None = None) -> list[Snippet]:
    """The engineer's snippets, the most written first (by distinct commits, then occurrences, then recency)."""
    scrubber = scrubber or SecretScrubber()
    found: list[Snippet] = []
    for (language, _key), group in occurrences(records).items():
        commits = {o.commit for o in group}
        if len(commits) < MIN_COMMITS:
            continue
        group.sort(key=lambda o: o.when, reverse=True)
        used = group[:MAX_OCCURRENCES]
        template = anti_unify([o.piece for o in used])
        if template.constant_names < MIN_CONSTANT:
            continue
        example = template.example
        # The records were scrubbed when mined; a snippet must not even carry the scrubber's mark, and the
        # template is scanned again since a default is chosen from several occurrences' values.
        if PLACEHOLDER in example or scrubber.scrub(example).kinds:
            continue
        first_line = example.split("\n", 1)[0].strip()
        found.append(
            Snippet(
                language=language,
                node=used[0].piece.node,
                scope=used[0].piece.scope,
                body=to_lsp(template),
                example=example,
                label=first_line[:80],
                occurrences=len(group),
                commits=len(commits),
                first=min(o.when for o in group).date().isoformat(),
                last=used[0].when.date().isoformat(),
                enclosing=Counter(o.enclosing for o in group).most_common(1)[0][0],
                test_share=round(sum(is_test_path(o.path) for o in group) / len(group), 3),
            )
        )
    found.sort(key=lambda s: (s.commits, s.occurrences, s.last), reverse=True)
    return found[:MAX_SNIPPETS]

"""Turn one commit's file changes into scrubbed change records. Runs in worker processes on big histories."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import tree_sitter as ts

from codedouble.grammars import definitions
from codedouble.grammars.incremental import point
from codedouble.grammars.languages import parser
from codedouble.trainer.mining.changes import changed_region, definition_changes
from codedouble.trainer.mining.gitio import CommitInfo
from codedouble.trainer.mining.records import ChangeRecord, FileContext
from codedouble.trainer.mining.report import KEPT
from codedouble.trainer.mining.secrets import SecretScrubber

SYNTAX_ERROR = "syntax error"
UNCHANGED = "no definition changed"


@dataclass(frozen=True)
class FileWork:
    path: str  # after the commit (before, when deleted)
    old_path: str | None  # set on renames
    language: str
    before: bytes | None
    after: bytes | None
    before_blob: str | None = None  # blob ids let a worker reuse the tree it parsed for the previous commit
    after_blob: str | None = None


@dataclass(frozen=True)
class CommitWork:
    commit: CommitInfo
    files: tuple[FileWork, ...]
    repository: str  # its records name it: a dataset may hold several repositories


@dataclass
class CommitResult:
    records: list[ChangeRecord] = field(default_factory=list)
    files: Counter[str] = field(default_factory=Counter)
    rejected_records: Counter[str] = field(default_factory=Counter)
    secrets: Counter[str] = field(default_factory=Counter)


class Extractor:
    """Holds what is costly to build (parsers, recent trees, the secret scanner's cache) across commits."""

    # Trees of recently seen blobs: a file's after-version is the before-version of its next change.
    _TREE_CACHE = 256

    def __init__(self) -> None:
        self._parsers: dict[str, ts.Parser] = {}
        self._trees: OrderedDict[str, ts.Tree] = OrderedDict()
        self._scrubber = SecretScrubber()

    def _parser(self, language: str) -> ts.Parser:
        if language not in self._parsers:
            self._parsers[language] = parser(language)
        return self._parsers[language]

    def _tree(self, language: str, source: bytes, blob: str | None, old: ts.Tree | None = None) -> ts.Tree:
        key = f"{language}:{blob}"
        tree = self._trees.get(key) if blob else None
        if tree is None:
            tree = (
                self._parser(language).parse(source, old) if old is not None else self._parser(language).parse(source)
            )
            if blob:
                self._trees[key] = tree
                if len(self._trees) > self._TREE_CACHE:
                    self._trees.popitem(last=False)
        else:
            self._trees.move_to_end(key)
        return tree

    def _parse_pair(self, f: FileWork) -> tuple[definitions.ParsedFile | None, definitions.ParsedFile | None]:
        """Parse both versions; the after-version reparses the before-tree incrementally and only the
        definitions around the changed span are extracted, so a one-line change to a big file stays cheap."""
        if f.before is None or f.after is None:
            source = f.before if f.before is not None else f.after
            assert source is not None
            tree = self._tree(f.language, source, f.before_blob or f.after_blob)
            parsed = definitions.extract(f.language, source, tree, with_header=True)
            return (parsed, None) if f.before is not None else (None, parsed)
        region = changed_region(f.before, f.after)
        before_tree = self._tree(f.language, f.before, f.before_blob)
        edited = before_tree.copy()
        edited.edit(
            region.start,
            region.old_end,
            region.new_end,
            point(f.before, region.start),
            point(f.before, region.old_end),
            point(f.after, region.new_end),
        )
        after_tree = self._tree(f.language, f.after, f.after_blob, edited)
        # One byte of margin on each side catches definitions that end or start right at the change.
        low = max(region.start - 1, 0)
        before_span, after_span = (low, region.old_end + 1), (low, region.new_end + 1)
        before = definitions.extract(f.language, f.before, before_tree, [before_span])
        after = definitions.extract(f.language, f.after, after_tree, [after_span])
        # A definition found on one side only may lie just outside the other side's span: it grew into the
        # change (a method appended to a class) or shrank out of it. Widen the other side's span over where
        # it would be and look again, until both sides have found the same names (or the spans stop growing).
        for _ in range(8):
            wider_before = _span(_unmatched(after, before), before_span, region.to_before)
            wider_after = _span(_unmatched(before, after), after_span, region.to_after)
            if (wider_before, wider_after) == (before_span, after_span):
                break
            if wider_before != before_span:
                before_span = wider_before
                before = definitions.extract(f.language, f.before, before_tree, [before_span])
            if wider_after != after_span:
                after_span = wider_after
                after = definitions.extract(f.language, f.after, after_tree, [after_span])
        after = replace(after, header=definitions.header(f.language, f.after, after_tree))
        return before, after

    def _clean(self, text: str | None, secrets: Counter[str]) -> str | None:
        if text is None:
            return None
        scrubbed = self._scrubber.scrub(text)
        secrets.update(scrubbed.kinds)
        return scrubbed.text

    def process(self, work: CommitWork) -> CommitResult:
        result = CommitResult()
        c = work.commit
        message = self._clean(c.message, result.secrets) or ""
        for f in work.files:
            before, after = self._parse_pair(f)
            header_source = after if after is not None else before
            assert header_source is not None
            header = self._clean(header_source.header, result.secrets) or ""
            produced = 0
            for change in definition_changes(f.before, before, f.after, after):
                if change.has_error:
                    result.rejected_records[SYNTAX_ERROR] += 1
                    continue
                produced += 1
                enclosing = tuple(self._clean(s, result.secrets) or "" for s in change.enclosing)
                result.records.append(
                    ChangeRecord(
                        repository=work.repository,
                        commit=c.sha,
                        author_email=c.author_email,
                        author_name=c.author_name,
                        authored_at=c.authored_at,
                        committed_at=c.committed_at,
                        path=f.path,
                        old_path=f.old_path,
                        language=f.language,
                        qualified_name=change.qualified_name,
                        kind=change.kind,
                        change=change.change,
                        before=self._clean(change.before, result.secrets),
                        after=self._clean(change.after, result.secrets),
                        line=change.line,
                        context=FileContext(header=header, enclosing=enclosing),
                        message=message,
                    )
                )
            result.files[KEPT if produced else UNCHANGED] += 1
        return result


def _unmatched(side: definitions.ParsedFile, other: definitions.ParsedFile) -> list[definitions.Definition]:
    """Definitions of `side` whose qualified name `other` has fewer of."""
    theirs = Counter(d.qualified_name for d in other.definitions)
    ours = Counter(d.qualified_name for d in side.definitions)
    return [d for d in side.definitions if ours[d.qualified_name] > theirs[d.qualified_name]]


def _span(
    definitions_: list[definitions.Definition], span: tuple[int, int], to_other: Callable[[int], int]
) -> tuple[int, int]:
    """`span` widened to cover the definitions, mapped into the other version's offsets."""
    low, high = span
    for d in definitions_:
        low, high = min(low, to_other(d.start_byte)), max(high, to_other(d.end_byte))
    return low, high

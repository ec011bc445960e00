"""Whole bodies: when the cursor opens a body, the engineer's most similar past definitions, adapted to the
signature being completed.

Candidates come from the completion corpus (the engineer's training-split definitions, shipped in the
artifact), from the workspace's files as they are now (workspace.py; the server's `workspaceContext`), and
from the other definitions of the document itself (an editor has the whole file). Each is scored by how alike
its signature is to the one being completed: the same name, the same file, the same parameters, the same
signature text. The best is adapted (its name and parameter names replaced by the
signature's, re-indented to one step inside it) and proposed with that score.

Whether the retrieved body wins against the other systems' body, and whether it is shown, is measured on
the engineer's validation commits (trainer/training/bodies.py) and stored in the artifact's manifest under
`bodies`:

    "bodies": {"threshold": 0.5, "exact": [[raw, p], ...], "prefer_from": 0.9, "validation": {...}}

`prefer_from` is the raw score from which the retrieved body answers instead of the others (the cut that
gave the best mean edit similarity on validation); `exact` calibrates the raw score into the probability
that the adapted body is exactly the engineer's, which the threshold applies to, as for lines. An artifact
without the key gets `BodyTuning.default()`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz

from codedouble.server.engine import blocks, lexer
from codedouble.server.engine.abstention import AbstentionError, Calibration
from codedouble.server.engine.document import NOTHING, Proposal, Request
from codedouble.server.engine.retrieval import Bm25

KEY = "bodies"
# Signature-alike candidates looked at by BM25 besides those of the same name: scoring one costs a fuzzy
# ratio of two signatures, microseconds.
TOP = 20
# The signature being completed is read from this many characters before the cursor (a signature longer than
# this is not one whose name and parameters say much); the bound keeps the scan linear in a window.
SIGNATURE_CHARS = 2000
# Documents larger than this are not parsed for sibling definitions on a block request (a parse of rich's
# 2,500-line console.py takes about 30 ms; a generated megabyte would take seconds).
DOCUMENT_PARSE_BYTES = 400_000

# The raw score's parts. Many bodies the engineer writes belong to functions they change (37 of the 58 bodies
# rich's held-out commits wrote in eval's seed-0 sample; 21 were new functions), and an earlier version of the
# same function is the best evidence of the new body (versions nearly repeating the new one are kept out of
# the corpus, so this is no leak). The name and the file dominate; the class, the parameters and the
# signature's text tell versions and siblings apart.
SAME_NAME = 0.45
SAME_PATH = 0.15
# The same enclosing class, where both are known: rich's files hold a dozen `__rich_console__(self, console,
# options)` each, alike in name, file and signature; only the class tells them apart.
SAME_CLASS = 0.1
PARAMETERS = 0.15
SIGNATURE_TEXT = 0.15
# Definitions whose bodies are completed (a class's body is no function body), and those that enclose them.
BODIED = frozenset({"function", "method", "constructor"})

_KEYWORDS = frozenset(
    {"def", "func", "function", "fn", "async", "await", "return", "if", "for", "while", "switch", "catch", "new"}
)
_CALLED = re.compile(r"(\w+)\s*(?:<[^()]*>)?\s*\(")
# Languages whose parameters are written `Type name` (the name is the last identifier); the others write
# `name: Type`, `name Type` or just `name` (the name is the first).
_TYPE_FIRST = frozenset({"java"})
_SKIP_WORDS = frozenset({"mut", "final", "const", "readonly", "public", "private", "protected"})


@dataclass(frozen=True)
class Signature:
    name: str
    parameters: tuple[str, ...]
    text: str  # whitespace collapsed


def _balanced(text: str, start: int) -> str | None:
    """The text inside the parentheses opening at `start`, or None when they do not close."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] in "([{<" and (text[i] != "<" or depth):
            depth += 1
        elif text[i] in ")]}>" and (text[i] != ">" or depth > 1):
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


def _split_top(text: str) -> list[str]:
    """`text` cut at the commas outside any bracket."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


# Lines that start a definition in the supported languages (Java's and TypeScript's modifiers included).
_STARTS = (
    "def ",
    "async def ",
    "func ",
    "fn ",
    "pub ",
    "function ",
    "async ",
    "export ",
    "public ",
    "private ",
    "protected ",
    "static ",
    "final ",
    "abstract ",
    "synchronized ",
)


def _start_line(lines: list[str]) -> int:
    """Where the signature at the end of `lines` starts: the last line opening a definition, else the last
    line with a parenthesis (a JavaScript method, `name(...) {`); decorators and annotations above are left
    out (`@pytest.mark.parametrize(...)` is no signature)."""
    for at in range(len(lines) - 1, -1, -1):
        if lines[at].lstrip().startswith(_STARTS):
            return at
    for at in range(len(lines) - 1, -1, -1):
        if "(" in lines[at] and not lines[at].lstrip().startswith("@"):
            return at
    return 0


def signature_of(text: str, language: str | None) -> Signature | None:
    """The name and parameter names of the definition whose signature `text` ends with; None when none is
    recognised (a class, an arrow function bound to a name, ...)."""
    lines = text[-SIGNATURE_CHARS:].split("\n")
    text = "\n".join(lines[_start_line(lines) :])
    if _CLASS_LIKE.match(text):  # `class Table(Base):` calls nothing
        return None
    for found in _CALLED.finditer(text):
        name = found.group(1)
        if name in _KEYWORDS or name[0].isdigit():
            continue
        inside = _balanced(text, found.end() - 1)
        if inside is None:
            return None
        parameters = []
        for part in _split_top(inside):
            words = [w for w in lexer.words(part.split("=", 1)[0].split(":", 1)[0]) if w not in _SKIP_WORDS]
            if words:
                parameters.append(words[-1] if language in _TYPE_FIRST else words[0])
        return Signature(name, tuple(parameters), " ".join(text[found.start() :].split()))
    return None


@dataclass(frozen=True)
class Entry:
    path: str
    signature: Signature
    body: str  # as written, indented as in its file
    enclosing: str = ""  # the name of the class (struct, impl, ...) around it; "" when none or not known


def _entry(path: str, text: str, language: str | None, enclosing: str = "") -> Entry | None:
    head, body = blocks.split_definition(text, language)
    if not body.strip():
        return None
    signature = signature_of(head, language)
    return Entry(path, signature, body, enclosing) if signature is not None else None


# A snippet that opens with a class (after decorators or annotations) holds methods worth an entry each.
_CLASS_LIKE = re.compile(r"^(?:\s*@.*\n)*\s*(?:[a-z]+\s+)*(?:class|interface|struct|impl|trait|enum|record)\b")


def _methods(path: str, text: str, language: str) -> list[Entry]:
    """The methods of the class `text` defines, each with its class's name. Parsed once at load: on rich's
    corpus 2,246 class snippets (5.5 MB) took 1.8 s on this machine while shared."""
    from codedouble.grammars import definitions

    source = text.encode("utf-8", "surrogatepass")
    parsed = definitions.parse(language, source).definitions
    out = []
    for d in parsed:
        if d.kind in BODIED and d.parent is not None and parsed[d.parent].kind not in BODIED:
            found = _entry(
                path, source[d.start_byte : d.end_byte].decode("utf-8", "replace"), language, parsed[d.parent].name
            )
            if found is not None:
                out.append(found)
    return out


def _jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def score(query: Signature, path: str, enclosing: str, entry: Entry) -> float:
    """How alike `entry`'s signature is to the one being completed (in `path`, inside the class `enclosing`),
    0..1 (weights above)."""
    return (
        SAME_NAME * (entry.signature.name == query.name)
        + SAME_PATH * (entry.path == path)
        + SAME_CLASS * (bool(enclosing) and entry.enclosing == enclosing)
        + PARAMETERS * _jaccard(query.parameters, entry.signature.parameters)
        + SIGNATURE_TEXT * fuzz.ratio(query.text, entry.signature.text) / 100
    )


def adapt(body: str, source: Signature, target: Signature) -> str:
    """`body` of `source` as the body of `target`: the name renamed, and the parameters only the source has
    renamed to those only the target has, in order, when there are as many of each (an inserted parameter
    says nothing of which old one it replaces); every occurrence of the word, strings and comments included
    (docstrings name the parameters too)."""
    renames: dict[str, str] = {}
    if source.name != target.name:
        renames[source.name] = target.name
    old = [p for p in source.parameters if p not in target.parameters]
    new = [p for p in target.parameters if p not in source.parameters]
    if len(old) == len(new):
        renames.update(zip(old, new, strict=True))
    if not renames:
        return body
    return "".join(renames.get(token, token) for token in lexer.tokens(body))


def place(body: str, prefix: str, language: str | None, source_text: str) -> str:
    """`body` moved to one indentation step inside the signature the cursor follows; in a brace language
    the closing brace goes on its own line at the signature's indentation. `source_text` is the definition
    the body came from: a file with nothing indented before the cursor says nothing of its step, so the
    body's own decides."""
    lines = prefix.split("\n")[:-1]
    line = next((x for x in reversed(lines) if x.strip()), "")
    indent = line[: blocks.indent_of(line)]
    closed = language not in blocks.INDENTED
    inner = body.rstrip().removesuffix("}") if closed else body
    unit = blocks.indent_unit(prefix) if any(x[:1] in (" ", "\t") for x in lines) else blocks.indent_unit(source_text)
    moved = blocks.reindent(inner.rstrip(), indent + unit)
    return f"{moved}\n{indent}}}" if closed else moved


@dataclass(frozen=True)
class BodyTuning:
    """When a retrieved body answers instead of the other systems (its raw score reaches `prefer_from`;
    None: never), and when it is shown (`threshold` on `exact`, its calibrated probability of being exact)."""

    threshold: float | None
    exact: Calibration
    prefer_from: float | None
    validation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def default(cls) -> BodyTuning:
        """For a double trained before bodies were tuned: what tuning chose on rich's validation commits (100
        block samples of the 6-minute double, trainer/training/bodies.py). From a raw score of 0.75 (60 of the
        100; the same name, mostly in the same file) the retrieved body's mean edit similarity was 0.566
        against the others' 0.452, and the forced answer's 0.514 against 0.446 with no retrieved bodies; 2 of
        the 60 were exact, so no threshold reaches the precision target and none is shown."""
        return cls(DEFAULT_THRESHOLD, Calibration((0.0,), (0.0,)), DEFAULT_PREFER)

    def prefers(self, raw: float) -> bool:
        return self.prefer_from is not None and raw >= self.prefer_from

    def confidence(self, raw: float) -> float:
        return self.exact(raw)

    def shows(self, raw: float, threshold: float | None = None) -> bool:
        limit = self.threshold if threshold is None else threshold
        return limit is None or self.confidence(raw) >= limit

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "exact": self.exact.to_list(),
            "prefer_from": self.prefer_from,
            "validation": self.validation,
        }

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> BodyTuning:
        data = manifest.get(KEY)
        if data is None:
            return cls.default()
        try:
            threshold, prefer = data["threshold"], data["prefer_from"]
            return cls(
                None if threshold is None else float(threshold),
                Calibration.from_list(data["exact"]),
                None if prefer is None else float(prefer),
                dict(data.get("validation", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AbstentionError(f"the manifest's {KEY!r} is damaged ({exc}): train the double again") from exc


# Defaults for doubles tuned before this key existed (see BodyTuning.default).
DEFAULT_PREFER = 0.75
DEFAULT_THRESHOLD = 0.5


class Bodies:
    """The body proposer: `propose(request)` is the best adapted past body, scored 0..1 by `score`."""

    name = "bodies"
    description = "your most similar past definition's body, renamed to the signature's name and parameters"

    def __init__(
        self,
        texts: Sequence[str],
        languages: Sequence[str | None],
        paths: Sequence[str],
        kinds: Sequence[str] | None = None,
    ) -> None:
        self.entries: dict[str | None, list[Entry]] = defaultdict(list)
        for i, (text, language, path) in enumerate(zip(texts, languages, paths, strict=True)):
            if kinds is not None and kinds[i] != "definition":
                continue
            entry = _entry(path, text, language)
            if entry is not None:
                self.entries[language].append(entry)
            if language is not None and _CLASS_LIKE.match(text):
                self.entries[language].extend(_methods(path, text, language))
        self.by_name: dict[str | None, dict[str, list[int]]] = {}
        self.index: dict[str | None, Bm25] = {}
        for language, entries in self.entries.items():
            names: dict[str, list[int]] = defaultdict(list)
            for i, entry in enumerate(entries):
                names[entry.signature.name].append(i)
            self.by_name[language] = dict(names)
            self.index[language] = Bm25([_terms(entry.signature) for entry in entries])

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.propose(request, cancelled).text

    def propose(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Proposal:  # noqa: ARG002 - milliseconds
        found = self.candidates(request)
        if found is None or not found.entries:
            return NOTHING
        # Ties go to the later entry: the corpus, then the workspace's files as they are now, then the document.
        scored = [(score(found.query, request.path, found.enclosing, c), i) for i, c in enumerate(found.entries)]
        raw, at = max(scored)
        return Proposal(found.placed(found.entries[at], request), raw)

    def candidates(self, request: Request, top: int = TOP) -> Candidates | None:
        """The past definitions a body for `request` is chosen from: those of the signature's name and the
        `top` best matches of it in the corpus, the workspace's files, the document's own; None where the
        cursor follows no signature."""
        if request.mode != "block":
            return None
        language = request.language
        query = signature_of(request.prefix, language)
        if query is None:
            return None
        candidates: list[Entry] = []
        entries = self.entries.get(language, [])
        seen: set[int] = set()
        for i in self.by_name.get(language, {}).get(query.name, []):
            seen.add(i)
            candidates.append(entries[i])
        if language in self.index:
            for i in self.index[language].search(_terms(query), top):
                if i not in seen:
                    candidates.append(entries[i])
        siblings, enclosing = _document(request, language)
        if request.workspace is not None:
            candidates += request.workspace.bodies(language, request.path)
        candidates += siblings
        return Candidates(query, enclosing or _class_by_indent(request.prefix), candidates)


@dataclass(frozen=True)
class Candidates:
    query: Signature  # the signature the cursor follows
    enclosing: str  # its class, if any
    entries: list[Entry]

    def placed(self, entry: Entry, request: Request) -> str:
        """`entry`'s body as the body of the signature at the cursor: renamed, re-indented."""
        return place(adapt(entry.body, entry.signature, self.query), request.prefix, request.language, entry.body)


def _terms(signature: Signature) -> list[str]:
    return [*lexer.words(signature.name.replace("_", " ")), signature.name, *signature.parameters]


# Lines looked at above the cursor for the class around it by indentation (the parse fails on a body not
# written yet in some files); the bound keeps the scan within a window.
CLASS_LINES = 2000
_CLASS_NAME = re.compile(r"\s*class\s+(\w+)")


def _class_by_indent(prefix: str) -> str:
    """The class whose body holds the signature before the cursor, by indentation (Python): the first line
    above it indented less; "" when that line opens no class."""
    lines = prefix.split("\n")[-CLASS_LINES:]
    at = _start_line(lines[-SIGNATURE_CHARS // 40 :]) + max(0, len(lines) - SIGNATURE_CHARS // 40)
    indent = blocks.indent_of(lines[at]) if at < len(lines) else 0
    for line in reversed(lines[:at]):
        if line.strip() and blocks.indent_of(line) < indent and not line.lstrip().startswith("@"):
            found = _CLASS_NAME.match(line)
            return found.group(1) if found else ""
    return ""


def _parsed(path: str, source: bytes, language: str, cursor: int | None = None) -> tuple[list[Entry], str]:
    """The definitions with a body in `source` (not the one around byte `cursor`, being written), each with
    the class around it, and the name of the class around the cursor ("" when none)."""
    from codedouble.grammars import definitions

    parsed = definitions.parse(language, source).definitions
    out = []
    enclosing = ""
    for d in parsed:
        if cursor is not None and d.start_byte < cursor <= d.end_byte:
            if d.kind not in BODIED:
                enclosing = d.name  # outer before inner: the innermost class wins
            continue
        if d.kind not in BODIED:
            continue
        around = parsed[d.parent].name if d.parent is not None and parsed[d.parent].kind not in BODIED else ""
        entry = _entry(path, source[d.start_byte : d.end_byte].decode("utf-8", "replace"), language, around)
        if entry is not None:
            out.append(entry)
    return out, enclosing


def definitions_of(path: str, text: str, language: str) -> list[Entry]:
    """The definitions with a body of a whole file (a workspace file: workspace.py); none for a file larger
    than DOCUMENT_PARSE_BYTES."""
    source = text.encode("utf-8", "surrogatepass")
    return [] if len(source) > DOCUMENT_PARSE_BYTES else _parsed(path, source, language)[0]


def _document(request: Request, language: str | None) -> tuple[list[Entry], str]:
    """The document's other definitions with a body (never the one being written), and the name of the class
    around the cursor ("" when none)."""
    if language is None:
        return [], ""
    source = (request.prefix + request.suffix).encode("utf-8", "surrogatepass")
    if len(source) > DOCUMENT_PARSE_BYTES:
        return [], ""
    return _parsed(request.path, source, language, len(request.prefix.encode("utf-8", "surrogatepass")))

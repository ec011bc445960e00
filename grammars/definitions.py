"""Definitions (functions, methods, classes, ...) found in one source file by its `definitions.scm` query.

Capture names used by every `grammars/<lang>/definitions.scm`:

- `@definition.<kind>` the whole definition node; `<kind>` is what records call it (function, method, class, ...)
- `@name`              its name, in the same pattern
- `@receiver`          optional: a type the name is qualified by (Go's `func (s *Server) Run()` → `Server.Run`)
- `@scope`             a node that qualifies the names nested in it without being a definition itself
                       (Rust's `impl Server { ... }`); its `@name` is the qualifier
- `@import`            a node that belongs to the file header a completion should see (imports, package)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import tree_sitter as ts

from codedouble.grammars.languages import parser, query

# A header longer than this is cut: it is context for a prompt, not a record of its own.
MAX_HEADER_CHARS = 4000


@dataclass(frozen=True)
class Definition:
    name: str
    qualified_name: str
    kind: str
    start_byte: int
    end_byte: int
    start_line: int  # 0-based, as tree-sitter counts
    end_line: int
    signature: str  # the text before the body: `def f(x):`, `class A(B):`, `fn f() -> T`
    parent: int | None  # index of the enclosing definition in ParsedFile.definitions
    has_error: bool


@dataclass(frozen=True)
class ParsedFile:
    language: str
    definitions: tuple[Definition, ...]  # in source order, outer before inner
    header: str  # imports / package lines, joined in source order ("" unless asked for)
    has_error: bool

    def enclosing_signatures(self, index: int) -> tuple[str, ...]:
        """Signatures of the definitions around definitions[index], outermost first."""
        chain: list[str] = []
        parent = self.definitions[index].parent
        while parent is not None:
            chain.append(self.definitions[parent].signature)
            parent = self.definitions[parent].parent
        return tuple(reversed(chain))

    def children(self, index: int) -> list[Definition]:
        """The definitions directly inside definitions[index], in source order."""
        return self._children.get(index, [])

    @functools.cached_property
    def _children(self) -> dict[int, list[Definition]]:
        by_parent: dict[int, list[Definition]] = {}
        for d in self.definitions:
            if d.parent is not None:
                by_parent.setdefault(d.parent, []).append(d)
        return by_parent


def _text(source: bytes, node: ts.Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


# Fields by which a wrapper node holds the definition it wraps: Python's decorated_definition (`definition`),
# a JS/TS `export` (`declaration`), `f = () => {}` in a declarator, class field or object pair (`value`).
_WRAPPED_FIELDS = ("definition", "declaration", "value")


def _body(node: ts.Node) -> ts.Node | None:
    """The body that ends a definition's signature: its own, or that of the definition it wraps."""
    current: ts.Node | None = node
    while current is not None:
        body = current.child_by_field_name("body")
        if body is not None:
            return body
        inner: ts.Node | None = None
        for field in _WRAPPED_FIELDS:
            inner = current.child_by_field_name(field)
            if inner is not None:
                break
        if inner is None and current.type in ("lexical_declaration", "variable_declaration"):
            # `const f = () => {}` holds its declarator without a field name.
            inner = next((c for c in current.named_children if c.type == "variable_declarator"), None)
        current = inner
    return None


def _signature(source: bytes, node: ts.Node) -> str:
    body = _body(node)
    end = body.start_byte if body is not None and body.start_byte > node.start_byte else node.end_byte
    text = source[node.start_byte : end].decode("utf-8", errors="replace").rstrip()
    if body is None:
        # No body node (Go's `type T struct {`): the first line, up to the brace that opens the body.
        text = text.split("\n", 1)[0].split("{", 1)[0].rstrip()
    return text


def header(language: str, source: bytes, tree: ts.Tree) -> str:
    """The file's imports / package lines, the header a completion should see."""
    # Header patterns are rooted at the file's root node, so a depth-0 cursor finds them without walking the tree.
    cursor = ts.QueryCursor(query(language))
    cursor.set_max_start_depth(0)
    nodes = [n for _pattern, caps in cursor.matches(tree.root_node) for n in caps.get("import", [])]
    nodes.sort(key=lambda n: n.start_byte)
    return "\n".join(_text(source, n) for n in nodes)[:MAX_HEADER_CHARS]


def parse(language: str, source: bytes, ts_parser: ts.Parser | None = None) -> ParsedFile:
    """Parse `source` and list all its definitions with qualified names, and the file header."""
    tree = (ts_parser or parser(language)).parse(source)
    return extract(language, source, tree, with_header=True)


def extract(
    language: str,
    source: bytes,
    tree: ts.Tree,
    ranges: list[tuple[int, int]] | None = None,
    with_header: bool = False,
) -> ParsedFile:
    """The definitions of an already parsed file; with `ranges` (byte spans), only those overlapping one of
    them, enclosing definitions included: all that a small change to a big file needs."""
    root = tree.root_node
    cursor = ts.QueryCursor(query(language))
    if ranges is not None:
        # One pass over the span of all ranges; definitions none of them touches are dropped below.
        cursor.set_byte_range(min(low for low, _ in ranges), max(high for _, high in ranges))
    matches = cursor.matches(root)

    # Collect one entry per definition node; a name node matched by two patterns (a Python function and
    # the decorated_definition around it) keeps the outermost, so decorators belong to the definition.
    found: dict[int, tuple[ts.Node, str, str, str | None]] = {}  # name node id -> (node, kind, name, receiver)
    scopes: dict[int, str] = {}  # node id -> qualifier, for @scope nodes
    for _pattern, caps in matches:
        names = caps.get("name")
        if not names or "import" in caps:
            continue
        name_node = names[0]
        if "scope" in caps:
            scopes[caps["scope"][0].id] = _text(source, name_node)
            continue
        for capture, nodes in caps.items():
            if not capture.startswith("definition."):
                continue
            node = nodes[0]
            # The span, or a pattern rooted at a class, reaches definitions the ranges do not touch.
            if ranges is not None and not any(node.start_byte < high and node.end_byte > low for low, high in ranges):
                continue
            receiver = _text(source, caps["receiver"][0]) if "receiver" in caps else None
            previous = found.get(name_node.id)
            if previous is None or node.end_byte - node.start_byte > previous[0].end_byte - previous[0].start_byte:
                found[name_node.id] = (node, capture.removeprefix("definition."), _text(source, name_node), receiver)

    ordered = sorted(found.values(), key=lambda item: (item[0].start_byte, -item[0].end_byte))
    index_of = {item[0].id: i for i, item in enumerate(ordered)}
    definitions: list[Definition] = []
    for node, kind, name, receiver in ordered:
        qualifiers: list[str] = []
        parent_index: int | None = None
        ancestor = node.parent
        while ancestor is not None:
            if ancestor.id in index_of:
                if parent_index is None:
                    parent_index = index_of[ancestor.id]
                qualifiers.append(ordered[index_of[ancestor.id]][2])
            elif ancestor.id in scopes:
                qualifiers.append(scopes[ancestor.id])
            ancestor = ancestor.parent
        if receiver:
            qualifiers.append(receiver)
        qualified = ".".join([*reversed(qualifiers), name])
        definitions.append(
            Definition(
                name=name,
                qualified_name=qualified,
                kind=kind,
                start_byte=node.start_byte,
                end_byte=node.end_byte,
                start_line=node.start_point[0],
                end_line=node.end_point[0],
                signature=_signature(source, node),
                parent=parent_index,
                has_error=node.has_error,
            )
        )
    return ParsedFile(
        language=language,
        definitions=tuple(definitions),
        header=header(language, source, tree) if with_header else "",
        has_error=root.has_error,
    )

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
    header: str  # imports / package lines, joined in source order
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
        return [d for d in self.definitions if d.parent == index]


def _text(source: bytes, node: ts.Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _signature(source: bytes, node: ts.Node) -> str:
    body = node.child_by_field_name("body")
    if body is None:
        # Python's decorated_definition holds the def in `definition`; its body is the signature's end.
        inner = node.child_by_field_name("definition")
        body = inner.child_by_field_name("body") if inner is not None else None
    end = body.start_byte if body is not None and body.start_byte > node.start_byte else node.end_byte
    text = source[node.start_byte : end].decode("utf-8", errors="replace").rstrip()
    if body is None:
        text = text.split("\n", 1)[0]
    return text


def parse(language: str, source: bytes, ts_parser: ts.Parser | None = None) -> ParsedFile:
    """Parse `source` and list its definitions with qualified names and the file header."""
    tree = (ts_parser or parser(language)).parse(source)
    root = tree.root_node

    # Collect one entry per definition node; a name node matched by two patterns (a Python function and
    # the decorated_definition around it) keeps the outermost, so decorators belong to the definition.
    found: dict[int, tuple[ts.Node, str, str, str | None]] = {}  # name node id -> (node, kind, name, receiver)
    scopes: dict[int, str] = {}  # node id -> qualifier, for @scope nodes
    headers: list[ts.Node] = []
    for _pattern, caps in ts.QueryCursor(query(language)).matches(root):
        if "import" in caps:
            headers.extend(caps["import"])
            continue
        names = caps.get("name")
        if not names:
            continue
        name_node = names[0]
        if "scope" in caps:
            scopes[caps["scope"][0].id] = _text(source, name_node)
            continue
        for capture, nodes in caps.items():
            if not capture.startswith("definition."):
                continue
            node = nodes[0]
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

    headers.sort(key=lambda n: n.start_byte)
    header = "\n".join(_text(source, n) for n in headers)[:MAX_HEADER_CHARS]
    return ParsedFile(language=language, definitions=tuple(definitions), header=header, has_error=root.has_error)

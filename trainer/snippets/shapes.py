"""The shape of a piece of code: its tree-sitter tokens with identifiers and literals abstracted.

Two definitions (or two statement blocks) have the same shape when they differ only in their names and
literals: the same keywords and punctuation, in the same order, laid out with the same whitespace. The
shape key is what `codedouble snippets` groups occurrences by; the concrete tokens are what anti-unification
(`unify.py`) compares position by position. Whitespace belongs to the key so that filling a snippet's
placeholders with one occurrence's values gives back exactly that occurrence (the engineer's formatter makes
their layout consistent, so this splits little).
"""

from __future__ import annotations

from dataclasses import dataclass

import tree_sitter as ts

from codedouble.grammars.languages import parser, query

# Token categories: a name the engineer chose, a literal value, or fixed syntax (keywords, punctuation).
NAME = "name"
LITERAL = "literal"
SYNTAX = "syntax"

# Nodes taken whole as one literal token: their inner structure (a string's quotes and content, an f-string's
# interpolations) is a value, not a shape. Listed by name: a suffix rule would also catch compound nodes
# such as Go's `composite_literal` and `func_literal`.
LITERAL_NODES = frozenset(
    {
        "string",
        "concatenated_string",
        "template_string",
        "string_literal",
        "interpreted_string_literal",
        "raw_string_literal",
        "char_literal",
        "rune_literal",
        "character_literal",
        "text_block",
        "regex",
        "integer",
        "float",
        "number",
        "int_literal",
        "float_literal",
        "imaginary_literal",
        "integer_literal",
        "decimal_integer_literal",
        "hex_integer_literal",
        "octal_integer_literal",
        "binary_integer_literal",
        "decimal_floating_point_literal",
        "hex_floating_point_literal",
        "comment",
        "line_comment",
        "block_comment",
    }
)

# Definitions longer than this are not parsed at all: a snippet is short (MAX_SNIPPET_LINES in mine.py), and
# the blocks of a huge generated or vendored function are no habit of the engineer's.
MAX_DEFINITION_CHARS = 20_000

# Methods of JavaScript, TypeScript and Java do not parse on their own: they are parsed inside this class.
_WRAP_OPEN = b"class _ {\n"
_WRAP_CLOSE = b"\n}\n"


@dataclass(frozen=True)
class Token:
    gap: str  # the whitespace before it (indentation relative to the piece's first line)
    text: str
    category: str  # NAME, LITERAL or SYNTAX


@dataclass(frozen=True)
class Piece:
    """A definition or a statement block, cut into tokens."""

    node: str  # tree-sitter type of its root node: function_definition, if_statement, ...
    scope: str  # "definition" or "block"
    tokens: tuple[Token, ...]

    @property
    def key(self) -> tuple[str, ...]:
        """The shape: names and literals abstracted, syntax and whitespace kept."""
        return (self.node, *(t.gap + (t.text if t.category == SYNTAX else "\0" + t.category) for t in self.tokens))

    @property
    def text(self) -> str:
        return "".join(t.gap + t.text for t in self.tokens)


def _category(node: ts.Node) -> str:
    if node.type in LITERAL_NODES:
        return LITERAL
    if node.type.endswith("identifier"):  # identifier, field_identifier, type_identifier, property_identifier...
        return NAME
    return SYNTAX


def dedent(text: str) -> tuple[str, int]:
    """`text` (a definition as records hold it: whole lines, the first one indented as in its file) with the
    first line's indentation taken off every line that has it, and that indentation's width."""
    first = text.split("\n", 1)[0]
    indent = first[: len(first) - len(first.lstrip(" \t"))]
    if not indent:
        return text, 0
    lines = [line[len(indent) :] if line.startswith(indent) else line for line in text.split("\n")]
    return "\n".join(lines), len(indent)


def _tree(language: str, source: bytes, ts_parser: ts.Parser) -> tuple[ts.Tree, int] | None:
    """A parse of `source` without errors, and where `source` starts in what was parsed; None when neither
    `source` alone nor `source` wrapped in a class parses cleanly (a method of JS/TS/Java)."""
    tree = ts_parser.parse(source)
    if not tree.root_node.has_error:
        return tree, 0
    tree = ts_parser.parse(_WRAP_OPEN + source + _WRAP_CLOSE)
    if not tree.root_node.has_error:
        return tree, len(_WRAP_OPEN)
    return None


def _leaves(node: ts.Node, low: int, high: int) -> list[ts.Node]:
    """The tokens of `node` within bytes [low, high): leaves, and literal nodes taken whole."""
    out: list[ts.Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.end_byte <= low or current.start_byte >= high:
            continue
        if current.child_count == 0 or current.type in LITERAL_NODES:
            if current.end_byte > current.start_byte:  # zero-width nodes (Python's dedent markers) hold no text
                out.append(current)
            continue
        stack.extend(reversed(current.children))
    return out


def _relative_gap(gap: str, column: int) -> str:
    """A gap's line breaks keep the indentation beyond `column`, the indentation of the piece's first line."""
    if "\n" not in gap:
        return gap
    head, *rest = gap.split("\n")
    return "\n".join([head, *(line[column:] if line[:column].strip(" \t") == "" else line for line in rest)])


def _piece(source: bytes, leaves: list[ts.Node], node_type: str, scope: str) -> Piece:
    first = leaves[0]
    line_start = source.rfind(b"\n", 0, first.start_byte) + 1
    column = len(source[line_start : first.start_byte].decode("utf-8", errors="replace"))
    tokens: list[Token] = []
    previous = first.start_byte
    for leaf in leaves:
        gap = source[previous : leaf.start_byte].decode("utf-8", errors="replace")
        text = source[leaf.start_byte : leaf.end_byte].decode("utf-8", errors="replace")
        tokens.append(Token(_relative_gap(gap, column), text, _category(leaf)))
        previous = leaf.end_byte
    return Piece(node_type, scope, tuple(tokens))


def pieces(language: str, text: str, ts_parser: ts.Parser | None = None) -> list[Piece]:
    """The definition `text` (as a record holds it) as one piece, then each statement block inside it that
    the language's `snippets.scm` names; [] when it is too long or does not parse cleanly."""
    if len(text) > MAX_DEFINITION_CHARS:
        return []
    body, _ = dedent(text)
    source = body.encode("utf-8", errors="surrogatepass")
    parsed = _tree(language, source, ts_parser or parser(language))
    if parsed is None:
        return []
    tree, offset = parsed
    low, high = offset, offset + len(source)
    leaves = _leaves(tree.root_node, low, high)
    if not leaves:
        return []
    whole_source = source if offset == 0 else _WRAP_OPEN + source + _WRAP_CLOSE
    # The definition's own node: the outermost named node inside the parsed range (not the module around it).
    root = tree.root_node
    definition = next((c for c in root.named_children if c.start_byte >= low), root)
    if offset:  # wrapped in a class: the method is inside the class body
        body_node = next((c for c in root.named_children), root)
        members = body_node.child_by_field_name("body")
        definition = next((c for c in (members.named_children if members else []) if c.start_byte >= low), root)
    out = [_piece(whole_source, leaves, definition.type, "definition")]
    cursor = ts.QueryCursor(query(language, "snippets"))
    cursor.set_byte_range(low, high)
    for block in cursor.captures(tree.root_node).get("block", []):
        inner = _leaves(block, low, high)
        if inner:
            out.append(_piece(whole_source, inner, block.type, "block"))
    return out

"""Trees kept between keystrokes (grammars/incremental.py): an edited and reparsed tree is the tree a fresh
parse gives, and `window` finds the same definition around the cursor as parsing the whole file did."""

from __future__ import annotations

import tree_sitter as ts
from hypothesis import given, settings
from hypothesis import strategies as st

from codedouble.grammars import definitions
from codedouble.grammars.incremental import Trees, changed_span
from codedouble.grammars.languages import parser
from codedouble.server.engine.document import LINES_AFTER, Request, window

PIECES = (
    "def f(x):\n",
    "    return x\n",
    "class A:\n",
    "    def g(self):\n",
    "        pass\n",
    "(",
    ")",
    ":",
    "\n",
    " ",
    "a",
    "é",
)
sources = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


@settings(max_examples=200, deadline=None)
@given(old=st.binary(max_size=40), new=st.binary(max_size=40))
def test_the_edit_found_turns_the_old_text_into_the_new(old: bytes, new: bytes) -> None:
    start, old_end, new_end = changed_span(old, new)
    assert 0 <= start <= old_end <= len(old) and start <= new_end <= len(new)
    assert old[:start] + new[start:new_end] + old[old_end:] == new


def _nodes(root: ts.Node) -> list[tuple[object, ...]]:
    """Every node with its type and where it lies, in bytes and in rows and columns."""
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        found.append((node.type, node.start_byte, node.end_byte, node.start_point, node.end_point, node.is_missing))
        stack.extend(reversed(node.children))
    return found


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(sources, min_size=1, max_size=6))
def test_a_tree_kept_and_edited_is_the_tree_a_fresh_parse_gives(texts: list[str]) -> None:
    trees = Trees()
    for text in texts:
        source = text.encode()
        with trees.tree("python", "a.py", source) as tree:
            assert _nodes(tree.root_node) == _nodes(parser("python").parse(source).root_node)


def _parsed_whole(request: Request) -> str:
    """What follows the cursor in the prompt, from the innermost definition a parse of the whole file finds."""
    source = (request.prefix + request.suffix).encode()
    cursor = len(request.prefix.encode())
    inside = [d for d in definitions.parse("python", source).definitions if d.start_byte < cursor <= d.end_byte]
    if not inside:
        return "\n".join(request.suffix.split("\n")[: LINES_AFTER + 1])
    return source[cursor : inside[-1].end_byte].decode()


@settings(max_examples=150, deadline=None)
@given(text=sources, cuts=st.lists(st.integers(0, 400), min_size=1, max_size=8))
def test_window_finds_the_definition_a_whole_parse_finds_as_the_cursor_moves(text: str, cuts: list[int]) -> None:
    for cut in cuts:
        at = min(cut, len(text))
        request = Request("typed.py", text[:at], text[at:], "line")
        assert window(request)[2] == _parsed_whole(request)

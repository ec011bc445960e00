"""Where a completion ends: the rest of a line, or a body up to its syntactic end. Applied to every system
alike, so that none is scored on text it would never show."""

from __future__ import annotations

# Python's blocks end by indentation; the other supported languages close them with a brace.
INDENTED = frozenset({"python"})


def cut_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip("\r")


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def signature_indent(prefix: str) -> int:
    """Indentation of the last non-blank line before the cursor: the signature a body completes."""
    for line in reversed(prefix.split("\n")):
        if line.strip():
            return indent_of(line)
    return 0


def cut_block(text: str, language: str | None, outer_indent: int) -> str:
    """`text` up to the end of the body that starts it: before the first line indented no deeper than the
    signature (Python), or through the brace that closes the body (brace languages)."""
    if language in INDENTED:
        kept: list[str] = []
        for line in text.split("\n"):
            if line.strip() and indent_of(line) <= outer_indent:
                break
            kept.append(line)
        return "\n".join(kept).rstrip()
    depth = 0
    quote = ""
    escaped = False
    for i, char in enumerate(text):
        # Braces inside string literals do not count; comments are rare enough in bodies to ignore.
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return text[: i + 1]
    return text.rstrip()


def split_definition(text: str, language: str | None) -> tuple[str, str]:
    """(signature, body) of a definition's text: the body starts on the line after the one that opens it
    (`...:` in Python, `...{` elsewhere). A definition that never opens a block has no body."""
    opener = ":" if language in INDENTED else "{"
    offset = 0
    for line in text.splitlines(keepends=True):
        offset += len(line)
        code = line.split("#", 1)[0] if language in INDENTED else line.split("//", 1)[0]
        if code.rstrip().endswith(opener):
            return text[:offset], text[offset:]
    return text, ""


def indent_unit(text: str) -> str:
    """The file's indentation step (a tab, or the commonest increase in spaces), four spaces by default."""
    steps: dict[int, int] = {}
    previous = 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("\t"):
            return "\t"
        indent = indent_of(line)
        if indent > previous:
            steps[indent - previous] = steps.get(indent - previous, 0) + 1
        previous = indent
    return " " * max(steps, key=lambda k: steps[k]) if steps else "    "


def reindent(body: str, indent: str) -> str:
    """`body` moved so that its least indented line starts at `indent`, the shape within kept."""
    lines = body.split("\n")
    least = min((indent_of(line) for line in lines if line.strip()), default=0)
    return "\n".join(indent + line[least:] if line.strip() else "" for line in lines)


def body_end(prefix: str, text: str, language: str | None) -> str:
    """`text`, the body written after a signature, cut where tree-sitter sees that definition end. Where the
    parse fails (a body cut off mid-way, code that does not parse), the indentation and brace rule decides."""
    fallback = cut_block(text, language, signature_indent(prefix))
    if language is None:
        return fallback
    from codedouble.grammars import definitions

    source = (prefix + text).encode("utf-8", "surrogatepass")
    cursor = len(prefix.encode("utf-8", "surrogatepass"))
    around = [d for d in definitions.parse(language, source).definitions if d.start_byte < cursor <= d.end_byte]
    if not around or around[-1].has_error or around[-1].end_byte <= cursor:
        return fallback
    return source[cursor : around[-1].end_byte].decode("utf-8", "replace").rstrip()


# A body that ends in the same group of lines three times over is a loop, not code: the model's bodies on rich's
# held-out commits wrote `assert version_str.format(version_str) == "1.0"` five times, and `if obj is not
# None:` / `obj = obj.rfind('.')` four, until the token limit. The character-level cut (neural.repetition_cut)
# looks at units of at most 40 characters on one line and misses these; one repeated line is caught by the
# server's tidy step, a pair or more by nothing. Groups of up to this many lines are looked for.
LOOP_LINES = 4
LOOP_REPEATS = 3


def line_loop_cut(text: str, document: tuple[str, ...] = ()) -> str | None:
    """`text` up to the end of the first copy of the group of lines it starts looping over, or None when it
    never does. Only whole lines count (the last one is whole when `text` ends in a newline); a group holds a
    letter (blank lines and `}` runs are code), and a run the document already holds is the engineer's own
    pattern, not a loop."""
    lines = text.split("\n")
    whole = lines[:-1]  # the last element is a line still being written, or "" after a final newline
    for start in range(len(whole)):
        for size in range(1, LOOP_LINES + 1):
            end = start + size * LOOP_REPEATS
            if end > len(whole):
                break
            unit = whole[start : start + size]
            if not any(c.isalpha() for line in unit for c in line):
                continue
            if any(whole[start + k * size : start + (k + 1) * size] != unit for k in range(1, LOOP_REPEATS)):
                continue
            run = "\n".join(whole[start:end])
            if any(run.strip() in part for part in document):
                continue
            return "\n".join(whole[: start + size])
    return None

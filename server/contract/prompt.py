"""The prompt format: how code, cursor and context become model text. Shared by the trainer and the server
(the same functions, not copies), versioned so that an artifact and the server reading it always agree.

Fill-in-the-middle in suffix-prefix-middle order (SPM, Bavarian et al., 2022), so that the middle simply
continues the prefix: a small model learns that far sooner than to join the middle to a prefix it reads
before the suffix (version 1's order gave a 4-layer model 0 % exact next-line matches on Textualize/rich).

    <|file|>PATH\n<|context|>HEADER + ENCLOSING SIGNATURES\n<|fim_prefix|><|fim_suffix|>SUFFIX<|fim_middle|>PREFIX MIDDLE<|endoftext|>

The trainer cuts its examples per definition, with that context block; the server asks with the file before the
cursor as PREFIX and no context block (server/engine/document.window says why, with the measurements).

Edit (a changed definition, before → after) and commit message (change → message):

    <|file|>PATH\n<|context|>...\n<|edit_before|>BEFORE<|edit_after|>AFTER<|endoftext|>
    <|file|>PATH\n<|edit_before|>BEFORE<|edit_after|>AFTER<|commit_message|>MESSAGE<|endoftext|>
"""

from __future__ import annotations

from dataclasses import dataclass

# Bump when any token or layout below changes; artifacts record it and the server refuses a mismatch.
PROMPT_FORMAT_VERSION = 2

EOS = "<|endoftext|>"
FILE = "<|file|>"
CONTEXT = "<|context|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_MIDDLE = "<|fim_middle|>"
EDIT_BEFORE = "<|edit_before|>"
EDIT_AFTER = "<|edit_after|>"
COMMIT_MESSAGE = "<|commit_message|>"
SPECIAL_TOKENS: tuple[str, ...] = (
    EOS,
    FILE,
    CONTEXT,
    FIM_PREFIX,
    FIM_SUFFIX,
    FIM_MIDDLE,
    EDIT_BEFORE,
    EDIT_AFTER,
    COMMIT_MESSAGE,
)


@dataclass(frozen=True)
class Context:
    """What surrounds the code being written: the file's path, its imports, the enclosing signatures."""

    path: str
    header: str = ""
    enclosing: tuple[str, ...] = ()


def _preamble(ctx: Context) -> str:
    lines = [part for part in (ctx.header, *ctx.enclosing) if part]
    context = f"{CONTEXT}{chr(10).join(lines)}\n" if lines else ""
    return f"{FILE}{ctx.path}\n{context}"


def fim_prompt(ctx: Context, prefix: str, suffix: str) -> str:
    """The text a model continues to fill the gap between `prefix` and `suffix`."""
    return f"{fim_head(ctx, suffix)}{prefix}"


def fim_head(ctx: Context, suffix: str) -> str:
    """The part of a FIM prompt before the prefix."""
    return f"{_preamble(ctx)}{FIM_PREFIX}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}"


def fim_example(ctx: Context, prefix: str, middle: str, suffix: str) -> str:
    return f"{fim_prompt(ctx, prefix, suffix)}{middle}{EOS}"


def edit_prompt(ctx: Context, before: str) -> str:
    return f"{_preamble(ctx)}{EDIT_BEFORE}{before}{EDIT_AFTER}"


def edit_example(ctx: Context, before: str, after: str) -> str:
    return f"{edit_prompt(ctx, before)}{after}{EOS}"


def commit_prompt(path: str, before: str, after: str) -> str:
    return f"{FILE}{path}\n{EDIT_BEFORE}{before}{EDIT_AFTER}{after}{COMMIT_MESSAGE}"


def commit_example(path: str, before: str, after: str, message: str) -> str:
    return f"{commit_prompt(path, before, after)}{message}{EOS}"

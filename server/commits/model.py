"""The double's model writes a message: the change rendered as the trainer renders commit examples
(`prompt.commit_prompt`: the definition that changed most, cut around its changed lines, before → after, then
the message marker; trainer/training/examples.py), greedy after it.

The trainer showed the model the first changed definition of each commit in training blocks of a few hundred
tokens, so the message was learned from at most that much text before it. A staged change of many files
therefore shows the model one definition, the one that changed most, cut around its changed lines to fit
PROMPT_TOKENS: more would be text the model never learned to read before a message."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from codedouble.server.commits.change import Change, Edit, changed_lines
from codedouble.server.contract import prompt
from codedouble.server.engine.neural import Neural

PROMPT_TOKENS = 224  # the trainer's default block is 256 tokens; the message needs the rest
MESSAGE_TOKENS = 32  # the summary line: the body is the engineer's to write
CONTEXT_LINES = 2  # unchanged lines kept around the changed ones


def main_edit(change: Change) -> Edit | None:
    """The definition that changed most (most changed lines; the first in path order on a tie)."""
    if not change.edits:
        return None
    return max(change.edits, key=lambda e: len(changed_lines(e.before, e.after)))


def around_changes(before: str, after: str) -> tuple[str, str]:
    """Both texts cut to the span of their changed lines, CONTEXT_LINES either side."""
    a, b = before.split("\n"), after.split("\n")
    spans = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not spans:
        return before, after
    i1, i2 = spans[0][1], spans[-1][2]
    j1, j2 = spans[0][3], spans[-1][4]
    keep = CONTEXT_LINES
    return "\n".join(a[max(0, i1 - keep) : i2 + keep]), "\n".join(b[max(0, j1 - keep) : j2 + keep])


def prompt_ids(model: Neural, change: Change, budget: int = PROMPT_TOKENS) -> list[int] | None:
    """The commit-message prompt for `change` in at most `budget` tokens; None when no definition changed (a
    change of prose or configuration only: the model was never shown one)."""
    edit = main_edit(change)
    if edit is None:
        return None
    before, after = around_changes(edit.before, edit.after)

    def encode(text: str) -> list[int]:
        return list(model.tokenizer(text, add_special_tokens=False)["input_ids"])

    special = model.tokenizer.convert_tokens_to_ids
    head = encode(f"{prompt.FILE}{edit.path}\n")[: budget // 4]
    room = budget - len(head) - 3
    # The after-text matters most (what the change is now); the before-text gets what it needs up to half.
    before_ids = encode(before[: room * 4])[: room // 2] if before else []
    after_ids = encode(after[: room * 4])[: room - len(before_ids)]
    return [
        *head,
        special(prompt.EDIT_BEFORE),
        *before_ids,
        special(prompt.EDIT_AFTER),
        *after_ids,
        special(prompt.COMMIT_MESSAGE),
    ]


def generate(model: Neural, change: Change, cancelled: Callable[[], bool] | None = None) -> str:
    """The model's summary line for `change` ("" when it has nothing to say, or writes code instead)."""
    ids = prompt_ids(model, change, min(PROMPT_TOKENS, model.context - MESSAGE_TOKENS))
    if ids is None:
        return ""
    text = model.continuation(ids, MESSAGE_TOKENS, cancelled, one_line=True).text.strip()
    summary = text.split("\n", 1)[0].strip()
    return "" if _looks_like_code(summary) else summary


def _looks_like_code(line: str) -> bool:
    """A small model that missed the message marker continues the code it was shown (or a box drawing of its
    output): no message starts with `def `, ends in a bracket or a colon, or holds no letter."""
    if not any(c.isalpha() for c in line) or "\ufffd" in line:
        return True
    return line.startswith(("def ", "class ", "return ", "import ", "from ", "@", "#", "self.")) or line.endswith(
        ("(", ":", "{", "[", ",")
    )

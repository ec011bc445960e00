"""Training texts cut from change records, in the shared prompt format (codedouble.server.contract.prompt)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from codedouble.server.commits import model as commit_model
from codedouble.server.commits.change import changed_lines
from codedouble.server.contract import corpus, prompt
from codedouble.trainer.mining.records import ChangeRecord

# Longer definitions are cut to this many characters: a prompt never shows the model more than a window.
MAX_TEXT_CHARS = 6000
MAX_MESSAGE_CHARS = 1000
# A commit example's change, in characters: about the draft prompt's PROMPT_TOKENS (224) at the 3-4 characters
# a token that byte-level BPE gives on code.
COMMIT_PROMPT_CHARS = 4 * commit_model.PROMPT_TOKENS


@dataclass(frozen=True)
class ExampleMix:
    fim_per_definition: int = 3  # cursor positions cut from each definition the engineer wrote
    edits: bool = True
    commit_messages: bool = True


def _context(r: ChangeRecord) -> prompt.Context:
    return prompt.Context(path=r.path, header=r.context.header, enclosing=r.context.enclosing)


def fim_cut(text: str, rng: random.Random) -> tuple[str, str, str]:
    """(prefix, middle, suffix) of `text` at a random cursor, in the proportions the editor asks for them:
    the rest of a line most often, a whole body after a signature, or an arbitrary span."""
    lines = text.splitlines(keepends=True)
    choice = rng.random()
    if choice < 0.5 and len(lines) > 1:
        # Next line: the cursor somewhere in a line, the middle is the rest of that line.
        i = rng.randrange(1, len(lines))
        line = lines[i].rstrip("\n")
        indent = len(line) - len(line.lstrip())
        col = rng.randint(indent, len(line))
        start = sum(len(x) for x in lines[:i]) + col
        end = start + len(line) - col
    elif choice < 0.75 and len(lines) > 1:
        # Block: the cursor after the signature, the middle is the body.
        start = len(lines[0])
        end = len(text)
    else:
        start = rng.randrange(0, len(text) + 1)
        end = min(len(text), start + rng.randint(1, 200))
    return text[:start], text[start:end], text[end:]


def commit_example(records: Sequence[ChangeRecord]) -> str | None:
    """One commit's message example, its change shown as the draft shows one (server/commits/model.py): the
    definition that changed most (most changed lines; the first in path order on a tie), cut to its changed
    lines and CONTEXT_LINES around them, at most COMMIT_PROMPT_CHARS of it, the before-text half at most. The
    examples were once the commit's first definition whole: a long one put the message in a training block
    that began mid-code, far from the prompt the draft shows. None when the commit has no message."""
    if not records or not records[0].message.strip():
        return None
    ordered = sorted(records, key=lambda r: r.path)
    main = max(ordered, key=lambda r: len(changed_lines(r.before or "", r.after or "")))
    before, after = commit_model.around_changes(main.before or "", main.after or "")
    before = before[: COMMIT_PROMPT_CHARS // 2]
    after = after[: COMMIT_PROMPT_CHARS - len(before)]
    return prompt.commit_example(main.path, before, after, main.message[:MAX_MESSAGE_CHARS])


def examples(records: Iterable[ChangeRecord], mix: ExampleMix, seed: int) -> list[str]:
    """All training texts for these records, deterministic for a seed."""
    rng = random.Random(seed)
    texts: list[str] = []
    by_commit: dict[str, list[ChangeRecord]] = {}
    for r in records:
        ctx = _context(r)
        after = r.after[:MAX_TEXT_CHARS] if r.after else None
        if after and after.strip():
            for _ in range(mix.fim_per_definition):
                texts.append(prompt.fim_example(ctx, *fim_cut(after, rng)))
        if mix.edits and r.before and after:
            texts.append(prompt.edit_example(ctx, r.before[:MAX_TEXT_CHARS], after))
        by_commit.setdefault(r.commit, []).append(r)
    if mix.commit_messages:
        for commit_records in by_commit.values():
            example = commit_example(commit_records)
            if example is not None:
                texts.append(example)
    rng.shuffle(texts)
    return texts


def corpus_snippets(
    records: Iterable[ChangeRecord], module: Iterable[tuple[str, corpus.Snippet]] = ()
) -> list[corpus.Snippet]:
    """What the artifact's completion corpus holds: each distinct non-empty after-text of `records`, once,
    then the module-level runs (`module_level.snippets`) of the same records' commits, each distinct one once."""
    records = list(records)
    commits = {r.commit for r in records}
    seen: set[str] = set()
    out: list[corpus.Snippet] = []
    for r in records:
        if r.after and r.after.strip() and r.after not in seen:
            seen.add(r.after)
            out.append(corpus.Snippet(r.path, r.language, r.after))
    for commit, snippet in module:
        if commit in commits and snippet.text not in seen:
            seen.add(snippet.text)
            out.append(snippet)
    return out

"""The commit message buffer in an editor: which documents are one, and what inline completion proposes there
(the rest of the draft after what the engineer typed on the summary line)."""

from __future__ import annotations

from pathlib import PurePath

# Neovim's filetype for git's message file (`COMMIT_EDITMSG`); VS Code calls the same file "git-commit".
COMMIT_IDS = ("gitcommit", "git-commit")
SCISSORS = "------------------------ >8 ------------------------"  # git's line above a verbose commit's diff


def is_commit_message(path: str, language_id: str | None) -> bool:
    return language_id in COMMIT_IDS or PurePath(path).name == "COMMIT_EDITMSG"


def rest_of_draft(text: str, line: int, character: int, draft: str, comment: str = "#") -> str:
    """What to show at (`line`, `character`) of the message buffer `text`: on the summary line, at its end,
    the draft after what is typed there when the typed text starts the draft's summary (case aside); the whole
    draft (summary, a blank line, its body and trailers) on an empty first line; else nothing. `comment` is what
    git's comment lines start with (`core.commentChar`)."""
    lines = text.split("\n")
    if line != 0 or not draft.strip():
        return ""
    first = lines[0].rstrip("\r")
    typed = first[:character]
    if first[character:].strip():
        return ""  # the cursor is inside the summary: nothing is proposed over what follows it
    draft = draft.rstrip("\n")
    if not typed.strip():
        below = []
        for x in lines[1:]:
            if x.startswith(comment) and SCISSORS in x:
                break  # `commit.verbose`: git's diff follows, not the engineer's words
            if x.strip() and not x.startswith(comment):
                below.append(x)
        return draft if not below else draft.split("\n", 1)[0]
    summary = draft.split("\n", 1)[0]
    if len(typed) >= len(summary) or not summary.lower().startswith(typed.lower()):
        return ""
    return summary[len(typed) :]

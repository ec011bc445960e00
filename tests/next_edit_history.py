"""A generated history in which the engineer applied one rewrite (`logging.warn(` → `logging.warning(`) in three
earlier commits, one call site each, and the edit pattern a double mines from it (`edits.jsonl`). Shared by the
server's, Neovim's and VS Code's next-edit tests (tests/test_next_edits.py, tests/test_nvim.py,
tests/test_vscode.py).

The pattern is built the way the trainer's miner builds one: the changes of each commit's before/after texts
(`rules.changes`), joined into one rule by anti-unification (`rules.anti_unify`), with the commits as evidence."""

from __future__ import annotations

from pathlib import Path

from codedouble.server.contract import edits as contract_edits
from codedouble.server.edits import rules, tokens

# Functions of app/jobs.py: (name, argument, the message its warning logs).
FUNCTIONS = [
    ("load", "path", '"cannot read %s", path'),
    ("save", "data", '"cannot write %d bytes", len(data)'),
    ("sync", "remote", "remote.name"),
    ("prune", "days", '"pruning after %d days", days'),
    ("notify", "user", "user.email"),
]
COMMITS = 3  # the first three functions were rewritten, one per commit
DATES = ["2024-03-04T10:00:00+00:00", "2024-06-11T15:30:00+00:00", "2025-01-20T09:12:00+00:00"]
SHAS = ["a" * 40, "b" * 40, "c" * 40]


def jobs(rewritten: set[int]) -> str:
    """app/jobs.py with the warnings of the functions `rewritten` (by index) written the new way."""
    out = "import logging\n"
    for i, (name, argument, message) in enumerate(FUNCTIONS):
        call = "warning" if i in rewritten else "warn"
        out += f"\n\ndef {name}({argument}):\n    if not {argument}:\n        logging.{call}({message})\n    return {argument}\n"
    return out


def history() -> list[tuple[str, str]]:
    """(before, after) of app/jobs.py in each of the three commits."""
    return [(jobs(set(range(k))), jobs(set(range(k + 1)))) for k in range(COMMITS)]


# After the history: the two functions still unrewritten, and what applying the rule to both gives.
UNREWRITTEN = jobs(set(range(COMMITS)))
REWRITTEN = jobs(set(range(len(FUNCTIONS))))


def pattern() -> contract_edits.EditPattern:
    found: list[rules.Change] = []
    for before, after in history():
        found.extend(rules.changes(tokens.tokenize(before, "python"), tokens.tokenize(after, "python")))
    assert len(found) == COMMITS, found  # one change per commit: the history is what it says
    return contract_edits.EditPattern(
        language="python",
        rewrite=rules.anti_unify(found),
        count=COMMITS,
        commits=tuple(reversed(SHAS)),
        distinct_commits=COMMITS,
        first=DATES[0],
        last=DATES[-1],
        left=0,
    )


def write_patterns(artifact: Path) -> contract_edits.EditPattern:
    """Give the double at `artifact` the pattern mined from this history; the pattern."""
    mined = pattern()
    contract_edits.write(artifact, [mined])
    return mined

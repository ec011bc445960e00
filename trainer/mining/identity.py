"""Whose commits are mined: the engineer's identities (with .mailmap aliases merged) and who counts as a bot."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.mining.gitio import git

# Automation that commits under its own identity. A GitHub `<id>+<user>@users.noreply.github.com` address is
# a person hiding their email, so `noreply` alone is a bot only as the whole local part.
_BOT_NAME = re.compile(r"\[bot\]|^(dependabot|renovate|pre-commit-ci|github-actions|greenkeeper|snyk-bot)\b", re.I)
_BOT_LOCAL_PARTS = frozenset(
    {
        "noreply",
        "no-reply",
        "bot",
        "action",
        "actions",
        "github-actions",
        "dependabot",
        "renovate",
        "pre-commit-ci",
        "greenkeeper",
        "snyk-bot",
        "ci",
        "jenkins",
        "buildbot",
        "travis",
        "semantic-release-bot",
    }
)


def is_bot(name: str, email: str) -> bool:
    local = email.split("@", 1)[0].split("+")[-1].lower()
    return bool(_BOT_NAME.search(name) or "[bot]" in email.lower() or local in _BOT_LOCAL_PARTS)


class UnknownAuthorError(CodedoubleError):
    pass


@dataclass(frozen=True)
class Identities:
    emails: frozenset[str]  # lower-case; after .mailmap and as given
    all_authors: bool

    def matches(self, mapped_email: str, raw_email: str) -> bool:
        return self.all_authors or mapped_email in self.emails or raw_email in self.emails

    def describe(self) -> str:
        return "all authors (bots excluded)" if self.all_authors else ", ".join(sorted(self.emails))


def author_counts(repo: Path, revision: str) -> Counter[tuple[str, str, str]]:
    """Non-merge commits reachable from `revision` per (email as written, email after .mailmap, name)."""
    out = git(repo, "log", "--no-merges", "--use-mailmap", "--format=%ae%x00%aE%x00%aN", revision)
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in out.splitlines():
        raw, mapped, name = line.split("\0")
        counts[(raw.lower(), mapped.lower(), name)] += 1
    return counts


def resolve(repo: Path, revision: str, authors: list[str], all_authors: bool) -> Identities:
    """The identities to mine. With no --author, the repository's configured user.email is the engineer."""
    if all_authors:
        return Identities(frozenset(), True)
    given = [a.strip().lower() for a in authors if a.strip()]
    counts = author_counts(repo, revision)
    if not given:
        # git config, not GitPython's config_reader: that one ignores GIT_CONFIG_GLOBAL, GIT_CONFIG_NOSYSTEM
        # and `git -c`, so it would find a user.email that git itself does not see.
        configured = git(repo, "config", "--get", "user.email", check=False).strip().lower()
        if not configured:
            raise UnknownAuthorError(
                "no user.email is configured for this repository and no --author was given; "
                "name yourself with --author EMAIL (repeatable) or mine everyone with --all-authors.\n"
                + _known_identities(counts)
            )
        given = [configured]
    # Each alias counts with whatever .mailmap maps it to in this history (mailmap entries may match on
    # name and email, so the history itself is the reliable place to look), and vice versa.
    emails = set(given)
    for raw, mapped, _name in counts:
        if raw in emails or mapped in emails:
            emails.update((raw, mapped))
    identities = Identities(frozenset(emails), False)
    if not any(identities.matches(mapped, raw) for raw, mapped, _name in counts):
        raise UnknownAuthorError(
            f"no commits by {', '.join(sorted(given))} in this history.\n" + _known_identities(counts)
        )
    return identities


def _known_identities(counts: Counter[tuple[str, str, str]], limit: int = 15) -> str:
    if not counts:
        return "The history has no non-merge commits."
    people: Counter[str] = Counter()
    for (_raw, mapped, name), n in counts.items():
        people[f"{name} <{mapped}>"] += n
    lines = [f"  {n:6d}  {who}" for who, n in people.most_common(limit)]
    more = f"\n  ... and {len(people) - limit} more" if len(people) > limit else ""
    return "Identities in this history (commits, author):\n" + "\n".join(lines) + more

"""The engineer's commit-message style, measured from their own training messages, and a draft brought to it:
summary length, capitalisation, final period, prefix convention (`fix:`, `[scope]`), the first words they use
(mood: `Add` or `Added`), body width and the trailers they habitually sign with."""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

HABIT = 0.5  # a convention counts when at least this share of the engineer's messages follows it
_CONVENTIONAL = re.compile(r"^([A-Za-z]+(?:\([^)]*\))?!?:)\s+")  # fix: / feat(cli): / refactor!:
_BRACKETED = re.compile(r"^(\[[^\]]+\])\s+")  # [scope]
_TRAILER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):\s+\S")
# Trailers a draft may carry only when it knows their value: a retrieved message's `Co-authored-by` names
# someone who did not write this change.
SIGNED_OFF = "Signed-off-by"


def prefix_of(summary: str) -> str:
    """The summary's prefix (`fix:`, `feat(cli):`, `[docs]`), or ""."""
    match = _CONVENTIONAL.match(summary) or _BRACKETED.match(summary)
    return match.group(1) if match else ""


def split_message(message: str) -> tuple[str, list[str], list[str]]:
    """(summary, body lines, trailer lines): trailers are the last paragraph when every line of it is one."""
    lines = message.strip("\n").split("\n")
    summary, rest = lines[0].strip(), lines[1:]
    paragraphs = "\n".join(rest).strip("\n").split("\n\n")
    last = paragraphs[-1].split("\n") if paragraphs and paragraphs[-1].strip() else []
    if last and all(_TRAILER.match(line) for line in last):
        body = "\n\n".join(paragraphs[:-1]).strip("\n")
        return summary, body.split("\n") if body else [], last
    body = "\n".join(rest).strip("\n")
    return summary, body.split("\n") if body else [], []


def _quantile(values: Sequence[int], q: float, default: int) -> int:
    if not values:
        return default
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Style:
    max_summary: int = 72  # characters: the summary lengths of nine in ten of their messages
    capitalised: float = 1.0  # share of summaries (after a prefix) starting with a capital
    period: float = 0.0  # share ending in "."
    prefixed: float = 0.0  # share with a prefix
    prefixes: tuple[str, ...] = ()  # their prefixes, most used first
    first_words: dict[str, int] = field(default_factory=dict)  # lowercased first word (after a prefix) -> count
    width: int = 72  # body lines wrap here
    trailers: tuple[str, ...] = ()  # trailer keys on at least HABIT of their messages

    @classmethod
    def measure(cls, messages: Sequence[str]) -> Style:
        summaries, lengths, widths, trailer_keys = [], [], [], Counter[str]()
        for message in messages:
            summary, body, trailers = split_message(message)
            if not summary:
                continue
            summaries.append(summary)
            lengths.append(len(summary))
            widths += [len(line) for line in body if line.strip()]
            trailer_keys.update({m.group(1) for line in trailers if (m := _TRAILER.match(line))})
        if not summaries:
            return cls()
        prefixes = Counter(p for s in summaries if (p := prefix_of(s)))
        heads = [s[len(prefix_of(s)) :].strip() for s in summaries]
        words = Counter(h.split()[0].lower() for h in heads if h.split())
        n = len(summaries)
        return cls(
            max_summary=max(30, min(100, _quantile(lengths, 0.9, 72))),
            capitalised=sum(h[:1].isupper() for h in heads) / n,
            period=sum(s.endswith(".") for s in summaries) / n,
            prefixed=sum(prefixes.values()) / n,
            prefixes=tuple(p for p, _ in prefixes.most_common(5)),
            first_words=dict(words.most_common(300)),
            width=max(50, min(100, _quantile(widths, 0.95, 72))),
            trailers=tuple(sorted(k for k, c in trailer_keys.items() if c >= HABIT * n)),
        )

    def apply(self, draft: str, identity: str | None = None) -> str:
        """`draft` written as the engineer writes: the summary cut to their length, their mood, case, period
        and prefix, the body wrapped at their width, a retrieved message's trailers dropped and their own
        habitual sign-off added (when `identity`, "Name <email>", is known)."""
        summary, body, _trailers = split_message(draft)
        summary = self._summary(summary)
        if not summary:
            return ""
        parts = [summary]
        wrapped = self._wrap(body)
        if wrapped:
            parts.append(wrapped)
        if SIGNED_OFF in self.trailers and identity:
            parts.append(f"{SIGNED_OFF}: {identity}")
        return "\n\n".join(parts) + "\n"

    def _summary(self, summary: str) -> str:
        prefix = prefix_of(summary)
        head = summary[len(prefix) :].strip()
        if not prefix and self.prefixed >= HABIT and self.prefixes:
            prefix = self.prefixes[0]
        if head:
            words = head.split(" ", 1)
            words[0] = self._mood(words[0])
            head = " ".join(words)
            if self.capitalised >= 0.7:
                head = head[0].upper() + head[1:]
            elif self.capitalised <= 0.3 and head[1:2].islower():  # `README` stays as it is
                head = head[0].lower() + head[1:]
            if self.period <= 0.1:
                head = head.rstrip(".").rstrip()
        text = f"{prefix} {head}".strip() if prefix else head
        if len(text) > self.max_summary:
            cut = text[: self.max_summary + 1].rsplit(" ", 1)[0]
            text = cut if len(cut) > len(prefix) + 1 else text[: self.max_summary]
        return text.rstrip(" ,;:-")

    def _mood(self, word: str) -> str:
        """The variant of `word` the engineer opens with more often (`Added` → `Add`, `Fixes` → `Fix`)."""
        lower = word.lower()
        stems = {lower[:-2], lower[:-1], lower[:-3], lower + "s", lower + "ed", lower + "d", lower + "es"}
        best = max((s for s in stems if s), key=lambda s: self.first_words.get(s, 0), default=lower)
        if self.first_words.get(best, 0) <= self.first_words.get(lower, 0):
            return word
        return best.capitalize() if word[:1].isupper() else best

    def _wrap(self, body: list[str]) -> str:
        paragraphs = "\n".join(body).strip("\n").split("\n\n")
        out = []
        for paragraph in paragraphs:
            if not paragraph.strip():
                continue
            lines = paragraph.split("\n")
            if any(line.startswith(("    ", "\t", "```")) for line in lines):
                out.append(paragraph)  # code or a quoted log: never rewrapped
                continue
            items = re.split(r"\n(?=\s*[-*] )", paragraph)
            wrapped = []
            for item in items:
                bullet = re.match(r"\s*[-*] ", item)
                indent = " " * len(bullet.group(0)) if bullet else ""
                text = " ".join(item.split())
                wrapped.append(textwrap.fill(text, self.width, subsequent_indent=indent, break_long_words=False))
            out.append("\n".join(wrapped))
        return "\n\n".join(out)

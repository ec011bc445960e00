"""Per-sample scores: exact match and edit similarity on what an editor would show (latency percentiles come
from `codedouble.server.stats`, shared with the server's status)."""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein


def normalise(text: str, task: str) -> str:
    """The text as it counts for scoring: whitespace an editor does not show is dropped.

    "line": only trailing whitespace goes; leading whitespace matters because the cursor is mid-line.
    "block" (and any other multi-line task): CRLF becomes LF, every line is rstripped, trailing blank lines go.
    """
    if task == "line":
        return text.rstrip()
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def exact_match(prediction: str, target: str, task: str) -> bool:
    return normalise(prediction, task) == normalise(target, task)


def edit_similarity(prediction: str, target: str, task: str) -> float:
    """1 - Levenshtein distance / length of the longer text, on normalised texts; 1.0 when both are empty."""
    a, b = normalise(prediction, task), normalise(target, task)
    if not a and not b:
        return 1.0
    return float(Levenshtein.normalized_similarity(a, b))

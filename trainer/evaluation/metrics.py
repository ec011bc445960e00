"""Per-sample scores: exact match and edit similarity on what an editor would show, and latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks, as numpy's default; nan if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return float(ordered[lower] + (ordered[upper] - ordered[lower]) * fraction)

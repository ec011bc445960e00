"""When to show a suggestion: each system's own score turned into the probability that its suggestion is
exactly what the engineer types next, and one threshold on that probability.

A ghost text that is wrong most of the time is noise (every good completion tool shows less and is right
more often). The trainer fits both on the engineer's validation commits (the newest training commits, never
the held-out ones; trainer/training/abstention.py) and stores them in the artifact's manifest under
`abstention`; an artifact without them shows every suggestion, as codedouble did before.

    "abstention": {"threshold": 0.4, "calibration": {"ngram": [[raw, p], ...], ...}, "validation": {...}}

A calibration is a non-decreasing step function: `[raw, p]` pairs sorted by `raw`; a score gets the `p` of
the last pair whose `raw` it reaches (0 below the first).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from codedouble.server.contract.errors import CodedoubleError

KEY = "abstention"
# Not a system but a fact about two: the n-gram and the model propose the same first line. Calibrated on the
# model's score where they do. On rich's 200 validation lines (6,884 keystrokes) the two agreed at 885
# keystrokes and were right at 779 of them (88 %), while each alone was right 10-14 % of the time it spoke;
# showing what they agree on after the n-gram's own confident suggestions raised what tuning saves from 14.7
# to 18.8 % of characters (two-fold: 14.3 → 17.7 and 19.4 %) at the same precision target. On held-out lines
# the gain was smaller: 28.2 → 28.5 % (100 lines) and 32.5 → 34.5 % (40), precision 68-69 % (README).
AGREE = "agree"
# The other agreement: the n-gram and retrieval (BM25) propose the same first line, calibrated on BM25's score.
# It costs no model call. On the same 200 lines they agreed, where the model did not, at 1,181 keystrokes and
# were right at 708 (60 %); shown after the model's agreement and before the model alone, two-fold tuning
# (three shuffles) saved 18.6 → 21.9 % of characters on average at 57.6 → 59.8 % precision. Held out, rich's
# double retuned: 28.5 → 35.7 % saved (100 lines) and 34.5 → 42.4 % (40), precision 67.0 and 67.4 % (README).
AGREE_BM25 = "agree-bm25"


class AbstentionError(CodedoubleError):
    """An artifact whose abstention settings cannot be read."""


@dataclass(frozen=True)
class Calibration:
    """Raw score → probability of being right, for one system."""

    edges: tuple[float, ...]
    probabilities: tuple[float, ...]

    def __call__(self, raw: float) -> float:
        at = bisect.bisect_right(self.edges, raw) - 1
        return self.probabilities[at] if at >= 0 else 0.0

    def to_list(self) -> list[list[float]]:
        return [[e, p] for e, p in zip(self.edges, self.probabilities, strict=True)]

    @classmethod
    def from_list(cls, pairs: Sequence[Sequence[float]]) -> Calibration:
        edges = tuple(float(e) for e, _ in pairs)
        probabilities = tuple(float(p) for _, p in pairs)
        if list(edges) != sorted(edges) or any(not 0 <= p <= 1 for p in probabilities):
            raise ValueError("a calibration must be [raw, p] pairs sorted by raw, with p in 0..1")
        return cls(edges, probabilities)


def fit(scores: Sequence[float], right: Sequence[bool], bins: int = 12) -> Calibration:
    """The isotonic (pool-adjacent-violators) fit of right/wrong on score, over at most `bins` groups of
    equal size, each smoothed towards 0 (one wrong pseudo-observation): a group of two right answers out of
    two says "likely", not "certain"."""
    if len(scores) != len(right):
        raise ValueError("one right/wrong outcome per score")
    pairs = sorted(zip(scores, right, strict=True))
    if not pairs:
        return Calibration((), ())
    size = max(1, math.ceil(len(pairs) / bins))
    # Blocks: [lowest score, right count, total], merged while a block is less right than the one before it.
    blocks: list[list[float]] = []
    for start in range(0, len(pairs), size):
        group = pairs[start : start + size]
        blocks.append([group[0][0], float(sum(r for _, r in group)), float(len(group))])
        # Equal scores cannot be told apart (one step each), nor can a block less right than the one before.
        while len(blocks) > 1 and (blocks[-1][0] == blocks[-2][0] or _rate(blocks[-1]) < _rate(blocks[-2])):
            last = blocks.pop()
            blocks[-1][1] += last[1]
            blocks[-1][2] += last[2]
    return Calibration(tuple(b[0] for b in blocks), tuple(_rate(b) for b in blocks))


def _rate(block: list[float]) -> float:
    return block[1] / (block[2] + 1)


@dataclass(frozen=True)
class Abstention:
    """The tuned threshold and each system's calibration; `threshold` None shows every suggestion."""

    threshold: float | None = None
    calibrations: dict[str, Calibration] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)  # what the tuning measured, for the record

    def confidence(self, system: str, raw: float) -> float:
        """The probability that `system`'s suggestion with score `raw` is right; the raw score itself for a
        system never calibrated (an uncalibrated engine shows everything anyway)."""
        calibration = self.calibrations.get(system)
        return calibration(raw) if calibration is not None else raw

    def shows(self, system: str, raw: float, threshold: float | None = None) -> bool:
        limit = self.threshold if threshold is None else threshold
        return limit is None or self.confidence(system, raw) >= limit

    def calibrates(self, system: str) -> bool:
        return system in self.calibrations

    def never_shows(self, system: str, threshold: float | None = None) -> bool:
        """Whether no score of `system` can reach the threshold: its calibration's highest probability is
        below it. The engine then does not ask it at all (on rich's Llama double the model's top was 0.40
        against a threshold of 0.45: it was computed at every keystroke and never shown)."""
        limit = self.threshold if threshold is None else threshold
        calibration = self.calibrations.get(system)
        if limit is None or calibration is None:
            return False
        return max(calibration.probabilities, default=0.0) < limit

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "calibration": {name: c.to_list() for name, c in sorted(self.calibrations.items())},
            "validation": self.validation,
        }

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Abstention:
        data = manifest.get(KEY)
        if data is None:
            return cls()
        try:
            threshold = data["threshold"]
            calibrations = {str(k): Calibration.from_list(v) for k, v in data["calibration"].items()}
            return cls(None if threshold is None else float(threshold), calibrations, dict(data.get("validation", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise AbstentionError(f"the manifest's {KEY!r} is damaged ({exc}): train the double again") from exc

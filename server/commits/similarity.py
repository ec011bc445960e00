"""How alike two commit messages read, word by word: shared by retrieval (which picks the message its
neighbours agree on) and eval's scores (`trainer/evaluation/commit_metrics.py`)."""

from __future__ import annotations

import re

from rapidfuzz.distance import LCSseq, Levenshtein

_WORDS = re.compile(r"\w+|[^\s\w]")


def summary(message: str) -> str:
    """The message's first non-empty line."""
    return next((line.strip() for line in message.split("\n") if line.strip()), "")


def words(text: str) -> list[str]:
    """Lowercased words and punctuation marks (the tokenisation of B-Norm's `splitPuncts` after lowercasing)."""
    return _WORDS.findall(text.lower())


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L (Lin, 2004): the F-measure of the longest common subsequence of words, 0..1."""
    hyp, ref = words(prediction), words(reference)
    # rapidfuzz's longest common subsequence of the word lists: retrieval's agreement computes 1,560 of them a
    # draft, which the pure-Python dynamic programme took 0.44 s for on long one-line summaries.
    common = LCSseq.similarity(hyp, ref)
    if not common:
        return 0.0
    precision, recall = common / len(hyp), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def edit_similarity(prediction: str, reference: str) -> float:
    """1 - the Levenshtein distance of the lowercased texts over the longer one's length; 1.0 when both are empty."""
    a, b = prediction.strip().lower(), reference.strip().lower()
    if not a and not b:
        return 1.0
    return float(Levenshtein.normalized_similarity(a, b))


def first_words_match(prediction: str, reference: str, n: int) -> bool:
    """Whether the first `n` words agree (lowercased): `Fix`/`Add` is a draft's most visible choice."""
    hyp, ref = [w for w in words(prediction) if w.isalnum()], [w for w in words(reference) if w.isalnum()]
    return len(ref) >= 1 and hyp[:n] == ref[:n]

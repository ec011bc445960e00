"""Scores of a drafted commit message against the one the engineer wrote, as the commit-message literature
scores them: on the summary line (the first line; NNGen's and MCMD's targets are the first line or sentence).

B-Norm is the BLEU variant Tao et al. recommend after comparing BLEU variants against human judgement ("On the
Evaluation of Commit Message Generation Models: An Experimental Study", ICSME 2021, and its MCMD replication
package's `B-Norm.py`): both texts lowercased and split into words and punctuation, sentence-level BLEU-4
with add-one smoothing of the 2- to 4-gram precisions (Lin and Och, 2004, "ORANGE", smoothing 1), brevity
penalty exp(min(0, 1 - (r+1)/(c+1))), averaged over messages. ROUGE-L is the F-measure of the longest common
subsequence of words (Lin, 2004), shared with retrieval (`server/commits/similarity.py`). Written here from
those definitions, not copied.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from codedouble.server.commits.similarity import edit_similarity, first_words_match, rouge_l, summary, words

ORDER = 4


def _ngrams(tokens: list[str], n: int) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(tokens) - n + 1):
        gram = tuple(tokens[i : i + n])
        counts[gram] = counts.get(gram, 0) + 1
    return counts


def b_norm(prediction: str, reference: str) -> float:
    """Smoothed sentence BLEU-4 of lowercased texts, 0..1; 0 for an empty draft.

    The reference script gives an empty hypothesis exp(-len(reference)) (its log(0 + tiny) - log(0 + tiny)
    precisions are 0, and only the brevity penalty is left): 0.37 against a one-word message, more than most
    drafts earn. A draft that says nothing scores nothing here."""
    hyp, ref = words(prediction), words(reference)
    if not hyp:
        return 0.0
    log_bleu = 0.0
    for n in range(1, ORDER + 1):
        hyp_counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
        correct = sum(min(c, ref_counts.get(g, 0)) for g, c in hyp_counts.items())
        guessed = max(len(hyp) - n + 1, 0)
        smooth = 1 if n > 1 else 0
        # sys.float_info.min keeps log(0) finite, as the reference script does: no match scores ~0, not an error.
        log_bleu += math.log(correct + smooth + sys.float_info.min) - math.log(guessed + smooth + sys.float_info.min)
    brevity = min(0.0, 1 - (len(ref) + 1) / (len(hyp) + 1))
    return math.exp(log_bleu / ORDER + brevity)


@dataclass(frozen=True)
class MessageScore:
    b_norm: float
    rouge_l: float
    first_word: bool
    first_two_words: bool
    edit_similarity: float


def score(prediction: str, reference: str) -> MessageScore:
    """All the scores of one draft, on the summary lines of both messages."""
    hyp, ref = summary(prediction), summary(reference)
    return MessageScore(
        b_norm(hyp, ref),
        rouge_l(hyp, ref),
        first_words_match(hyp, ref, 1),
        first_words_match(hyp, ref, 2),
        edit_similarity(hyp, ref),
    )


__all__ = ["MessageScore", "b_norm", "edit_similarity", "first_words_match", "rouge_l", "score", "summary", "words"]

"""The n-gram counts every order in arrays (server/engine/ngram.py); this checks them against counting by hand.

The reference below scans each source's tokens for every occurrence of the context's last k tokens, counts what
follows in dictionaries one order at a time, and interpolates them as the module's docstring says (Witten-Bell,
the highest order first). Tokens come from a four-symbol alphabet, so contexts recur deep, orders run long and
ties are common: the distribution must be the same floats in the same order, since the order decides ties.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codedouble.server.engine import ngram
from codedouble.server.engine.ngram import (
    BOUNDARY,
    MAX_ORDER,
    CacheNgram,
    Source,
    _Vocabulary,
    _Weighted,
)

SYMBOLS = ("a", "b", "(", "\n")
texts = st.lists(st.lists(st.sampled_from(SYMBOLS), max_size=40), min_size=1, max_size=6)


def _followers(source: Source, context: list[str], k: int, skip: tuple[int, int] | None) -> list[int]:
    """Source-local ids after each occurrence of the last `k` tokens of `context` (k = 1: the last token)."""
    ids = source.index.ids.tolist()
    want = [source.vocab.get(t, -1) for t in context[-k:]]
    found = []
    for end in range(k - 1, len(ids) - 1):
        if skip is not None and skip[0] <= end < skip[1]:
            continue
        if ids[end - k + 1 : end + 1] == want:
            found.append(ids[end + 1])
    return found


def _by_hand(context: list[str], sources: list[_Weighted], ends: bool, enough: int) -> list[tuple[str, float]]:
    tail = context[-MAX_ORDER:]
    per_order = {k: [(_followers(s.source, tail, k, s.skip), s) for s in sources] for k in range(1, len(tail) + 1)}
    depth = max((k for k in range(2, len(tail) + 1) if any(f for f, _ in per_order[k])), default=1)
    bottom = depth
    while bottom >= 2 and sum(len(f) * s.weight for f, s in per_order[bottom]) < enough:
        bottom -= 1
    tables = []
    for k in range(max(bottom, 1), depth + 1):
        counts: dict[str, float] = {}
        for followers, s in per_order[k]:
            for local in sorted(set(followers)):
                if local != 0 or (ends and s.may_end):
                    token = s.source.strings[local]
                    counts[token] = counts.get(token, 0.0) + s.weight * followers.count(local)
        if counts:
            tables.append(counts)
    dist: dict[str, float] = {}
    left = 1.0
    for counts in reversed(tables):
        total = sum(counts.values())
        lam = total / (total + len(counts))
        share = left * lam / total
        for token, count in counts.items():
            dist[token] = dist.get(token, 0.0) + share * count
        left *= 1 - lam
    return list(dist.items())


@settings(max_examples=300, deadline=None)
@given(
    corpus=texts,
    file=texts,
    workspace=st.one_of(st.none(), texts),
    skipped=st.integers(0, 5),
    context=st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=12),
    ends=st.booleans(),
    with_corpus=st.booleans(),
    enough=st.sampled_from([ngram.ENOUGH, 3, 12]),  # small ones stop the descent above the lowest order
)
def test_counts_in_arrays_are_the_counts_by_hand(
    corpus: list[list[str]],
    file: list[list[str]],
    workspace: list[list[str]] | None,
    skipped: int,
    context: list[str],
    ends: bool,
    with_corpus: bool,
    enough: int,
) -> None:
    sources = []
    anchor = Source(corpus) if with_corpus else None
    if anchor is not None:
        sources.append(_Weighted(anchor, 1.0, True, None))
    cache = Source(file)
    sources.append(_Weighted(cache, 8.0, False, None))
    shared = Source(workspace) if workspace is not None else None
    if shared is not None:
        skip = shared.span(skipped) if skipped < len(workspace or []) else None
        sources.append(_Weighted(shared, 2.0, False, skip))
    vocab = _Vocabulary(anchor, shared, cache)

    kept, ngram.ENOUGH = ngram.ENOUGH, enough
    try:
        ids, probs = CacheNgram([])._distribution(context, sources, vocab, ends)
    finally:
        ngram.ENOUGH = kept

    got = [(vocab.string(i), p) for i, p in zip(ids.tolist(), probs.tolist(), strict=True)]
    assert got == _by_hand(context, sources, ends, enough)
    assert all(token != BOUNDARY or ends for token, _ in got)

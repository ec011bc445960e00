"""The cache n-gram baseline (after Hellendoorn & Devanbu, FSE'17): counts over the engineer's own code,
with the current file's counts weighted up, interpolated across orders (Witten-Bell), decoded greedily.

No count tables are built: the code is one array of token ids with an index from each id to its positions,
so every context is looked up at every order by array filtering, up to `MAX_ORDER` tokens long.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from codedouble.server.engine import blocks, lexer
from codedouble.server.engine.document import NOTHING, Proposal, Request

# Chosen on a validation split of Textualize/rich (the newest training commits, never the eval's held-out
# ones): next-line EM rose from 28 % (order 6) to 36 % (order 32), where it levels off. Long contexts make
# the model copy the engineer's own lines when they recur, and back off smoothly when they do not.
MAX_ORDER = 32  # tokens of context; whitespace counts as a token
CACHE_WEIGHT = 8.0  # a count in the current file is worth this many counts elsewhere
ENOUGH = 1024  # below an order this well attested, lower orders add little: stop descending
CACHE_CHARS = 100_000  # of the file before the cursor; a quarter as many after it
# Characters over which a suggestion's score falls by a factor e (see `propose`); chosen on rich's validation
# lines (training commits, never held-out ones) among 5, 10, 20 and 40.
LENGTH_SCALE = 10.0
LINE_TOKENS = 48
BLOCK_TOKENS = 128


class _Index:
    """Token ids, and the sorted positions of each id and of each pair of adjacent ids."""

    def __init__(self, ids: np.ndarray, vocab_size: int) -> None:
        self.ids = ids
        self.vocab_size = vocab_size
        self.order = np.argsort(ids, kind="stable")
        counts = np.bincount(ids, minlength=vocab_size) if len(ids) else np.zeros(vocab_size, dtype=np.int64)
        self.starts = np.concatenate(([0], np.cumsum(counts)))
        # Pairs narrow a context down at once: the positions after a bare space or `(` run to six figures.
        pairs = ids[:-1] * vocab_size + ids[1:]
        self.pair_order = np.argsort(pairs, kind="stable") + 1  # position of each pair's second token
        self.pair_keys = pairs[self.pair_order - 1]

    def _followers(self, pos: np.ndarray) -> np.ndarray:
        return self.ids[pos[pos + 1 < len(self.ids)] + 1]

    def unigram(self, last: int) -> np.ndarray:
        """The ids that follow `last` wherever it occurs."""
        if not 0 <= last < self.vocab_size:
            return self.ids[:0]
        return self._followers(self.order[self.starts[last] : self.starts[last + 1]])

    def follow(self, context: Sequence[int]) -> list[np.ndarray]:
        """For k = 2.. the ids that follow the last k tokens of `context` wherever they occur, while they do."""
        if len(context) < 2 or not all(0 <= t < self.vocab_size for t in context[-2:]):
            return []
        key = context[-2] * self.vocab_size + context[-1]
        low, high = np.searchsorted(self.pair_keys, [key, key + 1])
        pos = self.pair_order[low:high]
        pos = pos[pos + 1 < len(self.ids)]
        found: list[np.ndarray] = []
        for k in range(2, min(MAX_ORDER, len(context)) + 1):
            if k > 2:
                pos = pos[pos >= k - 1]
                pos = pos[self.ids[pos - (k - 1)] == context[-k]]
            if not len(pos):
                break
            found.append(self.ids[pos + 1])
        return found


class _Vocabulary:
    """The corpus's token ids, extended for one request by the current file's tokens the corpus lacks."""

    def __init__(self, vocab: dict[str, int], strings: list[str]) -> None:
        self.vocab, self.strings = vocab, strings
        self.extra: dict[str, int] = {}
        self.extra_strings: list[str] = []

    def id(self, token: str) -> int:
        i = self.vocab.get(token)
        if i is None:
            i = self.extra.get(token)
            if i is None:
                i = self.extra[token] = len(self.vocab) + len(self.extra_strings)
                self.extra_strings.append(token)
        return i

    def ids(self, tokens: Sequence[str]) -> list[int]:
        return [self.id(t) for t in tokens]

    def string(self, i: int) -> str:
        return self.strings[i] if i < len(self.strings) else self.extra_strings[i - len(self.strings)]

    def __len__(self) -> int:
        return len(self.vocab) + len(self.extra_strings)


class CacheNgram:
    name = "ngram"
    description = "cache n-gram: your training-split code, the current file weighted up (Hellendoorn & Devanbu 2017)"

    def __init__(self, texts: Sequence[str]) -> None:
        vocab: dict[str, int] = {}
        ids: list[int] = []
        for text in texts:
            for token in lexer.tokens(text):
                ids.append(vocab.setdefault(token, len(vocab)))
            ids.append(vocab.setdefault("\0", len(vocab)))  # a boundary no context runs across
        self.boundary = vocab.setdefault("\0", len(vocab))
        self.vocab = vocab
        self.strings = list(vocab)
        self.index = _Index(np.asarray(ids, dtype=np.int64), len(vocab))

    # -- the model ------------------------------------------------------------------------------------------
    def _distribution(self, context: Sequence[int], cache: _Index | None, ends: bool = False) -> dict[int, float]:
        """P(next | context), Witten-Bell interpolated from the longest matched order down. With `ends`, the
        end of a definition in the corpus is a possible next token (a body may end here)."""
        # (index, weight, whether its boundary may be predicted): in the corpus the boundary is the end of a
        # definition; in the cache it marks the cursor, which is never an end.
        sources = [(self.index, 1.0, ends)] + ([(cache, CACHE_WEIGHT, False)] if cache is not None else [])
        found = [(index.follow(context), weight, may_end) for index, weight, may_end in sources]
        depth = max(len(orders) for orders, _, _ in found)

        # level(k) holds, per source, the followers of the last k + 2 tokens (k = -1: of the last token).
        def level(k: int) -> list[tuple[np.ndarray, float, bool]]:
            if k < 0:
                return [(index.unigram(context[-1]), weight, may_end) for index, weight, may_end in sources]
            return [(orders[k], weight, may_end) for orders, weight, may_end in found if k < len(orders)]

        # Only the top orders matter once they are well attested: stop descending there.
        bottom = depth - 1
        while bottom >= 0 and sum(len(a) * w for a, w, _ in level(bottom)) < ENOUGH:
            bottom -= 1
        tables: list[dict[int, float]] = []
        for k in range(max(bottom, -1), depth):
            counts: dict[int, float] = {}
            for followers, weight, may_end in level(k):
                values, freq = np.unique(followers, return_counts=True)
                for v, f in zip(values.tolist(), freq.tolist(), strict=True):
                    if v != self.boundary or may_end:
                        counts[v] = counts.get(v, 0.0) + weight * f
            if counts:
                tables.append(counts)
        # P = λ_top·ML_top + (1 − λ_top)·(λ_next·ML_next + ...): each order's weight is its λ times what the
        # orders above it left, so every table is added once, never rescaled.
        dist: dict[int, float] = {}
        left = 1.0
        for counts in reversed(tables):
            total = sum(counts.values())
            lam = total / (total + len(counts))
            share = left * lam / total
            for t, c in counts.items():
                dist[t] = dist.get(t, 0.0) + share * c
            left *= 1 - lam
        return dist

    # -- completion -----------------------------------------------------------------------------------------
    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.propose(request, cancelled).text

    def propose(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Proposal:
        """The greedy completion, scored by the probability the model gives its first line: the product of
        each chosen token's share of its distribution (the evidence the engineer's own code holds for it)."""
        prefix, suffix, mode, language = request.prefix, request.suffix, request.mode, request.language
        vocabulary = _Vocabulary(self.vocab, self.strings)
        # The file around the cursor is the cache; the typed part of a token is no evidence of anything.
        before = vocabulary.ids(lexer.tokens(prefix[-CACHE_CHARS:]))
        partial = lexer.open_token(prefix)
        if partial:
            before.pop()
        after = vocabulary.ids(lexer.tokens(suffix[: CACHE_CHARS // 4]))
        cache = _Index(np.asarray([*before, self.boundary, *after], dtype=np.int64), len(vocabulary))
        context = before[-MAX_ORDER:] or [self.boundary]
        out: list[str] = []
        limit = LINE_TOKENS if mode == "line" else BLOCK_TOKENS
        outer = blocks.signature_indent(prefix)
        score = 1.0
        first_line = True
        for step in range(limit):
            if cancelled is not None and cancelled():
                return NOTHING
            dist = self._distribution(context, cache, ends=mode == "block")
            if not dist:
                break
            if step == 0 and partial:
                # The cursor may be inside a token: only tokens that extend what is typed can come next.
                fitting = [t for t in dist if vocabulary.string(t).startswith(partial)]
                choice = max(fitting, key=dist.__getitem__) if fitting else vocabulary.id(partial)
                text = vocabulary.string(choice)[len(partial) :]
                share = dist[choice] / sum(dist[t] for t in fitting) if fitting else 0.0
            else:
                choice = max(dist, key=dist.__getitem__)
                if choice == self.boundary:
                    break  # the body ends here, as the engineer's definitions end after such code
                text = vocabulary.string(choice)
                share = dist[choice] / sum(dist.values())
            if mode == "line" and "\n" in text:
                break
            if first_line:
                score *= share
                first_line = "\n" not in text
            out.append(text)
            context.append(choice)
            if mode == "block" and "\n" in text:
                joined = "".join(out)
                if len(blocks.cut_block(joined, language, outer)) < len(joined.rstrip()):
                    break
        completion = "".join(out)
        text = blocks.cut_line(completion) if mode == "line" else blocks.body_end(prefix, completion, language)
        # A long confident guess is wrong far more often than a short one: on rich's validation lines the
        # n-gram's suggestions scored above 0.99 were the exact rest of the line 86 % of the time under 10
        # characters, 35 % at 10-19 and 24 % at 20-29. The score falls with the first line's length so that
        # one threshold can tell them apart (at >= 50 % precision, 15.5 % of characters saved against 10.9 %).
        first = text.split("\n", 1)[0]
        return Proposal(text, score * math.exp(-len(first) / LENGTH_SCALE) if text else 0.0)

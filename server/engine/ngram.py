"""The cache n-gram baseline (after Hellendoorn & Devanbu, FSE'17): counts over the engineer's own code,
with the current file's counts weighted up, interpolated across orders (Witten-Bell), decoded greedily.

No count tables are built: the code is one array of token ids with an index from each id to its positions,
so every context is looked up at every order by array filtering, up to `MAX_ORDER` tokens long.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from codedouble.server.engine import blocks, lexer
from codedouble.server.engine.document import NOTHING, Proposal, Request

# Chosen on a validation split of Textualize/rich (the newest training commits, never the eval's held-out
# ones): next-line EM rose from 28 % (order 6) to 36 % (order 32), where it levels off. Long contexts make
# the model copy the engineer's own lines when they recur, and back off smoothly when they do not.
MAX_ORDER = 32  # tokens of context; whitespace counts as a token
CACHE_WEIGHT = 8.0  # a count in the current file is worth this many counts elsewhere
# A count in the workspace's other files (the repository around the document, the editor's open files): set
# between the corpus's 1 and the current file's 8, not tuned (a validation-split sweep is still to do). With it
# rich's next-line EM rose 26.0 -> 34.5 % on the held-out commits (README, "What wins").
WORKSPACE_WEIGHT = 2.0
ANY = "*"  # the language key of a corpus built without languages: it serves them all
ENOUGH = 1024  # below an order this well attested, lower orders add little: stop descending
CACHE_CHARS = 100_000  # of the file before the cursor; a quarter as many after it
# Characters over which a suggestion's score falls by a factor e (see `propose`); chosen on rich's validation
# lines (training commits, never held-out ones) among 5, 10, 20 and 40.
LENGTH_SCALE = 10.0
LINE_TOKENS = 48
BLOCK_TOKENS = 128
VOCAB_SPAN = 1 << 32  # above any source's vocabulary size: (order, source, local id) packed in one int64


class _Index:
    """Token ids; the positions of each pair of adjacent ids, sorted by pair; and each distinct pair's count.

    Positions are int32 and ids too (a pair key needs int64): 16 to 17 bytes a token on rich's corpus and
    workspace, where distinct pairs are 2 and 11 % of the tokens (int64 throughout took 32); a workspace of 4 MB
    of code is about 1.3 M tokens."""

    def __init__(self, ids: np.ndarray, vocab_size: int) -> None:
        self.ids = ids.astype(np.int32)
        self.vocab_size = vocab_size
        # Pairs narrow a context down at once: the positions after a bare space or `(` run to six figures.
        pairs = self.ids[:-1].astype(np.int64) * vocab_size + self.ids[1:]
        self.pair_order = (np.argsort(pairs, kind="stable") + 1).astype(np.int32)  # each pair's second token
        self.pair_keys = pairs[self.pair_order - 1]
        # Each distinct pair once with its count: what follows one token is a slice of these, counted already.
        # The lowest order, the followers of a bare space or `(`, needs no gather nor sort of six figures.
        starts = np.flatnonzero(np.diff(self.pair_keys, prepend=-1)) if len(pairs) else np.zeros(0, dtype=np.int64)
        self.pair_distinct = self.pair_keys[starts]
        self.pair_counts = np.diff(starts, append=len(pairs)).astype(np.int32)

    def unigram(self, last: int, skip: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ids that follow `last` wherever it occurs (outside the `skip` span of positions), each once,
        ascending, and how often."""
        if not 0 <= last < self.vocab_size:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        low, high = np.searchsorted(self.pair_distinct, [last * self.vocab_size, (last + 1) * self.vocab_size])
        values = self.pair_distinct[low:high] - last * self.vocab_size
        counts = self.pair_counts[low:high]
        if skip is not None:
            start, end = skip[0], min(skip[1], len(self.ids) - 1)  # the last position has no follower
            inside = np.flatnonzero(self.ids[start:end] == last) + start
            if len(inside):
                gone, times = np.unique(self.ids[inside + 1], return_counts=True)
                counts = counts.copy()
                counts[np.searchsorted(values, gone)] -= times
                kept = counts > 0
                values, counts = values[kept], counts[kept]
        return values, counts

    def follow(self, context: Sequence[int], skip: tuple[int, int] | None = None) -> list[np.ndarray]:
        """For k = 2.. the positions where the last k tokens of `context` end (outside the `skip` span, and
        followed by something), while there are any. An id of -1 (a token this index lacks) matches nothing."""
        if len(context) < 2 or not all(0 <= t < self.vocab_size for t in context[-2:]):
            return []
        key = context[-2] * self.vocab_size + context[-1]
        low, high = np.searchsorted(self.pair_keys, [key, key + 1])
        pos = self.pair_order[low:high]
        pos = pos[pos + 1 < len(self.ids)]
        if skip is not None:
            pos = pos[(pos < skip[0]) | (pos >= skip[1])]
        found: list[np.ndarray] = []
        for k in range(2, min(MAX_ORDER, len(context)) + 1):
            if k > 2:
                # One pair's positions are ascending (a stable sort), so those too near the start are a head.
                if len(pos) and pos[0] < k - 1:
                    pos = pos[np.searchsorted(pos, k - 1) :]
                pos = pos[self.ids[pos - (k - 1)] == context[-k]]
            if not len(pos):
                break
            found.append(pos)
        return found

    def followers(self, positions: np.ndarray) -> np.ndarray:
        """The ids after `positions` (as `follow` gives them): gathered only for the orders a request counts."""
        return self.ids[positions + 1]


BOUNDARY = "\0"  # between texts: a boundary no context runs across (in the corpus, a definition's end)


class Source:
    """A body of code the n-gram counts in: its own vocabulary, the index, and where each text's tokens lie
    (so one file of it can be left out of a request: the document itself, in workspace context)."""

    def __init__(self, token_lists: Sequence[Sequence[str]]) -> None:
        vocab: dict[str, int] = {BOUNDARY: 0}
        ids: list[int] = []
        starts: list[int] = []
        for tokens in token_lists:
            starts.append(len(ids))
            ids.extend(vocab.setdefault(token, len(vocab)) for token in tokens)
            ids.append(0)
        starts.append(len(ids))
        self.vocab = vocab
        self.strings = list(vocab)
        self.spans = starts
        self.index = _Index(np.asarray(ids, dtype=np.int64), len(vocab))
        self._mapped: tuple[Source | None, _Mapping] | None = None

    @classmethod
    def of_texts(cls, texts: Iterable[str]) -> Source:
        return cls([lexer.tokens(text) for text in texts])

    def ids(self, tokens: Sequence[str]) -> list[int]:
        return [self.vocab.get(t, -1) for t in tokens]

    def span(self, text: int) -> tuple[int, int]:
        """The positions of text number `text`, its boundary included."""
        return self.spans[text], self.spans[text + 1]

    @property
    def tokens(self) -> int:
        return len(self.index.ids)

    def ids_after(self, anchor: Source | None) -> _Mapping:
        """This source's ids in the id space that `anchor`'s vocabulary begins (`_Vocabulary`): computed once
        per anchor, since a workspace snapshot serves request after request with the same corpus."""
        cached = self._mapped
        if cached is None or cached[0] is not anchor:
            cached = (anchor, _Mapping.of(self.strings, anchor.vocab if anchor is not None else {BOUNDARY: 0}, {}))
            self._mapped = cached
        return cached[1]


@dataclass(frozen=True)
class _Mapping:
    """A source's local ids as shared ids, and the strings it added to the shared space (numbered from the end
    of what was there before)."""

    ids: np.ndarray
    added: dict[str, int]
    strings: tuple[str, ...]  # the added ones in id order

    @classmethod
    def of(cls, strings: Sequence[str], first: dict[str, int], then: dict[str, int]) -> _Mapping:
        added: dict[str, int] = {}
        size = len(first) + len(then)
        ids = np.empty(len(strings), dtype=np.int64)
        for local, string in enumerate(strings):
            shared = first.get(string)
            if shared is None:
                shared = then.get(string)
                if shared is None:
                    shared = added.setdefault(string, size + len(added))
            ids[local] = shared
        return cls(ids, added, tuple(added))


_NO_MAPPING = _Mapping(np.zeros(0, dtype=np.int64), {}, ())


class _Vocabulary:
    """One id space over the sources of a request, so that their counts are added up in arrays instead of
    dictionaries of strings: the anchor's (the corpus's) ids, then the strings the workspace adds (mapped once
    per snapshot, `Source.ids_after`), then the ones only the current file has. The boundary is 0 in all."""

    def __init__(self, anchor: Source | None, workspace: Source | None, file: Source) -> None:
        first = anchor.vocab if anchor is not None else {BOUNDARY: 0}
        self.anchor = anchor
        self.mapped: dict[int, np.ndarray] = {}
        shared = _NO_MAPPING
        if workspace is not None:
            shared = workspace.ids_after(anchor)
            self.mapped[id(workspace)] = shared.ids
        own = _Mapping.of(file.strings, first, shared.added)
        self.mapped[id(file)] = own.ids
        # Each id's string: the anchor's, then the workspace's additions, then the file's, each in id order.
        self.segments: tuple[Sequence[str], ...] = (
            list(first) if anchor is None else anchor.strings,
            shared.strings,
            own.strings,
        )

    @property
    def size(self) -> int:
        return sum(map(len, self.segments))

    def ids(self, source: Source, local: np.ndarray) -> np.ndarray:
        return local.astype(np.int64) if source is self.anchor else self.mapped[id(source)][local]

    def string(self, shared: int) -> str:
        for segment in self.segments:
            if shared < len(segment):
                return segment[shared]
            shared -= len(segment)
        raise IndexError(shared)


class CacheNgram:
    name = "ngram"
    description = "cache n-gram: your training-split code, the current file weighted up (Hellendoorn & Devanbu 2017)"

    def __init__(self, texts: Sequence[str], languages: Sequence[str | None] | None = None) -> None:
        """One source per language, so that a completion only ever draws on the document's own language (a
        JavaScript file never gets Python, TSX and TypeScript are kept apart). Without `languages` every text
        serves every language (a one-language corpus)."""
        by_language: dict[str | None, list[str]] = defaultdict(list)
        for i, text in enumerate(texts):
            by_language[languages[i] if languages is not None else ANY].append(text)
        self.sources = {language: Source.of_texts(group) for language, group in by_language.items()}

    def source(self, language: str | None) -> Source | None:
        return self.sources.get(ANY) or self.sources.get(language)

    # -- the model ------------------------------------------------------------------------------------------
    def _distribution(
        self, context: Sequence[str], sources: Sequence[_Weighted], vocab: _Vocabulary, ends: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """P(next | context), Witten-Bell interpolated from the longest matched order down, counts of every
        source added with its weight: the shared ids of `vocab` and their probabilities, in the order each id
        was first counted (the highest order first), which decides ties. With `ends`, the end of a definition in
        the corpus is a possible next token (a body may end here)."""
        tail = context[-MAX_ORDER:]
        found = [(s.source.index.follow(s.source.ids(tail), s.skip), s) for s in sources]
        depth = max((len(orders) for orders, _ in found), default=0)

        # level(k) holds, per source, the positions where the last k + 2 tokens end.
        def level(k: int) -> list[tuple[np.ndarray, _Weighted]]:
            return [(orders[k], s) for orders, s in found if k < len(orders)]

        # Only the top orders matter once they are well attested: stop descending there.
        bottom = depth - 1
        while bottom >= 0 and sum(len(a) * s.weight for a, s in level(bottom)) < ENOUGH:
            bottom -= 1
        # Every order's counts at once, in arrays: one table per order (up to 31 of them) counted token by token
        # in dictionaries took most of a request's time, and one array call per order and source not much less.
        # Each follower is packed as (order, source, its id in that source), the highest order first: sorted, the
        # keys come in the order that breaks ties (the highest order's tokens first, then by source, then by id).
        levels = list(range(depth - 1, max(bottom, -1) - 1, -1))
        number = {id(s): i for i, s in enumerate(sources)}

        def pack(rank: int, s: _Weighted, followers: np.ndarray) -> np.ndarray:
            return (rank * len(sources) + number[id(s)]) * VOCAB_SPAN + followers.astype(np.int64)

        packed: list[np.ndarray] = []
        for rank, k in enumerate(levels[:-1] if bottom < 0 else levels):
            for positions, s in level(k):
                followers = s.source.index.followers(positions)
                packed.append(pack(rank, s, followers if ends and s.may_end else followers[followers != 0]))
        every = np.concatenate(packed) if packed else np.zeros(0, dtype=np.int64)
        keys, found_counts = np.unique(every, return_counts=True)
        if bottom < 0:  # the lowest order, followers of the last token alone: counted already, ids ascending
            lowest: list[tuple[np.ndarray, np.ndarray]] = []
            for s in sources:
                values, counts = s.source.index.unigram(s.source.vocab.get(tail[-1], -1), s.skip)
                if not (ends and s.may_end):
                    kept = values != 0
                    values, counts = values[kept], counts[kept]
                lowest.append((pack(len(levels) - 1, s, values), counts))
            keys = np.concatenate([keys, *(k for k, _ in lowest)])
            found_counts = np.concatenate([found_counts, *(c for _, c in lowest)])
        if not len(keys):
            return keys, np.zeros(0)
        group, local = np.divmod(keys, VOCAB_SPAN)
        rank_of, source_of = np.divmod(group, len(sources))
        token = np.empty(len(keys), dtype=np.int64)
        counts = np.empty(len(keys))
        for i, s in enumerate(sources):
            mine = source_of == i
            token[mine] = vocab.ids(s.source, local[mine])
            counts[mine] = s.weight * found_counts[mine]
        # Per order, each token's counts over the sources (whole multiples of their weights: exact sums).
        by_order, inverse = np.unique(rank_of * vocab.size + token, return_inverse=True)
        order_counts = np.bincount(inverse, weights=counts, minlength=len(by_order))
        order_of, order_token = np.divmod(by_order, vocab.size)
        totals = np.bincount(order_of, weights=order_counts, minlength=len(levels))
        distinct = np.bincount(order_of, minlength=len(levels))
        # P = λ_top·ML_top + (1 − λ_top)·(λ_next·ML_next + ...): each order's weight is its λ times what the
        # orders above it left, so every table is added once, never rescaled.
        shares = np.zeros(len(levels))
        left = 1.0
        for rank in range(len(levels)):
            if distinct[rank]:
                total = float(totals[rank])
                lam = total / (total + int(distinct[rank]))
                shares[rank] = left * lam / total
                left *= 1 - lam
        ids, inverse = np.unique(order_token, return_inverse=True)
        # Added up highest order first, as a running sum over the orders did: the same floating-point sums.
        probs = np.bincount(inverse, weights=shares[order_of] * order_counts, minlength=len(ids))
        _, first = np.unique(token, return_index=True)  # where each token was first counted, ids ascending
        order = np.argsort(first, kind="stable")
        return ids[order], probs[order]

    def _sources(self, request: Request, before: list[str], after: list[str]) -> tuple[list[_Weighted], _Vocabulary]:
        """What a request counts in: the corpus in its language, the file around the cursor (the cache, its
        boundary marking the cursor, which is never an end) and the workspace's other files in its language;
        and the id space they share."""
        out: list[_Weighted] = []
        corpus = self.source(request.language)
        if corpus is not None:
            out.append(_Weighted(corpus, 1.0, True, None))
        cache = Source([before, after])
        out.append(_Weighted(cache, CACHE_WEIGHT, False, None))
        workspace = request.workspace.ngram(request.language, request.path) if request.workspace else None
        if workspace is not None:
            out.append(_Weighted(workspace[0], WORKSPACE_WEIGHT, False, workspace[1]))
        return out, _Vocabulary(corpus, workspace[0] if workspace is not None else None, cache)

    # -- completion -----------------------------------------------------------------------------------------
    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.propose(request, cancelled).text

    def propose(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Proposal:
        """The greedy completion, scored by the probability the model gives its first line: the product of
        each chosen token's share of its distribution (the evidence the engineer's own code holds for it)."""
        prefix, suffix, mode, language = request.prefix, request.suffix, request.mode, request.language
        # The file around the cursor is the cache; the typed part of a token is no evidence of anything.
        before = lexer.tokens(prefix[-CACHE_CHARS:])
        partial = lexer.open_token(prefix)
        if partial:
            before.pop()
        after = lexer.tokens(suffix[: CACHE_CHARS // 4])
        sources, vocab = self._sources(request, before, after)
        context = before[-MAX_ORDER:] or [BOUNDARY]
        out: list[str] = []
        limit = LINE_TOKENS if mode == "line" else BLOCK_TOKENS
        outer = blocks.signature_indent(prefix)
        # A body starts one step inside its signature. The commonest indentation after `) -> None:` in the
        # engineer's code is a method's, which put 10 of the n-gram's 95 bodies on rich (seed 0) under a
        # module-level function one step too deep; the first line break's indentation is set, not guessed.
        indent = _body_indent(prefix, partial, language) if mode == "block" else None
        score = 1.0
        first_line = True
        for step in range(limit):
            if cancelled is not None and cancelled():
                return NOTHING
            ids, probs = self._distribution(context, sources, vocab, ends=mode == "block")
            if not len(ids):
                break
            if step == 0 and partial:
                # The cursor may be inside a token: only tokens that extend what is typed can come next.
                dist = dict(zip(map(vocab.string, ids.tolist()), probs.tolist(), strict=True))
                fitting = [t for t in dist if t.startswith(partial)]
                choice = max(fitting, key=dist.__getitem__) if fitting else partial
                if indent is not None and indent.startswith(partial):
                    choice = indent  # a body's first line: at its indentation, however rare the evidence
                text = choice[len(partial) :]
                share = dist.get(choice, 0) / sum(dist[t] for t in fitting) if fitting else 0.0
            else:
                best = int(np.argmax(probs))  # the first of equals, as the order of counting has it
                choice = vocab.string(int(ids[best]))
                if choice == BOUNDARY:
                    break  # the body ends here, as the engineer's definitions end after such code
                text = choice
                share = float(probs[best]) / sum(probs.tolist())
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


# A language's indentation step where the file does not show one yet (its formatter's: PEP 8, gofmt).
_DEFAULT_UNIT = {"python": "    ", "go": "\t"}


def _body_indent(prefix: str, partial: str, language: str | None) -> str | None:
    """The line-break token that opens a body's first line after the signature that ends `prefix`, when the
    cursor is at that line break (`partial` is it, with any indentation typed so far) and the file or its
    language says the indentation step; else None (the engineer's evidence decides)."""
    if not partial or partial.strip() or "\n" not in partial:
        return None
    lines = prefix.split("\n")[:-1]
    indented = any(line[:1] in (" ", "\t") for line in lines)
    unit = blocks.indent_unit(prefix) if indented else _DEFAULT_UNIT.get(language or "")
    if unit is None:
        return None
    signature = next((line for line in reversed(lines) if line.strip()), "")
    return partial[: partial.index("\n") + 1] + signature[: blocks.indent_of(signature)] + unit


@dataclass(frozen=True)
class _Weighted:
    source: Source
    weight: float
    may_end: bool  # whether its boundary may be predicted: in the corpus it is the end of a definition
    skip: tuple[int, int] | None  # positions left out (the document's own file in the workspace)

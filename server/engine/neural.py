"""The double's own model: greedy fill-in-the-middle decoding with a key-value cache, stopped where the
completion ends (a line, a body, the model's end-of-text, or a degenerate loop), the cache kept from one
request to the next so that a keystroke feeds only the prompt tokens that changed."""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from codedouble.server.contract import prompt
from codedouble.server.engine import blocks, fim
from codedouble.server.engine.document import Request

LINE_TOKENS = 32
BLOCK_TOKENS = 160
# A completion that ends in the same text three times over is a loop, not code (`.plugins.plugins.plugins`).
REPEATS = 3
LONGEST_REPEAT = 40  # characters in the repeated unit
# Characters of the cursor's line a loop is looked for in. The run of a unit is followed back one character at a
# time and `before + text` was copied at every new token, so a long periodic line (a 1 MB `abab…` literal)
# cost seconds per completion; a run longer than this is counted as this long.
REPEAT_WINDOW = 4096
# Tokens of prompt at most. The window is the file before the cursor, so a longer budget is filled: on rich's
# held-out lines (all authors) 992 tokens instead of 512 gave the base +1 and the double +2 points of exact lines
# (200, seed 0), and doubled the model's cold p50 (127 -> 252 ms, fp32), past what the latency goal leaves on 2
# cores (README "The model's prompt: the file, not the definition").
PROMPT_LIMIT = 512
# How the weights run: "int8" quantises the Linear layers' weights to int8 and their activations per call
# (torch dynamic quantisation); "fp32" runs them as saved. Chosen by measurement (README "Serving the Llama
# base"): the same eval both ways, and the latency through the LSP pipe.
RUNTIMES = ("fp32", "int8")
RUNTIME = "int8"


def repetition_cut(before: str, text: str, document: tuple[str, ...] = ()) -> str | None:
    """`text` (a completion written after `before`) with its degenerate tail dropped, or None if it has none.

    Why: a small greedy model that falls into a loop stays in it (`self.plugins.plugins.plugins`,
    `ark.mark.mark`) until the token limit, and nothing else in the decoder stops it on one line. A tail is
    degenerate when the text ends in one unit three times in a row (five for a unit with a comma:
    `None, None, None, None` is code), the unit holds a letter (`)))`,
    `0, 0, 0, 0`, `../../../` and `# ----` are code) and reaches into the completion, and the document does not
    already hold the run (`.parent.parent.parent` an engineer wrote before is their style; `document` is the
    text around the cursor, in parts, so that a large file is not copied to be searched). One copy of the
    unit stays: the first one is usually what was meant."""
    whole = before[-REPEAT_WINDOW:] + text
    for period in range(2, min(LONGEST_REPEAT, len(whole) // REPEATS) + 1):
        unit = whole[-period:]
        needed = REPEATS + 2 if "," in unit else REPEATS  # a list of one item is code up to a point
        if whole[-needed * period :] != unit * needed or not any(c.isalpha() for c in unit):
            continue
        run = needed * period
        while run < len(whole) and whole[-run - 1] == whole[-run - 1 + period]:
            run += 1
        if len(text) < period or any(whole[-run:] in part for part in document):
            return None  # typed by the engineer, or their own pattern
        # The run starts wherever the loop did, so one copy may end in the separator: `items,` becomes `items`.
        return text[: max(len(text) - run + period, 0)].rstrip(", ")
    return None


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class Generated:
    text: str
    logprob: float  # of the kept tokens, summed
    tokens: int


class Neural:
    name = "model"
    description = "the double's model alone (fill-in-the-middle, greedy)"

    def __init__(self, artifact: Path, threads: int | None = None, runtime: str | None = None) -> None:
        from transformers.utils import logging as hf_logging

        runtime = runtime or RUNTIME
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)}")

        if threads:
            torch.set_num_threads(threads)
        hf_logging.disable_progress_bar()  # a weight-loading bar is noise in a server's log and eval's table
        hf_logging.set_verbosity_error()
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(artifact, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(artifact, local_files_only=True, dtype=torch.float32)
        self.model.eval()
        self.runtime = runtime
        if runtime == "int8":
            # The safetensors file stays the record; the quantised layers are made from it at load (under a
            # second). torch 2.13 marks torch.ao's eager quantisation deprecated in favour of torchao (not a
            # dependency); constraints.txt pins torch, and its warnings are noise in a server's log.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        config = self.model.config
        self.context = fim.context_of(config.to_dict())
        eos = self.model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        # Any of the prompt format's markers ends a completion: none of them is code.
        self.eos.update(int(self.tokenizer.convert_tokens_to_ids(t)) for t in prompt.SPECIAL_TOKENS)
        self.token_strings = [self.tokenizer.decode([i]) for i in range(len(self.tokenizer))]
        self.prompt_limit = min(self.context, PROMPT_LIMIT)  # a serving trade: prefill time against context
        self.reuse = True  # keep the key-value cache of the last prompt for the next request
        # One slot: (the token ids the cache holds, the cache). The server computes on one thread; a second
        # thread finding the slot taken computes from scratch, so the lock is held only to take or put it.
        self._slot: tuple[list[int], Any] | None = None
        self._slot_lock = threading.Lock()
        self._masks: dict[str, torch.Tensor] = {}
        self.last_reused = 0  # prompt tokens the last `generate` took from the kept cache (for tests, benchmarks)

    def clear(self) -> None:
        """Forget the kept key-value cache (the model or its weights changed)."""
        with self._slot_lock:
            self._slot = None

    def _take_slot(self) -> tuple[list[int], Any] | None:
        with self._slot_lock:
            slot, self._slot = self._slot, None
        return slot if self.reuse else None

    def _keep_slot(self, fed: list[int], cache: Any) -> None:
        if self.reuse and cache is not None:
            with self._slot_lock:
                self._slot = (fed, cache)

    def _cached_head(self, ids: list[int]) -> tuple[Any, list[int]]:
        """The kept cache cut to the longest common head of its prompt and `ids`, and that head (None and []
        when nothing is kept or shared); at least one token is left to feed again, for its logits."""
        slot = self._take_slot()
        past, fed = None, []
        if slot is not None:
            common = min(_common_prefix(slot[0], ids), len(ids) - 1)
            if common > 0:
                past, fed = slot[1], slot[0][:common]
                past.crop(common - past.get_seq_length())
        self.last_reused = len(fed)
        return past, fed

    def _encode(self, text: str) -> list[int]:
        return fim.encode(self.tokenizer, text)

    def prompt_ids(self, request: Request, new_tokens: int) -> tuple[list[int], str]:
        """The FIM prompt cut to fit the model's context with room for `new_tokens`, and the healed text
        (fim.prompt_ids)."""
        return fim.prompt_ids(self.tokenizer, request, self.budget(new_tokens))

    def budget(self, new_tokens: int) -> int:
        """Prompt tokens allowed with `new_tokens` to generate: the context less them, at most `prompt_limit`."""
        return min(self.context - new_tokens, self.prompt_limit)

    def _new_tokens(self, request: Request) -> int:
        # A model with a short context keeps at least half of it for the prompt.
        return min(LINE_TOKENS if request.mode == "line" else BLOCK_TOKENS, self.context // 2)

    def _extending(self, healed: str) -> torch.Tensor:
        """A mask of the tokens that start with `healed`: the first token of a healed completion."""
        mask = self._masks.get(healed)
        if mask is None:
            if len(self._masks) > 256:
                self._masks.clear()
            mask = self._masks[healed] = torch.tensor([t.startswith(healed) for t in self.token_strings])
        return mask

    @torch.inference_mode()
    def generate(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Generated:
        limit = self._new_tokens(request)
        ids, healed = self.prompt_ids(request, limit)
        outer = blocks.signature_indent(request.prefix)
        line_before = request.prefix[request.prefix.rfind("\n") + 1 :]
        past, fed = self._cached_head(ids)
        inputs = torch.tensor([ids[len(fed) :]])
        out: list[int] = []
        logprob = 0.0
        text = ""
        for step in range(limit):
            if cancelled is not None and cancelled():
                self._keep_slot(fed, past)
                return Generated("", logprob, len(out))
            # Only the last position's logits are read: the vocabulary projection of the rest is skipped.
            result = self.model(input_ids=inputs, cache=past, use_cache=True, logits_to_keep=1)
            past = result.cache
            fed = fed + inputs[0].tolist()
            logits = result.logits[0, -1].float()
            if step == 0 and healed:
                logits = logits.masked_fill(~self._extending(healed), -math.inf)
            token = int(logits.argmax())
            if token in self.eos:
                break
            logprob += float(torch.log_softmax(logits, -1)[token])
            out.append(token)
            written = len(text)
            text = self.tokenizer.decode(out).removeprefix(healed)
            if request.mode == "line" and "\n" in text:
                break
            cut = repetition_cut(line_before, text, (request.prefix, request.suffix))
            if cut is None and request.mode == "block" and "\n" in text[written:]:  # a line was finished
                cut = blocks.line_loop_cut(text, (request.prefix, request.suffix))
            if cut is not None:
                text = cut
                break
            if (
                request.mode == "block"
                and "\n" in text
                and len(blocks.cut_block(text, request.language, outer)) < len(text.rstrip())
            ):
                break
            inputs = torch.tensor([[token]])
        self._keep_slot(fed, past)
        kept = (
            blocks.cut_line(text) if request.mode == "line" else blocks.body_end(request.prefix, text, request.language)
        )
        return Generated(kept, logprob, len(out))

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.generate(request, cancelled).text

    @torch.inference_mode()
    def confirm(self, request: Request, line: str) -> float | None:
        """The probability `generate` would give `line` when its greedy completion is exactly that line (then
        an end of line or of text); None when it would write something else. One forward pass over the line's
        tokens instead of a decoding step per token (`benchmarks/lsp_latency.py` on rich's double, agreement
        checked this way instead of by generating: p50 54.7 → 32.0 ms, p95 154.0 → 92.0 ms). A line the
        tokenizer splits otherwise than the greedy steps would is not confirmed (never the reverse)."""
        limit = self._new_tokens(request)
        ids, healed = self.prompt_ids(request, limit)
        line = line.rstrip()
        tokens = self._encode(healed + line)
        if not line or "\n" in line or not tokens or len(tokens) >= limit:
            return None
        if self.tokenizer.decode(tokens).removeprefix(healed) != line:
            return None
        past, fed = self._cached_head(ids)
        inputs = torch.tensor([ids[len(fed) :] + tokens])
        result = self.model(input_ids=inputs, cache=past, use_cache=True, logits_to_keep=len(tokens) + 1)
        past = result.cache
        past.crop(-len(tokens))  # the prompt stays cached for the next keystroke, the line does not
        self._keep_slot(ids, past)
        logits = result.logits[0].float()
        if healed:
            logits[0] = logits[0].masked_fill(~self._extending(healed), -math.inf)
        chosen = logits.argmax(-1).tolist()
        if chosen[: len(tokens)] != tokens:
            return None
        after = chosen[len(tokens)]
        ending = self.token_strings[after]
        if after not in self.eos and not ("\n" in ending and not ending.split("\n", 1)[0].strip()):
            return None  # greedy decoding would go on writing this line
        logp = torch.log_softmax(logits, -1)
        total = float(logp[torch.arange(len(tokens)), torch.tensor(tokens)].sum())
        if after not in self.eos:
            total += float(logp[len(tokens), after])  # `generate` counts the token that ends the line
        return math.exp(total)

    @torch.inference_mode()
    def continuation(
        self, ids: list[int], limit: int, cancelled: Callable[[], bool] | None = None, one_line: bool = False
    ) -> Generated:
        """Greedy text after the prompt `ids` up to an end-of-text or format marker (or the end of the first
        line), `limit` tokens at most: the objectives that are not fill-in-the-middle (a commit message's
        summary). Its own cache: the FIM slot kept for the next keystroke stays as it was."""
        past, inputs = None, torch.tensor([ids])
        out: list[int] = []
        logprob = 0.0
        for _ in range(limit):
            if cancelled is not None and cancelled():
                break
            result = self.model(input_ids=inputs, cache=past, use_cache=True, logits_to_keep=1)
            past = result.cache
            logits = result.logits[0, -1].float()
            token = int(logits.argmax())
            if token in self.eos:
                break
            logprob += float(torch.log_softmax(logits, -1)[token])
            out.append(token)
            text = self.tokenizer.decode(out)
            if (one_line and "\n" in text.lstrip("\n")) or repetition_cut("", text) is not None:
                break
            inputs = torch.tensor([[token]])
        text = self.tokenizer.decode(out)
        cut = repetition_cut("", text)
        return Generated(text if cut is None else cut, logprob, len(out))

    @torch.inference_mode()
    def score(self, request: Request, candidates: list[str]) -> list[float]:
        """Mean log-probability per token the model gives each candidate as the completion at the cursor:
        the prompt runs once, then all candidates in one batch on its key-value cache."""
        limit = self._new_tokens(request)
        scores = [-math.inf] * len(candidates)
        if not any(candidates):
            return scores
        prompt_ids, healed = self.prompt_ids(request, limit)
        prompt_result = self.model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
        # A candidate is scored as the text after the healed token, its tokens as the model would write them.
        encoded = [self._encode(healed + text)[:limit] if text else [] for text in candidates]
        rows = [i for i, ids in enumerate(encoded) if ids]
        cache = prompt_result.cache
        cache.batch_repeat_interleave(len(rows))
        width = max(len(encoded[i]) for i in rows)
        # Right padding: a causal model's logits at a position never see the padding after it.
        batch = torch.tensor([encoded[i] + [0] * (width - len(encoded[i])) for i in rows])
        tail = self.model(input_ids=batch, cache=cache, use_cache=True).logits.float()
        first = prompt_result.logits[0, -1].float().expand(len(rows), 1, -1)
        logp = torch.log_softmax(torch.cat([first, tail[:, :-1]], dim=1), -1)
        for row, i in enumerate(rows):
            ids = torch.tensor(encoded[i])
            scores[i] = float(logp[row, torch.arange(len(ids)), ids].mean())
        return scores

"""The double's own model: greedy fill-in-the-middle decoding with a key-value cache, stopped where the
completion ends (a line, a body, or the model's end-of-text)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from codedouble.server.contract import prompt
from codedouble.server.engine import blocks
from codedouble.server.engine.document import Request, window

LINE_TOKENS = 32
BLOCK_TOKENS = 160


@dataclass(frozen=True)
class Generated:
    text: str
    logprob: float  # of the kept tokens, summed
    tokens: int


class Neural:
    name = "model"
    description = "the double's model alone (fill-in-the-middle, greedy)"

    def __init__(self, artifact: Path, threads: int | None = None) -> None:
        from transformers.utils import logging as hf_logging

        if threads:
            torch.set_num_threads(threads)
        hf_logging.disable_progress_bar()  # a weight-loading bar is noise in a server's log and eval's table
        hf_logging.set_verbosity_error()
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(artifact)
        self.model = AutoModelForCausalLM.from_pretrained(artifact, local_files_only=True, dtype=torch.float32)
        self.model.eval()
        config = self.model.config
        self.context = int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 512))
        eos = self.model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        # Any of the prompt format's markers ends a completion: none of them is code.
        self.eos.update(int(self.tokenizer.convert_tokens_to_ids(t)) for t in prompt.SPECIAL_TOKENS)
        self.token_strings = [self.tokenizer.decode([i]) for i in range(len(self.tokenizer))]

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, request: Request, new_tokens: int) -> tuple[list[int], str]:
        """The FIM prompt cut to fit the model's context with room for `new_tokens` (a quarter at most for the
        preamble, a quarter for the text after the cursor, the rest for the text before it), and the healed
        text: the prefix's last token, taken off so that the completion may pick a longer token that starts
        with it (the cursor mid-word sits inside a token the model knows whole)."""
        ctx, before, after = window(request)
        budget = self.context - new_tokens
        preamble = self._encode(
            prompt.fim_head(ctx, "").removesuffix(f"{prompt.FIM_PREFIX}{prompt.FIM_SUFFIX}{prompt.FIM_MIDDLE}")
        )
        preamble = preamble[: budget // 4]
        # Tokenising a long text only to drop most of it is slow: characters are cut first (≥ 1 per token).
        suffix = self._encode(after[:budget])[: budget // 4]
        room = budget - len(preamble) - len(suffix) - 3
        prefix = self._encode(before[-room * 4 :])[-room:] if room > 0 else []
        healed = self.tokenizer.decode(prefix[-1:])
        special = self.tokenizer.convert_tokens_to_ids
        return [
            *preamble,
            special(prompt.FIM_PREFIX),
            special(prompt.FIM_SUFFIX),
            *suffix,
            special(prompt.FIM_MIDDLE),
            *prefix[:-1],
        ], healed

    def _new_tokens(self, request: Request) -> int:
        # A model with a short context keeps at least half of it for the prompt.
        return min(LINE_TOKENS if request.mode == "line" else BLOCK_TOKENS, self.context // 2)

    def _extending(self, healed: str) -> torch.Tensor:
        """A mask of the tokens that start with `healed`: the first token of a healed completion."""
        return torch.tensor([t.startswith(healed) for t in self.token_strings])

    @torch.inference_mode()
    def generate(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Generated:
        limit = self._new_tokens(request)
        ids, healed = self.prompt_ids(request, limit)
        outer = blocks.signature_indent(request.prefix)
        past = None
        inputs = torch.tensor([ids])
        out: list[int] = []
        logprob = 0.0
        text = ""
        for step in range(limit):
            if cancelled is not None and cancelled():
                return Generated("", logprob, len(out))
            result = self.model(input_ids=inputs, past_key_values=past, use_cache=True)
            past = result.past_key_values
            logits = result.logits[0, -1].float()
            if step == 0 and healed:
                logits = logits.masked_fill(~self._extending(healed), -math.inf)
            token = int(logits.argmax())
            if token in self.eos:
                break
            logprob += float(torch.log_softmax(logits, -1)[token])
            out.append(token)
            text = self.tokenizer.decode(out).removeprefix(healed)
            if request.mode == "line" and "\n" in text:
                break
            if (
                request.mode == "block"
                and "\n" in text
                and len(blocks.cut_block(text, request.language, outer)) < len(text.rstrip())
            ):
                break
            inputs = torch.tensor([[token]])
        kept = (
            blocks.cut_line(text) if request.mode == "line" else blocks.body_end(request.prefix, text, request.language)
        )
        return Generated(kept, logprob, len(out))

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.generate(request, cancelled).text

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
        cache = prompt_result.past_key_values
        cache.batch_repeat_interleave(len(rows))
        width = max(len(encoded[i]) for i in rows)
        # Right padding: a causal model's logits at a position never see the padding after it.
        batch = torch.tensor([encoded[i] + [0] * (width - len(encoded[i])) for i in rows])
        tail = self.model(input_ids=batch, past_key_values=cache, use_cache=True).logits.float()
        first = prompt_result.logits[0, -1].float().expand(len(rows), 1, -1)
        logp = torch.log_softmax(torch.cat([first, tail[:, :-1]], dim=1), -1)
        for row, i in enumerate(rows):
            ids = torch.tensor(encoded[i])
            scores[i] = float(logp[row, torch.arange(len(ids)), ids].mean())
        return scores

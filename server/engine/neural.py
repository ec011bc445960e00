"""The double's own model: greedy fill-in-the-middle decoding with a key-value cache, stopped where the
completion ends (a line, a body, or the model's end-of-text)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from codedouble.server.engine import blocks
from codedouble.server.engine.document import Request, window
from codedouble.trainer import prompt

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
        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(artifact)
        self.model = AutoModelForCausalLM.from_pretrained(artifact, local_files_only=True, dtype=torch.float32)
        self.model.eval()
        config = self.model.config
        self.context = int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 512))
        eos = self.model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.eos.add(int(self.tokenizer.convert_tokens_to_ids(prompt.EOS)))

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, request: Request, new_tokens: int) -> list[int]:
        """The FIM prompt, cut to fit the model's context with room for `new_tokens`: a quarter at most for
        the preamble, a quarter for the text after the cursor, the rest for the text before it."""
        ctx, before, after = window(request)
        budget = self.context - new_tokens
        preamble = self._encode(prompt.fim_prompt(ctx, "", "").removesuffix(f"{prompt.FIM_PREFIX}{prompt.FIM_SUFFIX}{prompt.FIM_MIDDLE}"))
        preamble = preamble[: budget // 4]
        # Tokenising a long text only to drop most of it is slow: characters are cut first (≥ 1 per token).
        suffix = self._encode(after[: budget])[: budget // 4]
        room = budget - len(preamble) - len(suffix) - 3
        prefix = self._encode(before[-room * 4 :])[-room:] if room > 0 else []
        special = self.tokenizer.convert_tokens_to_ids
        return [*preamble, special(prompt.FIM_PREFIX), *prefix, special(prompt.FIM_SUFFIX), *suffix, special(prompt.FIM_MIDDLE)]

    @torch.inference_mode()
    def generate(self, request: Request) -> Generated:
        limit = LINE_TOKENS if request.mode == "line" else BLOCK_TOKENS
        ids = self.prompt_ids(request, limit)
        outer = blocks.signature_indent(request.prefix)
        past = None
        inputs = torch.tensor([ids])
        out: list[int] = []
        logprob = 0.0
        text = ""
        for _ in range(limit):
            result = self.model(input_ids=inputs, past_key_values=past, use_cache=True)
            past = result.past_key_values
            logits = result.logits[0, -1].float()
            token = int(logits.argmax())
            if token in self.eos:
                break
            logprob += float(torch.log_softmax(logits, -1)[token])
            out.append(token)
            text = self.tokenizer.decode(out)
            if request.mode == "line" and "\n" in text:
                break
            if request.mode == "block" and "\n" in text and len(blocks.cut_block(text, request.language, outer)) < len(text.rstrip()):
                break
            inputs = torch.tensor([[token]])
        kept = blocks.cut_line(text) if request.mode == "line" else blocks.cut_block(text, request.language, outer)
        return Generated(kept, logprob, len(out))

    def complete(self, request: Request) -> str:
        return self.generate(request).text

    @torch.inference_mode()
    def score(self, request: Request, candidates: list[str]) -> list[float]:
        """Mean log-probability per token the model gives each candidate as the completion at the cursor."""
        ids = self.prompt_ids(request, LINE_TOKENS if request.mode == "line" else BLOCK_TOKENS)
        result = self.model(input_ids=torch.tensor([ids]), use_cache=True)
        scores: list[float] = []
        for text in candidates:
            cand = self._encode(text)[: LINE_TOKENS if request.mode == "line" else BLOCK_TOKENS]
            if not cand:
                scores.append(-math.inf)
                continue
            past = result.past_key_values
            tail = self.model(input_ids=torch.tensor([cand]), past_key_values=_copy(past), use_cache=True).logits[0].float()
            logits = torch.cat([result.logits[0, -1:].float(), tail[:-1]])
            logp = torch.log_softmax(logits, -1)[torch.arange(len(cand)), torch.tensor(cand)]
            scores.append(float(logp.mean()))
        return scores


def _copy(past: object) -> object:
    # A DynamicCache grows in place when it is extended: each candidate needs the prompt's cache as it was.
    import copy

    return copy.deepcopy(past)

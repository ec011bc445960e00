"""The fill-in-the-middle prompt as token ids, cut to a token budget: one cut for the double's own model here
(neural.py) and for an engine elsewhere (remote.py sends the same ids as text), so that a double served by
vLLM or llama.cpp is asked what it was tuned and measured with."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from transformers import PreTrainedTokenizerFast

from codedouble.server.contract import prompt
from codedouble.server.engine.document import Request, window

# Tokens of the prompt kept for the cursor's line when the text before it must be cut (in steps of this size):
# the cut then depends only on the lines above, so it stays put while the line is typed and the key-value
# cache of everything before the cursor's line is reused from keystroke to keystroke.
LINE_RESERVE = 64


def context_of(config: Mapping[str, Any]) -> int:
    """The tokens a model attends to, from its Hugging Face config (GPT-2 and Llama name it differently)."""
    return int(config.get("n_positions") or config.get("max_position_embeddings") or 512)


def encode(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_ids(tokenizer: PreTrainedTokenizerFast, request: Request, budget: int) -> tuple[list[int], str]:
    """The FIM prompt cut to `budget` tokens (a quarter at most for the preamble, a quarter for the text after
    the cursor, the rest for the text before it), and the healed text: the prefix's last token, taken off so
    that the completion may pick a longer token that starts with it (the cursor mid-word sits inside a token
    the model knows whole)."""
    ctx, before, after = window(request)
    preamble = encode(
        tokenizer, prompt.fim_head(ctx, "").removesuffix(f"{prompt.FIM_PREFIX}{prompt.FIM_SUFFIX}{prompt.FIM_MIDDLE}")
    )
    preamble = preamble[: budget // 4]
    # Tokenising a long text only to drop most of it is slow: characters are cut first (≥ 1 per token).
    suffix = encode(tokenizer, after[:budget])[: budget // 4]
    room = budget - len(preamble) - len(suffix) - 3
    prefix = _prefix(tokenizer, before, room)
    healed = tokenizer.decode(prefix[-1:])
    special = tokenizer.convert_tokens_to_ids
    return [
        *preamble,
        special(prompt.FIM_PREFIX),
        special(prompt.FIM_SUFFIX),
        *suffix,
        special(prompt.FIM_MIDDLE),
        *prefix[:-1],
    ], healed


def _prefix(tokenizer: PreTrainedTokenizerFast, before: str, room: int) -> list[int]:
    """The tokens of the text before the cursor, at most `room`, cut at the start of a line chosen from the
    lines above the cursor's alone (with LINE_RESERVE tokens, or a multiple, left for the cursor's line):
    typing on a line leaves the cut, and so the cached prompt before the line, where it was."""
    if room <= 0:
        return []
    line_start = before.rfind("\n") + 1
    line = encode(tokenizer, before[line_start:][-room * 4 :])
    reserve = LINE_RESERVE * max(1, math.ceil(len(line) / LINE_RESERVE))
    allowed = room - reserve
    if allowed <= 0:
        return encode(tokenizer, before[-room * 4 :])[-room:]
    head_start = max(0, line_start - allowed * 4)
    head = before[head_start:line_start]
    offsets = tokenizer(head, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    start = 0 if len(offsets) <= allowed else offsets[len(offsets) - allowed][0]
    if start > 0 or head_start > 0:
        start = start if before[head_start + start - 1] == "\n" else head.find("\n", start) + 1 or len(head)
    return encode(tokenizer, before[head_start + start :])[-room:]


def prompt_text(tokenizer: PreTrainedTokenizerFast, request: Request, budget: int) -> tuple[str, str]:
    """The same prompt as text for an engine that tokenises it again (byte-level BPE decodes to exactly the text
    it encoded), and the healed text the engine's answer must start with: the engine cannot be told to extend
    the prefix's last token, so it is left off and the answer checked instead (remote.py). Measured on 200
    mid-line cursors in rich's files, the shipped base on llama-server: next-line EM 6.5 % with the healed token
    in the prompt, 18.0 % without it, against 18.5 % for the local model's constrained first token."""
    ids, healed = prompt_ids(tokenizer, request, budget)
    return tokenizer.decode(ids, clean_up_tokenization_spaces=False), healed

"""`codedouble base score`: bits per byte of any model (a base or a double) on a corpus's held-out files.

The same measure as the base's manifest (pretrain.py step 4): every held-out file (one in VALIDATION_EVERY, by
the hash of its path, so never trained on by a base pretrained on the same sources) as plain next-token text,
every token counted once in consecutive blocks. A double fine-tuned on one engineer's history should not score
worse here than the base it came from: that is how "the personal fine-tune adds, not destroys" is checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.base import corpus
from codedouble.trainer.base.pretrain import held_out
from codedouble.trainer.base.texts import plain_bytes, plain_texts
from codedouble.trainer.training import loop


class ScoreError(CodedoubleError):
    """A model or corpus that cannot be scored."""


@dataclass(frozen=True)
class Score:
    model: str
    bits_per_byte: float
    nats_per_token: float
    tokens: int
    bytes: int


def held_out_texts(
    corpus_dir: Path, max_bytes: int | None = None, languages: frozenset[str] = frozenset()
) -> list[str]:
    """The held-out files' plain texts, in corpus order, up to about `max_bytes` of code (all when None), of
    `languages` only when given."""
    texts: list[str] = []
    size = 0
    for entry in corpus.read_files(corpus_dir):
        if not held_out(entry["path"]) or (languages and entry["language"] not in languages):
            continue
        pieces = plain_texts(entry["path"], entry["text"])
        texts.extend(pieces)
        size += plain_bytes(pieces)
        if max_bytes is not None and size >= max_bytes:
            break
    if not texts:
        only = f" in {', '.join(sorted(languages))}" if languages else ""
        raise ScoreError(f"{corpus_dir} has no held-out file{only} to score on (one in 100 by path hash)")
    return texts


def score(model_dir: Path, texts: list[str], block: int = 1024, batch: int = 8) -> Score:
    """`model_dir`'s bits per byte on `texts` (as `held_out_texts` gives them), with its own tokenizer."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar per model is noise between the rows
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ScoreError(f"{model_dir} is not a model this can score: {exc}") from exc
    context = int(getattr(model.config, "max_position_embeddings", block) or block)
    block = min(block, context)
    stream = loop.token_stream(tokenizer, texts)
    if len(stream) <= block:
        raise ScoreError(f"the held-out text is {len(stream)} tokens: too little for one block of {block}")
    with torch.no_grad():
        nats = loop.stream_loss(model, stream, block, batch, torch.device("cpu"))
    # stream_loss counts whole blocks only: scale bytes to the tokens it counted, so short tails don't skew.
    counted = len(stream) // block * block
    size = plain_bytes(texts) * counted / len(stream)
    return Score(str(model_dir), nats * counted / size / math.log(2), nats, counted, round(size))

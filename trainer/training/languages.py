"""Which model answers in which language: the double where it learned the engineer's code, the base elsewhere.

A fine-tune on a history in one language forgets the others: on rich (Python only), the default double completes
14 of `benchmarks/idioms.py`'s 48 everyday lines against the base's 21, losing Go, JavaScript, Rust and Java
lines it had right (`import "fmt"`, `defer f.Close()`, `catch (err) {`), and bits per byte on held-out Go,
Rust, JavaScript and TypeScript rise from 0.902 to 1.066 (README "The Llama base on rich"). Its training never
had a line of those languages to learn from, so the base, which the server can load beside it, answers there.

Where the history has the language, the evidence decides: the base and the double are scored on the same
validation examples of each language (the engineer's newest training commits, never fitted), and the double
answers where its loss is lower. Where the validation commits have none of it, the share decides: a language
of a few records among thousands (this repository: 12 Go records of 3,763, test fixtures) was a block in
hundreds of the fine-tune's, too little to learn from and not too little to forget. The manifest keeps the
figures (`languages`), so the choice can be read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from codedouble.server.engine import routing
from codedouble.trainer.mining.records import ChangeRecord
from codedouble.trainer.training import loop
from codedouble.trainer.training.examples import ExampleMix, examples

MANIFEST_KEY = routing.KEY  # the server reads it: server/engine/routing.py
# Validation blocks scored per language and model: few enough to cost seconds on a CPU. The gaps measured between
# the base and its fine-tune on the engineer's own language were over a nat per token (rich 2.65 → 1.36, this
# repository 3.36 → 2.08); how far the mean of 32 blocks moves between samples was not measured.
MAX_BLOCKS = 32
# Without validation text in a language, the double answers in it when it holds at least this share of the
# training records. A judgement, not a measurement: no history at hand had validation text in a language this
# rare, and the one measured case (none of the language at all) lost 7 of 16 everyday lines to forgetting.
MIN_SHARE = 0.05


def validation_streams(
    records: Iterable[ChangeRecord], tokenizer: PreTrainedTokenizerBase, mix: ExampleMix, seed: int, block: int
) -> dict[str, torch.Tensor]:
    """Each language's validation examples as one token stream, cut to `MAX_BLOCKS` blocks; languages with
    less than one block of them left out (no evidence either way)."""
    by_language: dict[str, list[ChangeRecord]] = defaultdict(list)
    for record in records:
        by_language[record.language].append(record)
    streams = {}
    for language, found in sorted(by_language.items()):
        stream = loop.token_stream(tokenizer, examples(found, mix, seed))[: MAX_BLOCKS * block]
        if len(stream) >= block:
            streams[language] = stream
    return streams


def losses(
    model: torch.nn.Module, streams: dict[str, torch.Tensor], block: int, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Mean loss (nats per token) of `model` on each language's stream."""
    return {
        language: loop.stream_loss(model, stream, block, batch_size, device) for language, stream in streams.items()
    }


def choose(
    trained: Counter[str], base_losses: dict[str, float], double_losses: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """The manifest entry: per language the double trained on, its records, both losses where measured, and who
    answers (`served_by`, and `by`: what decided). Languages absent here are the base's."""
    total = sum(trained.values())
    out: dict[str, dict[str, Any]] = {}
    for language, count in sorted(trained.items()):
        entry: dict[str, Any] = {"records": count}
        if language in base_losses and language in double_losses:
            entry["validation_loss"] = {
                "base": round(base_losses[language], 4),
                "double": round(double_losses[language], 4),
            }
            better = double_losses[language] < base_losses[language]
            entry["by"] = "validation loss"
        else:
            better = count >= MIN_SHARE * total
            entry["by"] = "share of records"
        entry["served_by"] = "double" if better else "base"
        out[language] = entry
    return out

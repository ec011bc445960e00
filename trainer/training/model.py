"""The double's model: a small GPT-2-style decoder trained from scratch, or a local checkpoint with LoRA."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from codedouble.server.contract import prompt
from codedouble.server.contract.errors import CodedoubleError


class BaseModelError(CodedoubleError):
    pass


@dataclass(frozen=True)
class ModelSize:
    """Sized for 2 CPU cores: a few million parameters train at a few thousand tokens/s there."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 192
    context: int = 512


def from_scratch(size: ModelSize, vocab_size: int, eos_id: int) -> PreTrainedModel:
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=size.context,
        n_embd=size.n_embd,
        n_layer=size.n_layer,
        n_head=size.n_head,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


def load_base(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A local Hugging Face causal-LM checkpoint and its tokenizer, with the prompt format's tokens added."""
    if not (path / "config.json").is_file():
        raise BaseModelError(f"--base {path}: not a Hugging Face checkpoint (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except Exception as exc:  # transformers signals a bad checkpoint with many exception types; all mean the same
        raise BaseModelError(
            f"--base {path}: not a causal language model checkpoint this transformers can load ({exc})"
        ) from exc
    missing = [t for t in prompt.SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if tokenizer.eos_token is None:
        tokenizer.eos_token = prompt.EOS
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    embeddings = model.get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Embedding)
    if len(tokenizer) > embeddings.num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return model, tokenizer


def with_lora(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rank: int) -> Any:
    """Wrap `model` in a LoRA adapter; the prompt format's token embeddings train too (they are new)."""
    from peft import LoraConfig, get_peft_model

    new_tokens = [int(tokenizer.convert_tokens_to_ids(t)) for t in prompt.SPECIAL_TOKENS]  # type: ignore[arg-type]
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules="all-linear",
        trainable_token_indices=new_tokens,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)  # a PeftModel: trains like the model, merge_and_unload() to export


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""The double's model: a small Llama-architecture decoder trained from scratch, or a local checkpoint (the
shipped base, or any causal LM) fine-tuned in full or with LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from codedouble.server.contract import prompt
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.training.sizes import HEAD_DIM, ModelSize

__all__ = ["HEAD_DIM", "ModelSize", "BaseModelError", "from_scratch", "load_base", "parameter_count", "with_lora"]


class BaseModelError(CodedoubleError):
    pass


def llama_config(size: ModelSize, vocab_size: int, eos_id: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=size.hidden,
        intermediate_size=size.mlp,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads // size.query_groups,
        head_dim=HEAD_DIM,
        hidden_act="silu",  # with the gate projection: SwiGLU
        max_position_embeddings=size.context,
        rms_norm_eps=1e-5,  # Llama 1/2's value; small models in bf16 train steadily with it
        # 10,000 (the original RoPE base) already separates positions far beyond a context of 1024; larger
        # bases are for stretching a context afterwards.
        rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,  # pretraining sees each token a few times at most: dropout only slows it
        tie_word_embeddings=True,  # at 8 k tokens x 256 wide the embedding is a quarter of a small model
        initializer_range=0.02,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def from_scratch(size: ModelSize, vocab_size: int, eos_id: int) -> PreTrainedModel:
    return LlamaForCausalLM(llama_config(size, vocab_size, eos_id))


def load_base(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[str]]:
    """A local Hugging Face causal-LM checkpoint and its tokenizer, with the prompt format's tokens added; and
    which of them were added (new to the base)."""
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
    return model, tokenizer, missing


def with_lora(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rank: int, added: list[str]) -> Any:
    """Wrap `model` in a LoRA adapter; the embeddings of the prompt format's tokens the base lacked (`added`)
    train too, since they are new. Tokens the base already knows keep their embeddings: then the double is
    exactly base + LoRA on the linear projections, the adapter engines load (`export --format peft`)."""
    from peft import LoraConfig, get_peft_model

    new_tokens = [int(tokenizer.convert_tokens_to_ids(t)) for t in added]  # type: ignore[arg-type]
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules="all-linear",  # on a Llama: q, k, v, o, gate, up, down (peft leaves the output layer out)
        trainable_token_indices=new_tokens or None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)  # a PeftModel: trains like the model, merge_and_unload() to export


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

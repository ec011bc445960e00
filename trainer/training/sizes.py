"""How big a model is, by its shape alone (no torch here: the command line lists the sizes without loading it)."""

from __future__ import annotations

from dataclasses import dataclass

# 64 is the head width every engine's fused attention kernels are built and tuned for (llama.cpp, vLLM,
# CTranslate2, PyTorch's flash/efficient SDPA); the number of heads follows from the width.
HEAD_DIM = 64
# The SwiGLU block's width is rounded up to this multiple, as Llama's reference code does: matrix shapes
# that are multiples of 64 tile evenly on tensor cores and CPU vector units alike.
MULTIPLE_OF = 64


def swiglu_width(hidden: int) -> int:
    """8/3 of `hidden`, rounded up to a multiple of 64: SwiGLU's three matrices then cost what a 4x GELU MLP's
    two do (3 * 8/3 = 2 * 4), the trade the Llama and PaLM papers made."""
    return MULTIPLE_OF * -(-(8 * hidden) // (3 * MULTIPLE_OF))


@dataclass(frozen=True)
class ModelSize:
    """A Llama-architecture decoder (RoPE, RMSNorm, SwiGLU, no biases, tied embeddings): the architecture every
    serving engine (llama.cpp, vLLM, CTranslate2, ONNX Runtime) runs and loads LoRA adapters for, which GPT-2 is
    not. The default (2.6 M parameters at 4,096 tokens: `codedouble train --from-scratch`) trains at a few
    thousand tokens/s on 2 CPU cores; the base's sizes are named in trainer/base/sizes.py."""

    layers: int = 4
    hidden: int = 192  # a multiple of HEAD_DIM: hidden / 64 attention heads
    context: int = 1024  # RoPE has no position table, so the context costs no parameters, only attention
    intermediate: int = 0  # the SwiGLU width; 0 means swiglu_width(hidden)
    # Query heads per key/value head (grouped-query attention). 1: at these widths (4-8 heads, a context of
    # 1024) the key/value cache is a few MB and prefill, not cache traffic, is what a keystroke waits for.
    query_groups: int = 1

    def __post_init__(self) -> None:
        if self.hidden % HEAD_DIM or self.hidden <= 0:
            raise ValueError(f"hidden size {self.hidden} is not a positive multiple of the head width {HEAD_DIM}")
        if self.heads % self.query_groups:
            raise ValueError(f"{self.heads} heads do not split into groups of {self.query_groups}")

    @property
    def heads(self) -> int:
        return self.hidden // HEAD_DIM

    @property
    def mlp(self) -> int:
        return self.intermediate or swiglu_width(self.hidden)

    def parameters(self, vocab_size: int) -> int:
        """What `from_scratch` builds, counted without building it: tied embeddings once, two RMSNorm weights a
        layer and a final one, no biases."""
        kv = self.hidden // self.query_groups
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * kv
        block = attention + 3 * self.hidden * self.mlp + 2 * self.hidden
        return vocab_size * self.hidden + self.layers * block + self.hidden

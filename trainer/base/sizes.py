"""The base's sizes and batch, by name: no torch here, so that the command line can list them cheaply."""

from __future__ import annotations

from codedouble.trainer.training.sizes import HEAD_DIM, ModelSize

# The base's sizes, by name: Llama-architecture decoders (trainer/training/model.py) with heads 64 wide and a
# SwiGLU width of 8/3 x hidden rounded up to 64. Parameters at 8,192 tokens (tests/test_base.py computes them);
# bf16 weights take 2 bytes each (the shipped file must stay <= 64 MiB). Which one ships is decided by CPU
# latency (README's "The Llama sizes"): change DEFAULT_SIZE, or pass --size.
SIZES: dict[str, ModelSize] = {
    "llama-8m": ModelSize(layers=8, hidden=256, context=1024),  # 8.52 M, 17 MB in bf16
    "llama-16m": ModelSize(layers=8, hidden=384, context=1024),  # 17.31 M, 35 MB
    "llama-30m": ModelSize(layers=8, hidden=512, context=1024),  # 29.89 M, 60 MB
    # The pipeline's rehearsal on CPU (tests, `make base-gpu-rehearsal`): never a base to ship.
    "llama-toy": ModelSize(layers=2, hidden=HEAD_DIM, context=256),
}
DEFAULT_SIZE = "llama-16m"

CPU_BATCH = 16  # sequences per step on a CPU, where a bigger batch only makes each step slower
# On a GPU the batch is the largest that fits, up to this many tokens a step: ~0.25 M, the order of batch
# that models of this size are trained with (GPT-3's smallest used 0.5 M), a thousand steps in a few minutes.
MAX_TOKENS_PER_STEP = 262_144

"""Training speed of the default double on this machine: tokens/s, FLOPs per token, and what that means.

    python benchmarks/train_bench.py [--steps N] [--batch-size B] [--block-size T]

Times optimizer steps of the default model (codedouble.trainer.training.model.ModelSize()) on random
tokens, after a few warm-up steps, and prints the median step time against a baseline measured in the
same run: the forward pass alone. FLOPs per token use the usual estimate 6·N + 12·L·d·T for training
(N non-embedding parameters, L layers, d width, T context).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from codedouble.trainer.training.model import ModelSize, from_scratch, parameter_count
from codedouble.trainer.training.tokenizer import DEFAULT_VOCAB_SIZE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=256)
    args = parser.parse_args()

    size = ModelSize()
    model = from_scratch(size, DEFAULT_VOCAB_SIZE, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    n_params = parameter_count(model)
    embedding = model.get_input_embeddings().weight.numel()  # RoPE: no position table
    flops_per_token = 6 * (n_params - embedding) + 12 * size.layers * size.hidden * args.block_size
    x = torch.randint(0, DEFAULT_VOCAB_SIZE, (args.batch_size, args.block_size))
    tokens = args.batch_size * args.block_size

    def train_step() -> None:
        loss = model(input_ids=x, labels=x).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def forward_only() -> None:
        with torch.no_grad():
            model(input_ids=x)

    timings: dict[str, list[float]] = {"train step": [], "forward only": []}
    for name, fn in (("train step", train_step), ("forward only", forward_only)):
        for i in range(args.steps + 3):
            start = time.perf_counter()
            fn()
            if i >= 3:  # the first steps allocate and warm caches
                timings[name].append(time.perf_counter() - start)

    step = statistics.median(timings["train step"])
    forward = statistics.median(timings["forward only"])
    rate = tokens / step
    print(
        f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"model: {n_params / 1e6:.2f} M parameters ({(n_params - embedding) / 1e6:.2f} M non-embedding), "
        f"{size.layers} layers x {size.hidden}, context {size.context}; batch {args.batch_size} x {args.block_size} tokens"
    )
    print(
        f"train step: {step * 1000:.0f} ms median = {rate:,.0f} tokens/s; forward only: {forward * 1000:.0f} ms "
        f"(a train step costs {step / forward:.1f}x a forward pass)"
    )
    print(f"FLOPs per token: {flops_per_token / 1e6:.1f} M; achieved {rate * flops_per_token / 1e9:.2f} GFLOP/s")
    for minutes in (5, 10, 30):
        print(f"  --minutes {minutes}: about {rate * 60 * minutes / 1e6:.1f} M training tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Latency of the double's model by size and runtime, on this machine, before any GPU time is spent.

    python benchmarks/model_latency.py [--sizes 8M,16M,30M] [--requests 30] [--lines 5] [--new-tokens 10]
                                       [--context 1024] [--prompt-limits 512,992] [--runtimes eager,int8]
                                       [--double ARTIFACT_DIR] [--keep DIR] [--seed S]

Random-initialised Llama candidates (RoPE, RMSNorm, SwiGLU, head dim 64, tied embeddings, the shipped base's
8,192-token tokenizer), each saved as an artifact (bf16 safetensors + config + tokenizer; with `--double`,
that double's manifest and corpus too, so `benchmarks/lsp_latency.py` can serve it) and loaded through the
engine's own model path (`Neural`: prompt cut, token healing, greedy decoding with a key-value cache).

Requests are cut from this repository's own Python files: the cursor mid-line, one-line mode. Random weights
never end a line, so every completion is forced to exactly `--new-tokens` tokens (tokens holding a line break
and the end markers are banned, the repetition cut is off): a real line is 5-15 tokens.

Two measurements per candidate and runtime, interleaved request by request so that a busy machine slows
every candidate alike:
- **cold**: a computed completion with nothing reused (the first keystroke after a cursor jump): p50/p95;
- **typing**: `--lines` lines typed key by key, a completion per keystroke, with the key-value cache kept
  across keystrokes (what the server does when neither of its caches has the answer): p50/p95.

Runtimes: `eager` (torch fp32, as served), `int8` (torch dynamic int8 quantisation of the Linear layers).
Prints the load average before and after; the machine is shared, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from codedouble.server.contract import prompt
from codedouble.server.engine import neural as neural_module
from codedouble.server.engine.document import Request, mode_at
from codedouble.server.engine.neural import Neural
from codedouble.server.stats import percentile

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "trainer" / "base" / "weights"

# name: (layers, hidden, SwiGLU width); head dim 64 throughout.
SIZES = {
    "4M": (4, 192, 512),
    "8M": (8, 256, 704),
    "16M": (8, 384, 1024),
    "30M": (8, 512, 1408),
    "45M": (12, 512, 1408),
}


@dataclass
class Candidate:
    name: str
    layers: int
    hidden: int
    parameters: int
    mib: float
    folder: Path


def build(name: str, folder: Path, context: int, double: Path | None) -> Candidate:
    layers, hidden, width = SIZES[name]
    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOKENIZER)
    eos = tokenizer.convert_tokens_to_ids(prompt.EOS)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=width,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    if double is not None:
        manifest = json.loads((double / "manifest.json").read_text(encoding="utf-8"))
        manifest["training"]["parameters"] = parameters
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        shutil.copy(double / "corpus.jsonl", folder / "corpus.jsonl")
    mib = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 2**20
    return Candidate(name, layers, hidden, parameters, mib, folder)


def requests(count: int, seed: int) -> list[Request]:
    """`count` one-line requests from this repository's Python files: the cursor mid-line in code."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "*.py"], capture_output=True, text=True, check=True
    ).stdout.split()
    rng = random.Random(seed)
    out: list[Request] = []
    while len(out) < count:
        path = rng.choice(files)
        text = (ROOT / path).read_text(encoding="utf-8")
        lines = text.split("\n")
        number = rng.randrange(len(lines))
        line = lines[number]
        body = line.strip()
        if len(body) < 16 or body.startswith(("#", '"', "'")):
            continue
        indent = len(line) - len(line.lstrip())
        column = rng.randrange(indent + 4, len(line) - 4)
        cursor = sum(len(x) + 1 for x in lines[:number]) + column
        request = Request(path, text[:cursor], text[cursor:], "line")
        if mode_at(request.prefix, "python") == "line":
            out.append(request)
    return out


def typing(count: int, seed: int) -> list[list[Request]]:
    """`count` lines typed key by key from their indentation: one request per keystroke."""
    sessions = []
    for request in requests(count, seed + 1):
        start = request.prefix.rfind("\n") + 1
        end = request.suffix.find("\n")
        line = request.prefix[start:] + request.suffix[:end]
        indent = len(line) - len(line.lstrip())
        text = request.prefix[:start] + " " * indent + request.suffix[end:]
        cursor = start + indent
        session = []
        for char in line[indent:]:
            text = text[:cursor] + char + text[cursor:]
            cursor += 1
            session.append(Request(request.path, text[:cursor], text[cursor:], "line"))
        sessions.append(session)
    return sessions


class Forced:
    """The model with line breaks and end markers banned: random weights write exactly the forced count."""

    def __init__(self, model: torch.nn.Module, banned: torch.Tensor) -> None:
        self.model, self.banned = model, banned

    def __call__(self, **kwargs):
        result = self.model(**kwargs)
        result.logits[..., self.banned] = -math.inf
        return result


def load(candidate: Candidate, runtime: str, prompt_limit: int) -> Neural:
    neural = Neural(candidate.folder)
    neural.prompt_limit = prompt_limit
    if runtime == "int8":
        neural.model = torch.ao.quantization.quantize_dynamic(neural.model, {torch.nn.Linear}, dtype=torch.qint8)
    banned = torch.tensor([("\n" in t) or (i in neural.eos) for i, t in enumerate(neural.token_strings)])
    neural.model = Forced(neural.model, banned)  # type: ignore[assignment]
    return neural


def timed(neural: Neural, request: Request) -> tuple[float, float]:
    """(wall ms, this thread's CPU ms): with one torch thread the CPU time is what an idle machine's wall
    time would be, so a shared machine's load shows in the first figure and not in the second."""
    began, cpu = time.perf_counter(), time.thread_time()
    neural.generate(request)
    return (time.perf_counter() - began) * 1000, (time.thread_time() - cpu) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="8M,16M,30M")
    parser.add_argument("--requests", type=int, default=30, help="cold requests per candidate (default 30)")
    parser.add_argument("--lines", type=int, default=5, help="lines typed key by key (default 5)")
    parser.add_argument("--new-tokens", type=int, default=10)
    parser.add_argument("--context", type=int, default=1024, help="the candidates' context (default 1024)")
    parser.add_argument("--prompt-limits", default="512,992", help="prompt budgets to compare (tokens)")
    parser.add_argument("--runtimes", default="eager,int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--double", type=Path, help="copy this double's manifest and corpus into each candidate")
    parser.add_argument("--keep", type=Path, help="write the candidates' artifacts here (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    neural_module.LINE_TOKENS = args.new_tokens
    neural_module.repetition_cut = lambda *_args, **_kw: None  # random weights loop; the count is forced
    where = args.keep or Path(tempfile.mkdtemp(prefix="codedouble-candidates-"))
    print(f"cores {os.cpu_count()}, torch threads {args.threads}, load average before {os.getloadavg()}")
    candidates = [build(name, where / name, args.context, args.double) for name in args.sizes.split(",")]
    for c in candidates:
        print(f"{c.name}: {c.layers} × {c.hidden}, {c.parameters:,} parameters, {c.mib:.1f} MiB bf16 → {c.folder}")
    limits = [int(x) for x in args.prompt_limits.split(",")]
    runtimes = args.runtimes.split(",")
    cold = requests(args.requests, args.seed)
    sessions = typing(args.lines, args.seed)

    variants = {(c.name, r, limit): load(c, r, limit) for c in candidates for r in runtimes for limit in limits}
    lengths = {limit: [] for limit in limits}
    for neural_limit in limits:
        probe = variants[(candidates[0].name, runtimes[0], neural_limit)]
        lengths[neural_limit] = [len(probe.prompt_ids(r, args.new_tokens)[0]) for r in cold]
    for variant in variants.values():  # warm-up: first calls allocate
        variant.reuse = False
        timed(variant, cold[0])

    cold_ms: dict[tuple[str, str, int], list[tuple[float, float]]] = {k: [] for k in variants}
    for request in cold:
        for key, variant in variants.items():
            cold_ms[key].append(timed(variant, request))
    typing_ms: dict[tuple[str, str, int], list[tuple[float, float]]] = {k: [] for k in variants}
    reused: dict[tuple[str, str, int], list[int]] = {k: [] for k in variants}
    for variant in variants.values():
        variant.reuse = True
        variant.clear()
    print(f"{len(cold)} cold requests timed; typing {len(sessions)} lines", flush=True)
    for session in sessions:
        for request in session:
            for key, variant in variants.items():
                typing_ms[key].append(timed(variant, request))
                reused[key].append(variant.last_reused)
    print(f"load average after {os.getloadavg()}")
    keystrokes = sum(len(s) for s in sessions)
    print(
        f"\n{len(cold)} cold requests, {keystrokes} keystrokes over {len(sessions)} typed lines; "
        f"{args.new_tokens} new tokens forced per completion"
    )
    for limit in limits:
        ls = lengths[limit]
        print(f"prompt budget {limit}: prompt tokens median {statistics.median(ls):.0f}, max {max(ls)}")
    print(
        "\n| candidate | parameters | bf16 MiB | runtime | prompt budget | cold p50 / p95 ms | typing p50 / p95 ms "
        "| cold CPU p50 / p95 ms | typing CPU p50 / p95 ms |"
    )
    print("|---|---:|---:|---|---:|---|---|---|---|")

    def figures(values: list[tuple[float, float]], which: int) -> str:
        xs = [v[which] for v in values]
        return f"{percentile(xs, 50):.0f} / {percentile(xs, 95):.0f}"

    by_name = {c.name: c for c in candidates}
    for key in variants:
        name, runtime, limit = key
        c = by_name[name]
        print(
            f"| {name} ({c.layers} × {c.hidden}) | {c.parameters / 1e6:.2f} M | {c.mib:.1f} | {runtime} | {limit} "
            f"| {figures(cold_ms[key], 0)} | {figures(typing_ms[key], 0)} "
            f"| {figures(cold_ms[key], 1)} | {figures(typing_ms[key], 1)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What serving a double as a LoRA adapter costs: the double's model against base + adapter, on the double's own
held-out samples (the eval's next-line samples: `trainer/evaluation/tasks.py`), greedy, through the engine's
`Neural` (the same prompt, cut and decoding the server uses).

    python benchmarks/adapter_cost.py DOUBLE DATASET [--base PATH] [--samples 120]

For each rank of vLLM's (8, 16, 32, 64) it builds base + the rank-r LoRA that `export --format peft` writes
(the embeddings, norms and any other weight a LoRA on the projections cannot carry taken from the base), and
one more variant, "projections exact": every projection the double's own, the rest the base's, which isolates
what the dropped weights cost. Prints, per variant: the relative Frobenius error of the projections' change,
next-line exact match against what the engineer wrote, and agreement with the double's own completion.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from codedouble.server.contract.artifact import read_manifest
from codedouble.server.engine.document import Request
from codedouble.server.engine.neural import Neural
from codedouble.trainer.evaluation.metrics import exact_match
from codedouble.trainer.evaluation.tasks import sample
from codedouble.trainer.mining import dataset
from codedouble.trainer.owning import adapter


def variant(double: Path, weights: dict[str, torch.Tensor], into: Path) -> Path:
    """A copy of the double's folder with `weights` as its model."""
    into.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "manifest.json"):
        if (double / name).is_file():
            shutil.copyfile(double / name, into / name)
    save_file(weights, str(into / "model.safetensors"), metadata={"format": "pt"})
    return into


def completions(folder: Path, requests: list[Request]) -> list[str]:
    model = Neural(folder, threads=2)
    return [model.complete(r) for r in requests]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("double", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--base", type=Path)
    parser.add_argument("--samples", type=int, default=120)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)

    manifest = read_manifest(args.double)
    base = adapter.find_base(args.double, manifest, args.base)
    ours, theirs = load_file(args.double / "model.safetensors"), load_file(base / "model.safetensors")
    deltas = {k: ours[k] - theirs[k] for k in ours if adapter._projection(k)}
    errors = adapter.rank_errors(deltas.values())
    dropped = [d for k in ours if not adapter._projection(k) and (d := adapter._dropped(k, ours[k], theirs[k]))]

    heldout = set(manifest["split"]["heldout_commits"])
    records = [r for r in dataset.load_records(args.dataset) if r.commit in heldout]
    samples = [s for s in sample(records, args.samples, 0, seed=0) if s.task == "line"]
    requests = [Request(s.path, s.prefix, s.suffix, "line") for s in samples]
    print(f"{len(samples)} next-line samples from {len(heldout)} held-out commits; base {base}", file=sys.stderr)

    started = time.monotonic()
    reference = completions(args.double, requests)
    rows = [("double", None, reference)]
    with tempfile.TemporaryDirectory() as scratch:
        exact = {k: (ours[k] if k in deltas else theirs[k]) for k in ours}
        rows.append(
            ("projections exact", 0.0, completions(variant(args.double, exact, Path(scratch) / "exact"), requests))
        )
        for rank in adapter.RANKS:
            weights = dict(theirs)
            for k, delta in deltas.items():
                a, b = adapter.factors(delta.float(), rank)
                weights[k] = (theirs[k].float() + b @ a).to(theirs[k].dtype)
            got = completions(variant(args.double, weights, Path(scratch) / f"r{rank}"), requests)
            rows.append((f"LoRA rank {rank}", errors[rank], got))
    results = []
    for name, error, got in rows:
        em = sum(exact_match(g, s.target, "line") for g, s in zip(got, samples, strict=True)) / max(len(samples), 1)
        same = sum(g == r for g, r in zip(got, reference, strict=True)) / max(len(samples), 1)
        results.append({"variant": name, "relative_error": error, "next_line_em": em, "same_as_double": same})
        shown = "" if error is None else f"{error:7.2%}"
        print(f"{name:18} error {shown:>8}  next-line EM {em:6.1%}  same as the double {same:6.1%}")
    for d in dropped:
        print(f"dropped: {d.name} ({d.rows_changed} rows, {d.relative_change:.2%} of its norm)")
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"samples": len(samples), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

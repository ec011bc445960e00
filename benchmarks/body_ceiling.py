"""How many of eval's block samples any of today's candidates gets exactly right: the ceiling of choosing.

    python benchmarks/body_ceiling.py DOUBLE [--samples 100] [--seed 0] [--top 200] [--show]

Eval's block task (held-out bodies the commit wrote, each with its repository at the commit's parent as the
workspace) is drawn as `codedouble eval DOUBLE --block-samples N --seed S` draws it. For each sample this
collects every body the engine could have chosen: every past definition retrieval can reach (the signature's
name, the `--top` best BM25 matches of it in the completion corpus, the workspace's and the document's own
definitions, each adapted and placed as served) and the forced answer of each system of the engine (the
n-gram, the model, BM25, the engine itself). A sample is within reach when any of them is exactly the
engineer's body (eval's exact match).

The count bounds what any ranking, threshold or mix of these candidates can score: a goal above it needs
candidates that are not there yet (bodies the model writes right), not a better choice among them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codedouble.server.contract.artifact import read_manifest
from codedouble.server.engine import engine as engines
from codedouble.server.engine.document import Request
from codedouble.trainer.evaluation import metrics, tasks
from codedouble.trainer.evaluation.context import RepositoryWorkspaces
from codedouble.trainer.evaluation.run import EvalError, _heldout
from codedouble.trainer.mining.records import ChangeRecord


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("double", type=Path)
    parser.add_argument("--samples", type=int, default=100, help="block samples, as eval's --block-samples")
    parser.add_argument("--seed", type=int, default=0, help="which samples, as eval's --seed")
    parser.add_argument("--top", type=int, default=200, help="corpus matches of the signature to try (served: 20)")
    parser.add_argument("--show", action="store_true", help="print each sample within reach and what reached it")
    args = parser.parse_args(argv)

    try:
        records: list[ChangeRecord] = _heldout(args.double, read_manifest(args.double))[0]
    except (EvalError, OSError) as exc:
        print(f"body_ceiling: {exc}", file=sys.stderr)
        return 2
    samples = tasks.sample(records, 0, args.samples, args.seed)
    engine = engines.load(args.double)
    workspaces = RepositoryWorkspaces()
    exact: dict[str, int] = {system.name: 0 for system in engine.systems}
    retrieved = reached = 0
    for sample in sorted(samples, key=lambda s: (s.repository, s.commit)):
        workspace = workspaces(sample.repository, sample.commit, sample.path)
        request = Request(sample.path, sample.prefix, sample.suffix, sample.task, workspace)  # type: ignore[arg-type]
        by: list[str] = []
        for system in engine.systems:
            if metrics.exact_match(system.complete(request), sample.target, sample.task):
                exact[system.name] += 1
                by.append(system.name)
        found = engine.combined.bodies.candidates(request, args.top) if engine.combined.bodies else None
        if found is not None and any(
            metrics.exact_match(found.placed(entry, request), sample.target, sample.task) for entry in found.entries
        ):
            retrieved += 1
            by.append("a retrievable past body")
        reached += bool(by)
        if by and args.show:
            print(f"{sample.path} ({', '.join(by)}):\n{sample.target}\n")
    n = len(samples)
    print(f"{n} block samples (seed {args.seed}) of {args.double}")
    for name, count in exact.items():
        print(f"  {name:<20} {count:>4} exact")
    print(f"  {'any retrievable body':<20} {retrieved:>4} exact (the {args.top} best corpus matches and more)")
    print(f"  {'within reach':<20} {reached:>4} of {n}: the most any choice among these candidates can get right")
    return 0


if __name__ == "__main__":
    sys.exit(main())

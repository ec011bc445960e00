"""The base's pretraining on a lent GPU machine, as one command that ends inside the machine's limits.

    python3 scripts/base_gpu.py --out "$OUT"                      # on the GPU machine (make base-gpu-command)
    python3 scripts/base_gpu.py --out "$OUT" --init trainer/base/weights   # ... continuing the shipped base
    python3 scripts/base_gpu.py --out OUT --device cpu --size llama-toy --steps 4 ...   # the rehearsal

Run from the repository root, with what `make base-gpu-prepare` left beside it: `.whl/` (tree-sitter, its
grammars and detect-secrets as cp312 wheels: the machine has torch and transformers but not these) and
`.gpu/carried-corpus.tar.xz` (the Go, Rust, JavaScript and Java part of the corpus, built where those sources are
installed). Stages, each skipped when a rerun on the same machine finds it done:

  1. setup    the wheels installed into WORK/site; the repository importable as `codedouble` through a
              folder of links (WORK/path), since nothing can be installed from an index there
  2. carried  the carried corpus unpacked into WORK/carried
  3. corpus   `codedouble base corpus` over the machine's own permissively licensed Python (its standard
              library and installed distributions, rich left out) with the carried part merged in,
              one worker process per core
  4. tokens   `codedouble base train --tokenize-only`: the tokenizer and the corpus as token ids
  5. train    `codedouble base train --device cuda` for the time left before --deadline, less what
              writing and packing take; resumed from its last checkpoint if a run was cut short
  6. pack     the base as a .tar.gz cut into pieces of at most 15 MiB, SHA256SUMS, the base's
              manifest and the log into --out (at most 8 files come back; `make base-gpu-unpack` joins them)

The script uses only the standard library itself; everything else runs in `python -m codedouble...` child
processes, whose output goes to OUT/log.txt and to this process's output.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"trainer": "trainer", "server": "server", "grammars": "grammars"}  # codedouble.X → folder (pyproject)
PIECE_BYTES = 15 * 1024 * 1024  # under the 16 MiB a returned file may have
MAX_FILES_BACK = 8
# What the train stage leaves for the stages after the loop: the final validation, bits per byte over the
# held-out files, writing the base, packing it (measured at toy scale, with room for a larger model).
AFTER_TRAINING_SECONDS = 75
MIN_TRAINING_MINUTES = 0.5


class Log:
    """Every line to the terminal and to OUT/log.txt, flushed at once: a run cut off still leaves its log."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8", buffering=1)
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        line = f"[{time.monotonic() - self.start:6.1f} s] {message}"
        print(line, flush=True)
        self.file.write(line + "\n")

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="where the pieces, manifest and log go ($OUT)")
    p.add_argument("--work", type=Path, default=Path("/tmp/codedouble-gpu"), help="stages' outputs (kept for reruns)")
    p.add_argument("--size", default="llama-16m", help="a name in trainer/base/sizes.py's SIZES")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--deadline", type=float, default=540, metavar="S", help="end within S seconds of the start")
    p.add_argument("--steps", type=int, help="train this many steps instead of until the deadline (rehearsal)")
    p.add_argument("--wheels", type=Path, default=REPO / ".whl")
    p.add_argument("--carried", type=Path, default=REPO / ".gpu" / "carried-corpus.tar.xz")
    p.add_argument("--python", default=sys.executable, help="the interpreter that has torch (default: this one)")
    p.add_argument(
        "--init",
        type=Path,
        metavar="BASE_DIR",
        help="continue this base (relative to the repository: trainer/base/weights, the shipped one) instead of "
        "starting from scratch: its weights and tokenizer, a fresh optimizer; the tokens add up in its manifest",
    )
    p.add_argument(
        "--corpus-args",
        default="--exclude rich",
        help="more `codedouble base corpus` arguments (a rehearsal: --no-stdlib --no-site, or --site DIR)",
    )
    p.add_argument(
        "--train-args",
        # ~1,000 steps of ~0.25 M tokens: a tenth of them warming up, and a validation (with its checkpoint)
        # every quarter of the run, short enough to cost seconds, not a share of the few minutes.
        default="--warmup-steps 100 --eval-every 250 --eval-batches 4",
        help="more `codedouble base train` arguments",
    )
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "log.txt")
    log(f"base_gpu.py {shlex.join(sys.argv[1:] if argv is None else argv)} (repository {REPO})")
    env = _setup(args, log)
    corpus = _corpus(args, env, log)
    base = _train(args, corpus, env, log)
    _pack(base, args.out, log)
    log(f"done in {log.elapsed():.0f} s; the files in {args.out}: {', '.join(sorted(os.listdir(args.out)))}")
    return 0


def _run(command: list[str], env: dict[str, str], log: Log, timeout: float | None = None) -> None:
    """Run a child with its output in the log, line by line; a failure stops the script with the child's code."""
    log("$ " + shlex.join(command))
    started = time.monotonic()
    with subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            log("  " + line.rstrip("\n"))
        code = child.wait(timeout=timeout)
    log(f"  (exit {code} after {time.monotonic() - started:.0f} s)")
    if code:
        raise SystemExit(code)


def _setup(args: argparse.Namespace, log: Log) -> dict[str, str]:
    """The carried wheels installed, the repository importable as `codedouble`, and the environment for the
    children: nothing is installed into the machine's own Python."""
    site, path = args.work / "site", args.work / "path"
    wheels = sorted(args.wheels.glob("*.whl")) if args.wheels.is_dir() else []
    marker = site / ".installed"
    if wheels and not marker.is_file():
        _run(
            [args.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir"]
            + ["--upgrade", "--target", str(site), *map(str, wheels)],
            dict(os.environ),
            log,
        )
        marker.write_text("\n".join(w.name for w in wheels) + "\n")
    # codedouble is a namespace package whose parts live in the repository's top folders (pyproject.toml's
    # package-dir): a folder of links gives the same import names without pip install -e.
    (path / "codedouble").mkdir(parents=True, exist_ok=True)
    for name, folder in PACKAGES.items():
        link = path / "codedouble" / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(REPO / folder, target_is_directory=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(path), str(site), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = env["TRANSFORMERS_OFFLINE"] = "1"  # nothing can be reached from there anyway
    env.setdefault("TOKENIZERS_PARALLELISM", "true")
    probe = (
        "import os, sys, torch, transformers, tree_sitter, detect_secrets, codedouble.trainer.cli as c; "
        "print('python', sys.version.split()[0], '| torch', torch.__version__, '| transformers', "
        "transformers.__version__, '| cuda', torch.cuda.is_available(), "
        "torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', '| cores', os.cpu_count()); "
        "print('codedouble from', os.path.dirname(c.__file__), '| tree_sitter from', tree_sitter.__file__)"
    )
    _run([args.python, "-c", probe], env, log)
    return env


def _cli(args: argparse.Namespace) -> list[str]:
    return [args.python, "-m", "codedouble.trainer.cli"]


def _corpus(args: argparse.Namespace, env: dict[str, str], log: Log) -> Path:
    carried = args.work / "carried"
    include: list[str] = []
    if args.carried.is_file():
        if not (carried / "manifest.json").is_file():
            shutil.rmtree(carried, ignore_errors=True)
            staging = args.work / "carried.unpacking"
            shutil.rmtree(staging, ignore_errors=True)
            with tarfile.open(args.carried) as archive:
                archive.extractall(staging, filter="data")
            (staging / "corpus").rename(carried)
            shutil.rmtree(staging)
            log(f"carried corpus unpacked: {_summary(carried)}")
        include = ["--include-corpus", str(carried)]
    else:
        log(f"no carried corpus at {args.carried}: Python alone")
    corpus = args.work / "corpus"
    if (corpus / "manifest.json").is_file():
        log(f"corpus already built: {_summary(corpus)}")
    else:
        _run([*_cli(args), "base", "corpus", "--out", str(corpus), *shlex.split(args.corpus_args), *include], env, log)
        log(f"corpus: {_summary(corpus)}")
    return corpus


def _summary(corpus: Path) -> str:
    manifest = json.loads((corpus / "manifest.json").read_text())
    languages = ", ".join(f"{k} {v['bytes'] / 1e6:.1f} MB" for k, v in manifest["languages"].items())
    return (
        f"{len(manifest['sources'])} sources, {manifest['files']:,} files, {manifest['bytes'] / 1e6:.1f} MB "
        f"({languages}), sha256 {manifest['sha256'][:12]}"
    )


def _train(args: argparse.Namespace, corpus: Path, env: dict[str, str], log: Log) -> Path:
    base = args.work / "base"
    if (base / "manifest.json").is_file():
        log(f"base already trained: {base}")
        return base
    common = ["--size", args.size, "--device", args.device, *shlex.split(args.train_args)]
    if args.init is not None:
        common += ["--init", str(args.init if args.init.is_absolute() else REPO / args.init)]
    _run([*_cli(args), "base", "train", str(corpus), "--out", str(base), "--tokenize-only", *common], env, log)
    work = base.with_name(f".{base.name}.training")
    state = work / "last" / "state.json"
    resume = state.is_file()
    if args.steps:
        budget = ["--steps", str(args.steps)]
    else:
        # The loop's clock counts only its own steps: give it what is left before the deadline, less what
        # comes after it; a resumed run's budget includes the time its checkpoint already spent.
        left = args.deadline - log.elapsed() - AFTER_TRAINING_SECONDS
        spent = json.loads(state.read_text())["elapsed"] if resume else 0.0
        minutes = max(MIN_TRAINING_MINUTES, (spent + left) / 60)
        log(f"training for {minutes:.2f} minutes of loop time ({left:.0f} s left before the deadline)")
        budget = ["--minutes", f"{minutes:.2f}"]
    _run(
        [*_cli(args), "base", "train", str(corpus), "--out", str(base), *budget, *common]
        + (["--resume"] if resume else []),
        env,
        log,
    )
    return base


def _pack(base: Path, out: Path, log: Log) -> None:
    """The base as pieces of one .tar.gz (at most MAX_FILES_BACK files come back, each under 16 MiB), with
    their checksums, the base's manifest beside them for a first look, and the log."""
    for old in out.glob("base.tar.gz.*"):
        old.unlink()
    archive = base.parent / "base.tar.gz"
    # mtime=0 in the gzip header: the same base packs into the same bytes, so a rerun's checksums match.
    with archive.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as packed:
        with tarfile.open(fileobj=packed, mode="w") as tar:
            for item in sorted(base.iterdir()):
                tar.add(item, arcname=f"base/{item.name}")
    data = archive.read_bytes()
    pieces = [data[i : i + PIECE_BYTES] for i in range(0, len(data), PIECE_BYTES)]
    if len(pieces) + 3 > MAX_FILES_BACK:
        raise SystemExit(f"the base packs into {len(pieces)} pieces: more than {MAX_FILES_BACK - 3} cannot come back")
    sums = [f"{hashlib.sha256(data).hexdigest()}  base.tar.gz"]
    for index, piece in enumerate(pieces):
        name = f"base.tar.gz.{index:02d}"
        (out / name).write_bytes(piece)
        sums.append(f"{hashlib.sha256(piece).hexdigest()}  {name}")
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    shutil.copyfile(base / "manifest.json", out / "manifest.json")
    log(f"packed {len(data) / 2**20:.1f} MiB into {len(pieces)} pieces")


if __name__ == "__main__":
    sys.exit(main())

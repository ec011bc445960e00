"""Get what the GPU run needs onto this machine, beside the repository (`make base-gpu-prepare`).

    .whl/                        cp312 manylinux wheels of what the GPU machine lacks: tree-sitter, the six
                                 grammars and detect-secrets, at the versions installed here (it has torch,
                                 transformers, tokenizers, safetensors, pyyaml, requests, tqdm; KINDS.md)
    .gpu/carried-corpus.tar.xz   the Go, Rust, JavaScript/TypeScript and Java part of the corpus, built here
                                 from Debian's golang-1.19-src and rust-src, the VS Code client's node_modules
                                 and the npm packages of scripts/java_corpus (React Native and Cordova
                                 plugins, whose Android side is Java), installed exactly as its lock pins them

Both folders are git-ignored; the device tool's `carry` takes them along. At the end the script checks that
what travels (the working tree, both folders) stays well under the tool's 64 MiB, and prints the command.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHEELS = REPO / ".whl"
GPU = REPO / ".gpu"
CARRIED = GPU / "carried-corpus.tar.xz"
# The GPU machine's Python has none of these (KINDS.md's package list); their own needs (pyyaml and requests
# for detect-secrets) it has.
MISSING_THERE = (
    "tree-sitter",
    "tree-sitter-python",
    "tree-sitter-javascript",
    "tree-sitter-typescript",
    "tree-sitter-go",
    "tree-sitter-rust",
    "tree-sitter-java",
    "detect-secrets",
)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
LIMIT = 64 * 2**20
BUDGET = 48 * 2**20  # "well under": room for the tree to grow before the next run
# The Java part: no Debian package ships permissively licensed Java source, and there is no Maven registry
# here; npm packages with an Android side do, under their package.json licence (3.2 MB from the first 22).
JAVA_PACKAGES = REPO / "scripts" / "java_corpus"
JAVA_INSTALLED = REPO / ".codedouble" / "java-npm"
CORPUS_ARGS = [
    "--no-stdlib",
    "--no-site",
    "--debian",
    "golang-1.19-src",
    "--debian",
    "rust-src",
    "--node-modules",
    "editors/vscode/node_modules",
    "--node-modules",
    str(JAVA_INSTALLED / "node_modules"),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rebuild", action="store_true", help="build the carried corpus again even if it is there")
    p.add_argument(
        "--local-wheels",
        type=Path,
        metavar="DIR",
        help="only download the same wheels for this Python into DIR (the CPU rehearsal installs them as the "
        "GPU run does), then stop",
    )
    args = p.parse_args()
    if args.local_wheels:
        _wheels(args.local_wheels, local=True)
        return 0
    _wheels(WHEELS)
    _carried(args.rebuild)
    return _check()


def _wheels(folder: Path, local: bool = False) -> None:
    """The wheels of MISSING_THERE at this venv's versions: for the GPU machine's CPython 3.12 on x86-64, or
    (`local`) for this interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    target = [] if local else ["--python-version", "3.12", "--implementation", "cp", *platforms]
    for name in MISSING_THERE:
        version = importlib.metadata.version(name)
        stem = name.replace("-", "_")
        if list(folder.glob(f"{stem}-{version}-*.whl")):
            continue
        for old in folder.glob(f"{stem}-*.whl"):  # two versions of one package stop the whole install there
            old.unlink()
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", *target]
            + ["-d", str(folder), f"{name}=={version}"],
            check=True,
        )
    print(f"wheels: {', '.join(sorted(p.name for p in folder.glob('*.whl')))}")


def _carried(rebuild: bool) -> None:
    if CARRIED.is_file() and not rebuild:
        print(f"carried corpus: {CARRIED} (already built; --rebuild to build it again)")
        return
    corpus = REPO / ".codedouble" / "carried-corpus"  # unpacked, it stays here: only the archive travels
    GPU.mkdir(exist_ok=True)
    _java_packages()
    subprocess.run(
        [sys.executable, "-m", "codedouble.trainer.cli", "base", "corpus", "--out", str(corpus), *CORPUS_ARGS],
        cwd=REPO,
        check=True,
    )
    staging = CARRIED.with_suffix(".partial")
    with tarfile.open(staging, "w:xz", preset=6) as tar:
        for name in ("manifest.json", "files.jsonl"):
            tar.add(corpus / name, arcname=f"corpus/{name}")
    staging.replace(CARRIED)
    manifest = json.loads((corpus / "manifest.json").read_text())
    print(
        f"carried corpus: {len(manifest['sources'])} sources, {manifest['bytes'] / 1e6:.1f} MB → "
        f"{CARRIED.stat().st_size / 2**20:.1f} MiB compressed"
    )


def _java_packages() -> None:
    """scripts/java_corpus's packages into JAVA_INSTALLED, exactly as its lock pins them; their install scripts
    never run (the corpus only reads the files)."""
    JAVA_INSTALLED.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        (JAVA_INSTALLED / name).write_bytes((JAVA_PACKAGES / name).read_bytes())
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--legacy-peer-deps", "--no-audit", "--no-fund"],
        cwd=JAVA_INSTALLED,
        check=True,
    )


def _check() -> int:
    """What the device tool would send: tracked and untracked-not-ignored files, and the carried folders."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    tree = sum((REPO / name.decode()).stat().st_size for name in listed if name and (REPO / name.decode()).is_file())
    carried = sum(p.stat().st_size for folder in (WHEELS, GPU) for p in folder.rglob("*") if p.is_file())
    total = tree + carried
    print(
        f"travels: working tree {tree / 2**20:.1f} MiB + .whl and .gpu {carried / 2**20:.1f} MiB = "
        f"{total / 2**20:.1f} MiB (limit {LIMIT / 2**20:.0f} MiB)"
    )
    if total > BUDGET:
        print(f"too much travels: keep it under {BUDGET / 2**20:.0f} MiB", file=sys.stderr)
        return 1
    print("device command (see README's 'Pretraining on a lent GPU'):")
    print(f"  run(command={COMMAND!r}, carry={CARRY!r}, timeout_s=600)")
    return 0


CARRY = [".whl", ".gpu"]
COMMAND = "python3 scripts/base_gpu.py --out $OUT"

if __name__ == "__main__":
    sys.exit(main())

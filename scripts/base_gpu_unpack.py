"""Join what the GPU run sent back into a base folder, and check it (`make base-gpu-unpack FROM=DIR`).

    python scripts/base_gpu_unpack.py FROM_DIR [--to .codedouble/base-gpu]

FROM_DIR holds base.tar.gz.00, .01, ... and SHA256SUMS (scripts/base_gpu.py's pieces). Every checksum is
verified, the archive is unpacked into TO/base, and the model is loaded with AutoModelForCausalLM to show
it is whole. Installing it as the shipped base is a separate, deliberate step (README).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path


class UnpackError(Exception):
    pass


def unpack(source: Path, to: Path) -> Path:
    """The base folder unpacked from `source`'s pieces into `to`/base (replacing one there)."""
    sums: dict[str, str] = {}
    for line in (source / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.strip()] = digest
    pieces = sorted(source.glob("base.tar.gz.[0-9][0-9]"))
    if not pieces or sorted(p.name for p in pieces) != sorted(n for n in sums if n != "base.tar.gz"):
        raise UnpackError(f"{source}: the pieces there do not match SHA256SUMS")
    data = b""
    for piece in pieces:
        chunk = piece.read_bytes()
        if hashlib.sha256(chunk).hexdigest() != sums[piece.name]:
            raise UnpackError(f"{piece}: checksum mismatch (a damaged transfer: fetch it again)")
        data += chunk
    if hashlib.sha256(data).hexdigest() != sums["base.tar.gz"]:
        raise UnpackError(f"{source}: the joined archive's checksum does not match")
    staging = to / "base.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(staging, filter="data")
    target = to / "base"
    shutil.rmtree(target, ignore_errors=True)
    (staging / "base").rename(target)
    shutil.rmtree(staging)
    return target


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, metavar="FROM_DIR")
    p.add_argument("--to", type=Path, default=Path(".codedouble/base-gpu"))
    args = p.parse_args()
    try:
        base = unpack(args.source, args.to)
    except UnpackError as exc:
        print(f"base_gpu_unpack: {exc}", file=sys.stderr)
        return 2
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    manifest = json.loads((base / "manifest.json").read_text())
    training, bpb = manifest["training"], manifest["bits_per_byte"]
    print(
        f"{base}: {manifest['name']}, {type(model).__name__} of {sum(p.numel() for p in model.parameters()):,} "
        f"parameters; {training['tokens_seen']:,} tokens seen on {training['device_name']}; "
        f"{bpb['bits_per_byte']:.3f} bits per byte on held-out files; corpus {manifest['corpus']['sha256'][:12]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

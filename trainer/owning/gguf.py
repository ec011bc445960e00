"""`codedouble export --format gguf --llama-cpp TREE`: the PEFT adapter and its base converted to GGUF for
llama.cpp by llama.cpp's own converters (`convert_hf_to_gguf.py`, `convert_lora_to_gguf.py`, MIT), which ship
in its source tree and in no PyPI package: the user names the tree, nothing is downloaded or vendored.

Two things the converters need told (README, "llama.cpp"): codedouble's byte-level BPE splits text as GPT-2's
does (llama.cpp's pre-tokenizer `gpt-2`; the converter only knows tokenizers by a hash of their splits), and it
is no sentencepiece model (the converter's Llama path would otherwise need that package to find out).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from codedouble.server.contract import atomic
from codedouble.trainer.owning.adapter import AdapterError, AdapterExport, export_adapter

# Run one converter with the two facts above patched in (argv: tree, script, the script's arguments).
SHIM = """
import runpy, sys
tree, script = sys.argv[1], sys.argv[2]
sys.path[:0] = [tree, tree + "/gguf-py"]
from conversion import base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
def not_sentencepiece(self):
    raise FileNotFoundError("codedouble's tokenizer is a byte-level BPE, not sentencepiece")
base.TextModel._create_vocab_sentencepiece = not_sentencepiece
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""
CONVERTERS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")


def check_tree(tree: Path) -> None:
    missing = [name for name in CONVERTERS if not (tree / name).is_file()]
    if missing or not (tree / "gguf-py").is_dir() or not (tree / "conversion").is_dir():
        raise AdapterError(
            f"--llama-cpp {tree}: not a llama.cpp source tree with its converters (needs {', '.join(CONVERTERS)}, "
            "conversion/ and gguf-py/; e.g. the vendor/llama.cpp folder of llama-cpp-python's source distribution)"
        )


def convert(tree: Path, script: str, *args: str) -> None:
    pythonpath = os.pathsep.join(filter(None, [str(tree / "gguf-py"), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", SHIM, str(tree), str(tree / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["no message"]
        raise AdapterError(f"llama.cpp's {script} failed: {last[0]}")


def export_gguf(
    folder: Path,
    out: Path,
    tree: Path,
    *,
    rank: int | None = None,
    max_error: float = 0.05,
    base: Path | None = None,
) -> AdapterExport:
    """`out`/base.gguf and `out`/adapter.gguf, f32 as the double is (llama.cpp quantizes at load or with its
    own tools)."""
    check_tree(tree)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.peft.") as scratch:
        peft = export_adapter(
            folder,
            Path(scratch) / "adapter",
            rank=rank,
            max_error=max_error,
            base=base,
            base_out=Path(scratch) / "base",
        )
        assert peft.base is not None
        with atomic.directory(out) as staging:
            convert(tree, CONVERTERS[0], str(peft.base), "--outfile", str(staging / "base.gguf"), "--outtype", "f32")
            convert(
                tree,
                CONVERTERS[1],
                str(peft.adapter),
                "--base",
                str(peft.base),
                "--outfile",
                str(staging / "adapter.gguf"),
                "--outtype",
                "f32",
            )
    peft.adapter, peft.base = out / "adapter.gguf", out / "base.gguf"
    return peft

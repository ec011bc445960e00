"""End to end against a real engine: llama-cpp-python's OpenAI-compatible server on loopback, serving the
exported base converted to GGUF with the double's adapter, asked through `--backend openai`'s client.

Nothing here builds anything: llama-cpp-python is a source distribution (a C++ build of tens of minutes on
2 cores) and llama.cpp's converters (`convert_hf_to_gguf.py`, `convert_lora_to_gguf.py`, MIT) ship only in
its source tree. The test runs where both are at hand and is skipped, saying which is missing, elsewhere:

    CODEDOUBLE_LLAMA_PYTHON   a Python with `llama-cpp-python[server]` installed (default: this one)
    CODEDOUBLE_LLAMA_CPP      a llama.cpp source tree (its converters and gguf-py)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_adapter import llama_base, lora_double  # noqa: F401 - fixtures
from test_train import _own_data_home, dataset_dir, history  # noqa: F401 - fixtures

from codedouble.server.engine.document import Request
from codedouble.server.engine.remote import Backend, RemoteModel
from codedouble.trainer import cli
from codedouble.trainer.owning.gguf import CONVERTERS

PYTHON = os.environ.get("CODEDOUBLE_LLAMA_PYTHON", sys.executable)
TREE = Path(os.environ.get("CODEDOUBLE_LLAMA_CPP", "/nonexistent"))


def _missing() -> str | None:
    found = subprocess.run([PYTHON, "-c", "import llama_cpp.server"], capture_output=True, text=True)
    if found.returncode != 0:
        return (
            f"llama-cpp-python[server] is not importable by {PYTHON} (set CODEDOUBLE_LLAMA_PYTHON; README, llama.cpp)"
        )
    if not all((TREE / name).is_file() for name in CONVERTERS):
        return "no llama.cpp source tree with its GGUF converters (set CODEDOUBLE_LLAMA_CPP; README, llama.cpp)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_llama_cpp_serves_the_exported_base_with_the_adapter(lora_double: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "gguf"
    assert cli.main(["export", str(lora_double), "--format", "gguf", "--out", str(out), "--llama-cpp", str(TREE)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["adapter.gguf", "base.gguf"]
    port = _port()
    server = subprocess.Popen(
        [PYTHON, "-m", "llama_cpp.server", "--model", str(out / "base.gguf"), "--lora_path",
         str(out / "adapter.gguf"), "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "128"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        model = RemoteModel(Backend("openai", f"http://127.0.0.1:{port}", timeout_ms=20_000))
        request = Request("shop/cart.py", "class Cart:\n    def size(self):\n        return ", "\n", "line")
        deadline = time.monotonic() + 60
        while True:  # the server loads the model before it listens
            generated = model.generate(request)
            health = model.status()
            if health["answered"] or time.monotonic() > deadline:
                break
            model.health.resting_until = 0.0
            time.sleep(0.5)
        assert health["answered"] == 1, health
        assert "\n" not in generated.text and generated.logprob <= 0
    finally:
        server.terminate()
        server.wait(10)

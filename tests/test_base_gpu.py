"""The Llama base's sizes, and the GPU run (scripts/base_gpu.py) rehearsed end to end on the CPU at toy scale.

The GPU machine is lent rarely and for minutes, so its run must work the first time: here the same script runs
every stage (wheels, the codedouble namespace through links, a carried corpus merged into one built from
"installed" distributions, tokens, training, packing into pieces) on fake sources in tmp_path, and what it
sends back is joined and loaded as the later session will. No GPU, no network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import random
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from safetensors import safe_open
from test_base import generated_module, make_distribution, make_npm, module
from transformers import AutoModelForCausalLM, AutoTokenizer

from codedouble.server.contract import prompt
from codedouble.server.engine import engine as engines
from codedouble.server.engine.document import Request
from codedouble.trainer.base import corpus, sources
from codedouble.trainer.base.sizes import SIZES
from codedouble.trainer.training import loop
from codedouble.trainer.training.model import HEAD_DIM, ModelSize, from_scratch, parameter_count

REPO = Path(__file__).resolve().parent.parent
STEPS, BATCH, BLOCK = 4, 2, 64

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def script(name: str) -> ModuleType:
    """A module of scripts/ (not a package: they run as files), imported by path."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


# --- 1. the sizes ---------------------------------------------------------------------------------------------

# name → (layers, hidden, parameters at 8,192 tokens): the table README's "Sizes" quotes.
EXPECTED = {
    "llama-8m": (8, 256, 8_524_032),
    "llama-16m": (8, 384, 17_308_032),
    "llama-30m": (8, 512, 29_893_120),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_named_size_is_the_llama_the_issue_asks_for(name: str) -> None:
    size = SIZES[name]
    layers, hidden, parameters = EXPECTED[name]
    assert (size.layers, size.hidden, size.context) == (layers, hidden, 1024)
    assert size.heads * HEAD_DIM == size.hidden
    assert size.mlp % 64 == 0 and 0 <= size.mlp - 8 * size.hidden / 3 < 64  # 8/3·hidden, rounded up to 64
    model = from_scratch(size, 8192, 0)
    config = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert config.head_dim == 64 and config.num_attention_heads == hidden // 64
    assert config.num_key_value_heads == config.num_attention_heads
    assert config.hidden_act == "silu" and config.tie_word_embeddings
    assert not config.attention_bias and not config.mlp_bias
    assert not [n for n, _ in model.named_parameters() if n.endswith(".bias")]
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert parameter_count(model) == size.parameters(8192) == parameters
    assert 2 * parameters <= 64 * 2**20  # the shipped base's bf16 weights fit the package's budget


def test_a_size_is_a_multiple_of_the_head_width() -> None:
    with pytest.raises(ValueError, match="multiple of the head width"):
        ModelSize(hidden=100)
    assert ModelSize(layers=1, hidden=128, query_groups=2).parameters(300) == parameter_count(
        from_scratch(ModelSize(layers=1, hidden=128, query_groups=2), 300, 0)
    )


def test_on_a_cpu_the_loop_runs_plain_fp32() -> None:
    """bf16 autocast is CUDA's alone; on a CPU, which is several times slower in bf16, nothing changes."""
    cpu = torch.device("cpu")
    with loop.precision(cpu):
        assert not torch.is_autocast_enabled("cpu")
    model = from_scratch(ModelSize(layers=1, hidden=64, context=32), 300, 0)
    assert loop.largest_batch(model, 32, cpu, 16) == 16
    assert loop._optimizer(list(model.parameters()), _loop_options(), cpu).defaults["fused"] in (None, False)


def _loop_options() -> loop.LoopOptions:
    return loop.LoopOptions(
        steps=1,
        minutes=1.0,
        batch_size=2,
        block_size=32,
        learning_rate=1e-3,
        warmup_steps=1,
        eval_every=1,
        eval_batches=1,
        seed=0,
        resume=False,
    )


def test_stream_loss_counts_every_block_once() -> None:
    torch.manual_seed(0)
    model = from_scratch(ModelSize(layers=1, hidden=64, context=16), 300, 0)
    stream = torch.randint(0, 300, (16 * 5 + 3,), dtype=torch.int16)
    together = loop.stream_loss(model, stream, 16, 5, torch.device("cpu"))
    one_by_one = loop.stream_loss(model, stream, 16, 1, torch.device("cpu"))
    assert together == pytest.approx(one_by_one, rel=1e-5)
    with torch.no_grad():
        x = stream[:80].view(5, 16).long()
        assert together == pytest.approx(float(model(input_ids=x, labels=x).loss), rel=1e-5)


# --- 2. the corpus: the same whatever the workers, and a corpus built elsewhere merged in ----------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Installed distributions: two permissive (one holding a copy of the other's file), one GPL."""
    folder = tmp_path / "site-packages"
    rng = random.Random(3)
    shared = generated_module(0, rng)
    make_distribution(
        folder,
        "alpha",
        ["License: MIT"],
        {f"alpha/m{i}.py": generated_module(i, rng) for i in range(1, 8)} | {"alpha/shared.py": shared},
    )
    make_distribution(folder, "beta", ["License-Expression: Apache-2.0"], {"beta/copy.py": shared})
    make_distribution(folder, "gamma", ["License: GPL-3.0-only"], {"gamma/g.py": module("MARKER_GPL")})
    return folder


def test_the_corpus_is_the_same_built_by_one_process_or_several(site: Path, tmp_path: Path) -> None:
    found = list(sources.python_distributions(path=[str(site)]))
    one = corpus.build(found, tmp_path / "one", jobs=1)
    two = corpus.build(found, tmp_path / "two", jobs=2)
    assert one == two
    assert (tmp_path / "one" / corpus.FILES).read_bytes() == (tmp_path / "two" / corpus.FILES).read_bytes()
    assert one["rejected_files"] == {corpus.DUPLICATE: 1}  # beta's copy of alpha's file
    assert {s["name"] for s in one["rejected_sources"]} == {"beta", "gamma"}


@pytest.fixture
def carried(tmp_path: Path) -> Path:
    """The non-Python part, built "on another machine": npm packages, one file of which a later source repeats."""
    nm = tmp_path / "node_modules"
    make_npm(
        nm,
        "pad",
        {"name": "pad", "version": "1.0.0", "license": "MIT"},
        {"index.js": "function padMarker(s, n) {\n  return s.padStart(n);\n}\nmodule.exports = padMarker;\n"},
    )
    make_npm(nm, "gpl", {"name": "gpl", "version": "1.0.0", "license": "GPL-3.0"}, {"g.js": "exports.g = 1;\n"})
    out = tmp_path / "carried"
    corpus.build(sources.npm_packages(nm), out)
    return out


def test_a_corpus_built_elsewhere_merges_in_with_its_sources_and_rejections(
    site: Path, carried: Path, tmp_path: Path
) -> None:
    other = corpus.read_manifest(carried)
    merged = corpus.build(sources.python_distributions(path=[str(site)]), tmp_path / "merged", include=[carried])
    assert [s["name"] for s in merged["sources"]] == ["alpha", "pad"]
    assert {s["name"] for s in merged["rejected_sources"]} == {"beta", "gamma", "gpl"}
    pad = next(s for s in merged["sources"] if s["name"] == "pad")
    assert pad == other["sources"][0]  # licence, evidence, files, bytes and hash as they were built there
    assert merged["included"] == [{"sha256": other["sha256"], "options": other["options"]}]
    assert set(merged["languages"]) == {"python", "javascript"}
    rows = list(corpus.read_files(tmp_path / "merged"))
    assert [r["source"] for r in rows][-1] == "pad" and "padMarker" in rows[-1]["text"]
    # Merged twice, the second copy's rows are duplicates of the first's.
    twice = corpus.build([], tmp_path / "twice", include=[carried, carried])
    assert twice["files"] == 1 and twice["rejected_files"][corpus.DUPLICATE] == 1


# --- 3. the GPU run's script, end to end on the CPU --------------------------------------------------------------


def run_script(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "base_gpu.py"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """scripts/base_gpu.py as the device tool runs it, at toy scale: fake installed distributions (45
    generated modules, one held out) and a carried npm corpus, packed as make base-gpu-prepare packs it."""
    root = tmp_path_factory.mktemp("gpu-run")
    site = root / "site-packages"
    rng = random.Random(7)
    names = [f"gen/m{i}.py" for i in range(44)]
    names.append(next(f"gen/held{i}.py" for i in range(100_000) if _held(f"gen/gen/held{i}.py")))
    make_distribution(site, "gen", ["License: MIT"], {n: generated_module(i, rng) for i, n in enumerate(names)})
    nm = root / "node_modules"
    make_npm(
        nm,
        "pad",
        {"name": "pad", "version": "1.0.0", "license": "MIT"},
        {"index.js": "function padMarker(s, n) {\n  return s.padStart(n);\n}\nmodule.exports = padMarker;\n"},
    )
    corpus.build(sources.npm_packages(nm), root / "carried-build")
    archive = root / "carried-corpus.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:  # as scripts/base_gpu_prepare.py packs it
        for name in ("manifest.json", "files.jsonl"):
            tar.add(root / "carried-build" / name, arcname=f"corpus/{name}")
    out, work = root / "out", root / "work"
    args = [
        "--out",
        str(out),
        "--work",
        str(work),
        "--device",
        "cpu",
        "--size",
        "llama-toy",
        "--steps",
        str(STEPS),
        "--wheels",
        str(root / "no-wheels"),  # the venv has tree-sitter already; the rehearsal (make) installs wheels
        "--carried",
        str(archive),
        "--corpus-args",
        f"--no-stdlib --site {site} --jobs 2",
        "--train-args",
        f"--batch-size {BATCH} --block-size {BLOCK} --vocab-size 400 --eval-every 2 --eval-batches 1 "
        "--warmup-steps 1 --jobs 1",
    ]
    first = run_script(args)
    assert first.returncode == 0, first.stdout + first.stderr
    return {"root": root, "out": out, "work": work, "args": args, "stdout": first.stdout}


def _held(path: str) -> bool:
    from codedouble.trainer.base.pretrain import held_out

    return held_out(path)


def test_the_gpu_run_sends_back_few_small_files(gpu_run: dict[str, Any]) -> None:
    files = sorted(p for p in gpu_run["out"].iterdir())
    assert all(p.is_file() for p in files)
    assert {p.name for p in files} == {"SHA256SUMS", "manifest.json", "log.txt", "base.tar.gz.00"}
    assert len(files) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in files)
    log = (gpu_run["out"] / "log.txt").read_text()
    assert "done in" in log and log.count("(exit 0") == 4  # probe, corpus, tokens, training (no wheels to install)
    # The repository was imported through the folder of links, as on the GPU machine, not the editable install.
    assert f"codedouble from {gpu_run['work'] / 'path' / 'codedouble' / 'trainer'}" in log


def test_the_pieces_join_into_a_loadable_llama_base(gpu_run: dict[str, Any], tmp_path: Path) -> None:
    unpack = script("base_gpu_unpack")
    base = unpack.unpack(gpu_run["out"], tmp_path)
    assert base == tmp_path / "base"
    model = AutoModelForCausalLM.from_pretrained(base)
    assert type(model).__name__ == "LlamaForCausalLM"
    tokenizer = AutoTokenizer.from_pretrained(base)
    assert all(tokenizer.convert_tokens_to_ids(t) is not None for t in prompt.SPECIAL_TOKENS)
    with safe_open(str(base / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(k).get_dtype() for k in weights.keys()} == {"BF16"}
    # The engine serves it, reading a Llama's context from max_position_embeddings.
    neural = engines.load_model(base)
    assert neural.context == model.config.max_position_embeddings == BLOCK
    assert isinstance(neural.complete(Request("gen/x.py", "def total(values):\n    return ", "\n", "line")), str)


def test_the_gpu_runs_manifest_says_what_it_saw_and_how_well_it_did(gpu_run: dict[str, Any], tmp_path: Path) -> None:
    manifest = json.loads((gpu_run["out"] / "manifest.json").read_text())
    training = manifest["training"]
    assert training["tokens_seen"] == STEPS * BATCH * BLOCK and training["steps_done"] == STEPS
    assert training["tokens_per_step"] == BATCH * BLOCK and training["device"] == "cpu"
    assert training["device_name"].startswith("cpu") and training["precision"] == "fp32"
    bpb = manifest["bits_per_byte"]
    assert math.isfinite(bpb["bits_per_byte"]) and bpb["bits_per_byte"] > 0 and bpb["bytes"] > 0
    assert bpb["bits_per_byte"] == pytest.approx(
        bpb["loss_nats_per_token"] * bpb["tokens"] / bpb["bytes"] / math.log(2)
    )
    command = shlex.split(manifest["command"])
    assert command[:3] == ["codedouble", "base", "train"] and "--steps" in command and "cpu" in command
    assert manifest["config"]["architecture"] == "LlamaForCausalLM" and manifest["config"]["dtype"] == "bfloat16"
    built = json.loads((gpu_run["work"] / "corpus" / "manifest.json").read_text())
    assert manifest["corpus"]["sha256"] == built["sha256"]
    # The corpus: the "installed" Python and the carried npm part, its manifest inside the archive.
    assert {s["name"] for s in built["sources"]} == {"gen", "pad"} and "included" in built
    base = script("base_gpu_unpack").unpack(gpu_run["out"], tmp_path)
    assert json.loads((base / "corpus-manifest.json").read_text()) == built


def test_a_rerun_on_the_same_machine_skips_the_finished_stages(gpu_run: dict[str, Any]) -> None:
    before = (gpu_run["out"] / "SHA256SUMS").read_text()
    again = run_script(gpu_run["args"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "corpus already built" in again.stdout and "base already trained" in again.stdout
    assert "$ " + sys.executable + " -m codedouble.trainer.cli" not in again.stdout
    assert (gpu_run["out"] / "SHA256SUMS").read_text() == before


def test_a_second_loan_continues_the_first_base(gpu_run: dict[str, Any], tmp_path: Path) -> None:
    """`--init`: the next GPU run starts from the base the last one brought back (unpacked into the
    repository as the shipped base is), keeps its tokenizer and adds its tokens to the count."""
    first = script("base_gpu_unpack").unpack(gpu_run["out"], tmp_path / "first")
    args = list(gpu_run["args"])
    args[args.index("--out") + 1] = str(tmp_path / "out")
    args[args.index("--work") + 1] = str(tmp_path / "work")
    again = run_script([*args, "--init", str(first)])
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"--init {first}" in again.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    earlier = json.loads((first / "manifest.json").read_text())
    assert manifest["training"]["tokens_seen_total"] == 2 * earlier["training"]["tokens_seen"]
    assert manifest["continued_from"] == earlier
    second = script("base_gpu_unpack").unpack(tmp_path / "out", tmp_path / "second")
    assert (second / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()


def test_a_large_base_is_cut_into_pieces_that_join_again(
    gpu_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = script("base_gpu")
    monkeypatch.setattr(gpu, "PIECE_BYTES", 64 * 1024)
    out = tmp_path / "out"
    out.mkdir()
    gpu._pack(gpu_run["work"] / "base", out, gpu.Log(out / "log.txt"))
    pieces = sorted(out.glob("base.tar.gz.*"))
    assert len(pieces) > 1 and all(p.stat().st_size <= 64 * 1024 for p in pieces)
    unpack = script("base_gpu_unpack")
    base = unpack.unpack(out, tmp_path / "joined")
    original = gpu_run["work"] / "base" / "model.safetensors"
    assert hashlib.sha256((base / "model.safetensors").read_bytes()).digest() == (
        hashlib.sha256(original.read_bytes()).digest()
    )
    (out / pieces[0].name).write_bytes(b"damaged")
    with pytest.raises(unpack.UnpackError, match="checksum"):
        unpack.unpack(out, tmp_path / "again")

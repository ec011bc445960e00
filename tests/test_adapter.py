"""`codedouble export --format peft`: a double as a LoRA adapter on its base (trainer/owning/adapter.py).

A tiny Llama base (random weights, the shipped tokenizer, which already holds the prompt format's tokens) is
fine-tuned on the shop history of test_train.py with LoRA and in full; the LoRA double's adapter must load
with peft onto the exported base and complete exactly as the double does, and the full one's approximation
must say what it costs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import _own_data_home, dataset_dir, history, tiny  # noqa: F401 - fixtures
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from codedouble.server.contract import prompt
from codedouble.trainer import cli
from codedouble.trainer.base.shipped import shipped_base
from codedouble.trainer.owning import adapter
from codedouble.trainer.owning.adapter import RANKS, TARGETS, AdapterError, export_adapter
from codedouble.trainer.training.model import ModelSize, from_scratch
from codedouble.trainer.training.train import train

SHIPPED = shipped_base()
PROMPTS = [
    (
        prompt.Context("shop/cart.py", "from dataclasses import dataclass, field", ("class Cart:",)),
        "    def size(self):\n",
    ),
    (prompt.Context("shop/pricing.py", "from decimal import Decimal"), "def net_price(gross, vat_rate=0.2):\n    "),
    (prompt.Context("tools/cli.py", "import argparse\nimport sys"), "def main(argv=None):\n    args = "),
]


@pytest.fixture(scope="module")
def llama_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer Llama with the shipped base's tokenizer: the prompt tokens are not new to it."""
    assert SHIPPED is not None
    path = tmp_path_factory.mktemp("llama") / "base"
    tokenizer = PreTrainedTokenizerFast.from_pretrained(SHIPPED, local_files_only=True)
    torch.manual_seed(0)
    model = from_scratch(
        ModelSize(layers=2, hidden=64, context=128), len(tokenizer), tokenizer.convert_tokens_to_ids(prompt.EOS)
    )
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def _double(dataset_dir: Path, base: Path, root: Path, finetune: str) -> Path:  # noqa: F811
    out = root / finetune
    opts = tiny(out=out, from_scratch=False, base=base, finetune=finetune, steps=6, learning_rate=1e-2)
    train(dataset_dir, opts, progress=False)
    return out


@pytest.fixture(scope="module")
def lora_double(dataset_dir: Path, llama_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return _double(dataset_dir, llama_base, tmp_path_factory.mktemp("doubles"), "lora")


@pytest.fixture(scope="module")
def full_double(dataset_dir: Path, llama_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return _double(dataset_dir, llama_base, tmp_path_factory.mktemp("doubles"), "full")


def greedy(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, ctx: prompt.Context, prefix: str) -> list[int]:
    ids = tokenizer(prompt.fim_prompt(ctx, prefix, ""), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    return out[0, ids.shape[1] :].tolist()


def assert_vllm_loads(folder: Path) -> dict:
    """The rules vLLM checks when it loads a LoRA (NOTES.md, serving engines)."""
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] in RANKS
    assert sorted(config["target_modules"]) == sorted(TARGETS)
    assert not config.get("modules_to_save") and config["bias"] == "none"
    assert not config.get("use_dora") and not config.get("trainable_token_indices")
    weights = load_file(folder / "adapter_model.safetensors")
    assert weights and all(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in weights), list(weights)[:4]
    assert not [k for k in weights if "embed" in k or "lm_head" in k]
    assert {k.split(".")[-3] for k in weights} == set(TARGETS)
    assert all(w.shape[0] == config["r"] for k, w in weights.items() if "lora_A" in k)
    assert not [p for p in folder.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".pkl"}]
    return config


def test_a_lora_double_is_its_adapter_exactly_and_completes_the_same_on_the_base(
    lora_double: Path, llama_base: Path, tmp_path: Path
) -> None:
    from peft import PeftModel

    done = export_adapter(lora_double, tmp_path / "alice", base_out=tmp_path / "base")
    assert done.rank == 8 and done.finetune == "lora"  # the LoRA's own rank, recovered
    assert done.error < 1e-4, done.errors
    assert done.dropped == []  # the base knew the prompt tokens: no embedding trained, nothing left behind
    assert_vllm_loads(tmp_path / "alice")
    assert (tmp_path / "base" / "model.safetensors").read_bytes() == (llama_base / "model.safetensors").read_bytes()

    tokenizer = PreTrainedTokenizerFast.from_pretrained(tmp_path / "base", local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base", local_files_only=True, dtype=torch.float32)
    served = PeftModel.from_pretrained(base, tmp_path / "alice").eval()
    double = AutoModelForCausalLM.from_pretrained(lora_double, local_files_only=True, dtype=torch.float32).eval()
    for ctx, prefix in PROMPTS:
        assert greedy(served, tokenizer, ctx, prefix) == greedy(double, tokenizer, ctx, prefix)
    ids = tokenizer(prompt.fim_prompt(*PROMPTS[0], ""), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        assert torch.allclose(served(ids).logits, double(ids).logits, atol=1e-4)
    report = json.loads((tmp_path / "alice" / adapter.REPORT).read_text())
    assert report["rank"] == 8 and report["finetune"] == "lora"


def test_a_full_double_is_approximated_and_says_what_it_costs(
    full_double: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    errors = adapter.rank_errors(
        load_file(full_double / "model.safetensors")[k]
        - load_file(Path(_base_of(full_double)) / "model.safetensors")[k]
        for k in load_file(full_double / "model.safetensors")
        if adapter._projection(k)
    )
    print("relative error by rank of the full double's projection change:", errors)
    assert all(errors[a] >= errors[b] for a, b in zip(RANKS, RANKS[1:], strict=False))  # more rank, less error
    # Above the threshold at every rank: refused, with the measured errors and the way out.
    if errors[64] > 0.05:
        with pytest.raises(AdapterError, match="--rank 64"):
            export_adapter(full_double, tmp_path / "refused")
        assert not (tmp_path / "refused").exists()
    code = cli.main(["export", str(full_double), "--format", "peft", "--out", str(tmp_path / "bob"), "--rank", "64"])
    assert code == 0
    said = capsys.readouterr().err
    assert "rank 64" in said and "rank 8:" in said
    assert "not carried by a LoRA: model.embed_tokens.weight" in said  # full fine-tune moved the embeddings too
    assert "norm" in said
    config = assert_vllm_loads(tmp_path / "bob")
    assert config["r"] == 64
    report = json.loads((tmp_path / "bob" / adapter.REPORT).read_text())
    assert report["finetune"] == "full" and report["errors"]["64"] == pytest.approx(errors[64], rel=1e-6)


def _base_of(folder: Path) -> str:
    return json.loads((folder / "manifest.json").read_text())["training"]["base"]["path"]


def test_factors_are_the_best_low_rank_approximation() -> None:
    torch.manual_seed(1)
    exact = torch.randn(48, 3) @ torch.randn(3, 32)
    a, b = adapter.factors(exact, 8)
    assert a.shape == (8, 32) and b.shape == (48, 8)
    assert torch.allclose(b @ a, exact, atol=1e-4)  # a rank-3 change is carried exactly by a rank-8 LoRA
    noisy = torch.randn(64, 64)
    errors = adapter.rank_errors([noisy], (8, 64))
    assert errors[64] < 1e-6 < errors[8] < 1
    a, b = adapter.factors(noisy, 8)
    assert float((noisy - b @ a).norm() / noisy.norm()) == pytest.approx(errors[8], rel=1e-4)
    assert adapter.choose_rank({8: 0.2, 16: 0.04, 32: 0.01, 64: 0.0}, 0.05) == 16
    assert adapter.choose_rank({8: 0.2, 64: 0.1}, 0.05) is None


def test_what_cannot_be_an_adapter_is_refused_with_the_reason(
    lora_double: Path,
    llama_base: Path,
    dataset_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    # --from-scratch: no base at all.
    scratch = tmp_path / "scratch"
    train(dataset_dir, tiny(out=scratch), progress=False)
    with pytest.raises(AdapterError, match="--from-scratch"):
        export_adapter(scratch, tmp_path / "out")
    # A GPT-2 base (the shipped one before the Llama base): no engine serves LoRA on it.
    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, n_positions=64)).save_pretrained(gpt2)
    with pytest.raises(AdapterError, match="GPT2LMHeadModel"):
        adapter._check_same_shape(lora_double, gpt2)
    # The shipped base is a Llama: the architecture check lets it through (its shapes differ from the toy's).
    assert SHIPPED is not None
    with pytest.raises(AdapterError, match="not shaped like its base"):
        adapter._check_same_shape(lora_double, SHIPPED)
    # A base that moved: say where it is now; a different base: refused.
    moved = tmp_path / "moved"
    shutil.copytree(llama_base, moved)
    assert export_adapter(lora_double, tmp_path / "a", base=moved).rank == 8
    other = tmp_path / "other"
    shutil.copytree(llama_base, other)
    weights = load_file(other / "model.safetensors")
    weights["model.norm.weight"] = weights["model.norm.weight"] + 1
    from safetensors.torch import save_file

    save_file(weights, str(other / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(AdapterError, match="not the base"):
        export_adapter(lora_double, tmp_path / "b", base=other)
    with pytest.raises(AdapterError, match="--rank 12"):
        export_adapter(lora_double, tmp_path / "c", rank=12)
    # The base is written once: a folder holding it is kept, one holding another is refused.
    adapter.export_base(llama_base, tmp_path / "shared-base")
    assert adapter.export_base(llama_base, tmp_path / "shared-base") == tmp_path / "shared-base"
    with pytest.raises(AdapterError, match="another base"):
        adapter.export_base(other, tmp_path / "shared-base")


def test_gguf_needs_a_llama_cpp_tree(lora_double: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["export", str(lora_double), "--format", "gguf", "--out", str(tmp_path / "g")]
    assert cli.main(args) == 2
    assert "--llama-cpp TREE" in capsys.readouterr().err
    assert cli.main([*args, "--llama-cpp", str(tmp_path)]) == 2
    assert "not a llama.cpp source tree" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()

"""`codedouble export --format peft`: a double as a standard LoRA adapter on its base, the form multi-LoRA
engines serve (vLLM, SGLang: one base, one adapter per engineer; llama.cpp through its converter).

What every engine loads (vLLM's rules, the strictest): `adapter_config.json` + `adapter_model.safetensors`,
LoRA on the seven Llama projections only, no `modules_to_save`, no new tokens, `bias = "none"`, rank one of
vLLM's `--max-lora-rank` values. A double holds its whole weights (LoRA is merged when it is written), so
the adapter is recovered from the difference double − base of each projection by truncated SVD: exact at the
LoRA's own rank for a double trained with `--finetune lora`, the best rank-r approximation (Eckart-Young) for
one trained in full. What a LoRA on those projections cannot carry (embeddings, norms, an untied output
layer) is measured and reported, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from codedouble.server.contract import artifact, atomic
from codedouble.server.contract.errors import CodedoubleError

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RANKS = (8, 16, 32, 64)  # vLLM's --max-lora-rank values a team would run with
DEFAULT_MAX_ERROR = 0.05  # relative Frobenius error of the projections' change that the rank search accepts
SUPPORTED = {"llama"}  # model types every multi-LoRA engine serves with LoRA (not GPT-2: vLLM refuses it)
BASE_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
REPORT = "codedouble-adapter.json"  # beside the adapter: what was approximated and dropped (engines ignore it)


class AdapterError(CodedoubleError):
    """A double that cannot be an adapter of its base; the message says why and what to do."""


@dataclass
class Dropped:
    """A weight that differs from the base and that a LoRA on the projections cannot carry."""

    name: str
    relative_change: float  # ||double - base|| / ||base||
    rows_changed: int


@dataclass
class AdapterExport:
    adapter: Path
    base: Path | None  # where the base was written (None: not asked)
    rank: int
    errors: dict[int, float]  # rank -> relative Frobenius error of the projections' change
    finetune: str | None
    dropped: list[Dropped] = field(default_factory=list)

    @property
    def error(self) -> float:
        return self.errors[self.rank]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["adapter"], data["base"] = str(self.adapter), str(self.base) if self.base else None
        data["errors"] = {str(k): v for k, v in self.errors.items()}
        return data


# --- the mathematics (pure) ------------------------------------------------------------------------------


def factors(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) with B @ A the best rank-`rank` approximation of `delta` (out x in): A is rank x in, B out x rank,
    the singular values split evenly between them so neither factor is tiny while the other is huge."""
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    rank = min(rank, s.numel())
    root = s[:rank].sqrt()
    a = root[:, None] * vh[:rank]
    b = u[:, :rank] * root[None, :]
    return a.to(delta.dtype).contiguous(), b.to(delta.dtype).contiguous()


def tail_energy(singular: torch.Tensor, ranks: Iterable[int]) -> dict[int, float]:
    """The squared Frobenius norm a rank-r truncation leaves out, for each r."""
    squares = singular.double() ** 2
    total = float(squares.sum())
    return {r: max(total - float(squares[:r].sum()), 0.0) for r in ranks}


def rank_errors(deltas: Iterable[torch.Tensor], ranks: Iterable[int] = RANKS) -> dict[int, float]:
    """The relative Frobenius error ||Δ - Δ_r|| / ||Δ|| over all the projections at once, for each rank."""
    ranks = tuple(ranks)
    left = dict.fromkeys(ranks, 0.0)
    total = 0.0
    for delta in deltas:
        singular = torch.linalg.svdvals(delta.double())
        total += float((singular**2).sum())
        for r, energy in tail_energy(singular, ranks).items():
            left[r] += energy
    return {r: (math.sqrt(left[r] / total) if total > 0 else 0.0) for r in ranks}


def choose_rank(errors: dict[int, float], max_error: float) -> int | None:
    """The smallest rank whose error is within `max_error`, or None."""
    return next((r for r in sorted(errors) if errors[r] <= max_error), None)


# --- reading the double and its base ----------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{path} cannot be read ({exc})") from exc
    if not isinstance(data, dict):
        raise AdapterError(f"{path} is not a JSON object")
    return data


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_base(folder: Path, manifest: dict[str, Any], base: Path | None) -> Path:
    """The base the double at `folder` was fine-tuned from: `base` if given, else where training found it;
    either way the weights must be the very ones training recorded (their SHA-256)."""
    training = manifest.get("training") or {}
    recorded = training.get("base")
    if not recorded:
        raise AdapterError(
            f"{folder} was trained --from-scratch: its vocabulary and every weight are its own, so it is no "
            "adapter of any base. Train it on a base (`codedouble train DATASET --base PATH`) to export it as one"
        )
    path = base or Path(recorded.get("path") or "")
    if not (path / "model.safetensors").is_file():
        raise AdapterError(
            f"the base {folder} was trained on is not at {path}: name where it is now with --base PATH "
            f"(its weights' SHA-256 is {str(recorded.get('sha256'))[:12]}…)"
        )
    if recorded.get("sha256") and _sha256(path / "model.safetensors") != recorded["sha256"]:
        raise AdapterError(
            f"{path} is not the base {folder} was trained on (its weights differ from SHA-256 "
            f"{recorded['sha256'][:12]}…): an adapter only means something on its own base"
        )
    return path


def _check_same_shape(folder: Path, base: Path) -> None:
    """Refuse, with the reason, what no LoRA on the projections can be: another architecture, another
    vocabulary, a tied output layer untied (or the reverse)."""
    double_config, base_config = _read_json(folder / "config.json"), _read_json(base / "config.json")
    kind = base_config.get("model_type")
    if kind not in SUPPORTED:
        architectures = ", ".join(base_config.get("architectures") or [str(kind)])
        raise AdapterError(
            f"the base {base} is {architectures}: multi-LoRA engines serve LoRA for Llama-architecture bases "
            "(vLLM refuses GPT2LMHeadModel, and its projections are not q_proj…down_proj). Train the double again "
            "on the shipped Llama base (`codedouble train`, without --base)"
        )
    for key in ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads"):
        if double_config.get(key) != base_config.get(key):
            raise AdapterError(
                f"{folder} is not shaped like its base ({key}: {double_config.get(key)} here, "
                f"{base_config.get(key)} in {base})"
            )
    if double_config.get("vocab_size") != base_config.get("vocab_size"):
        raise AdapterError(
            f"{folder} has a vocabulary of {double_config.get('vocab_size')} tokens, its base "
            f"{base_config.get('vocab_size')}: tokens were added in training, and engines load adapters without "
            "new tokens. Use a base whose tokenizer already has codedouble's prompt tokens"
        )
    if bool(double_config.get("tie_word_embeddings", True)) != bool(base_config.get("tie_word_embeddings", True)):
        raise AdapterError(f"{folder} ties its output layer to its embeddings differently from {base}")
    if _read_json(folder / "tokenizer.json").get("model") != _read_json(base / "tokenizer.json").get("model"):
        raise AdapterError(f"{folder}'s tokenizer is not its base's: an adapter uses the base's tokenizer")


def _projection(name: str) -> str | None:
    """The target projection a weight belongs to, or None."""
    parts = name.split(".")
    return parts[-2] if len(parts) >= 2 and parts[-1] == "weight" and parts[-2] in TARGETS else None


def _dropped(name: str, double: torch.Tensor, base: torch.Tensor) -> Dropped | None:
    if torch.equal(double, base):
        return None
    change = (double.double() - base.double()).norm() / max(float(base.double().norm()), 1e-12)
    rows = int((double != base).reshape(double.shape[0], -1).any(dim=1).sum()) if double.dim() else 1
    return Dropped(name, round(float(change), 6), rows)


# --- writing ------------------------------------------------------------------------------------------------


def export_base(base: Path, out: Path) -> Path:
    """The base as a plain Hugging Face directory (what `vllm serve BASE` loads), written once: a folder that
    already holds these very weights is left as it is, so every engineer's export may name the same one."""
    weights = out / "model.safetensors"
    if weights.is_file():
        if _sha256(weights) == _sha256(base / "model.safetensors"):
            return out
        raise AdapterError(f"{out} already holds another base; name an empty folder (or that base's) for --base-out")
    with atomic.directory(out) as staging:
        for name in BASE_FILES:
            if (base / name).is_file():
                shutil.copyfile(base / name, staging / name)
    return out


def _adapter_config(rank: int, base_name: str) -> dict[str, Any]:
    from peft import LoraConfig

    config = LoraConfig(
        r=rank,
        lora_alpha=rank,  # scaling alpha / r = 1: B @ A is the change itself
        lora_dropout=0.0,
        target_modules=list(TARGETS),
        bias="none",
        modules_to_save=None,
        task_type="CAUSAL_LM",
        base_model_name_or_path=base_name,
        inference_mode=True,
    )
    data = config.to_dict()
    data["target_modules"] = sorted(TARGETS)  # peft keeps a set; JSON wants a list
    return json.loads(json.dumps(data, default=lambda v: sorted(v) if isinstance(v, set) else str(v)))


def export_adapter(
    folder: Path,
    out: Path,
    *,
    rank: int | None = None,
    max_error: float = DEFAULT_MAX_ERROR,
    base: Path | None = None,
    base_out: Path | None = None,
) -> AdapterExport:
    """Write the double at `folder` as a PEFT LoRA adapter at `out` (and its base at `base_out`, if given)."""
    if rank is not None and rank not in RANKS:
        raise AdapterError(f"--rank {rank}: choose one of vLLM's LoRA ranks, {', '.join(map(str, RANKS))}")
    if not 0 < max_error < 1:
        raise AdapterError(f"--max-error {max_error}: a relative error between 0 and 1, e.g. 0.05")
    manifest = artifact.read_manifest(folder)
    base_path = find_base(folder, manifest, base)
    _check_same_shape(folder, base_path)
    double_weights = load_file(folder / "model.safetensors")
    base_weights = load_file(base_path / "model.safetensors")
    if set(double_weights) != set(base_weights):
        raise AdapterError(f"{folder} and its base {base_path} hold different weights (names differ)")

    deltas: dict[str, torch.Tensor] = {}
    dropped: list[Dropped] = []
    for name in sorted(double_weights):
        ours, theirs = double_weights[name], base_weights[name]
        if ours.shape != theirs.shape:
            raise AdapterError(f"{name} is {tuple(ours.shape)} in {folder}, {tuple(theirs.shape)} in its base")
        if _projection(name) is not None:
            deltas[name] = ours.float() - theirs.float()
        else:
            found = _dropped(name, ours, theirs)
            if found is not None:
                dropped.append(found)
    if not deltas:
        raise AdapterError(f"{folder} has none of the projections {', '.join(TARGETS)}")

    errors = rank_errors(deltas.values())
    chosen = rank if rank is not None else choose_rank(errors, max_error)
    if chosen is None:
        measured = ", ".join(f"rank {r}: {e:.1%}" for r, e in errors.items())
        raise AdapterError(
            f"no LoRA rank up to {RANKS[-1]} approximates {folder}'s change from its base within {max_error:.0%} "
            f"({measured}); it was trained in full. Export it anyway with --rank {RANKS[-1]} (and measure what that "
            "costs), or retrain with --finetune lora"
        )

    tensors: dict[str, torch.Tensor] = {}
    for name, delta in deltas.items():
        a, b = factors(delta, chosen)
        if a.shape[0] < chosen:  # a matrix narrower than the rank: pad with zeros, exact all the same
            a = torch.cat([a, a.new_zeros(chosen - a.shape[0], a.shape[1])])
            b = torch.cat([b, b.new_zeros(b.shape[0], chosen - b.shape[1])], dim=1)
        stem = "base_model.model." + name.removesuffix(".weight")
        tensors[f"{stem}.lora_A.weight"] = a.contiguous()
        tensors[f"{stem}.lora_B.weight"] = b.contiguous()

    written_base = export_base(base_path, base_out) if base_out is not None else None
    result = AdapterExport(out, written_base, chosen, errors, (manifest.get("training") or {}).get("finetune"), dropped)
    base_name = str(written_base) if written_base is not None else base_path.name
    with atomic.directory(out) as staging:
        save_file(tensors, str(staging / "adapter_model.safetensors"), metadata={"format": "pt"})
        atomic.write_text(staging / "adapter_config.json", json.dumps(_adapter_config(chosen, base_name), indent=2))
        report = {
            **result.to_dict(),
            "adapter": out.name,
            "base_sha256": (manifest.get("training") or {}).get("base", {}).get("sha256"),
            "double": folder.name,
            "double_created": manifest.get("created"),
        }
        atomic.write_text(staging / REPORT, json.dumps(report, indent=2) + "\n")
    return result

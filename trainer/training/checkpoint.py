"""Resumable training state in safetensors + JSON (never pickle): weights, optimizer moments, progress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from codedouble.server.contract import atomic

STATE = "state.json"


def save(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Write a checkpoint into `folder`, replacing the previous one only once the new one is complete."""
    with atomic.directory(folder) as tmp:
        _fill(tmp, model, optimizer, state)


def _fill(tmp: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    save_model(model, str(tmp / "model.safetensors"))  # handles tied embeddings, unlike save_file
    moments: dict[str, torch.Tensor] = {}
    steps: dict[str, float] = {}
    for index, entry in optimizer.state_dict()["state"].items():
        for key, value in entry.items():
            if key == "step":
                steps[str(index)] = float(value)
            else:
                moments[f"{index}.{key}"] = value.detach().contiguous().cpu()
    save_file(moments, str(tmp / "optimizer.safetensors"))
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.state_dict()["param_groups"]]
    (tmp / STATE).write_text(json.dumps({**state, "optimizer_steps": steps, "param_groups": groups}, indent=2))


def load(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore `model` and `optimizer` from a checkpoint; returns the saved progress state."""
    state = json.loads((folder / STATE).read_text())
    load_model(model, str(folder / "model.safetensors"), device=str(next(model.parameters()).device))
    moments = load_file(str(folder / "optimizer.safetensors"))
    restored: dict[int, dict[str, Any]] = {}
    for key, value in moments.items():
        index, name = key.split(".", 1)
        restored.setdefault(int(index), {})[name] = value
    for index, step in state["optimizer_steps"].items():
        restored.setdefault(int(index), {})["step"] = torch.tensor(step)
    current = optimizer.state_dict()
    groups = [
        {**saved, "params": group["params"]}
        for saved, group in zip(state["param_groups"], current["param_groups"], strict=True)
    ]
    optimizer.load_state_dict({"state": restored, "param_groups": groups})
    return state


def save_weights(folder: Path, model: torch.nn.Module) -> None:
    """Weights alone (the best so far): written beside, then renamed over the previous ones."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic.staged(folder / "model.safetensors") as tmp:
        save_model(model, str(tmp))


def load_weights(folder: Path, model: torch.nn.Module) -> None:
    load_model(model, str(folder / "model.safetensors"), device=str(next(model.parameters()).device))


def exists(folder: Path) -> bool:
    return (folder / STATE).is_file()

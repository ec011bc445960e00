"""The one training loop: a personal double (`codedouble train`) and the shipped base (`codedouble base
train`) both run through `fit`. AdamW, warm-up then cosine over a step or wall-clock budget, validation loss,
the best weights kept, resumable from `work`; DDP under torchrun (gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from transformers import PreTrainedTokenizerBase

from codedouble.server.contract import atomic
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.training import checkpoint


class LoopError(CodedoubleError):
    """A problem the user must fix; the message says what and how."""


@dataclass(frozen=True)
class LoopOptions:
    steps: int | None  # with no steps, `minutes` of wall time
    minutes: float
    batch_size: int
    block_size: int
    learning_rate: float
    warmup_steps: int
    eval_every: int
    eval_batches: int
    seed: int
    resume: bool


class Budgeted(Protocol):
    """What `codedouble train`'s and `codedouble base train`'s options share: how long and how to loop."""

    steps: int | None
    minutes: float | None
    batch_size: int
    warmup_steps: int
    eval_every: int
    eval_batches: int
    seed: int
    resume: bool


def options(opts: Budgeted, *, block_size: int, learning_rate: float, default_minutes: float) -> LoopOptions:
    """The loop's options from a command's: a step budget if given, else `minutes` (or the default) of wall time."""
    return LoopOptions(
        steps=opts.steps,
        minutes=opts.minutes or default_minutes,
        batch_size=opts.batch_size,
        block_size=block_size,
        learning_rate=learning_rate,
        warmup_steps=opts.warmup_steps,
        eval_every=opts.eval_every,
        eval_batches=opts.eval_batches,
        seed=opts.seed,
        resume=opts.resume,
    )


def quiet_transformers() -> None:
    """transformers' notices (padding hints, weight-writing bars) are noise in a command-line tool."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@dataclass(frozen=True)
class Run:
    """Where this process trains: its device and, under torchrun, its rank in the group."""

    device: torch.device
    distributed: bool
    rank: int
    world_size: int


@dataclass(frozen=True)
class Fitted:
    steps: int  # optimizer steps done, counting those before a resume
    best_validation_loss: float  # rank 0's; NaN on other ranks
    tokens_seen: int  # across all ranks


def device_for(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise LoopError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return torch.device(choice)


@contextmanager
def started(choice: str) -> Iterator[Run]:
    """The process's `Run`; under torchrun (WORLD_SIZE > 1) the process group is set up and, on success,
    torn down after every rank is done. Not after a failure: destroying the group while another rank is
    still in a collective deadlocks (pytorch#75097), and process exit tears it down anyway."""
    device = device_for(choice)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield Run(device, False, 0, 1)
        return
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    yield Run(device, True, dist.get_rank(), dist.get_world_size())
    dist.barrier()
    dist.destroy_process_group()


def work_folder(out: Path, resume: bool, run: Run) -> Path:
    """Where the run's checkpoints live: `.NAME.training` beside the output `out`, never inside it. With
    `resume` it must hold an interrupted run's last checkpoint; without, rank 0 clears what an earlier run left."""
    work = out.with_name(f".{out.name}.training")
    if resume and not checkpoint.exists(work / "last"):
        raise LoopError(f"--resume: no interrupted run to continue for {out} (nothing at {work})")
    if not resume and run.rank == 0:
        shutil.rmtree(work, ignore_errors=True)
    return work


def publish(out: Path, fill: Callable[[Path], None], work: Path) -> None:
    """Let `fill` write the finished model into a fresh directory, put it at `out` whole or not at all, then
    drop the checkpoints (rank 0 only)."""
    with atomic.directory(out) as folder:
        fill(folder)
    shutil.rmtree(work, ignore_errors=True)


def shared(run: Run, value: str) -> str:
    """Rank 0's `value` on every rank (e.g. an output name holding a timestamp)."""
    if not run.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return str(box[0])


def wait_for_rank_0(run: Run) -> None:
    if run.distributed:
        dist.barrier()


def token_stream(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> torch.Tensor:
    ids: list[int] = []
    for start in range(0, len(texts), 256):
        for row in tokenizer(texts[start : start + 256], add_special_tokens=False)["input_ids"]:
            ids.extend(row)
    return torch.tensor(ids, dtype=torch.long)


def _batch(
    stream: torch.Tensor, block: int, size: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    starts = torch.randint(0, len(stream) - block, (size,), generator=generator)
    return torch.stack([stream[s : s + block] for s in starts.tolist()]).to(device=device, dtype=torch.long)


def _cosine(progress: float, step: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak over the run's progress (steps or time)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@torch.no_grad()
def validation_loss(model: torch.nn.Module, stream: torch.Tensor, opts: LoopOptions, device: torch.device) -> float:
    model.eval()
    generator = torch.Generator().manual_seed(opts.seed + 1)  # the same validation blocks every time
    losses = []
    for _ in range(opts.eval_batches):
        x = _batch(stream, opts.block_size, opts.batch_size, generator, device)
        losses.append(model(input_ids=x, labels=x).loss.item())
    model.train()
    return sum(losses) / len(losses)


def fit(
    model: Any,
    stream: torch.Tensor,
    val_stream: torch.Tensor,
    opts: LoopOptions,
    work: Path,
    run: Run,
    progress: bool,
    desc: str = "training",
) -> Fitted:
    """Train `model` in place on random blocks of `stream`; on return (rank 0) it holds the best weights
    seen by validation. `work` keeps `last` (for resume) and `best` checkpoints."""
    from tqdm import tqdm

    block = opts.block_size
    if len(stream) <= block:
        raise LoopError(f"{len(stream):,} training tokens cannot fill one block of {block}")
    model.to(run.device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=opts.learning_rate, weight_decay=0.01, betas=(0.9, 0.95))
    state: dict[str, Any] = {"step": 0, "elapsed": 0.0, "best": float("inf")}
    if opts.resume:
        state = checkpoint.load(work / "last", model, optimizer)
    trained = torch.nn.parallel.DistributedDataParallel(model) if run.distributed else model
    budget = None if opts.steps else opts.minutes * 60
    generator = torch.Generator().manual_seed(opts.seed * 1000 + run.rank + state["step"])
    step, resumed_elapsed, loop_start = state["step"], state["elapsed"], time.monotonic()
    bar = tqdm(
        total=opts.steps or int(budget or 0),
        initial=step if opts.steps else int(resumed_elapsed),
        unit="step" if opts.steps else "s",
        desc=desc,
        disable=None if progress and run.rank == 0 else True,
    )
    try:
        while True:
            elapsed = resumed_elapsed + time.monotonic() - loop_start
            done = step / opts.steps if opts.steps else elapsed / budget  # type: ignore[operator]
            stop = torch.tensor(float(done >= 1.0))
            if run.distributed:
                dist.broadcast(stop, src=0)  # rank 0's clock decides, so every rank stops at the same step
            if stop.item():
                break
            lr = _cosine(done, step, opts.learning_rate, opts.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = _batch(stream, block, opts.batch_size, generator, run.device)
            loss = trained(input_ids=x, labels=x).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            step += 1
            bar.update(1 if opts.steps else int(elapsed) - bar.n)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}", refresh=False)
            if step % opts.eval_every == 0 and run.rank == 0:
                val = validation_loss(model, val_stream, opts, run.device)
                bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val:.3f}")
                state = {
                    "step": step,
                    "elapsed": resumed_elapsed + time.monotonic() - loop_start,
                    "best": min(state["best"], val),
                }
                if val <= state["best"]:
                    checkpoint.save_weights(work / "best", model)
                checkpoint.save(work / "last", model, optimizer, state)
    except torch.cuda.OutOfMemoryError as exc:
        raise LoopError(
            f"out of GPU memory at batch size {opts.batch_size}, block size {block}: lower --batch-size or --block-size"
        ) from exc
    finally:
        bar.close()
    wait_for_rank_0(run)
    best = float("nan")
    if run.rank == 0:
        final = validation_loss(model, val_stream, opts, run.device)
        if final > state["best"]:
            checkpoint.load_weights(work / "best", model)
        best = min(final, state["best"])
    return Fitted(step, best, step * opts.batch_size * block * run.world_size)

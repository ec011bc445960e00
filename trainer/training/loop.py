"""The one training loop: a personal double (`codedouble train`) and the shipped base (`codedouble base
train`) both run through `fit`. AdamW, warm-up then cosine over a step or wall-clock budget, validation loss,
the best weights kept, resumable from `work`; DDP under torchrun (gloo on CPU, nccl on CUDA).

On CUDA the loop trades exactness it does not need for speed, each knob for a stated reason (`precision`,
`_optimizer`, LoopOptions.compile); on CPU it runs plain fp32, which is the fastest there."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
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
    # torch.compile fuses the many small element-wise kernels (RMSNorm, RoPE, SiLU) that dominate a small
    # model's step on a GPU; it costs a minute of compiling first, so it stays a choice, off by default.
    compile: bool = False


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


def options(
    opts: Budgeted,
    *,
    block_size: int,
    learning_rate: float,
    default_minutes: float,
    batch_size: int | None = None,
    compile: bool = False,
) -> LoopOptions:
    """The loop's options from a command's: a step budget if given, else `minutes` (or the default) of wall time;
    `batch_size` overrides the command's (a batch chosen to fit the GPU)."""
    return LoopOptions(
        steps=opts.steps,
        minutes=opts.minutes or default_minutes,
        batch_size=batch_size or opts.batch_size,
        block_size=block_size,
        learning_rate=learning_rate,
        warmup_steps=opts.warmup_steps,
        eval_every=opts.eval_every,
        eval_batches=opts.eval_batches,
        seed=opts.seed,
        resume=opts.resume,
        compile=compile,
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


def device_name(device: torch.device) -> str:
    """What the manifest records as the hardware: the GPU's name, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def precision(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's number format. CUDA: bf16 autocast, the tensor cores' native format (an H100/H200
    does ~15x the fp32 rate) with fp32's exponent range, so no loss scaling; weights, gradients and AdamW stay
    fp32. CPU: plain fp32; bf16 is 2-9x slower on this kind of CPU (shared/NOTES.md)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _optimizer(params: list[torch.nn.Parameter], opts: LoopOptions, device: torch.device) -> torch.optim.AdamW:
    # fused=True: one CUDA kernel updates every parameter, instead of a dozen launches per tensor.
    return torch.optim.AdamW(
        params, lr=opts.learning_rate, weight_decay=0.01, betas=(0.9, 0.95), fused=device.type == "cuda"
    )


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
    if device.type == "cuda":
        # fp32 matrix products outside autocast (none in the model's forward, a few in the loss and clipping)
        # may use TF32's 10-bit mantissa: gradients are noisier than that anyway.
        torch.set_float32_matmul_precision("high")
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
    # The checkpoint stops being resumable in one step, its state file first: killed midway through the removal,
    # the run must not leave half a checkpoint that `--resume` would try to load.
    (work / "last" / checkpoint.STATE).unlink(missing_ok=True)
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


def token_stream(tokenizer: PreTrainedTokenizerBase, texts: list[str], dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Every text's ids, one after another. Kept as a tensor per batch of texts: a Python list of a corpus's
    hundreds of millions of ids would take ~30 bytes each."""
    parts = [torch.zeros(0, dtype=dtype)]
    for start in range(0, len(texts), 1024):  # the fast tokenizer encodes a batch on all cores
        rows = tokenizer(texts[start : start + 1024], add_special_tokens=False)["input_ids"]
        parts.extend(torch.tensor(row, dtype=dtype) for row in rows if row)
    return torch.cat(parts)


def _batch(
    stream: torch.Tensor, block: int, size: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """`size` random blocks of `block` tokens. The starts come from the CPU generator (the same on every
    device); the blocks are gathered where the stream lives (on a GPU, nothing crosses the bus but the starts)."""
    starts = torch.randint(0, len(stream) - block, (size,), generator=generator)
    index = starts.to(stream.device)[:, None] + torch.arange(block, device=stream.device)
    return stream[index].to(device=device, dtype=torch.long)


@torch.no_grad()
def stream_loss(
    model: torch.nn.Module, stream: torch.Tensor, block: int, batch_size: int, device: torch.device
) -> float:
    """Mean loss (nats per predicted token) over the whole of `stream`, cut into consecutive blocks: every
    held-out token counted once, not a sample. The last partial block is left out."""
    model.eval()
    blocks = stream[: len(stream) // block * block].view(-1, block)
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        x = blocks[start : start + batch_size].to(device=device, dtype=torch.long)
        with precision(device):
            loss = model(input_ids=x, labels=x).loss
        predicted = x.shape[0] * (block - 1)
        total += float(loss) * predicted
        count += predicted
    model.train()
    return total / count if count else float("nan")


def largest_batch(model: torch.nn.Module, block: int, device: torch.device, most: int, memory: float = 0.8) -> int:
    """The batch (a multiple of 8 sequences, at most `most`) whose training step fills `memory` of the GPU.
    Activation memory grows linearly with the batch: two probe steps (4 and 8 sequences) give its slope and
    the fixed part (weights, gradients), so no step has to fail with out-of-memory to find the limit."""
    if device.type != "cuda":
        return most
    model.to(device)
    peaks = []
    for size in (4, 8):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        x = torch.zeros((size, block), dtype=torch.long, device=device)
        with precision(device):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        peaks.append(torch.cuda.max_memory_allocated(device))
    model.zero_grad(set_to_none=True)
    per_sequence = max((peaks[1] - peaks[0]) / 4, 1.0)
    fixed = peaks[0] - 4 * per_sequence
    total = torch.cuda.get_device_properties(device).total_memory
    fits = int((memory * total - fixed) / per_sequence)
    return max(8, min(most, fits) // 8 * 8)


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
        with precision(device):
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
    if run.device.type == "cuda":
        # The token ids live on the GPU (2 bytes each: a few hundred MB for a whole corpus), so a step's batch
        # is gathered there instead of being stacked on the CPU and copied over.
        stream, val_stream = stream.to(run.device), val_stream.to(run.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(trainable, opts, run.device)
    state: dict[str, Any] = {"step": 0, "elapsed": 0.0, "best": float("inf")}
    if opts.resume:
        state = checkpoint.load(work / "last", model, optimizer)
    trained = torch.nn.parallel.DistributedDataParallel(model) if run.distributed else model
    if opts.compile:
        trained = torch.compile(trained)  # shares `model`'s parameters: checkpoints and validation use `model`
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
            with precision(run.device):
                loss = trained(input_ids=x, labels=x).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            step += 1
            bar.update(1 if opts.steps else int(elapsed) - bar.n)
            if not bar.disable:  # reading the loss waits for the GPU: only when someone watches
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}", refresh=False)
            if step % opts.eval_every == 0 and run.rank == 0:
                val = validation_loss(model, val_stream, opts, run.device)
                bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val:.3f}")
                if progress and bar.disable:  # no terminal (a log file): one line per validation instead
                    seen = step * opts.batch_size * block * run.world_size
                    print(
                        f"step {step} loss {loss.item():.3f} val {val:.3f} lr {lr:.1e} tokens {seen:,} "
                        f"elapsed {elapsed:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
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

"""`codedouble base train`: pretrain the base every double is fine-tuned from, through the same loop as
`codedouble train` (trainer/training/loop.py), on a corpus built by `codedouble base corpus`.

    BASE/model.safetensors, config.json, generation_config.json   the model (never pickle)
    BASE/tokenizer.json, tokenizer_config.json                   its byte-level BPE, the prompt format's tokens
    BASE/manifest.json                                           corpus hash, tokens seen, config, loss, command
    BASE/corpus-manifest.json                                    the corpus's sources and licences
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from codedouble.server.contract import artifact, atomic, prompt
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.base import corpus
from codedouble.trainer.base.sizes import CPU_BATCH, DEFAULT_SIZE, MAX_TOKENS_PER_STEP, SIZES
from codedouble.trainer.base.texts import file_texts, plain_bytes, plain_texts
from codedouble.trainer.training import loop
from codedouble.trainer.training.model import from_scratch, parameter_count
from codedouble.trainer.training.tokenizer import train_tokenizer

BASE_FORMAT = 1
BASE_KIND = "codedouble-base"
CORPUS_MANIFEST = "corpus-manifest.json"
VALIDATION_EVERY = 100  # one file in this many (by path hash) is held out for validation loss
TOKENIZER_SAMPLE_CHARS = 40_000_000  # BPE merges settle long before the whole corpus
TOKENS_FORMAT = 2  # the token cache's layout: bump to rebuild every cache
PARALLEL_FILES = 2_000  # below this many corpus files, worker processes cost more than they save


class PretrainError(CodedoubleError):
    """A problem the user must fix before pretraining can run; the message says what."""


@dataclass(frozen=True)
class PretrainOptions:
    out: Path
    size: str = DEFAULT_SIZE
    steps: int | None = None
    minutes: float | None = None  # with neither, 60 minutes
    batch_size: int | None = None  # None: CPU_BATCH on a CPU; on CUDA the largest that fits MAX_TOKENS_PER_STEP
    block_size: int | None = None  # None: the size's context; the base's context is the block it trained at
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    eval_every: int = 200
    eval_batches: int = 16
    vocab_size: int = 8192
    device: str = "auto"
    compile: bool = False  # torch.compile the training step (CUDA; see loop.LoopOptions.compile)
    save_dtype: str = "bfloat16"  # the weights as shipped: half the bytes; fine-tuning loads them as fp32
    jobs: int = 0  # worker processes for the corpus's texts; 0: one per core
    resume: bool = False
    seed: int = 0
    # A base to continue: its weights and its tokenizer (the corpus is tokenized with it), a fresh optimizer
    # and warm-up. A GPU loan is minutes; this is how several of them add up to one base.
    init: Path | None = None


@dataclass(frozen=True)
class BaseResult:
    base: Path
    steps: int
    tokens_seen: int
    validation_loss: float
    bits_per_byte: float
    seconds: float


def pretrain(corpus_dir: Path, opts: PretrainOptions, progress: bool = True, command: str = "") -> BaseResult:
    loop.quiet_transformers()
    if opts.size not in SIZES:
        raise PretrainError(f"--size {opts.size}: choose one of {', '.join(SIZES)}")
    if opts.vocab_size > 32_767:
        raise PretrainError("--vocab-size above 32767: the token cache stores ids as int16")
    if opts.save_dtype not in {"float32", "bfloat16"}:
        raise PretrainError(f"--save-dtype {opts.save_dtype}: choose float32 or bfloat16")
    started = time.monotonic()
    manifest = corpus.read_manifest(corpus_dir)
    if opts.init is not None:
        _check_init(opts.init)
    with loop.started(opts.device) as run:
        return _pretrain(corpus_dir, manifest, opts, run, progress, command, started)


def _pretrain(
    corpus_dir: Path,
    manifest: dict[str, Any],
    opts: PretrainOptions,
    run: loop.Run,
    progress: bool,
    command: str,
    started: float,
) -> BaseResult:
    work = loop.work_folder(opts.out, opts.resume, run)
    cache = _cache(corpus_dir, manifest, opts)
    if run.rank == 0:
        if not (cache / "tokens.safetensors").is_file():
            _prepare(corpus_dir, manifest, opts, cache, progress)
    loop.wait_for_rank_0(run)

    # 1. The fixed tokenizer and the corpus as token ids: made once per corpus, shared by every size.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(cache / "tokenizer", local_files_only=True)
    with safe_open(str(cache / "tokens.safetensors"), "pt") as tokens:
        stream, val_stream = tokens.get_tensor("train"), tokens.get_tensor("validation")
        files_stream = tokens.get_tensor("validation_files")
        files_bytes = int((tokens.metadata() or {})["validation_files_bytes"])

    # 2. The model, from scratch at the chosen size (or the base to continue); its context is the block it
    # trains on.
    torch.manual_seed(opts.seed)
    if opts.init is not None:
        model = AutoModelForCausalLM.from_pretrained(opts.init, local_files_only=True, dtype=torch.float32)
        context = int(model.config.max_position_embeddings)
        block = min(opts.block_size or context, context)
    else:
        block = min(opts.block_size or SIZES[opts.size].context, SIZES[opts.size].context)
        size = replace(SIZES[opts.size], context=block)
        model = from_scratch(size, len(tokenizer), tokenizer.convert_tokens_to_ids(prompt.EOS))
    if len(val_stream) <= block:
        val_stream = stream  # a corpus this small (a test's) has no block of validation text to spare
    parameters = parameter_count(model)
    batch = opts.batch_size or (
        loop.largest_batch(model, block, run.device, MAX_TOKENS_PER_STEP // block)
        if run.device.type == "cuda"
        else CPU_BATCH
    )

    # 3. The loop every double trains with.
    loop_opts = loop.options(
        opts,
        block_size=block,
        learning_rate=opts.learning_rate,
        default_minutes=60.0,
        batch_size=batch,
        compile=opts.compile,
    )
    fitted = loop.fit(model, stream, val_stream, loop_opts, work, run, progress, desc="pretraining")

    # 4. Bits per byte on the held-out files, every token of them: comparable across tokenizers and sizes.
    bits_per_byte = float("nan")
    measured: dict[str, Any] = {}
    if run.rank == 0:
        nats = loop.stream_loss(model, files_stream, block, batch, run.device)
        bits_per_byte = nats * len(files_stream) / files_bytes / math.log(2) if files_bytes else float("nan")
        measured = {
            "bits_per_byte": bits_per_byte,
            "loss_nats_per_token": nats,
            "tokens": len(files_stream),
            "bytes": files_bytes,
            "what": "held-out corpus files as plain text (one in "
            f"{VALIDATION_EVERY} by path hash), every token in consecutive blocks of {block}",
        }

    # 5. The base, written whole or not at all.
    if run.rank == 0:
        model.to("cpu")
        if opts.save_dtype == "bfloat16":
            model.to(torch.bfloat16)
        model.generation_config.eos_token_id = int(tokenizer.convert_tokens_to_ids(prompt.EOS))
        config = model.config
        earlier = _earlier(opts.init)
        # Every token the weights have seen, the continued base's included (`tokens_seen`: this run's alone).
        seen_total = fitted.tokens_seen + (earlier["tokens_seen_total"] if earlier else 0)
        base_manifest = {
            "kind": BASE_KIND,
            "format": BASE_FORMAT,
            "name": earlier["name"] if earlier else f"{BASE_KIND}-{opts.size}",
            "prompt_format": prompt.PROMPT_FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "corpus": {
                "sha256": manifest["sha256"],
                "bytes": manifest["bytes"],
                "files": manifest["files"],
                "sources": len(manifest["sources"]),
                "languages": manifest["languages"],
                "train_tokens": len(stream),
                "validation_tokens": len(val_stream),
            },
            "config": {
                "architecture": type(model).__name__,
                "layers": config.num_hidden_layers,
                "hidden": config.hidden_size,
                "heads": config.num_attention_heads,
                "kv_heads": config.num_key_value_heads,
                "head_dim": config.head_dim,
                "intermediate": config.intermediate_size,
                "context": config.max_position_embeddings,
                "vocab_size": len(tokenizer),
                "parameters": parameters,
                "dtype": opts.save_dtype,
            },
            "training": {
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
                "size": earlier["manifest"].get("training", {}).get("size", opts.size) if earlier else opts.size,
                "block_size": block,
                "batch_size": batch,
                "tokens_per_step": batch * block * run.world_size,
                "steps_done": fitted.steps,
                "tokens_seen": fitted.tokens_seen,
                "tokens_seen_total": seen_total,
                "tokens_per_parameter": round(seen_total / parameters, 2),
                "epochs": round(fitted.tokens_seen / len(stream), 3),
                "precision": "bf16 autocast, fp32 weights" if run.device.type == "cuda" else "fp32",
                "device": str(run.device),
                "device_name": loop.device_name(run.device),
                "world_size": run.world_size,
                "torch": torch.__version__,
                "seconds": round(time.monotonic() - started),
            },
            "validation_loss": fitted.best_validation_loss,
            "bits_per_byte": measured,
            # The run this one continued, as its manifest recorded it (and the ones before it, nested).
            "continued_from": earlier["manifest"] if earlier else None,
        }

        def fill(folder: Path) -> None:
            model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            shutil.copyfile(corpus_dir / corpus.MANIFEST, folder / CORPUS_MANIFEST)
            artifact.write_manifest(folder, base_manifest)

        loop.publish(opts.out, fill, work)
    return BaseResult(
        opts.out,
        fitted.steps,
        fitted.tokens_seen,
        fitted.best_validation_loss,
        bits_per_byte,
        time.monotonic() - started,
    )


def tokenize(corpus_dir: Path, opts: PretrainOptions, progress: bool = True) -> Path:
    """The tokenizer and the corpus as token ids, made now if not yet (pretraining does it itself when they
    are missing; a wall-clock-bounded run does it first, so that its budget is all training). Returns the cache."""
    manifest = corpus.read_manifest(corpus_dir)
    cache = _cache(corpus_dir, manifest, opts)
    if not (cache / "tokens.safetensors").is_file():
        _prepare(corpus_dir, manifest, opts, cache, progress)
    return cache


def _cache(corpus_dir: Path, manifest: dict[str, Any], opts: PretrainOptions) -> Path:
    """Where a corpus's token ids live: one cache per corpus, vocabulary and seed, shared by every size; a
    continued base's tokenizer is its own, so its ids are cached apart, by the tokenizer's hash."""
    tokenizer = (
        f"t{hashlib.sha256((opts.init / 'tokenizer.json').read_bytes()).hexdigest()[:12]}"
        if opts.init is not None
        else f"v{opts.vocab_size}"
    )
    return corpus_dir / f"tokens-{manifest['sha256'][:12]}-{tokenizer}-s{opts.seed}-f{TOKENS_FORMAT}"


def _check_init(init: Path) -> None:
    """A base to continue must be one `codedouble base train` wrote, in this prompt format."""
    try:
        found = artifact.read_manifest(init)
    except CodedoubleError as exc:
        raise PretrainError(f"--init {init}: not a codedouble base ({exc})") from None
    if found.get("kind") != BASE_KIND or not (init / "tokenizer.json").is_file():
        raise PretrainError(f"--init {init}: not a codedouble base (a folder `codedouble base train` wrote)")
    if found.get("prompt_format") != prompt.PROMPT_FORMAT_VERSION:
        raise PretrainError(
            f"--init {init}: its prompt format is {found.get('prompt_format')}, this codedouble's is "
            f"{prompt.PROMPT_FORMAT_VERSION}; pretrain a new base instead"
        )


def _earlier(init: Path | None) -> dict[str, Any] | None:
    """What the continued base's manifest says of it: its name, every token it had seen, the manifest."""
    if init is None:
        return None
    found = artifact.read_manifest(init)
    training = found.get("training", {})
    seen = int(training.get("tokens_seen_total", training.get("tokens_seen", 0)))
    return {"name": found["name"], "tokens_seen_total": seen, "manifest": found}


def held_out(path: str) -> bool:
    """One corpus file in VALIDATION_EVERY, by the hash of its path: the same files whatever else changes."""
    return int(hashlib.sha256(path.encode()).hexdigest()[:8], 16) % VALIDATION_EVERY == 0


_Texts = tuple[bool, list[str], list[str]]  # (held out?, every training text, the plain-text ones)


def _texts(lines: list[str], seed: int) -> list[_Texts]:
    """The training texts of some corpus lines. Each file's FIM cuts draw from a generator seeded by its path,
    so the texts are the same however the files are shared out among processes."""
    out = []
    for line in lines:
        entry = json.loads(line)
        path, text = entry["path"], entry["text"]
        rng = random.Random(f"{seed}:{path}")
        out.append((held_out(path), file_texts(path, entry["language"], text, rng), plain_texts(path, text)))
    return out


def _line_batches(corpus_dir: Path, size: int = 256) -> Iterator[list[str]]:
    with (corpus_dir / corpus.FILES).open(encoding="utf-8") as lines:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def _all_texts(corpus_dir: Path, files: int, opts: PretrainOptions, progress: bool) -> Iterable[_Texts]:
    """Every file's texts, in corpus order: parsed for FIM cuts by one worker process per core (tree-sitter
    is most of the time), or in this process for a small corpus."""
    from functools import partial

    from tqdm import tqdm

    jobs = opts.jobs or os.cpu_count() or 1
    bar = tqdm(total=files, desc="texts", unit="file", disable=None if progress else True)
    work = partial(_texts, seed=opts.seed)
    if jobs <= 1 or files < PARALLEL_FILES:
        for batch in _line_batches(corpus_dir):
            yield from work(batch)
            bar.update(len(batch))
    else:
        import multiprocessing

        # forkserver: workers do not inherit this process's threads (torch's, the tokenizer's)
        with multiprocessing.get_context("forkserver").Pool(jobs) as pool:
            for done in pool.imap(work, _line_batches(corpus_dir)):
                yield from done
                bar.update(len(done))
    bar.close()


_TOKENIZER: PreTrainedTokenizerFast | None = None  # a worker's, loaded once


def _load_tokenizer(folder: Path, threads: bool = True) -> None:
    global _TOKENIZER
    if not threads:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core already: no threads on top
    _TOKENIZER = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)


def _encode(texts: list[str]) -> torch.Tensor:
    assert _TOKENIZER is not None
    return loop.token_stream(_TOKENIZER, texts, torch.int16)


def _token_ids(tokenizer: Path, texts: list[str], jobs: int) -> torch.Tensor:
    """`texts` as one stream of int16 ids. A large corpus is encoded by one process per core: the tokenizer's
    own threads stop at turning each text's ids into Python ints, which is most of the time at this scale."""
    jobs = jobs or os.cpu_count() or 1
    chunk = 4096
    if jobs <= 1 or len(texts) < 4 * chunk:
        _load_tokenizer(tokenizer)
        return _encode(texts)
    import multiprocessing

    with multiprocessing.get_context("forkserver").Pool(jobs, _load_tokenizer, (tokenizer, False)) as pool:
        parts = pool.map(_encode, [texts[i : i + chunk] for i in range(0, len(texts), chunk)])
    return torch.cat(parts)


def _prepare(corpus_dir: Path, manifest: dict[str, Any], opts: PretrainOptions, cache: Path, progress: bool) -> None:
    """Texts of every corpus file, the tokenizer trained on a sample of them, and the texts as token ids."""
    train_texts: list[str] = []
    val_texts: list[str] = []
    val_files: list[str] = []
    for held, texts, plain in _all_texts(corpus_dir, manifest["files"], opts, progress):
        (val_texts if held else train_texts).extend(texts)
        if held:
            val_files.extend(plain)
    if not train_texts or not val_texts:
        raise PretrainError(
            f"{corpus_dir} is too small to pretrain on: {len(train_texts)} training and {len(val_texts)} validation texts"
        )
    random.Random(opts.seed).shuffle(train_texts)
    if opts.init is not None and not (cache / "tokenizer" / "tokenizer.json").is_file():
        with atomic.directory(cache / "tokenizer") as folder:  # the continued base's tokenizer, as it is
            PreTrainedTokenizerFast.from_pretrained(opts.init, local_files_only=True).save_pretrained(folder)
    if not (cache / "tokenizer" / "tokenizer.json").is_file():
        sample, chars = [], 0
        for text in train_texts:
            if chars >= TOKENIZER_SAMPLE_CHARS:
                break
            sample.append(text)
            chars += len(text)
        with atomic.directory(cache / "tokenizer") as folder:  # a killed run never leaves half a tokenizer
            train_tokenizer(sample, opts.vocab_size).save_pretrained(folder)
    tensors = {
        "train": _token_ids(cache / "tokenizer", train_texts, opts.jobs),
        "validation": _token_ids(cache / "tokenizer", val_texts, 1),
        "validation_files": _token_ids(cache / "tokenizer", val_files, 1),
    }
    with atomic.staged(cache / "tokens.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"validation_files_bytes": str(plain_bytes(val_files))})

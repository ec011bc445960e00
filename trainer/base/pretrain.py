"""`codedouble base train`: pretrain the base every double is fine-tuned from, through the same loop as
`codedouble train` (trainer/training/loop.py), on a corpus built by `codedouble base corpus`.

    BASE/model.safetensors, config.json, generation_config.json   the model (never pickle)
    BASE/tokenizer.json, tokenizer_config.json                   its byte-level BPE, the prompt format's tokens
    BASE/manifest.json                                           corpus hash, tokens seen, config, loss, command
    BASE/corpus-manifest.json                                    the corpus's sources and licences
"""

from __future__ import annotations

import hashlib
import random
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerFast

from codedouble.server.contract import artifact, atomic, prompt
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.base import corpus
from codedouble.trainer.base.texts import file_texts
from codedouble.trainer.training import loop
from codedouble.trainer.training.model import ModelSize, from_scratch, parameter_count
from codedouble.trainer.training.tokenizer import train_tokenizer

BASE_FORMAT = 1
BASE_KIND = "codedouble-base"
CORPUS_MANIFEST = "corpus-manifest.json"
SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(n_layer=4, n_head=4, n_embd=192, context=512),
    "small": ModelSize(n_layer=6, n_head=8, n_embd=256, context=512),
}
VALIDATION_EVERY = 100  # one file in this many (by path hash) is held out for validation loss
TOKENIZER_SAMPLE_CHARS = 40_000_000  # BPE merges settle long before the whole corpus


class PretrainError(CodedoubleError):
    """A problem the user must fix before pretraining can run; the message says what."""


@dataclass(frozen=True)
class PretrainOptions:
    out: Path
    size: str = "tiny"
    steps: int | None = None
    minutes: float | None = None  # with neither, 60 minutes
    batch_size: int = 16
    block_size: int = 256
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    eval_every: int = 200
    eval_batches: int = 16
    vocab_size: int = 8192
    device: str = "auto"
    resume: bool = False
    seed: int = 0


@dataclass(frozen=True)
class BaseResult:
    base: Path
    steps: int
    tokens_seen: int
    validation_loss: float
    seconds: float


def pretrain(corpus_dir: Path, opts: PretrainOptions, progress: bool = True, command: str = "") -> BaseResult:
    loop.quiet_transformers()
    if opts.size not in SIZES:
        raise PretrainError(f"--size {opts.size}: choose one of {', '.join(SIZES)}")
    if opts.vocab_size > 32_767:
        raise PretrainError("--vocab-size above 32767: the token cache stores ids as int16")
    started = time.monotonic()
    manifest = corpus.read_manifest(corpus_dir)
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
    cache = corpus_dir / f"tokens-{manifest['sha256'][:12]}-v{opts.vocab_size}-s{opts.seed}"
    if run.rank == 0:
        if not (cache / "tokens.safetensors").is_file():
            _prepare(corpus_dir, manifest, opts, cache, progress)
    loop.wait_for_rank_0(run)

    # 1. The fixed tokenizer and the corpus as token ids: made once per corpus, shared by every size.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(cache / "tokenizer")
    tokens = load_file(str(cache / "tokens.safetensors"))
    stream, val_stream = tokens["train"], tokens["validation"]
    if len(val_stream) <= opts.block_size:
        val_stream = stream  # a corpus this small (a test's) has no block of validation text to spare

    # 2. The model, from scratch at the chosen size.
    size = SIZES[opts.size]
    block = min(opts.block_size, size.context)
    torch.manual_seed(opts.seed)
    model = from_scratch(size, len(tokenizer), tokenizer.convert_tokens_to_ids(prompt.EOS))

    # 3. The loop every double trains with.
    loop_opts = loop.options(opts, block_size=block, learning_rate=opts.learning_rate, default_minutes=60.0)
    fitted = loop.fit(model, stream, val_stream, loop_opts, work, run, progress, desc="pretraining")

    # 4. The base, written whole or not at all.
    if run.rank == 0:
        model.to("cpu")
        model.generation_config.eos_token_id = int(tokenizer.convert_tokens_to_ids(prompt.EOS))
        base_manifest = {
            "kind": BASE_KIND,
            "format": BASE_FORMAT,
            "name": f"{BASE_KIND}-{opts.size}",
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
            "config": {**asdict(SIZES[opts.size]), "vocab_size": len(tokenizer), "parameters": parameter_count(model)},
            "training": {
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
                "block_size": block,
                "steps_done": fitted.steps,
                "tokens_seen": fitted.tokens_seen,
                "device": str(run.device),
                "world_size": run.world_size,
                "seconds": round(time.monotonic() - started),
            },
            "validation_loss": fitted.best_validation_loss,
        }

        def fill(folder: Path) -> None:
            model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            shutil.copyfile(corpus_dir / corpus.MANIFEST, folder / CORPUS_MANIFEST)
            artifact.write_manifest(folder, base_manifest)

        loop.publish(opts.out, fill, work)
    return BaseResult(
        opts.out, fitted.steps, fitted.tokens_seen, fitted.best_validation_loss, time.monotonic() - started
    )


def _prepare(corpus_dir: Path, manifest: dict[str, Any], opts: PretrainOptions, cache: Path, progress: bool) -> None:
    """Texts of every corpus file, the tokenizer trained on a sample of them, and the texts as token ids."""
    from tqdm import tqdm

    rng = random.Random(opts.seed)
    train_texts: list[str] = []
    val_texts: list[str] = []
    for entry in tqdm(
        corpus.read_files(corpus_dir),
        total=manifest["files"],
        desc="texts",
        unit="file",
        disable=None if progress else True,
    ):
        held = int(hashlib.sha256(entry["path"].encode()).hexdigest()[:8], 16) % VALIDATION_EVERY == 0
        (val_texts if held else train_texts).extend(file_texts(entry["path"], entry["language"], entry["text"], rng))
    if not train_texts or not val_texts:
        raise PretrainError(
            f"{corpus_dir} is too small to pretrain on: {len(train_texts)} training and {len(val_texts)} validation texts"
        )
    rng.shuffle(train_texts)
    if not (cache / "tokenizer" / "tokenizer.json").is_file():
        sample, chars = [], 0
        for text in train_texts:
            if chars >= TOKENIZER_SAMPLE_CHARS:
                break
            sample.append(text)
            chars += len(text)
        with atomic.directory(cache / "tokenizer") as folder:  # a killed run never leaves half a tokenizer
            train_tokenizer(sample, opts.vocab_size).save_pretrained(folder)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(cache / "tokenizer")
    tensors = {
        "train": loop.token_stream(tokenizer, train_texts).to(torch.int16),
        "validation": loop.token_stream(tokenizer, val_texts).to(torch.int16),
    }
    with atomic.staged(cache / "tokens.safetensors") as tmp:
        save_file(tensors, str(tmp))

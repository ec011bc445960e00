"""Rehearsal: general code mixed into a fine-tune of the base, so that the engineer's double learns their code
without forgetting code in general.

Fine-tuned on rich's history alone, the shipped base lost a third of its grip on code it never saw: bits per byte
on held-out standard-library files went from 0.705 to 0.932 (full fine-tune, lr 2e-4, 365 steps) and to 0.799
(LoRA rank 8, lr 5e-4, 450 steps); README "The Llama base on rich". Mixing in text of the kind the base was
pretrained on is the known remedy. The text has to be on the engineer's machine already and free to train on:
the running Python's standard library is both (PSF-2.0, checked as `codedouble base corpus` checks it) and was
part of the base's own corpus. Its files the base held out for validation stay out, so `codedouble base score`
on them still measures code neither model trained on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from codedouble.trainer.base import sources
from codedouble.trainer.base.pretrain import held_out
from codedouble.trainer.base.texts import plain_texts

# Share of the fine-tune's training text (characters) that is rehearsal. On rich (365 steps at lr 2e-4): the
# history alone left held-out Python at 0.932 bits per byte (the base 0.705); 0.25 at 0.743; 0.5 at 0.702, no
# worse than the base, the bar. The engineer's own lines did not pay for it: as served (int8), the model
# 20.5 % next-line EM at 0.5 against 19.0 at 0.25, the engine 34.0 against 34.5 (one line of 200), and with
# abstention 45 lines shown at 80.0 % right against 44 at 77.3 % (README "The Llama base on rich").
SHARE = 0.5
MAX_FILE_CHARS = 200_000  # the corpus's own limit: bigger files are data tables, not code to learn from
SKIPPED_PARTS = frozenset({"test", "tests", "idlelib", "site-packages"})  # test code, a GUI, other distributions


@dataclass(frozen=True)
class Rehearsal:
    share: float  # as asked for
    texts: tuple[str, ...]
    chars: int
    files: int
    source: str  # name and version of what the texts came from

    def to_dict(self) -> dict[str, object]:
        return {"share": self.share, "chars": self.chars, "files": self.files, "source": self.source}


def _files() -> tuple[sources.Source, list[tuple[str, str]]]:
    stdlib = sources.python_stdlib()
    if not stdlib.licence.permissive:
        return stdlib, []  # an interpreter without its licence file: nothing it holds is known to be free to use
    found = []
    for path, where in stdlib.files:
        parts = path.split("/")
        if SKIPPED_PARTS.intersection(parts[:-1]) or parts[-1].startswith("test_") or held_out(path):
            continue
        try:
            text = where.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.strip() and len(text) <= MAX_FILE_CHARS:
            found.append((path, text))
    return stdlib, found


def texts(share: float, personal_chars: int, seed: int) -> Rehearsal:
    """Rehearsal texts that make up `share` of a mix with `personal_chars` characters of the engineer's examples:
    whole standard-library files as plain text, in a seeded order, cut at the file that reaches the amount (and
    repeated if the library is smaller than that: a fine-tune sees a small part of its stream in any case)."""
    if share <= 0 or personal_chars <= 0:
        return Rehearsal(share, (), 0, 0, "")
    stdlib, files = _files()
    if not files:
        return Rehearsal(share, (), 0, 0, "")
    wanted = int(personal_chars * share / (1 - share))
    rng = random.Random(seed)
    order = list(range(len(files)))
    out: list[str] = []
    used: set[int] = set()
    chars = 0
    while chars < wanted:
        rng.shuffle(order)
        for index in order:
            pieces = plain_texts(*files[index])
            out.extend(pieces)
            used.add(index)
            chars += sum(len(p) for p in pieces)
            if chars >= wanted:
                break
    return Rehearsal(share, tuple(out), chars, len(used), f"{stdlib.name} {stdlib.version}")

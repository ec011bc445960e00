"""The model that answers a request: the double's in the languages it learned, the base's in the others.

A fine-tune on a history in one language forgets the others (trainer/training/languages.py has the figures), so
a double records which languages it answers in (`languages` in its manifest: those it trained on and, where its
validation commits have them, scored better in than its base; trainer/training/languages.py decides). In any
other language the base it was fine-tuned from answers, loaded on the first such request (a second or so,
once) and only if it is still where training found it, with the same weights and the prompt format's tokens.
A double without the record (trained before it existed, or from scratch), or whose base cannot be used,
answers everywhere itself, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codedouble.server.contract import prompt
from codedouble.server.contract.artifact import sha256_file
from codedouble.server.engine.document import Request
from codedouble.server.engine.neural import Generated, Neural

KEY = "languages"


def double_languages(manifest: dict[str, Any]) -> frozenset[str] | None:
    """The languages the double answers in, or None when its manifest does not say (it answers in all)."""
    entries = manifest.get(KEY)
    if not isinstance(entries, dict):
        return None
    return frozenset(
        language
        for language, entry in entries.items()
        if isinstance(entry, dict) and entry.get("served_by", "double") == "double"
    )


def base_of(manifest: dict[str, Any]) -> Path | None:
    """The base the double was fine-tuned from, when it is still there with the same weights and speaks the
    prompt format (a base given with `--base` may lack its tokens: the double's tokenizer has them added)."""
    training = manifest.get("training")
    base = training.get("base") if isinstance(training, dict) else None
    if not isinstance(base, dict) or not isinstance(base.get("path"), str):
        return None
    folder = Path(base["path"])
    weights = folder / "model.safetensors"
    try:
        if not weights.is_file() or sha256_file(weights) != base.get("sha256"):
            return None
        vocabulary = (folder / "tokenizer.json").read_text(encoding="utf-8")
    except OSError:
        return None
    if not all(f'"{token}"' in vocabulary for token in prompt.SPECIAL_TOKENS):
        return None
    return folder


class ByLanguage:
    """A model (the engine's `Model`) that hands each request to the double or, in a language the double does
    not answer in, to the base; the base is loaded by `load_base` on the first request that needs it."""

    name = "model"
    description = "the double's model in the languages it learned, the base's in the others"

    def __init__(self, double: Neural, languages: frozenset[str], load_base: Callable[[], Neural]) -> None:
        self.double = double
        self.languages = languages
        self._load_base = load_base
        self._base: Neural | None = None
        self._failed = False
        self._lock = threading.Lock()

    def model_for(self, request: Request) -> Neural:
        language = request.language
        if language is None or language in self.languages or self._failed:
            return self.double
        with self._lock:
            if self._base is None and not self._failed:
                try:
                    self._base = self._load_base()
                except Exception:  # noqa: BLE001 - a base that cannot load leaves the double answering, as before
                    self._failed = True
            return self._base if self._base is not None else self.double

    def generate(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Generated:
        return self.model_for(request).generate(request, cancelled)

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.model_for(request).complete(request, cancelled)

    def confirm(self, request: Request, line: str) -> float | None:
        return self.model_for(request).confirm(request, line)

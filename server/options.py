"""The server's settings: one typed tree, parsed once from `initializationOptions` or
`workspace/didChangeConfiguration`. A bad value is reported by name and replaced by its default."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from codedouble.grammars.languages import LANGUAGES
from codedouble.server.edits.propose import MIN_PRECISION

# Files whose contents must never be sent to a model, not even a local one: keys and environment files.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    "**/.env",
    "**/.env.*",
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/id_rsa*",
    "**/id_ed25519*",
    "**/.netrc",
    "**/.npmrc",
    "**/.pypirc",
    "**/secrets/**",
    "**/*secret*",
)


BACKENDS: tuple[str, ...] = ("local", "openai", "llama.cpp")


@dataclass(frozen=True)
class Options:
    artifact: Path | None = None  # default: the newest double of the workspace's repository
    languages: tuple[str, ...] = ()  # those to complete in; empty means every supported one
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE  # globs matched against the document's path; the defaults always stay
    max_lines: int = 8  # of a multi-line completion
    debounce_ms: int = 0  # wait this long for a newer keystroke before computing
    # Show a suggestion only when the double puts the chance it is right at least this high (0..1); None
    # keeps the threshold tuned for this double on the engineer's validation commits. 0 shows everything.
    min_confidence: float | None = None
    # Append what became of each shown suggestion (accepted, typed over; no code) to feedback.jsonl beside
    # the double (server/feedback.py). False writes nothing; codedouble/status still counts.
    feedback_log: bool = True
    # The workspace's other files (the repository near the document, the other open documents) as context for
    # the n-gram and retrieval; off, nothing beyond the document itself is read.
    workspace_context: bool = True
    # A double trained on data the engineer has since taken back with `codedouble forget` is served with a
    # warning; true refuses to serve it until it is trained again.
    refuse_stale: bool = False
    # Where the double's model runs: "local" (this process), or an engine serving it as a LoRA adapter on its
    # base (docs/serving.md): "openai" (vLLM, SGLang, llama.cpp's /v1/completions) or "llama.cpp" (its native /completion).
    # The n-gram, retrieval and abstention always run here; an engine that fails costs only the model's answer.
    backend: str = "local"
    url: str = ""  # the engine's base URL, e.g. http://gpu-box:8000 (Tabby's api_endpoint, Continue's apiBase)
    model: str = ""  # the name the engine serves this engineer's adapter under (vLLM --lora-modules NAME=...)
    api_key_env: str = ""  # the environment variable holding the engine's API key (the key never sits in settings)
    timeout_ms: int = 1000  # a request still unanswered then gives way to the local answer
    # Next edits (server/next_edits.py): the rewrite just made, and the engineer's habitual ones from the
    # double's edits.jsonl, proposed again elsewhere as `refactor.rewrite` code actions. Off: none.
    next_edits: bool = True
    # What is proposed must be right at least this share of the time by the engineer's own history, as a 95 %
    # lower bound (server/edits/propose.py's Gate): a habit by how often they made it, the edit just made by
    # how often its class was right in the training commits. 0 proposes every match.
    next_edit_min_precision: float = MIN_PRECISION
    # Offer the shapes the engineer keeps writing (the double's snippets.jsonl) as completion items of kind
    # Snippet, with placeholders; false offers only the double's own completion.
    snippets: bool = True

    def remote(self) -> bool:
        return self.backend != "local"

    def enabled(self, language: str | None, path: str) -> bool:
        if language is None or (self.languages and language not in self.languages):
            return False
        return not any(excluded(glob, path) for glob in self.exclude)


# A glob is matched by following every way it can match at once (a set of positions in the glob, advanced one
# character of the path at a time), never by a backtracking regex: `(?:.*/)?` tried at every trailing part of a
# path was quadratic in its folders (2 s for an 8,000-character URI), and a user's `*a*a*a*a*b` is exponential
# in a long file name. Time is linear in the path for a given glob, and the answer for a path is cached.
_STARS = frozenset({"star", "any", "dirs"})  # may match nothing: their position also stands for the next one


@dataclass(frozen=True)
class _Glob:
    """The steps of a glob; a state is the index of the next step, or `-1 - i` for `**/` at step i once it has
    read characters that do not end in "/" yet (it may only move on after a "/")."""

    steps: tuple[tuple[str, Any], ...]  # (kind, argument): char, one, set, star ([^/]*), any (.*), dirs ((.*/)?)
    _moves: dict[tuple[frozenset[int], str], frozenset[int]] = field(default_factory=dict, compare=False)

    def closure(self, states: set[int]) -> frozenset[int]:
        out = set(states)
        for i in sorted(state for state in states if state >= 0):
            while i < len(self.steps) and self.steps[i][0] in _STARS:
                i += 1
                out.add(i)
        return frozenset(out)

    def step(self, states: frozenset[int], char: str) -> frozenset[int]:
        known = self._moves.get((states, char))
        if known is not None:
            return known
        after: set[int] = set()
        for i in states:
            if i == len(self.steps):
                continue
            if i < 0 or self.steps[i][0] == "dirs":  # inside `**/`, or starting it
                inside = i if i < 0 else -1 - i
                after.add(inside)
                if char == "/":
                    after.add(-inside)  # the step after it: -1 - inside + 1
                continue
            kind, argument = self.steps[i]
            if kind == "char":
                if char == argument:
                    after.add(i + 1)
            elif kind == "one":
                if char != "/":
                    after.add(i + 1)
            elif kind == "set":
                if argument.fullmatch(char):
                    after.add(i + 1)
            elif kind == "star":
                if char != "/":
                    after.add(i)
            else:  # any
                after.add(i)
        moved = self.closure(after)
        if len(self._moves) < 65_536:  # paths use few characters and few state sets: this stays small
            self._moves[(states, char)] = moved
        return moved

    def matches_a_tail(self, path: str) -> bool:
        """Whether the glob matches the whole of `path` or any part of it that starts after a "/"."""
        start = self.closure({0})
        states = start
        for char in path:
            states = self.step(states, char)
            if char == "/":
                states = states | start
        return len(self.steps) in states


@functools.cache
def _glob(glob: str) -> _Glob:
    """A glob's steps: `*` and `?` stay within one path segment, `**` crosses segments and `**/` stands for any
    number of leading folders, none included. Raises ValueError for a bracket expression that is no class."""
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append(("dirs", None))
            i += 3
        elif glob.startswith("**", i):
            out.append(("any", None))
            i += 2
        elif glob[i] == "*":
            out.append(("star", None))
            i += 1
        elif glob[i] == "?":
            out.append(("one", None))
            i += 1
        elif glob[i] == "[" and (end := glob.find("]", i + 2)) > 0:
            body = glob[i + 1 : end].replace("\\", "\\\\")
            body = "^" + body[1:] if body[0] == "!" else "\\" + body if body[0] == "^" else body
            try:
                out.append(("set", re.compile(f"[{body}]", re.DOTALL)))
            except re.error as exc:
                raise ValueError(f"[{glob[i + 1 : end]}] is no character class ({exc})") from None
            i = end + 1
        else:
            out.append(("char", glob[i]))
            i += 1
    return _Glob(tuple(out))


@functools.lru_cache(maxsize=4096)
def excluded(glob: str, path: str) -> bool:
    """Whether `glob` matches the path, or any trailing part of it (globs are relative to wherever the files
    sit: `*.pem` and `vendor/**` match at any depth, as in .gitignore). A `*` never crosses a `/`: `**/*secret*`
    excludes `client_secret.py`, not every file of a project in `~/src/secret-santa/`."""
    return _glob(glob).matches_a_tail(path.replace("\\", "/"))


def _artifact(value: Any) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("a path string")
    return Path(value).expanduser()


def _languages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("a list of language names")
    unknown = [v for v in value if v not in LANGUAGES]
    if unknown:
        raise ValueError(f"languages codedouble knows ({', '.join(sorted(LANGUAGES))}); not {', '.join(unknown)}")
    return tuple(value)


def _globs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("a list of glob strings")
    for glob in value:
        _glob(glob)  # a bad bracket expression is named now, not when a document is first asked about
    # A user's globs add to the defaults: listing one's generated code must not expose one's keys.
    return DEFAULT_EXCLUDE + tuple(v for v in value if v not in DEFAULT_EXCLUDE)


def _count(low: int, high: int):  # type: ignore[no-untyped-def]
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"an integer from {low} to {high}")
        return value

    return parse


def _probability(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError("a number from 0 to 1, or null for the double's own threshold")
    return float(value)


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError("a number from 0 to 1")
    return float(value)


def _backend(value: Any) -> str:
    if value not in BACKENDS:
        raise ValueError(f"one of {', '.join(BACKENDS)}")
    return str(value)


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("an http:// or https:// URL")
    value = value.strip()
    if value:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("an http:// or https:// URL with a host")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string")
    return value.strip()


def _env_var(value: Any) -> str:
    if not isinstance(value, str) or (value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)):
        raise ValueError("the name of an environment variable (the key itself never goes in settings)")
    return value


def _switch(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


_PARSERS = {
    "artifact": _artifact,
    "languages": _languages,
    "exclude": _globs,
    "maxLines": _count(1, 200),
    "debounceMs": _count(0, 2000),
    "minConfidence": _probability,
    "feedbackLog": _switch,
    "workspaceContext": _switch,
    "refuseStale": _switch,
    "backend": _backend,
    "url": _url,
    "model": _name,
    "apiKeyEnv": _env_var,
    "timeoutMs": _count(50, 30_000),
    "nextEdits": _switch,
    "nextEditMinPrecision": _share,
    "snippets": _switch,
}
_FIELD = {
    "artifact": "artifact",
    "languages": "languages",
    "exclude": "exclude",
    "maxLines": "max_lines",
    "debounceMs": "debounce_ms",
    "minConfidence": "min_confidence",
    "feedbackLog": "feedback_log",
    "workspaceContext": "workspace_context",
    "refuseStale": "refuse_stale",
    "backend": "backend",
    "url": "url",
    "model": "model",
    "apiKeyEnv": "api_key_env",
    "timeoutMs": "timeout_ms",
    "nextEdits": "next_edits",
    "nextEditMinPrecision": "next_edit_min_precision",
    "snippets": "snippets",
}


def parse(raw: Any, defaults: dict[str, Any] | None = None) -> tuple[Options, list[str]]:
    """Options from the client's JSON (camelCase keys, optionally under a `codedouble` key) and one message
    per problem; every field that is missing or wrong keeps its default: `defaults` (the same keys, from
    `codedouble serve`'s flags), else the built-in one."""
    if isinstance(raw, dict) and "codedouble" in raw:
        raw = raw["codedouble"]
    if raw is None:
        raw = {}
    if isinstance(raw, dict) and defaults:
        raw = {**defaults, **raw}
    if not isinstance(raw, dict):
        return Options(), [f"codedouble settings must be an object, not {type(raw).__name__}; using the defaults"]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        parser = _PARSERS.get(key)
        if parser is None:
            problems.append(f"codedouble setting '{key}' is unknown (known: {', '.join(_PARSERS)}); ignored")
            continue
        try:
            values[_FIELD[key]] = parser(value)
        except ValueError as exc:
            problems.append(f"codedouble setting '{key}' must be {exc}, not {value!r}; using the default")
    if values.get("backend", "local") != "local" and not values.get("url"):
        problems.append(f"codedouble setting 'backend' is {values['backend']} but no 'url' names the engine; local")
        values["backend"] = "local"
    return Options(**values), problems

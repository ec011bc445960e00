"""Scrub secrets out of every text the miner writes, before anything reaches the dataset.

The engine is detect-secrets (checked against 1.5.0): its default plugins run line by line with eager search off,
the high-entropy plugins keep their entropy limits (base64 4.5, hex 3.0), and its cheap false-positive filters
apply (sequential strings, UUIDs, templated values such as `${X}` / `<x>` / `{x}`, `$VAR`, values without a
letter, and `client_id = "..."`-style ids for the keyword and entropy plugins). So it catches AWS keys, GitHub,
GitLab, Slack, Stripe, OpenAI, PyPI, npm, SendGrid, Twilio, Mailchimp, Discord, Telegram, Square, Artifactory,
Azure, IBM, Cloudant and SoftLayer credentials, JWTs, basic-auth URLs, `password = "..."`-style keyword
assignments and high-entropy base64 / hex string literals.

codedouble's own supplements, each for a gap seen with detect-secrets:
- Private keys: its detector reports only the `BEGIN ... PRIVATE KEY` marker. Here the whole block, marker to
  END marker, becomes one placeholder; a BEGIN without END is scrubbed to the end of the text (a truncated key).
  PEM/PGP/SSH2 markers of any key type (also `ENCRYPTED PRIVATE KEY`, which it misses) and PuTTY key files. A
  marker with no key material after it (a constant naming the marker, a docstring) is left alone.
- Basic-auth URLs: it misses `scheme://user:pass@host` once the password holds one of `!$&'()*+,;=`. Here any
  password without `@`, `/` or whitespace is caught; scheme, user and host are kept.
- Go's `password := "..."`, which its language-agnostic keyword rules do not cover.
- Extents: its GitHub/GitLab rules capture only the token prefix (`ghp`) and Artifactory's include the delimiter
  before the token; here the value replaced is the whole token.
- More false-positive filters: values under 4 characters (replacing every `x` of a text is no scrub), obvious
  placeholder words (`changeme`, `password`, `xxxx`), printf placeholders (`%s`, `%(password)s`).
- Its is_indirect_reference filter is not applied: with quotes required every capture is a string literal,
  and the filter would only let `db = connect(password="...")` through.
Its IPv4 plugin is not run: its hits hold no letter, so the filter above drops every one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

from detect_secrets.__version__ import VERSION as DETECT_SECRETS_VERSION
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters import heuristic
from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
from detect_secrets.plugins.ip_public import IPPublicDetector
from detect_secrets.plugins.keyword import (
    CLOSING,
    DENYLIST_REGEX,
    QUOTE,
    QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    SECRET,
    KeywordDetector,
)
from detect_secrets.plugins.private_key import PrivateKeyDetector

PLACEHOLDER = "<secret>"

PRIVATE_KEY = PrivateKeyDetector.secret_type
BASIC_AUTH = BasicAuthDetector.secret_type

DEFAULT_CACHE_SIZE = 1 << 17  # distinct lines remembered: some 25 MB for typical code lines

Finding = tuple[str, str]  # (kind, secret value)
_NONE: tuple[Finding, ...] = ()

_MIN_SECRET_LEN = 4  # shorter values are dropped: replacing every `x` of a text is no scrub
# Shortest line the keyword rules can report from: `pwd:"abcd"` (3-letter keyword, 4-character value); the URL
# rule needs `://:abcd@h` as well.
_MIN_KEYWORD_LINE = 10

# For each plugin: the shortest line its regexes can match (tests/test_secrets.py checks these against the
# compiled patterns), and substrings (lowercased) without which they cannot match, read off detect-secrets
# 1.5.0's patterns. The substrings are used only on ASCII lines (where lower() is exactly what re.IGNORECASE
# folds) and only with that version: a newer detect-secrets may change a pattern, and then every plugin runs on
# every line. Checked: on the 2.3M distinct lines of the Python 3.11 stdlib and site-packages here, and in
# tests/test_secrets.py, the gates change no result.
_GATES_VERSION = "1.5.0"
_GATES: dict[str, tuple[int, tuple[str, ...]]] = {
    "ArtifactoryDetector": (11, ("akc", "ap")),
    "AWSKeyDetector": (20, ("a3t", "abia", "acca", "akia", "asia", "aws")),
    "AzureStorageKeyDetector": (99, ("accountkey=",)),
    "BasicAuthDetector": (7, ("://",)),
    "CloudantDetector": (29, ("cl",)),
    "DiscordBotTokenDetector": (59, (".",)),
    "GitHubTokenDetector": (40, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    "GitLabTokenDetector": (
        25,
        (
            "glpat-",
            "gldt-",
            "glft-",
            "glsoat-",
            "glrt-",
            "gr1348941",
            "glcbt-",
            "glimt-",
            "glptt-",
            "glagent-",
            "gloas-",
        ),
    ),
    # Quotes are required around the string, and it must be long enough to pass the entropy limit (see below).
    "Base64HighEntropyString": (25, ('"', "'")),
    "HexHighEntropyString": (11, ('"', "'")),
    "IbmCloudIamDetector": (48, ("key", "pwd", "pass", "token")),
    "IbmCosHmacDetector": (58, ("secret",)),
    "JwtTokenDetector": (6, ("eyj",)),
    "KeywordDetector": (_MIN_KEYWORD_LINE, ("key", "pass", "pwd", "secret", "contrase")),
    "MailchimpDetector": (36, ("-us",)),
    "NpmDetector": (21, ("_authtoken=",)),
    "OpenAIDetector": (51, ("t3blbkfj",)),
    "PypiTokenDetector": (90, ("pypi-",)),
    "SendGridDetector": (69, ("sg.",)),
    "SlackDetector": (8, ("xox", "hooks.slack.com")),
    "SoftlayerDetector": (70, ("sl", "softlayer")),
    "SquareOAuthDetector": (50, ("sq0csp-",)),
    "StripeDetector": (32, ("k_live_",)),
    "TelegramBotTokenDetector": (44, (":",)),
    "TwilioKeyDetector": (34, ("ac", "sk")),
}
# Shorter lines are skipped unscanned: no rule can report from them.
_MIN_LINE_LEN = min(min_len for min_len, _ in _GATES.values())

# Go's `password := "..."`, built from the keyword plugin's own pieces, quotes required like its other rules.
_GO_KEYWORD = re.compile(
    rf"{DENYLIST_REGEX}(?:{CLOSING})?\s*:=\s*({QUOTE})({SECRET})(\2)",
    re.IGNORECASE,
)
_GO_KEYWORD_GROUP = 3

# `scheme://user:password@host`: user may be empty (`redis://:pw@host`) and holds no quote, so that the match
# cannot start in an earlier string literal; the password is anything up to the `@` but `/` and whitespace.
_URL_PASSWORD = re.compile(r"://[^\s:@/'\"`]*:([^\s@/]+)@(?=[^\s@/])")

# Characters a token is made of: a value a regex detector captured is trimmed of delimiters (Artifactory's match
# starts with one) and widened over these to the whole token (GitHub's regex captures only `ghp`, the JWT one
# stops before the signature).
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_LEAD_JUNK = " \t\r\"'=:"
_TRAIL_JUNK = " \t\r\"'"

# Values that are placeholders or flags in configs and docs, not secrets (compared case-insensitively).
_PLACEHOLDER_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "secret_key",
        "changeme",
        "change_me",
        "change-me",
        "changeit",
        "example",
        "placeholder",
        "redacted",
        "dummy",
        "todo",
        "fixme",
        "your_password",
        "yourpassword",
        "your-password",
        "mypassword",
        "your_secret",
        "your_api_key",
        "your_token",
        "true",
        "false",
        "none",
        "null",
        "undefined",
    }
)
_PRINTF = re.compile(r"%(?:\(\w+\))?[-#0 +]*\d*(?:\.\d+)?[sdrif]")

# PEM / PGP / SSH2 private-key armour. Key material is what tells a key block from a mention of its marker:
# base64 lines are 64 or 70 characters, so a real body always holds a run of 32.
_KEY_BEGIN = re.compile(r"(?:-{2,} ?)?BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?(?: ?-{2,})?")
_KEY_END = re.compile(r"(?:-{2,} ?)?END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?(?: ?-{2,})?")
_KEY_MATERIAL = re.compile(r"[A-Za-z0-9+/]{32,}")
_KEY_LOOKAHEAD = 512  # a truncated key's body starts within this many characters of its BEGIN marker
# PuTTY key files: header, public lines, then the private lines and a closing `Private-MAC:` line.
_PUTTY_BEGIN = re.compile(r"PuTTY-User-Key-File-\d")
_PUTTY_END = re.compile(r"Private-MAC:[^\n]*")


@dataclass(frozen=True)
class Scrubbed:
    text: str  # input with every secret replaced by PLACEHOLDER
    kinds: tuple[str, ...]  # one entry per distinct secret replaced, e.g. ("AWS Access Key", "Private Key")


def _default_plugins() -> list[BasePlugin]:
    """detect-secrets' default plugin set with default settings, as `default_settings()` builds it, but made
    directly so that no process-wide detect-secrets setting is touched. Ordered so that when two plugins report
    the same value the specific detector names it, the keyword and entropy plugins last."""
    skipped = (PrivateKeyDetector, IPPublicDetector)  # private keys: own rule; IPv4: every hit filtered out
    classes: list[type[BasePlugin]] = list(get_mapping_from_secret_type_to_class().values())
    plugins = [cls() for cls in classes if not issubclass(cls, skipped)]
    return sorted(plugins, key=lambda p: (isinstance(p, HighEntropyStringsPlugin), isinstance(p, KeywordDetector)))


def _is_false_positive(value: str, line: str, plugin: BasePlugin | None) -> bool:
    """detect-secrets' cheap filters (the ones that do not need a filename), then codedouble's."""
    return (
        len(value) < _MIN_SECRET_LEN
        or value in PLACEHOLDER  # could never be removed from the output
        or heuristic.is_sequential_string(value)
        or heuristic.is_potential_uuid(value)
        or heuristic.is_templated_secret(value)
        or heuristic.is_prefixed_with_dollar_sign(value)
        or heuristic.is_not_alphanumeric_string(value)
        or (plugin is not None and heuristic.is_likely_id_string(value, line, plugin))
        or value.lower() in _PLACEHOLDER_WORDS
        or len(set(value.lower())) == 1  # xxxxxxxx
        or _PRINTF.fullmatch(value) is not None
    )


def _regex_values(plugin: RegexBasedDetector, line: str) -> list[str]:
    """The secrets a regex detector finds in `line`, each widened to the whole token it sits in."""
    # A plugin that refines its regex matches (the JWT detector decodes them) has the last word on which count.
    refined = type(plugin).analyze_string is not RegexBasedDetector.analyze_string
    reported = set(plugin.analyze_string(line)) if refined else set()
    if refined and not reported:
        return []
    values = []
    for regex in plugin.denylist:
        for m in regex.finditer(line):
            # The values detect-secrets reports: the non-empty groups, else the whole match. (It reports nothing
            # for a match whose groups are all empty, e.g. GitLab's `glcbt-` token without its optional
            # partition; here that is the whole match too.)
            spans = [m.span(g) for g in range(1, regex.groups + 1) if m.group(g)] or [m.span()]
            for gs, ge in spans:
                if refined and line[gs:ge] not in reported:
                    continue
                while gs < ge and line[gs] in _LEAD_JUNK:
                    gs += 1
                while ge > gs and line[ge - 1] in _TRAIL_JUNK:
                    ge -= 1
                while gs > 0 and line[gs - 1] in _TOKEN_CHARS:
                    gs -= 1
                while ge < len(line) and line[ge] in _TOKEN_CHARS:
                    ge += 1
                values.append(line[gs:ge])
    return values


def _entropy_values(plugin: HighEntropyStringsPlugin, min_len: int, line: str) -> list[str]:
    return [
        v
        for v in plugin.analyze_string(line)
        if len(v) >= min_len and plugin.calculate_shannon_entropy(v) > plugin.entropy_limit
    ]


def _keyword_values(plugin: KeywordDetector, line: str) -> list[str]:
    # Language-agnostic rules (the miner's texts come from many languages): quoted values only, which is what
    # keeps `password = get_password()` and `api_key: str` out.
    values = [v.rstrip(_TRAIL_JUNK) for v in plugin.analyze_string(line, QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)]
    go = _GO_KEYWORD.search(line)
    if go:
        values.append(go.group(_GO_KEYWORD_GROUP).rstrip(_TRAIL_JUNK))
    return values


def _other_values(plugin: BasePlugin, line: str) -> list[str]:
    return [v.strip(_TRAIL_JUNK) for v in plugin.analyze_string(line)]


def _value_finder(plugin: BasePlugin) -> Callable[[str], list[str]]:
    """What `plugin.analyze_line(...)` would report with eager search off, as raw values. analyze_line itself is
    not called: it wraps each value in a PotentialSecret and may run network verification if detect-secrets'
    global settings ask for it."""
    if isinstance(plugin, HighEntropyStringsPlugin):
        # Shannon entropy cannot exceed log2(length), so shorter strings never pass the limit; skip computing it.
        return partial(_entropy_values, plugin, int(2**plugin.entropy_limit) + 1)
    if isinstance(plugin, KeywordDetector):
        return partial(_keyword_values, plugin)
    if isinstance(plugin, RegexBasedDetector):
        return partial(_regex_values, plugin)
    return partial(_other_values, plugin)


def _scrub_key_blocks(text: str) -> tuple[str, list[str]]:
    """Replace each private-key block (BEGIN marker through END marker, or to the end of a truncated text)."""
    blocks: list[str] = []
    for begin_re, end_re in ((_KEY_BEGIN, _KEY_END), (_PUTTY_BEGIN, _PUTTY_END)):
        pos = 0
        while (begin := begin_re.search(text, pos)) is not None:
            end = end_re.search(text, begin.end())
            stop = end.end() if end else len(text)
            body = text[begin.end() : end.start() if end else min(len(text), begin.end() + _KEY_LOOKAHEAD)]
            is_key = "Private-Lines:" in body if begin_re is _PUTTY_BEGIN else _KEY_MATERIAL.search(body)
            if not is_key:
                pos = begin.end()
                continue
            blocks.append(text[begin.start() : stop])
            text = text[: begin.start()] + PLACEHOLDER + text[stop:]
            pos = begin.start() + len(PLACEHOLDER)
    return text, blocks


def _replace_values(text: str, values: list[str]) -> str:
    """Replace every occurrence of every value; longest first, so a value inside another goes with it."""
    pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))
    # One pass can leave a value only where it overlaps a placeholder it was next to; a few passes settle that.
    for _ in range(4):
        text = pattern.sub(PLACEHOLDER, text)
        if pattern.search(text) is None:
            return text
    return PLACEHOLDER  # pathological overlap: dropping the whole text is the only safe answer


class SecretScrubber:
    """Finds and replaces secrets. Build one per process and reuse it: it caches each distinct line's findings,
    and the miner's texts repeat lines a lot (a definition before and after a commit, file headers)."""

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE, prefilter: bool = True) -> None:
        self._prefilter = prefilter
        use_gates = prefilter and DETECT_SECRETS_VERSION == _GATES_VERSION
        # Per plugin: shortest line it can match, gate substrings (None: always run), its value finder, its kind,
        # and the plugin to hand the id-string filter (None for regex detectors, which that filter spares).
        self._table: list[tuple[int, tuple[str, ...] | None, Callable[[str], list[str]], str, BasePlugin | None]] = []
        for plugin in _default_plugins():
            min_len, gate = _GATES.get(type(plugin).__name__, (0, None)) if use_gates else (0, None)
            id_filtered = None if isinstance(plugin, RegexBasedDetector) else plugin
            self._table.append((min_len, gate, _value_finder(plugin), plugin.secret_type, id_filtered))
        self._scan: Callable[[str], tuple[Finding, ...]] = (
            lru_cache(maxsize=cache_size)(self._scan_line) if cache_size > 0 else self._scan_line
        )

    def scrub(self, text: str) -> Scrubbed:
        kinds: list[str] = []
        if "PRIVATE KEY" in text or "PuTTY-User-Key-File" in text:
            text, blocks = _scrub_key_blocks(text)
            kinds.extend(PRIVATE_KEY for _ in dict.fromkeys(blocks))
        found: dict[str, str] = {}  # value -> kind, in order of appearance
        for line in text.split("\n"):
            for kind, value in self._scan(line):
                found.setdefault(value, kind)
        if found:
            text = _replace_values(text, list(found))
            kinds.extend(found.values())
        return Scrubbed(text=text, kinds=tuple(kinds))

    def _scan_line(self, line: str) -> tuple[Finding, ...]:
        if self._prefilter and len(line) < _MIN_LINE_LEN:
            return _NONE
        # The gates only hold for ASCII: under re.IGNORECASE the Kelvin sign matches `k`.
        lower = line.lower() if line.isascii() else None
        n = len(line)
        found: list[Finding] = []
        for min_len, gate, find_values, kind, id_filtered in self._table:
            if n < min_len:
                continue
            if gate is not None and lower is not None:
                for s in gate:
                    if s in lower:
                        break
                else:
                    continue
            for value in find_values(line):
                if not _is_false_positive(value, line, id_filtered):
                    found.append((kind, value))
        if not self._prefilter or "://" in line:
            for m in _URL_PASSWORD.finditer(line):
                if not _is_false_positive(m.group(1), line, None):
                    found.append((BASIC_AUTH, m.group(1)))
        return tuple(found) if found else _NONE

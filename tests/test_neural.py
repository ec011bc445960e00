"""The model's decoder: the key-value cache kept across keystrokes gives exactly the completion a fresh
prompt gives, the prompt's cut stays put while a line is typed, and a degenerate loop is cut."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from codedouble.server.engine import blocks
from codedouble.server.engine import neural as neural_module
from codedouble.server.engine.document import Request
from codedouble.server.engine.neural import Neural, repetition_cut

TOKENIZER = Path(__file__).resolve().parents[1] / "trainer" / "base" / "weights"

# A file long enough that a 256-token context must cut the text before the cursor.
HEADER = "import os\nimport re\nfrom pathlib import Path\n\n\n"
BODY = "".join(
    f"    value_{i} = settings.get('key_{i}', {i})\n    if value_{i} > limit:\n        total += value_{i}\n"
    for i in range(30)
)
SOURCE = (
    HEADER + "def collect(settings, limit):\n    total = 0\n" + BODY + "    return total\n\n\ndef other():\n    pass\n"
)


def save_model(folder: Path, kind: str) -> Path:
    """A random-initialised model with the shipped tokenizer: what the decoder does, not what it knows. The
    weights are drawn wide so that greedy choices are far from ties."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOKENIZER)
    torch.manual_seed(0)
    if kind == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=256,
            tie_word_embeddings=True,
            initializer_range=0.3,
        )
        model = LlamaForCausalLM(config)
    else:
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=256)
        config.initializer_range = 0.3
        model = GPT2LMHeadModel(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _short_completions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Random weights never end a line: 32 tokens a completion would make these tests slow, 8 show the same.
    monkeypatch.setattr(neural_module, "LINE_TOKENS", 8)
    monkeypatch.setattr(neural_module, "BLOCK_TOKENS", 12)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, one_torch_thread
) -> tuple[Neural, Neural]:
    """The same model twice: one keeps its cache across requests, the other computes every prompt afresh. In
    fp32: int8 quantises activations per call, so a prompt fed whole or in pieces gives slightly different
    numbers (test_int8_* below), and these tests are about the cache, which must be exact."""
    folder = save_model(tmp_path_factory.mktemp(request.param), request.param)
    reusing, fresh = Neural(folder, runtime="fp32"), Neural(folder, runtime="fp32")
    fresh.reuse = False
    return reusing, fresh


def at(text: str, cursor: int, mode: str = "line") -> Request:
    return Request("app/collect.py", text[:cursor], text[cursor:], mode)  # type: ignore[arg-type]


def same(pair: tuple[Neural, Neural], request: Request) -> int:
    """Asserts both give the same completion; returns the prompt tokens the reusing one took from its cache."""
    reusing, fresh = pair
    got, expected = reusing.generate(request), fresh.generate(request)
    assert (got.text, got.tokens) == (expected.text, expected.tokens), request.prefix[-40:]
    assert got.logprob == pytest.approx(expected.logprob, rel=1e-3, abs=1e-3)
    return reusing.last_reused


def test_reuse_gives_the_same_completion_over_a_typing_session(pair: tuple[Neural, Neural]) -> None:
    reusing, _ = pair
    reusing.clear()
    line = "    value_30 = settings.get('key_30', 30)\n"
    cursor = SOURCE.index("    return total")
    text = SOURCE[:cursor] + SOURCE[cursor:]
    prompt_length = len(reusing.prompt_ids(at(text, cursor), 32)[0])
    reused = []
    # Typing a new line character by character, mid-word most of the time (token healing at work).
    for char in line[:20]:
        text = text[:cursor] + char + text[cursor:]
        cursor += 1
        reused.append(same(pair, at(text, cursor)))
    assert reused[0] == 0  # nothing kept yet
    assert min(reused[1:]) > prompt_length // 2  # the prompt's head came from the cache
    # Backspace twice, then type again.
    for _ in range(2):
        text = text[: cursor - 1] + text[cursor:]
        cursor -= 1
        assert same(pair, at(text, cursor)) > prompt_length // 2
    # An edit after the cursor (the suffix is early in the prompt: little is reused, all is right).
    edit = text.index("def other")
    text = text[:edit] + "def another():\n    return 1\n\n\n" + text[edit:]
    same(pair, at(text, cursor))
    # The cursor jumps to another definition, then back; a body is asked for.
    same(pair, at(text, text.index("pass")))
    same(pair, at(text, cursor))
    opened = text.index("def collect(settings, limit):\n") + len("def collect(settings, limit):\n")
    same(pair, at(text, opened, "block"))
    same(pair, at(text, cursor))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["backspace", "left", "jump"]),
            st.text(alphabet="abcxyz_.(), 0123=\n", min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_reuse_equals_recompute_over_any_edits(pair: tuple[Neural, Neural], edits: list[str]) -> None:
    text, cursor = SOURCE, SOURCE.index("    return total") + 4
    for edit in edits:
        if edit in ("backspace", "left") and cursor == 0:
            continue
        if edit == "backspace":
            text, cursor = text[: cursor - 1] + text[cursor:], cursor - 1
        elif edit == "left":
            cursor -= 1
        elif edit == "jump":
            cursor = max(text.find("total = 0"), 0) + 5
        else:
            text, cursor = text[:cursor] + edit + text[cursor:], cursor + len(edit)
        same(pair, at(text, cursor))


def test_a_cancelled_completion_leaves_a_cache_the_next_one_can_use(pair: tuple[Neural, Neural]) -> None:
    reusing, _ = pair
    reusing.clear()
    cursor = SOURCE.index("    return total") + 8
    calls = iter(range(100))
    assert reusing.generate(at(SOURCE, cursor), lambda: next(calls) >= 3).text == ""  # stopped after 3 tokens
    assert same(pair, at(SOURCE, cursor + 1)) > 0
    reusing.generate(at(SOURCE, cursor), lambda: True)  # cancelled before any forward pass
    assert same(pair, at(SOURCE, cursor)) > 0


def test_clear_and_reuse_off_compute_from_scratch(pair: tuple[Neural, Neural]) -> None:
    reusing, fresh = pair
    cursor = SOURCE.index("    return total") + 8
    reusing.generate(at(SOURCE, cursor))
    reusing.clear()
    assert same(pair, at(SOURCE, cursor)) == 0
    fresh.generate(at(SOURCE, cursor))
    fresh.generate(at(SOURCE, cursor))
    assert fresh.last_reused == 0
    # A different file shares only the prompt's first marker tokens, if any: no stale cache is read.
    other = Request("lib/other.js", "function f(a) {\n  return a", ";\n}\n", "line")
    same(pair, other)
    assert reusing.last_reused < 4


def test_the_prompt_cut_stays_put_while_a_line_is_typed(pair: tuple[Neural, Neural]) -> None:
    reusing, _ = pair
    cursor = SOURCE.index("    return total")
    base = SOURCE[:cursor]
    prompts = []
    for typed in ["", "    r", "    retu", "    return to", "    return total + sum(values) - "]:
        request = Request("app/collect.py", base + typed, SOURCE[cursor:], "line")
        ids, _ = reusing.prompt_ids(request, 32)
        assert len(ids) <= reusing.context - 32
        prompts.append(ids)
    # The whole definition does not fit: the text before the cursor was cut...
    assert "def collect" not in reusing.tokenizer.decode(prompts[0])
    # ...at a line start, the same one each time: only the cursor's line differs.
    line_tokens = len(reusing._encode("    return total + sum(values) - "))
    for ids in prompts[1:]:
        common = neural_module._common_prefix(prompts[0], ids)
        assert common >= len(prompts[0]) - line_tokens - 2
    middle = prompts[0].index(reusing.tokenizer.convert_tokens_to_ids("<|fim_middle|>"))
    kept = reusing.tokenizer.decode(prompts[0][middle + 1 :])
    assert kept.startswith("    ") and "\n" + kept in SOURCE


def test_the_prompt_reads_the_file_above_the_definition_around_the_cursor(pair: tuple[Neural, Neural]) -> None:
    """The model sees the lines above the definition the cursor is in (the names they set are what its next
    line reuses), cut at a line start to fit, with no context block."""
    reusing, _ = pair
    cursor = SOURCE.index("    pass") + 6
    ids, healed = reusing.prompt_ids(at(SOURCE, cursor), 32)
    text = reusing.tokenizer.decode(ids) + healed
    assert "<|context|>" not in text and text.startswith("<|file|>app/collect.py\n<|fim_prefix|><|fim_suffix|>")
    before = text[text.index("<|fim_middle|>") + len("<|fim_middle|>") :]
    assert SOURCE[:cursor].endswith(before) and SOURCE[: cursor - len(before)].endswith("\n")
    assert before.endswith("    return total\n\n\ndef other():\n    pa")  # `collect`, above `other`


def test_a_short_prompt_limit_caps_the_prompt(pair: tuple[Neural, Neural]) -> None:
    reusing, _ = pair
    cursor = SOURCE.index("    return total") + 8
    try:
        reusing.prompt_limit = 100
        ids, _ = reusing.prompt_ids(at(SOURCE, cursor), 32)
        assert len(ids) <= 100
    finally:
        reusing.prompt_limit = reusing.context


# --- the repetition cut ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "text", "kept"),
    [
        ("        self.", "plugins.plugins.plugins", "plugins"),
        ("    x = self.m", "ark.mark.mark", "ark"),
        ("    x = self.m", "ark.mark.mark.mar", "ark"),
        ("    return ", "name_name_name_", "name_"),
        ("    self.plugins.plugins", ".plugins", ""),  # the engineer typed two copies: nothing of the third
        ("", "        pass\n        pass\n        pass\n", "        pass\n"),
        ("    return ", "items, items, items, items, items, items", "items"),
    ],
)
def test_repetition_cut_drops_the_loop_and_keeps_one_copy(before: str, text: str, kept: str) -> None:
    assert repetition_cut(before, text) == kept


@pytest.mark.parametrize(
    ("before", "text"),
    [
        ("    return ", "a, a, a"),
        ("    return ", "(None, None, None, None"),
        ("    self.x = ", "x"),
        ("", "        self.x = x\n        self.y = y\n        self.z = z\n"),
        ("    return ", "f(g(h(x)))"),
        ("    x = [", "0, 0, 0, 0, 0, 0, 0, 0"),
        ("    path = '", "../../../"),
        ("    # ", "------------"),
        ("    ", "self.x.x"),
        ("    x = ", "plugins.plugins"),  # two copies may be a real name: wait for a third
    ],
)
def test_repetition_cut_leaves_code_that_repeats_legitimately(before: str, text: str) -> None:
    assert repetition_cut(before, text) is None


def test_repetition_cut_keeps_a_run_the_document_already_has() -> None:
    document = ("ROOT = Path(__file__).parent.parent.parent\n", "")
    assert repetition_cut("    p = ", "Path(__file__).parent.parent.parent", document) is None
    assert repetition_cut("    p = ", "Path(__file__).parent.parent.parent") == "Path(__file__).parent"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        # rich's held-out bodies, as the model wrote them: one line five times, a pair of lines four times
        (
            '    """Parse."""\n' + '    assert v.format(v) == "1.0"\n' * 5,
            '    """Parse."""\n    assert v.format(v) == "1.0"',
        ),
        ("    x = 1\n" + "    if x:\n        x = x.rfind('.')\n" * 4, "    x = 1\n    if x:\n        x = x.rfind('.')"),
        ("    a()\n    b()\n    c()\n" * 3 + "    a(", "    a()\n    b()\n    c()"),  # a partial fourth copy goes
    ],
)
def test_line_loop_cut_keeps_one_copy_of_a_looping_group(text: str, kept: str) -> None:
    assert blocks.line_loop_cut(text) == kept


@pytest.mark.parametrize(
    "text",
    [
        "    x = 1\n    x = 1\n",  # two copies may be meant: wait for a third
        "    print()\n    print()\n    print(",  # the third is not whole yet
        "        }\n    }\n}\n\n\n\n",  # closing braces and blank lines are code
        "    self.a = a\n    self.b = b\n    self.c = c\n",
    ],
)
def test_line_loop_cut_leaves_code_that_repeats_legitimately(text: str) -> None:
    assert blocks.line_loop_cut(text) is None


def test_line_loop_cut_keeps_a_run_the_document_already_has() -> None:
    """Three `yield Text()` in a row that the engineer already wrote in the file are their style."""
    text = "        yield Text()\n" * 3
    assert blocks.line_loop_cut(text, ("    def a(self):\n" + text, "")) is None
    assert blocks.line_loop_cut(text) == "        yield Text()"


class LoopingModel:
    """A stand-in model that writes the healed token, then `.plugins` forever (the loop a small model falls into)."""

    def __init__(self, first: int, loop: list[int], vocab: int) -> None:
        self.script, self.loop, self.vocab, self.calls = [first], loop, vocab, 0

    def __call__(self, input_ids: torch.Tensor, cache=None, use_cache=True, logits_to_keep=0) -> SimpleNamespace:
        script = self.script + self.loop * 100
        logits = torch.zeros(1, input_ids.shape[1], self.vocab)
        logits[0, -1, script[self.calls]] = 10.0
        self.calls += 1
        return SimpleNamespace(logits=logits, cache=None)


def test_the_decoder_stops_a_loop_and_drops_its_tail(pair: tuple[Neural, Neural]) -> None:
    _, fresh = pair
    request = Request("app/a.py", "def f(self):\n    return self", "\n", "line")
    ids, healed = fresh.prompt_ids(request, 32)
    loop = fresh._encode(".plugins")
    real = fresh.model
    try:
        fresh.model = LoopingModel(fresh._encode(healed)[0], loop, len(fresh.token_strings))  # type: ignore[assignment]
        got = fresh.generate(request)
        assert got.text == ".plugins"
        assert fresh.model.calls == 1 + neural_module.REPEATS * len(loop)  # stopped at the third copy, not at 32
    finally:
        fresh.model = real


def test_the_decoder_stops_a_body_looping_over_lines(
    pair: tuple[Neural, Neural], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body that writes the same line again and again ends after its third copy, not at the token limit, and
    keeps one copy."""
    monkeypatch.setattr(neural_module, "BLOCK_TOKENS", 64)
    _, fresh = pair
    request = Request("app/a.py", "def f(x):\n", "\n", "block")
    _, healed = fresh.prompt_ids(request, 32)
    assert healed == "\n"  # the prompt's last newline is healed: the first token starts with it
    # Longer than the character-level cut's unit (LONGEST_REPEAT): only the line-level cut stops it.
    written = "    assert version_str.format(version_str) == '1.0'"
    assert len(written) > neural_module.LONGEST_REPEAT
    line = fresh._encode("\n" + written)
    real = fresh.model
    try:
        fresh.model = LoopingModel(line[0], line[1:] + line[:1], len(fresh.token_strings))  # type: ignore[assignment]
        got = fresh.generate(request)
        assert got.text == written
        # The third copy is whole once the fourth line starts: stopped there, not at the token limit.
        assert fresh.model.calls == len(line) * blocks.LOOP_REPEATS + 1
    finally:
        fresh.model = real


# --- the int8 runtime ----------------------------------------------------------------------------------------


def test_int8_is_the_default_runtime_and_quantises_every_linear_layer(tmp_path: Path, one_torch_thread) -> None:
    folder = save_model(tmp_path / "llama", "llama")
    served = Neural(folder)
    assert served.runtime == neural_module.RUNTIME == "int8"
    layers = [m for m in served.model.modules() if isinstance(m, torch.nn.Linear)]
    quantised = [m for m in served.model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert quantised and not [m for m in layers if type(m) is torch.nn.Linear]
    assert isinstance(served.complete(at(SOURCE, SOURCE.index("    return total") + 8)), str)
    with pytest.raises(ValueError, match="fp16"):
        Neural(folder, runtime="fp16")


def test_int8_scores_code_as_fp32_does_on_the_shipped_base(one_torch_thread) -> None:
    """What quantisation may cost: the shipped base's log-probabilities of a few lines, int8 against fp32."""
    exact, quantised = Neural(TOKENIZER, runtime="fp32"), Neural(TOKENIZER, runtime="int8")
    request = Request("main.py", "import os\nimport sys\n\n\ndef main():\n    args = sys.", "\n", "line")
    candidates = ["argv[1:]", "argv", "stdin.read()", "path"]
    got, expected = quantised.score(request, candidates), exact.score(request, candidates)
    assert got == pytest.approx(expected, rel=0.15, abs=0.3)
    assert max(range(4), key=got.__getitem__) == max(range(4), key=expected.__getitem__) == 0


def test_confirm_agrees_with_generate_on_the_shipped_base(monkeypatch: pytest.MonkeyPatch, one_torch_thread) -> None:
    """`confirm` is `generate` in one pass: the same line confirmed with the same score, any other refused, and
    the cache it leaves gives the next completion exactly as a fresh prompt does."""
    monkeypatch.setattr(neural_module, "LINE_TOKENS", 32)
    checking, fresh = Neural(TOKENIZER, runtime="fp32"), Neural(TOKENIZER, runtime="fp32")
    fresh.reuse = False
    confirmed = 0
    for cursor in range(SOURCE.index("    value_3 ="), SOURCE.index("    value_3 =") + 60, 3):
        request = at(SOURCE, cursor)
        generated = fresh.generate(request)
        line = generated.text.split("\n", 1)[0]
        ended = generated.tokens < neural_module.LINE_TOKENS  # it stopped at the end of a line, not the limit
        score = checking.confirm(request, line)
        if ended and line.strip():
            assert score == pytest.approx(math.exp(generated.logprob), rel=1e-3), (request.prefix[-30:], line)
            confirmed += 1
        assert checking.confirm(request, line + "x") is None
        if len(line.rstrip()) > 1:
            assert checking.confirm(request, line.rstrip()[:-1]) is None
        assert checking.generate(request).text == generated.text  # the cache confirm kept is exact
    assert confirmed >= 10

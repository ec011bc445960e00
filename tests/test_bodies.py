"""Whole bodies (server/engine/bodies.py): signatures read, retrieved bodies adapted to a new signature, the
engine proposing one on a mined history where a body pattern recurs, and abstention declining elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codedouble.server.engine import engine as engines
from codedouble.server.engine.abstention import AbstentionError, Calibration
from codedouble.server.engine.bodies import Bodies, BodyTuning, Signature, adapt, place, signature_of
from codedouble.server.engine.document import NOTHING, Proposal, Request
from codedouble.server.engine.neural import Generated
from codedouble.server.engine.workspace import WorkspaceContext
from codedouble.trainer.evaluation import tasks
from codedouble.trainer.mining.dataset import load_records
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.training import bodies as tuning
from codedouble.trainer.training.examples import corpus_snippets
from conftest import ALICE, GitRepo, isolate_git

# --- signatures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "name", "parameters"),
    [
        ("def load(self, path: Path, *, strict: bool = True) -> Data:", "python", "load", ("self", "path", "strict")),
        ("@pytest.mark.parametrize('a', [1, 2])\ndef test_a(a):", "python", "test_a", ("a",)),
        (
            "def render(\n    self,\n    console: Console,\n    options: Dict[str, int],\n):",
            "python",
            "render",
            ("self", "console", "options"),
        ),
        ("public static int add(final int left, List<String> right) {", "java", "add", ("left", "right")),
        ("func (s *Server) Handle(w http.ResponseWriter, r *http.Request) {", "go", "Handle", ("w", "r")),
        ("export function sum(a: number, b = 2) {", "typescript", "sum", ("a", "b")),
        ("fn push(&mut self, item: T) -> usize {", "rust", "push", ("self", "item")),
    ],
)
def test_signatures_name_their_definition_and_parameters(
    text: str, language: str, name: str, parameters: tuple[str, ...]
) -> None:
    found = signature_of(text, language)
    assert found is not None
    assert (found.name, found.parameters) == (name, parameters)


def test_a_line_that_defines_nothing_has_no_signature() -> None:
    assert signature_of("class Point:", "python") is None
    assert signature_of("x = [", "python") is None


# --- adaptation -----------------------------------------------------------------------------------------


def test_adapting_renames_the_name_and_the_parameters_everywhere() -> None:
    source = Signature("load_users", ("self", "path"), "")
    target = Signature("load_orders", ("self", "source"), "")
    body = '    """Read path."""\n    data = self.read(path)\n    return self.load_users(data) or path_default'
    assert adapt(body, source, target) == (
        '    """Read source."""\n    data = self.read(source)\n    return self.load_orders(data) or path_default'
    )


def test_adapting_leaves_parameters_alone_where_an_inserted_one_says_nothing_of_which_it_replaces() -> None:
    source = Signature("f", ("a", "b"), "")
    assert adapt("return a + b", source, Signature("f", ("a", "x", "b"), "")) == "return a + b"
    # Two swapped names are not renamed onto each other.
    assert adapt("return a - b", source, Signature("f", ("b", "a"), "")) == "return a - b"


def test_placing_an_indented_body_moves_it_under_the_signature() -> None:
    prefix = "class A:\n    def run(self, x):\n"
    body = "        if x:\n            return 1\n        return 2\n"
    assert place(body, prefix, "python", "def f(x):\n" + body) == (
        "        if x:\n            return 1\n        return 2"
    )
    # A file with nothing indented before the cursor takes the body's own step (two spaces here).
    assert place("  return x\n", "def f(x):\n", "python", "def g(x):\n  return x\n") == "  return x"


def test_placing_a_braced_body_closes_it_at_the_signatures_indentation() -> None:
    prefix = "class A {\n\tint f(int a) {\n"
    body = "    return a + 1;\n}"
    assert place(body, prefix, "java", "int g(int a) {\n" + body) == "\t\treturn a + 1;\n\t}"


# --- tuning ---------------------------------------------------------------------------------------------


def test_a_manifest_without_bodies_gets_the_defaults_and_a_damaged_one_is_refused() -> None:
    assert BodyTuning.from_manifest({}) == BodyTuning.default()
    tuned = BodyTuning(0.35, Calibration((0.2, 0.9), (0.0, 0.6)), 0.95, {"samples": 12})
    assert BodyTuning.from_manifest({"bodies": tuned.to_dict()}) == tuned
    with pytest.raises(AbstentionError):
        BodyTuning.from_manifest({"bodies": {"threshold": 0.5}})


def test_tuning_lets_retrieval_answer_only_where_it_beat_the_others() -> None:
    # High scores: retrieval right (and exact half the time); low scores: the others better.
    observed = [tuning.Observed(0.95, i % 2 == 0, 1.0 if i % 2 == 0 else 0.8, 0.3) for i in range(10)]
    observed += [tuning.Observed(0.3, False, 0.1, 0.5) for _ in range(10)]
    tuned = tuning.tune(observed)
    assert tuned.prefers(0.95) and not tuned.prefers(0.3)
    assert tuned.validation["forced_similarity"] == pytest.approx((9.0 + 5.0) / 20)
    # Exact 5 times in 10 at 0.95: shown there (precision 0.5 reaches the target), never at 0.3.
    assert tuned.validation["tuned"] and tuned.shows(0.95) and tuned.validation["shown_exact"] == 5
    assert not tuned.prefers(0.3)
    # Exact 4 times in 10: below the target whatever the threshold, so nothing is shown.
    fewer = tuning.tune(
        [
            tuning.Observed(o.score, o.exact and i != 0, o.similarity, o.fallback_similarity)
            for i, o in enumerate(observed)
        ]
    )
    assert not fewer.validation["tuned"] and fewer.threshold == 0.5 and not fewer.shows(0.95)
    # Nothing beating the others: retrieval never answers.
    assert tuning.tune([tuning.Observed(0.9, False, 0.1, 0.4)] * 10).prefer_from is None


# --- the engine on a mined history ----------------------------------------------------------------------

SAVE = '''def save_{name}(store, {item}):
    """Write one {item} to the store, once."""
    key = store.key("{name}", {item}.id)
    if store.has(key):
        return key
    store.put(key, {item}.to_json())
    return key
'''


class _Silent:
    """The n-gram, the model and retrieval answering nothing: only the retrieved body can."""

    name = "silent"

    def propose(self, request: Request, cancelled: object = None) -> Proposal:
        return NOTHING

    def generate(self, request: Request, cancelled: object = None) -> Generated:
        return Generated("", 0.0, 0)


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A history whose engineer writes the same saving function for one record type after another."""
    root = tmp_path_factory.mktemp("bodies")
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        repo = GitRepo(root / "app")
        try:
            written = []
            for name, item in (("user", "user"), ("order", "order"), ("invoice", "invoice")):
                written.append(SAVE.format(name=name, item=item))
                repo.write("app/store.py", "\n\n".join(written))
                repo.commit(f"save {name}s", author=ALICE)
        finally:
            repo.close()
        mine(repo.path, root / "ds", MineOptions(all_authors=True), progress=False)
    return [s.text for s in corpus_snippets(load_records(root / "ds"))]


# As tuned on a double whose validation measured retrieval beating the others from a raw score of 0.25 on
# (BodyTuning.default() prefers it only under the same name, 0.9), exact bodies never seen: none shown.
PREFERRED = BodyTuning(0.5, Calibration((0.0,), (0.0,)), 0.25)


def _engine(texts: list[str], tuned: BodyTuning = PREFERRED) -> engines.Combined:
    silent = _Silent()
    bodies = Bodies(texts, ["python"] * len(texts), ["app/store.py"] * len(texts))
    return engines.Combined(silent, silent, silent, bodies=bodies, body_tuning=tuned)  # type: ignore[arg-type]


def test_the_engine_proposes_the_recurring_body_adapted_to_a_new_signature(mined: list[str]) -> None:
    engine = _engine(mined)
    prefix = "import json\n\n\ndef save_payment(store, payment):\n"
    expected = SAVE.format(name="payment", item="payment").split("\n", 1)[1].rstrip()
    # The parameter follows the signature everywhere, the docstring and the string literal included.
    assert engine.complete(Request("app/store.py", prefix, "\n", "block")) == expected


def test_the_engine_declines_a_body_for_an_unrelated_signature(mined: list[str]) -> None:
    # Tuned as on a double whose validation measured retrieval right from 0.9 on and exact from 0.85 (a same-named one).
    tuned = BodyTuning(0.5, Calibration((0.0, 0.85), (0.0, 0.8)), 0.9)
    engine = _engine(mined, tuned)
    related = Request("app/store.py", "def save_invoice(store, invoice):\n", "\n", "block")
    assert engine.propose(related).system == "bodies"
    unrelated = Request("app/maths.py", "def mean(values):\n", "\n", "block")
    assert engine.complete(unrelated) == ""  # the others (silent here) answer: retrieval is not preferred
    assert engine.propose(unrelated) == NOTHING
    # Not on a line request either.
    assert engine.propose(Request("app/store.py", "def save_invoice(store, invoice):\n    ke", "\n", "line")) == NOTHING


def test_the_engines_bodies_come_from_the_document_too(tmp_path: Path) -> None:
    engine = _engine([])
    sibling = "def area_of_square(side):\n    checked = float(side)\n    return checked * checked\n\n\n"
    request = Request("geo.py", sibling + "def area_of_tile(edge):\n", "\n", "block")
    assert engine.bodies is not None
    proposal = engine.bodies.propose(request)
    assert proposal.text == "    checked = float(edge)\n    return checked * checked"
    assert 0 < proposal.score < 1


def test_the_engines_bodies_come_from_the_workspace_too() -> None:
    """A function in another file of the workspace, as it is now, is a candidate like a sibling; the newer
    version there wins the tie against the older one the corpus holds; the document's own file is left out of
    the workspace's candidates (its live text is the document)."""
    old = "def area_of_square(side):\n    return side * side\n"
    now = "def area_of_square(side):\n    checked = float(side)\n    return checked * checked\n"
    request = Request("shapes.py", "def area_of_square(edge):\n", "\n", "block")
    bodies = Bodies([old], ["python"], ["geo.py"])
    assert bodies.propose(request).text == "    return edge * edge"
    workspace = WorkspaceContext({"geo.py": now, "shapes.py": "def area_of_square(x):\n    return 0\n"})
    assert [e.signature.name for e in workspace.bodies("python", "shapes.py")] == ["area_of_square"]
    assert workspace.bodies("go", "shapes.py") == []
    got = bodies.propose(Request(request.path, request.prefix, request.suffix, "block", workspace))
    assert got.text == "    checked = float(edge)\n    return checked * checked"


def test_a_workspace_class_gives_its_methods_with_the_class_name() -> None:
    panel = "class Panel:\n    def render(self, console):\n        return console.box(self)\n"
    table = "class Table:\n    def render(self, console):\n        return console.grid(self.rows)\n"
    workspace = WorkspaceContext({"ui/panel.py": panel, "ui/table.py": table})
    assert [(e.enclosing, e.path) for e in workspace.bodies("python", "ui/new.py")] == [
        ("Panel", "ui/panel.py"),
        ("Table", "ui/table.py"),
    ]
    request = Request("ui/new.py", "class Table:\n    def render(self, console):\n", "\n", "block", workspace)
    assert Bodies([], [], []).propose(request).text == "        return console.grid(self.rows)"


def test_tuning_observes_each_sample_with_its_workspace() -> None:
    """Body tuning sees what the server will: a body found only in another file of the workspace is exact with
    the sample's workspace, and not without it."""
    now = "def area_of_square(side):\n    checked = float(side)\n    return checked * checked\n"
    sample = tasks.Sample(
        "c:shapes.py:1:1",
        "block",
        "python",
        "shapes.py",
        "def area_of_square(edge):\n",
        "\n",
        "    checked = float(edge)\n    return checked * checked",
        commit="c",
        repository="repo",
    )
    engine = _engine([])
    assert engine.bodies is not None
    workspaces = {("c", "shapes.py"): WorkspaceContext({"geo.py": now})}
    seen = tuning.observe(engine, engine.bodies, [sample], 60, lambda s: workspaces[(s.commit, s.path)])
    assert [o.exact for o in seen] == [True]
    assert [o.exact for o in tuning.observe(engine, engine.bodies, [sample], 60)] == [False]


def test_the_enclosing_class_tells_same_named_methods_apart() -> None:
    """Two classes of one file with the same method: the one in the class being written wins, whether the
    corpus holds the class or the document does."""
    panel = "class Panel:\n    def render(self, console):\n        return console.box(self)\n"
    table = "class Table:\n    def render(self, console):\n        return console.grid(self.rows)\n"
    bodies = Bodies([table, panel], ["python"] * 2, ["ui.py"] * 2)
    request = Request("ui.py", "class Table:\n    def render(self, console):\n", "\n", "block")
    assert bodies.propose(request).text == "        return console.grid(self.rows)"
    in_document = Request(
        "ui.py",
        table
        + "\n\n"
        + panel.replace("Panel", "Frame")
        + "\n\nclass Table2:\n    x = 1\n\n\nclass Table:\n    def render(self, console):\n",
        "\n",
        "block",
    )
    assert Bodies([], [], []).propose(in_document).text == "        return console.grid(self.rows)"


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("defclass (){}:,=<>@\n\t x_y1\"'#")), max_size=200),
    st.sampled_from(["a.py", "a.java", "a.go", "a.ts", "a.rs", "a.txt"]),
)
def test_a_body_request_on_any_text_never_fails(prefix: str, path: str) -> None:
    """The server never dies on a request: whatever is before the cursor, a proposal or nothing."""
    corpus = ["def f(a, b):\n    return a + b\n", "class K(Base):\n    def f(self, a):\n        return a\n"]
    bodies = Bodies(corpus, ["python", "python"], ["a.py", "k.py"])
    got = bodies.propose(Request(path, prefix + "\n", "\n}", "block"))
    assert isinstance(got.text, str) and 0 <= got.score <= 1

"""`codedouble train` end to end: a history built in tmp_path, mined, and trained into a tiny artifact.

The model and budget are tiny (one layer, a few steps): the tests check the pipeline's contract (the artifact's
files and loading, the time split, resume, atomic writes, errors), not what the model learns.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer

from codedouble.server.commits import model as commit_model
from codedouble.server.contract import artifact, atomic, prompt
from codedouble.server.engine import routing
from codedouble.server.engine.bodies import BodyTuning
from codedouble.trainer import cli
from codedouble.trainer.mining.dataset import load_records
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.mining.records import ChangeRecord, FileContext
from codedouble.trainer.training import checkpoint, split
from codedouble.trainer.training import examples as examples_module
from codedouble.trainer.training.examples import ExampleMix, examples, fim_cut
from codedouble.trainer.training.loop import LoopError
from codedouble.trainer.training.model import BaseModelError, ModelSize
from codedouble.trainer.training.tokenizer import train_tokenizer
from codedouble.trainer.training.train import TrainError, TrainOptions, train
from conftest import ALICE, BOB, GitRepo, Person, isolate_git

CAROL = Person("Carol Third", "carol@example.com")
TINY = TrainOptions(
    from_scratch=True,
    steps=6,
    batch_size=2,
    block_size=64,
    eval_every=3,
    eval_batches=1,
    vocab_size=300,
    size=ModelSize(layers=1, hidden=64, context=128),
    tune_lines=0,  # abstention tuning has tests of its own; here it would only slow every training down
)
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
REQUIRED_FILES = ("model.safetensors", "config.json", "tokenizer.json", "manifest.json")


# --- the history: three engineers, 22 commits over eight months of a small shop library -------------

HEADERS = {
    "shop/pricing.py": "from decimal import Decimal\n",
    "shop/cart.py": "from dataclasses import dataclass, field\n",
    "shop/storage.py": "import json\nfrom pathlib import Path\n",
    "tools/report.py": "import csv\nimport io\n",
    "tools/cli.py": "import argparse\nimport sys\n",
}

CART_V1 = """\
class Cart:
    def __init__(self, owner):
        self.owner = owner
        self.lines = []

    def add(self, sku, quantity=1, unit_price=0.0):
        self.lines.append((sku, quantity, unit_price))
        return len(self.lines)
"""

CART_V2 = (
    CART_V1
    + """
    def total(self):
        return sum(quantity * price for _, quantity, price in self.lines)
"""
)

CART_V3 = (
    CART_V2
    + """
    def remove(self, sku):
        before = len(self.lines)
        self.lines = [line for line in self.lines if line[0] != sku]
        return before - len(self.lines)
"""
)

CART_V4 = CART_V3.replace(
    "        self.lines.append((sku, quantity, unit_price))\n",
    "        if quantity <= 0:\n"
    '            raise ValueError(f"quantity must be positive, not {quantity}")\n'
    "        self.lines.append((sku, quantity, unit_price))\n",
)

CART_V5 = (
    CART_V4
    + """
    def merge(self, other):
        for sku, quantity, price in other.lines:
            self.add(sku, quantity, price)
        other.lines.clear()
"""
)

CART_V6 = (
    CART_V5
    + """
    def quantity_of(self, sku):
        return sum(quantity for line_sku, quantity, _ in self.lines if line_sku == sku)
"""
)

PRICE_BOOK = """\
class PriceBook:
    def __init__(self, prices=None):
        self._prices = dict(prices or {})

    def price_of(self, sku):
        try:
            return self._prices[sku]
        except KeyError:
            raise LookupError(f"no price for {sku!r}") from None

    def update(self, sku, price):
        if price < 0:
            raise ValueError("prices are never negative")
        self._prices[sku] = price
"""

# (author, message, path, block name, block text): a block replaces the file's block of that name, or is appended.
HISTORY: list[tuple[Person, str, str, str, str]] = [
    (
        ALICE,
        "Add net price",
        "shop/pricing.py",
        "net_price",
        '''\
def net_price(gross, vat_rate=0.2):
    """Price without VAT."""
    return round(gross / (1 + vat_rate), 2)
''',
    ),
    (BOB, "Start the cart", "shop/cart.py", "Cart", CART_V1),
    (
        ALICE,
        "Discounts in percent",
        "shop/pricing.py",
        "apply_discount",
        """\
def apply_discount(price, percent):
    if not 0 <= percent <= 100:
        raise ValueError(f"bad discount: {percent}")
    return price * (100 - percent) / 100
""",
    ),
    (BOB, "Cart total", "shop/cart.py", "Cart", CART_V2),
    (
        CAROL,
        "Save carts as JSON",
        "shop/storage.py",
        "save_cart",
        """\
def save_cart(cart, folder):
    path = Path(folder) / f"{cart.owner}.json"
    path.write_text(json.dumps({"owner": cart.owner, "lines": cart.lines}))
    return path
""",
    ),
    (
        CAROL,
        "Load carts",
        "shop/storage.py",
        "load_cart",
        """\
def load_cart(path, factory):
    data = json.loads(Path(path).read_text())
    cart = factory(data["owner"])
    for sku, quantity, price in data["lines"]:
        cart.add(sku, quantity, price)
    return cart
""",
    ),
    (
        ALICE,
        "Report lines",
        "tools/report.py",
        "format_line",
        """\
def format_line(sku, quantity, price):
    return f"{sku:<12}{quantity:>4} x {price:>8.2f}"
""",
    ),
    (
        ALICE,
        "Render a whole report",
        "tools/report.py",
        "render_report",
        """\
def render_report(cart):
    rows = [format_line(*line) for line in cart.lines]
    rows.append("-" * 30)
    rows.append(f"{'total':<12}{cart.total():>18.2f}")
    return "\\n".join(rows)
""",
    ),
    (BOB, "Remove items from a cart", "shop/cart.py", "Cart", CART_V3),
    (
        ALICE,
        "Shipping costs by weight",
        "shop/pricing.py",
        "shipping_cost",
        """\
def shipping_cost(weight_kg, express=False):
    base = 4.5 if weight_kg < 2 else 4.5 + (weight_kg - 2) * 1.25
    return base * 2 if express else base
""",
    ),
    (BOB, "A price book", "shop/pricing.py", "PriceBook", PRICE_BOOK),
    (
        CAROL,
        "List saved carts",
        "shop/storage.py",
        "list_carts",
        """\
def list_carts(folder):
    return sorted(p.stem for p in Path(folder).glob("*.json"))
""",
    ),
    (
        ALICE,
        "Net price: refuse negative rates",
        "shop/pricing.py",
        "net_price",
        '''\
def net_price(gross, vat_rate=0.2):
    """Price without VAT, to the cent."""
    if vat_rate < 0:
        raise ValueError(f"a VAT rate is never negative: {vat_rate}")
    return round(Decimal(str(gross)) / (1 + Decimal(str(vat_rate))), 2)
''',
    ),
    (BOB, "Positive quantities only", "shop/cart.py", "Cart", CART_V4),
    (
        CAROL,
        "Summaries over many carts",
        "tools/report.py",
        "summarise",
        """\
def summarise(carts):
    totals = {cart.owner: cart.total() for cart in carts}
    best = max(totals, key=totals.get) if totals else None
    return {"count": len(totals), "sum": sum(totals.values()), "best": best}
""",
    ),
    (
        CAROL,
        "Export a cart as CSV",
        "tools/report.py",
        "to_csv",
        """\
def to_csv(cart):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["sku", "quantity", "unit_price"])
    writer.writerows(cart.lines)
    return buffer.getvalue()
""",
    ),
    (BOB, "Merge carts", "shop/cart.py", "Cart", CART_V5),
    (
        ALICE,
        "Command line arguments",
        "tools/cli.py",
        "parse_args",
        """\
def parse_args(argv):
    parser = argparse.ArgumentParser(prog="shop")
    parser.add_argument("folder", help="where the carts are saved")
    parser.add_argument("--owner", default=None, help="only this owner's cart")
    return parser.parse_args(argv)
""",
    ),
    (
        CAROL,
        "Delete a saved cart",
        "shop/storage.py",
        "delete_cart",
        """\
def delete_cart(folder, owner):
    path = Path(folder) / f"{owner}.json"
    if not path.exists():
        return False
    path.unlink()
    return True
""",
    ),
    (
        ALICE,
        "Discounts as amounts too",
        "shop/pricing.py",
        "apply_discount",
        """\
def apply_discount(price, percent=None, amount=None):
    if (percent is None) == (amount is None):
        raise TypeError("give exactly one of percent and amount")
    if amount is not None:
        return max(price - amount, 0)
    if not 0 <= percent <= 100:
        raise ValueError(f"bad discount: {percent}")
    return price * (100 - percent) / 100
""",
    ),
    (BOB, "Quantity of one item", "shop/cart.py", "Cart", CART_V6),
    (
        ALICE,
        "The shop command",
        "tools/cli.py",
        "main",
        """\
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    owners = list_carts(args.folder) if args.owner is None else [args.owner]
    for owner in owners:
        print(owner, file=sys.stderr)
    return 0
""",
    ),
]


def _commit_date(i: int) -> datetime:
    """Spread over eight months, at varying hours and in two time zones."""
    zone = timezone(timedelta(hours=2 if i % 3 else -5))
    return datetime(2022, 1, 3, 8, tzinfo=zone) + timedelta(days=11 * i, hours=(i * 7) % 10, minutes=i)


def build_history(repo: GitRepo, history: list[tuple[Person, str, str, str, str]] = HISTORY) -> list[str]:
    """Commit `history` block by block; returns the commit ids, oldest first."""
    files: dict[str, dict[str, str]] = {}
    shas = []
    for i, (author, message, path, name, text) in enumerate(history):
        files.setdefault(path, {})[name] = text
        repo.write(path, HEADERS.get(path, "") + "\n\n" + "\n\n".join(files[path].values()))
        shas.append(repo.commit(message, author=author, date=_commit_date(i)))
    return shas


def mine_all(repo: Path, out: Path) -> Path:
    mine(repo, out, MineOptions(all_authors=True), progress=False)
    return out


def tiny(**changes: Any) -> TrainOptions:
    return replace(TINY, **changes)


def loaded_records(dataset_dir: Path) -> list[ChangeRecord]:
    return list(load_records(dataset_dir))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(UTC)


@pytest.fixture(autouse=True)
def _own_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test writes a double into the real data directory."""
    home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The shop repository (built once per module and worker); returns its path and commit ids."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        repo = GitRepo(tmp_path_factory.mktemp("history") / "shop")
        try:
            shas = build_history(repo)
        finally:
            repo.close()
    return repo.path, shas


@pytest.fixture(scope="module")
def dataset_dir(history: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        return mine_all(history[0], tmp_path_factory.mktemp("dataset") / "dataset")


@pytest.fixture(scope="module")
def trained(dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny training run shared by the tests that only read its artifact (never modify it)."""
    out = tmp_path_factory.mktemp("trained") / "double"
    result = train(dataset_dir, tiny(out=out), progress=False)
    assert result.artifact == out
    return out


# --- the artifact ---------------------------------------------------------------------------------------


def test_artifact_holds_safetensors_config_tokenizer_and_manifest_and_no_pickle(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert set(REQUIRED_FILES) <= names, names
    assert not [p for p in trained.rglob("*") if p.suffix in PICKLE_SUFFIXES], names
    assert (trained / "model.safetensors").stat().st_size > 0
    # Neither the checkpoints of the run nor a staging directory is left beside the artifact.
    assert sorted(p.name for p in trained.parent.iterdir()) == [trained.name]


def test_artifact_loads_with_transformers_as_is_and_generates(trained: Path) -> None:
    model, info = AutoModelForCausalLM.from_pretrained(trained, output_loading_info=True)
    tokenizer = AutoTokenizer.from_pretrained(trained)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.config.model_type == "llama" and model.config.tie_word_embeddings  # --from-scratch: a Llama
    assert model.config.max_position_embeddings == TINY.block_size  # its context is the block it trained at
    assert model.get_input_embeddings().num_embeddings >= len(tokenizer)
    text = prompt.fim_prompt(
        prompt.Context("shop/cart.py", "import json", ("class Cart:",)), "    def size(self):\n", "\n"
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, min_new_tokens=4, do_sample=False
        )
    assert out.shape == (1, ids.shape[1] + 4)
    assert torch.equal(out[0, : ids.shape[1]], ids[0])
    assert isinstance(tokenizer.decode(out[0, ids.shape[1] :]), str)


def test_artifact_tokenizer_knows_every_prompt_token_as_one_token(trained: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(trained)
    ids = set()
    for token in prompt.SPECIAL_TOKENS:
        encoded = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert encoded == [tokenizer.convert_tokens_to_ids(token)], (token, encoded)
        ids.add(encoded[0])
        # Also as one token in running text, with code glued to both sides.
        around = tokenizer(f"x = 1{token}def f", add_special_tokens=False)["input_ids"]
        assert encoded[0] in around
    assert len(ids) == len(prompt.SPECIAL_TOKENS)
    assert tokenizer.eos_token == prompt.EOS
    # Registered as special, so that a reader can drop them with skip_special_tokens=True.
    assert set(prompt.SPECIAL_TOKENS) <= set(tokenizer.all_special_tokens)
    assert (
        tokenizer.decode(tokenizer(f"a{prompt.FIM_MIDDLE}b{prompt.EOS}")["input_ids"], skip_special_tokens=True) == "ab"
    )


@pytest.mark.parametrize("which", ["trained", "lora_trained"])
def test_generation_stops_where_training_examples_end(which: str, request: pytest.FixtureRequest) -> None:
    """Every training text ends in prompt.EOS: `generate()` on the artifact as it is must stop there."""
    from transformers import GenerationConfig

    folder = request.getfixturevalue(which)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    eos = GenerationConfig.from_pretrained(folder).eos_token_id
    eos_ids = set(eos) if isinstance(eos, list) else {eos}
    assert tokenizer.convert_tokens_to_ids(prompt.EOS) in eos_ids, (
        f"generation_config.json eos_token_id={eos} ({tokenizer.convert_ids_to_tokens(sorted(i for i in eos_ids if i is not None))}), "
        f"not {prompt.EOS} (id {tokenizer.convert_tokens_to_ids(prompt.EOS)})"
    )


def test_artifact_manifest_records_format_split_loss_and_dataset(trained: Path, dataset_dir: Path) -> None:
    manifest = read_json(trained / "manifest.json")
    assert manifest["prompt_format"] == prompt.PROMPT_FORMAT_VERSION
    assert manifest["tool"] == "codedouble"
    assert artifact.read_manifest(trained) == manifest
    loss = manifest["validation_loss"]
    assert isinstance(loss, float) and math.isfinite(loss) and loss > 0
    dataset_manifest = read_json(dataset_dir / "manifest.json")
    assert (
        manifest["dataset"]["manifest_hash"]
        == hashlib.sha256(json.dumps(dataset_manifest, sort_keys=True).encode()).hexdigest()
    )
    assert manifest["dataset"]["head"] == dataset_manifest["head"]
    held = manifest["split"]["heldout_commits"]
    commits = {r.commit for r in loaded_records(dataset_dir)}
    assert held and set(held) <= commits
    assert manifest["records"]["heldout"] == sum(r.commit in held for r in loaded_records(dataset_dir))
    assert manifest["training"]["steps_done"] == 6
    assert manifest["training"]["world_size"] == 1
    # Retrieved bodies tuned on the validation commits' block samples (bodies.py): the key the server reads.
    tuned = BodyTuning.from_manifest(manifest)
    assert manifest["bodies"] is not None and tuned.validation["samples"] > 0, manifest["bodies"]


# --- the split never leaks ---------------------------------------------------------------------------


def _squeezed(text: str) -> str:
    return "".join(text.split())


def _code_of(example: str) -> str:
    """The code a training text shows the model; a FIM text's pieces put back in reading order."""
    if prompt.FIM_PREFIX in example:
        head, rest = example.split(prompt.FIM_PREFIX + prompt.FIM_SUFFIX, 1)
        suffix, prefix_and_middle = rest.split(prompt.FIM_MIDDLE, 1)
        return head + prefix_and_middle.removesuffix(prompt.EOS) + suffix
    return example


def assert_no_leak(records: list[ChangeRecord], heldout_commits: set[str]) -> None:
    heldout = [r for r in records if r.commit in heldout_commits]
    training, _ = split.drop_near_duplicates([r for r in records if r.commit not in heldout_commits], heldout)
    assert not {r.commit for r in training} & heldout_commits
    texts = [_squeezed(_code_of(t)) for t in examples(training, ExampleMix(), seed=0)]
    for r in heldout:
        if r.after and len(_squeezed(r.after)) > 20:
            leaked = [t for t in texts if _squeezed(r.after) in t]
            assert not leaked, f"held-out {r.qualified_name} ({r.commit[:12]}) appears in training: {leaked[0][:300]}"


def test_heldout_commits_are_the_newest_and_never_reach_training(trained: Path, dataset_dir: Path) -> None:
    records = loaded_records(dataset_dir)
    held = set(read_json(trained / "manifest.json")["split"]["heldout_commits"])
    times = {r.commit: utc(r.committed_at) for r in records}
    newest_first = sorted(times, key=times.__getitem__, reverse=True)
    assert len(held) == max(1, round(len(times) * split.DEFAULT_HELDOUT_FRACTION))
    assert held == set(newest_first[: len(held)])
    assert min(times[c] for c in held) > max(times[c] for c in times if c not in held)
    assert_no_leak(records, held)


def test_a_revert_in_the_heldout_commits_does_not_leak_through_the_code_it_replaces(make_repo) -> None:
    """The newest commit reverts a rewrite: the held-out answer is the code before the rewrite, which a training
    edit example (before → after) and the rewrite's commit-message example still show verbatim."""
    repo = make_repo()
    original = """\
def slugify(title):
    words = [w.lower() for w in title.split() if w.isalnum()]
    return "-".join(words)[:60]
"""
    rewrite = """\
def slugify(title, limit=60):
    import re

    cleaned = re.sub(r"[^a-z0-9]+", "-", title.casefold()).strip("-")
    return cleaned[:limit].rstrip("-") or "untitled"
"""
    history = list(HISTORY[:10])
    history.insert(3, (ALICE, "Slugs for titles", "tools/slug.py", "slugify", original))
    history.append((BOB, "Slugs with a regular expression", "tools/slug.py", "slugify", rewrite))
    history.append((ALICE, 'Revert "Slugs with a regular expression"', "tools/slug.py", "slugify", original))
    build_history(repo, history)
    records = loaded_records(mine_all(repo.path, repo.path.parent / "dataset"))
    the_split = split.time_split(records, split.DEFAULT_HELDOUT_FRACTION)
    revert = [r for r in records if r.message.startswith("Revert")]
    assert the_split.heldout_commits == {revert[0].commit}, "only the revert is held out"
    assert revert[0].after is not None and _squeezed(revert[0].after) == _squeezed(original)
    assert_no_leak(records, set(the_split.heldout_commits))


# --- time_split -------------------------------------------------------------------------------------------


def record(
    commit: str, committed_at: str, after: str | None = "def f():\n    return 1\n", **fields: Any
) -> ChangeRecord:
    data: dict[str, Any] = dict(
        repository="/work/repo",
        commit=commit,
        author_email="alice@example.com",
        author_name="Alice",
        authored_at=committed_at,
        committed_at=committed_at,
        path="a.py",
        old_path=None,
        language="python",
        qualified_name="f",
        kind="function",
        change="added" if after else "deleted",
        before=None,
        after=after,
        line=1,
        context=FileContext(header="", enclosing=()),
        message="a change",
    )
    data.update(fields)
    return ChangeRecord(**data)


def commits_at(count: int) -> list[ChangeRecord]:
    """`count` commits a day apart, two records each, listed newest first (the split must not rely on order)."""
    start = datetime(2023, 5, 1, 12, tzinfo=UTC)
    rows = []
    for i in reversed(range(count)):
        at = (start + timedelta(days=i)).isoformat()
        rows += [record(f"c{i:02d}", at), record(f"c{i:02d}", at, qualified_name="g")]
    return rows


@pytest.mark.parametrize(
    ("count", "fraction", "expected"),
    [
        (10, 0.1, {"c09"}),
        (10, 0.3, {"c07", "c08", "c09"}),
        (10, 0.04, {"c09"}),  # rounds to none, but at least one is held out when there are two commits
        (10, 0.0, set()),
        (10, 0.99, {f"c{i:02d}" for i in range(1, 10)}),  # never all: something is left to train on
        (2, 0.1, {"c01"}),
        (1, 0.5, set()),  # a single commit is never held out
        (0, 0.1, set()),
    ],
)
def test_time_split_holds_out_the_newest_share_of_commits(count: int, fraction: float, expected: set[str]) -> None:
    records = commits_at(count)
    result = split.time_split(records, fraction)
    assert set(result.heldout_commits) == expected
    assert result.heldout_fraction == fraction
    if expected:
        assert result.cutoff == utc(next(r.committed_at for r in records if r.commit == min(expected))).isoformat()
    else:
        assert result.cutoff is None
    assert [r for r in records if result.is_heldout(r)] == [r for r in records if r.commit in expected]
    assert split.Split.from_dict(json.loads(json.dumps(result.to_dict()))) == result


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.1])
def test_time_split_refuses_a_fraction_outside_zero_to_one(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        split.time_split(commits_at(5), fraction)


def test_time_split_compares_times_in_utc_not_as_written() -> None:
    # 10:00 at +02:00 is 08:00 UTC: older than 09:00 UTC although it reads later.
    records = [
        record("east", "2023-05-01T10:00:00+02:00"),
        record("west", "2023-05-01T04:00:00-05:00"),
        record("utc", "2023-05-01T09:00:00+00:00"),
    ]
    assert split.time_split(records, 0.34).heldout_commits == {"west"}
    assert split.time_split(records, 0.67).heldout_commits == {"west", "utc"}


def test_time_split_breaks_ties_the_same_way_whatever_the_order() -> None:
    same = "2023-05-01T09:00:00+00:00"
    records = [
        record("old", "2023-04-01T09:00:00+00:00"),
        record("bbb", same),
        record("aaa", same),
        record("ccc", "2023-05-01T11:00:00+02:00"),
    ]  # ccc: the same instant as bbb and aaa
    seen = set()
    for seed in range(6):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        result = split.time_split(shuffled, 0.25)
        seen.add(result.heldout_commits)
        assert len(result.heldout_commits) == 1
        (held,) = result.heldout_commits
        assert held in {"aaa", "bbb", "ccc"}  # one of the newest instant, never the older commit
        assert result.cutoff == "2023-05-01T09:00:00+00:00"
    assert len(seen) == 1, f"the split depends on the order of the records: {seen}"
    # Held out or not, a commit's records stay together.
    two = split.time_split(records + [record("old", "2023-04-01T09:00:00+00:00", qualified_name="g")], 0.5)
    assert "old" not in two.heldout_commits and len(two.heldout_commits) == 2


# --- drop_near_duplicates ------------------------------------------------------------------------------

HELD_CODE = """\
def merge_intervals(intervals):
    ordered = sorted(intervals)
    merged = [list(ordered[0])]
    for start, end in ordered[1:]:
        if start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [tuple(pair) for pair in merged]
"""


def test_drop_near_duplicates_drops_copies_of_heldout_code_and_keeps_the_rest() -> None:
    heldout = [record("new", "2023-05-02T00:00:00+00:00", HELD_CODE)]
    exact = record("t1", "2023-05-01T00:00:00+00:00", HELD_CODE, path="copy.py")
    spaced = record(
        "t2",
        "2023-05-01T00:00:00+00:00",
        HELD_CODE.replace("    ", "\t").replace(", ", ",").replace(" <= ", "<=") + "\n\n",
    )
    renamed = record("t3", "2023-05-01T00:00:00+00:00", HELD_CODE.replace("def merge_intervals(", "def merge_ranges("))
    unrelated = record("t4", "2023-05-01T00:00:00+00:00", "def area(width, height):\n    return width * height\n")
    unrelated_edit = record(
        "t5",
        "2023-05-01T00:00:00+00:00",
        "def area(w, h):\n    return w * h\n",
        before="def area(w):\n    return w * w\n",
    )
    deleted_unrelated = record("t6", "2023-05-01T00:00:00+00:00", None, before="def gone():\n    return None\n")
    # The before-text of a training change is shown too (edit and commit-message examples): a change away from
    # the held-out code (what a later revert brings back) or its deletion would leak it as well.
    changed_away = record("t7", "2023-05-01T00:00:00+00:00", unrelated.after, before=HELD_CODE)
    deleted_copy = record("t8", "2023-05-01T00:00:00+00:00", None, before=HELD_CODE)
    train_records = [exact, spaced, renamed, unrelated, unrelated_edit, deleted_unrelated, changed_away, deleted_copy]
    kept, dropped = split.drop_near_duplicates(train_records, heldout)
    assert kept == [unrelated, unrelated_edit, deleted_unrelated]
    assert dropped == 5


def test_drop_near_duplicates_keeps_everything_without_heldout_code() -> None:
    train = [record("t1", "2023-05-01T00:00:00+00:00", HELD_CODE), record("t2", "2023-05-01T00:00:00+00:00", "x")]
    assert split.drop_near_duplicates(train, []) == (train, 0)
    assert split.drop_near_duplicates(train, [record("h", "2023-05-02T00:00:00+00:00", None, before=HELD_CODE)]) == (
        train,
        0,
    )


# --- fim_cut and the prompt builders --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(200))
def test_fim_cut_pieces_add_up_to_the_text(seed: int) -> None:
    prefix, middle, suffix = fim_cut(HELD_CODE, random.Random(seed))
    assert prefix + middle + suffix == HELD_CODE


@settings(max_examples=300, deadline=None)
@given(text=st.text(), seed=st.integers(0, 2**32 - 1))
def test_fim_cut_pieces_add_up_to_any_text(text: str, seed: int) -> None:
    prefix, middle, suffix = fim_cut(text, random.Random(seed))
    assert prefix + middle + suffix == text
    assert fim_cut(text, random.Random(seed)) == (prefix, middle, suffix)  # deterministic for a seed


def test_fim_cut_covers_all_three_cursor_kinds() -> None:
    cuts = [fim_cut(HELD_CODE, random.Random(seed)) for seed in range(300)]
    first_line = HELD_CODE.splitlines(keepends=True)[0]
    assert any(p == first_line and s == "" for p, _, s in cuts)  # the body after the signature
    assert any(m and "\n" not in m and s.startswith("\n") for _, m, s in cuts)  # the rest of a line
    assert len({len(p) for p, _, _ in cuts}) > 20  # cursors all over the text


CTX = prompt.Context("pkg/mod.py", "import os", ("class Walker:", "    def walk(self):"))
texts = st.text(max_size=40)


def test_fim_prompt_layout_is_the_documented_one() -> None:
    assert prompt.fim_prompt(CTX, "def f(", "):\n") == (
        "<|file|>pkg/mod.py\n<|context|>import os\nclass Walker:\n    def walk(self):\n"
        "<|fim_prefix|><|fim_suffix|>):\n<|fim_middle|>def f("
    )
    assert (
        prompt.fim_prompt(prompt.Context("a.py"), "p", "s")
        == "<|file|>a.py\n<|fim_prefix|><|fim_suffix|>s<|fim_middle|>p"
    )


@given(prefix=texts, middle=texts, suffix=texts, before=texts, message=texts)
def test_examples_are_their_prompt_plus_answer_plus_eos(
    prefix: str, middle: str, suffix: str, before: str, message: str
) -> None:
    assert (
        prompt.fim_example(CTX, prefix, middle, suffix) == prompt.fim_prompt(CTX, prefix, suffix) + middle + prompt.EOS
    )
    assert prompt.edit_example(CTX, before, middle) == prompt.edit_prompt(CTX, before) + middle + prompt.EOS
    assert (
        prompt.commit_example("a.py", before, middle, message)
        == prompt.commit_prompt("a.py", before, middle) + message + prompt.EOS
    )
    assert prompt.commit_prompt("a.py", before, middle).endswith(prompt.COMMIT_MESSAGE)
    assert prompt.edit_prompt(CTX, before).endswith(prompt.EDIT_AFTER)


def test_training_examples_use_the_prompt_builders(dataset_dir: Path) -> None:
    records = loaded_records(dataset_dir)
    texts = examples(records, ExampleMix(), seed=3)
    assert texts == examples(records, ExampleMix(), seed=3)
    assert all(t.startswith(prompt.FILE) and t.endswith(prompt.EOS) and t.count(prompt.EOS) == 1 for t in texts)
    fims = [t for t in texts if prompt.FIM_MIDDLE in t]
    edits = [t for t in texts if prompt.EDIT_AFTER in t and prompt.COMMIT_MESSAGE not in t]
    messages = [t for t in texts if prompt.COMMIT_MESSAGE in t]
    with_after = [r for r in records if r.after and r.after.strip()]
    assert len(fims) == 3 * len(with_after)
    assert len(edits) == sum(1 for r in records if r.before and r.after)
    assert len(messages) == len({r.commit for r in records})
    assert sorted(_code_of(t) for t in fims) == sorted(
        prompt.fim_prompt(prompt.Context(r.path, r.context.header, r.context.enclosing), "", "").split(
            prompt.FIM_PREFIX
        )[0]
        + r.after
        for r in with_after
        for _ in range(3)
    )


def test_a_commit_example_shows_the_change_as_the_draft_prompt_does() -> None:
    """The definition that changed most, cut around its changed lines, as `server/commits/model.py` shows a
    staged change: not the commit's first definition whole."""
    long_before = "def render(rows):\n" + "".join(f"    step_{i} = {i}\n" for i in range(200)) + "    return rows\n"
    long_after = long_before.replace("    step_100 = 100\n", "    step_100 = compute(100)\n    check(step_100)\n")
    small = record(
        "c1", "2024-01-01T00:00:00+00:00", "def f():\n    return 2\n", before="def f():\n    return 1\n", path="a.py"
    )
    large = record(
        "c1",
        "2024-01-01T00:00:00+00:00",
        long_after,
        before=long_before,
        path="b.py",
        qualified_name="render",
        message="fix: checks",
    )
    example = examples_module.commit_example([small, large])
    assert example is not None
    before, after = commit_model.around_changes(long_before, long_after)
    assert example == prompt.commit_example("b.py", before, after, "fix: checks")
    assert "step_98 = 98" in example and "step_97 = 97" not in example  # two lines of context, no more
    assert len(example) < 400
    assert examples_module.commit_example([record("c2", "2024-01-01T00:00:00+00:00", message="  ")]) is None
    # Each commit gives one message example, from its largest change.
    texts = examples([small, large], ExampleMix(fim_per_definition=0, edits=False), seed=0)
    assert texts == [example]


# --- the tokenizer ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def code_tokenizer(dataset_dir: Path):
    return train_tokenizer(examples(loaded_records(dataset_dir), ExampleMix(), seed=0), vocab_size=400)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_tokenizer_round_trips_any_text(code_tokenizer, text: str) -> None:
    ids = code_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert code_tokenizer.decode(ids) == text
    assert code_tokenizer.unk_token_id is None or code_tokenizer.unk_token_id not in ids


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(st.text(max_size=20), st.sampled_from(prompt.SPECIAL_TOKENS)), max_size=8))
def test_tokenizer_round_trips_text_with_prompt_tokens(code_tokenizer, parts: list[str]) -> None:
    text = "".join(parts)
    ids = code_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert code_tokenizer.decode(ids) == text
    specials = {code_tokenizer.convert_tokens_to_ids(t) for t in prompt.SPECIAL_TOKENS}
    assert sum(i in specials for i in ids) == sum(text.count(t) for t in prompt.SPECIAL_TOKENS)


@pytest.mark.parametrize(
    "text", ["", " leading space", "\tdef f():\n\treturn 'é' + \"中文\" + '🐍'\r\n", "\x00\x7f\u2028"]
)
def test_tokenizer_round_trips_awkward_code(code_tokenizer, text: str) -> None:
    assert code_tokenizer.decode(code_tokenizer(text, add_special_tokens=False)["input_ids"]) == text


# --- resume ---------------------------------------------------------------------------------------------


def interrupt_on_save(monkeypatch: pytest.MonkeyPatch, call: int) -> list[int]:
    """checkpoint.save writes its checkpoint, then the `call`-th one raises KeyboardInterrupt (Ctrl-C)."""
    real = checkpoint.save
    steps: list[int] = []

    def save(folder: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
        real(folder, model, optimizer, state)
        steps.append(state["step"])
        if len(steps) == call:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save)
    return steps


def test_an_interrupted_run_resumes_where_its_last_checkpoint_left_off(
    dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "double"
    opts = tiny(out=out, eval_every=2)
    with monkeypatch.context() as mp:
        saved = interrupt_on_save(mp, call=2)
        with pytest.raises(KeyboardInterrupt):
            train(dataset_dir, opts, progress=False)
    assert saved == [2, 4]
    assert not out.exists() and not out.is_symlink()
    work = tmp_path / ".double.training"
    assert checkpoint.exists(work / "last")
    assert read_json(work / "last" / checkpoint.STATE)["step"] == 4
    assert not [p for p in tmp_path.iterdir() if p.name not in {"double", ".double.training", "xdg-data"}]

    real_load = checkpoint.load
    loaded: list[int] = []
    monkeypatch.setattr(checkpoint, "load", lambda *a: loaded.append((s := real_load(*a))["step"]) or s)
    saved_again = interrupt_on_save(monkeypatch, call=0)  # spies only
    result = train(dataset_dir, replace(opts, resume=True), progress=False)
    assert loaded == [4]
    assert saved_again == [6]  # steps 5 and 6 only, not the run again
    assert result.steps == 6
    manifest = read_json(out / "manifest.json")
    assert manifest["training"]["steps_done"] == 6
    assert manifest["training"]["resume"] is True
    assert all((out / name).is_file() for name in REQUIRED_FILES)
    assert not work.exists(), "the checkpoints are removed once the artifact is written"
    AutoModelForCausalLM.from_pretrained(out)


def test_resume_without_an_interrupted_run_is_a_clear_error(dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "double"
    with pytest.raises(LoopError, match=r"--resume: no interrupted run") as caught:
        train(dataset_dir, tiny(out=out, resume=True), progress=False)
    assert str(out) in str(caught.value)
    assert not out.exists()


def test_an_interrupted_run_with_the_default_out_resumes(
    dataset_dir: Path, monkeypatch: pytest.MonkeyPatch, _own_data_home: Path
) -> None:
    """`codedouble train DATASET`, Ctrl-C, then `codedouble train DATASET --resume`: the same (default) --out."""
    with monkeypatch.context() as mp:
        interrupt_on_save(mp, call=1)
        with pytest.raises(KeyboardInterrupt):
            train(dataset_dir, tiny(out=None), progress=False)
    time.sleep(1.1)  # the resumed run starts in a later second, as a person typing the command again would
    result = train(dataset_dir, tiny(out=None, resume=True), progress=False)
    assert read_json(result.artifact / "manifest.json")["training"]["steps_done"] == 6


# --- atomic artifact ------------------------------------------------------------------------------------


def fail_in_fill(monkeypatch: pytest.MonkeyPatch) -> None:
    def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
        assert (folder / "model.safetensors").is_file()  # the artifact is half-written when this fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifact, "write_manifest", write_manifest)


def test_a_failed_run_leaves_nothing_at_the_output_path(
    dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "doubles" / "double"
    fail_in_fill(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        train(dataset_dir, tiny(out=out), progress=False)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name != ".double.training"] == [], "no staging directory is left"


def test_a_failed_retrain_keeps_the_previous_artifact_intact(
    trained: Path, dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "double"
    shutil.copytree(trained, out)
    before = tree_bytes(out)
    fail_in_fill(monkeypatch)
    with pytest.raises(OSError):
        train(dataset_dir, tiny(out=out, seed=7), progress=False)
    assert tree_bytes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in {"xdg-data", ".double.training"}) == ["double"]


def test_a_retrain_that_fails_while_swapping_in_keeps_the_previous_artifact(
    trained: Path, dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new artifact is complete but cannot be renamed into place: the old one must still be at --out. (The
    fallback of two renames, where the platform cannot swap two directories in one step.)"""
    out = tmp_path / "double"
    shutil.copytree(trained, out)
    before = tree_bytes(out)
    real_replace = os.replace

    def replace_(src: Any, dst: Any) -> None:
        if Path(dst) == out and Path(src).name.endswith(".tmp"):
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    with monkeypatch.context() as mp:
        mp.setattr(artifact.os, "replace", replace_)
        mp.setattr(atomic, "_exchange", lambda a, b: False)
        with pytest.raises(OSError, match="Input/output error"):
            train(dataset_dir, tiny(out=out, seed=7), progress=False)
    assert out.is_dir(), f"the previous artifact is gone from {out}: {sorted(p.name for p in tmp_path.iterdir())}"
    assert tree_bytes(out) == before


def test_a_successful_retrain_replaces_the_previous_artifact(trained: Path, dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "double"
    shutil.copytree(trained, out)
    (out / "stale.txt").write_text("from the old artifact")
    train(dataset_dir, tiny(out=out, seed=7), progress=False)
    assert not (out / "stale.txt").exists()
    assert read_json(out / "manifest.json")["training"]["seed"] == 7
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "xdg-data") == ["double"]


# --- the default output: the user's data directory ----------------------------------------------------


def test_default_out_is_the_repositorys_folder_in_the_data_directory(dataset_dir: Path, _own_data_home: Path) -> None:
    repository = read_json(dataset_dir / "manifest.json")["repository"]
    assert artifact.current_artifact(repository) is None
    result = train(dataset_dir, tiny(out=None), progress=False)
    folder = _own_data_home / "codedouble" / "doubles"
    (double,) = folder.iterdir()
    assert double.name == f"shop-{hashlib.sha256(repository.encode()).hexdigest()[:8]}"
    assert result.artifact.parent == double
    assert re.fullmatch(r"\d{8}T\d{6}Z", result.artifact.name), result.artifact.name
    assert all((result.artifact / name).is_file() for name in REQUIRED_FILES)
    assert artifact.current_artifact(repository) == result.artifact
    assert sorted(p.name for p in double.iterdir()) == sorted([result.artifact.name, artifact.CURRENT])
    AutoModelForCausalLM.from_pretrained(result.artifact)


def test_a_failed_default_run_keeps_the_current_double(dataset_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repository = read_json(dataset_dir / "manifest.json")["repository"]
    first = train(dataset_dir, tiny(out=None), progress=False).artifact
    time.sleep(1.1)  # a later second: a new folder
    fail_in_fill(monkeypatch)
    with pytest.raises(OSError):
        train(dataset_dir, tiny(out=None, seed=5), progress=False)
    assert artifact.current_artifact(repository) == first
    left = sorted(p.name for p in first.parent.iterdir() if not p.name.endswith(".training"))
    assert left == sorted([first.name, artifact.CURRENT]), "no new double, no staging directory"


def test_a_time_budget_ends_the_run(dataset_dir: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    result = train(dataset_dir, tiny(out=tmp_path / "double", steps=None, minutes=0.01), progress=False)
    assert time.monotonic() - started < 60
    assert result.steps >= 1
    manifest = read_json(tmp_path / "double" / "manifest.json")
    assert manifest["training"]["steps_done"] == result.steps and manifest["training"]["minutes"] == 0.01


# --- LoRA on a local base checkpoint -------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with its own byte-level BPE tokenizer that knows none of the prompt format's tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        [HELD_CODE, CART_V6, PRICE_BOOK] * 3,
        trainer=trainers.BpeTrainer(
            vocab_size=320,
            special_tokens=["<s>", "</s>"],
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    path = tmp_path_factory.mktemp("base") / "tiny-llama"
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    assert not any(t in tokenizer.get_vocab() for t in prompt.SPECIAL_TOKENS)
    return path


@pytest.fixture(scope="module")
def lora_trained(base_checkpoint: Path, dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lora") / "double"
    result = train(dataset_dir, tiny(out=out, base=base_checkpoint, steps=4, learning_rate=1e-2), progress=False)
    assert result.artifact == out and result.steps == 4
    return out


def test_lora_on_a_local_base_exports_a_merged_model_that_loads_without_peft(
    lora_trained: Path, base_checkpoint: Path
) -> None:
    from transformers import LlamaForCausalLM

    out = lora_trained
    names = {p.name for p in out.iterdir()}
    assert set(REQUIRED_FILES) <= names
    assert not {n for n in names if n.startswith("adapter_")}, names
    assert not [p for p in out.rglob("*") if p.suffix in PICKLE_SUFFIXES]

    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert isinstance(model, LlamaForCausalLM) and model.config.model_type == "llama"
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert not [n for n, _ in model.named_parameters() if "lora" in n or "base_model" in n]
    tokenizer = AutoTokenizer.from_pretrained(out)
    for token in prompt.SPECIAL_TOKENS:
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [tokenizer.convert_tokens_to_ids(token)]
    assert set(prompt.SPECIAL_TOKENS) <= set(tokenizer.all_special_tokens)
    assert model.get_input_embeddings().num_embeddings >= len(tokenizer)

    base = AutoModelForCausalLM.from_pretrained(base_checkpoint)
    base_vocab = base.get_input_embeddings().num_embeddings
    layer, base_layer = model.model.layers[0].self_attn, base.model.layers[0].self_attn
    assert not torch.equal(layer.q_proj.weight, base_layer.q_proj.weight), "the LoRA update is merged into the weights"
    assert layer.q_proj.weight.shape == base_layer.q_proj.weight.shape
    # The base's own token embeddings are untouched; only the prompt format's new tokens were trained.
    assert torch.equal(model.get_input_embeddings().weight[:base_vocab], base.get_input_embeddings().weight)

    manifest = read_json(out / "manifest.json")
    assert manifest["training"]["base"]["path"] == str(base_checkpoint)
    assert (
        manifest["training"]["base"]["sha256"]
        == hashlib.sha256((base_checkpoint / "model.safetensors").read_bytes()).hexdigest()
    )
    assert manifest["training"]["base"]["shipped"] is False and manifest["training"]["finetune"] == "lora"
    assert manifest["prompt_format"] == prompt.PROMPT_FORMAT_VERSION
    assert math.isfinite(manifest["validation_loss"])
    # Which model answers in each language the history has, measured on its validation commits both ways.
    entries = manifest["languages"]
    assert set(entries) == set(manifest["records"]["languages"])
    measured = [e for e in entries.values() if "validation_loss" in e]
    assert measured, entries
    for entry in measured:
        losses = entry["validation_loss"]
        assert entry["by"] == "validation loss"
        assert entry["served_by"] == ("double" if losses["double"] < losses["base"] else "base"), entry
    # This base lacks the prompt format's tokens (the double's tokenizer has them added): the server cannot ask
    # it, and the double answers in every language.
    assert routing.base_of(manifest) is None
    ids = tokenizer(
        prompt.fim_prompt(prompt.Context("a.py"), "def f(", ""), return_tensors="pt", add_special_tokens=False
    )["input_ids"]
    assert (
        model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, min_new_tokens=3, do_sample=False
        ).shape[1]
        == ids.shape[1] + 3
    )


def _bad_base(root: Path, kind: str, base_checkpoint: Path) -> Path:
    path = root / kind
    path.mkdir()
    configs = {
        "not-json": "{ this is not json",
        "a-json-list": "[1, 2, 3]",
        "a-wrong-field": '{"model_type": "llama", "hidden_size": "big"}',
    }
    if kind in configs:
        for name in ("tokenizer.json", "tokenizer_config.json"):  # a real tokenizer: the config alone is wrong
            shutil.copy(base_checkpoint / name, path / name)
        (path / "config.json").write_text(configs[kind])
    elif kind == "no-weights":
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(base_checkpoint / name, path / name)
    return path


@pytest.mark.parametrize("kind", ["empty", "not-json", "a-json-list", "a-wrong-field", "no-weights"])
def test_a_base_that_is_not_a_checkpoint_is_a_clear_error(
    kind: str, base_checkpoint: Path, dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _bad_base(tmp_path, kind, base_checkpoint)
    out = tmp_path / "double"
    with pytest.raises(BaseModelError, match=re.escape(f"--base {bad}")):
        train(dataset_dir, tiny(out=out, base=bad), progress=False)
    assert not out.exists()
    code = cli.main(["train", str(dataset_dir), "--out", str(out), "--base", str(bad), "--steps", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"codedouble train: error: --base {bad}" in err


# --- clear errors ------------------------------------------------------------------------------------------


def run_train_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """`codedouble train ARGS --from-scratch`: these tests are about the trainer, not the shipped base."""
    code = cli.main(["train", *(str(a) for a in args), "--from-scratch"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("content", ["empty", "other-files", "missing"])
def test_a_directory_without_a_dataset_is_a_clear_error(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "not-a-dataset"
    if content != "missing":
        folder.mkdir()
    if content == "other-files":
        (folder / "records").mkdir()
        (folder / "records" / "part-0001.jsonl").write_text("{}\n")
        (folder / "notes.txt").write_text("hello")
    out = tmp_path / "double"
    with pytest.raises(TrainError, match=r"no manifest\.json.*codedouble mine") as caught:
        train(folder, tiny(out=out), progress=False)
    assert str(folder) in str(caught.value)
    code, err = run_train_cli(capsys, folder, "--out", out, "--steps", "2", "--quiet")
    assert code == 2
    assert f"codedouble train: error: {folder} holds no codedouble dataset (no manifest.json)" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_a_dataset_without_records_is_a_clear_error(
    make_repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo()
    repo.write("README.md", "# nothing to mine here\n")
    repo.commit("Docs only")
    dataset = mine_all(repo.path, tmp_path / "dataset")
    with pytest.raises(TrainError, match="no change records"):
        train(dataset, tiny(out=tmp_path / "double"), progress=False)
    code, err = run_train_cli(capsys, dataset, "--out", tmp_path / "double", "--steps", "2", "--quiet")
    assert code == 2 and "no change records" in err


def test_too_little_data_says_how_many_tokens_there_are_and_are_needed(
    make_repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo()
    repo.write("tiny.py", "def one():\n    return 1\n")
    repo.commit("One tiny function")
    dataset = mine_all(repo.path, tmp_path / "dataset")
    assert len(loaded_records(dataset)) == 1
    out = tmp_path / "double"
    with pytest.raises(TrainError, match="too little data") as caught:
        train(dataset, tiny(out=out), progress=False)
    message = str(caught.value)
    have = re.search(r"gave ([\d,]+) training tokens", message)
    need = re.search(r"at least ([\d,]+) are needed", message)
    assert have and need, message
    assert 0 < int(have[1].replace(",", "")) < int(need[1].replace(",", "")) == 4 * TINY.block_size * TINY.batch_size
    assert not out.exists()

    code, err = run_train_cli(
        capsys, dataset, "--out", out, "--steps", "2", "--batch-size", "2", "--block-size", "64", "--quiet"
    )
    assert code == 2
    assert "codedouble train: error: too little data" in err and "at least 512 are needed" in err
    assert not out.exists()


def test_a_small_validation_slice_is_not_reported_as_too_little_training_data(make_repo, tmp_path: Path) -> None:
    """Plenty of training tokens, but the newest training commit (the validation slice) is a one-line function:
    the run should train, or say that it is the validation data that is short, not demand fewer training tokens
    than it has."""
    repo = make_repo()
    one_liner = (ALICE, "A constant", "shop/pricing.py", "zero", "def zero():\n    return 0\n")
    build_history(repo, [*HISTORY[:20], one_liner, *HISTORY[20:]])
    dataset = mine_all(repo.path, tmp_path / "dataset")
    opts = tiny(out=tmp_path / "double", block_size=256, size=replace(TINY.size, context=256))
    try:
        result = train(dataset, opts, progress=False)
    except TrainError as exc:
        message = str(exc)
        have = re.search(r"([\d,]+) training tokens", message)
        need = re.search(r"at least ([\d,]+) are needed", message)
        if have and need:
            assert int(need[1].replace(",", "")) > int(have[1].replace(",", "")), f"self-contradictory: {message}"
        assert re.search(r"validation[^()]*(at least|more than|needs?)", message), (
            f"the message hides what is short: {message}"
        )
    else:
        assert result.steps == 6


def test_the_cli_trains_an_artifact(dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "double"
    code, err = run_train_cli(
        capsys,
        dataset_dir,
        "--out",
        out,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--block-size",
        "32",
        "--seed",
        "3",
        "--quiet",
    )
    assert code == 0, err
    assert str(out) in err and "trained 2 steps" in err
    manifest = read_json(out / "manifest.json")
    assert manifest["training"]["steps_done"] == 2 and manifest["training"]["seed"] == 3
    assert manifest["training"]["block_size"] == 32


# --- torchrun: two processes, DDP over gloo ----------------------------------------------------------------


def test_training_under_torchrun_with_two_processes(dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "double"
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONWARNINGS": "ignore",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "codedouble.trainer.cli",
        "train",
        str(dataset_dir),
        "--out",
        str(out),
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--block-size",
        "64",
        "--device",
        "cpu",
        "--quiet",
        "--from-scratch",
        # Tuning has tests of its own; here its time budgets (180 s of lines, 150 s of bodies) would eat the
        # whole timeout: on a fresh 2-core machine rank 0 was still tuning at 180 s.
        "--tune-lines",
        "0",
        "--tune-bodies",
        "0",
    ]
    try:
        done = subprocess.run(command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun did not finish in 180 s:\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert all((out / name).is_file() for name in REQUIRED_FILES)
    assert not [p for p in out.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    manifest = read_json(out / "manifest.json")
    assert manifest["training"]["world_size"] == 2
    assert manifest["training"]["steps_done"] == 4
    assert math.isfinite(manifest["validation_loss"])
    AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "xdg-data") == ["double"]

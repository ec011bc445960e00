"""docs/serving.md: every command it marks "(run by tests)" is run here, as written, with its paths replaced
by temporary folders (training with a tiny budget added; `serve` against a fake engine on loopback), and
every other command in it is marked "(not run here)"."""

from __future__ import annotations

import json
import re
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_adapter import llama_base  # noqa: F401 - fixture
from test_remote import FakeEngine
from test_server import ALONE, start_server, status, stop_server, wait_for_state
from test_train import _own_data_home, dataset_dir, history  # noqa: F401 - fixtures

from codedouble.trainer import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
TINY_TRAIN = ["--steps", "4", "--batch-size", "2", "--block-size", "64", "--tune-lines", "0", "--learning-rate", "0.01"]


def commands() -> list[tuple[str, str]]:
    """(command, marker) of every command line in the doc's sh blocks, continuations joined."""
    found, in_block, pending = [], False, ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```sh"
            continue
        if not in_block or not line.strip() or line.lstrip().startswith("#"):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if line.rstrip().endswith("\\"):
            continue
        text, _, comment = pending.partition("  #")
        found.append((" ".join(text.split()), comment.strip()))
        pending = ""
    return found


def test_every_command_says_whether_it_runs_here() -> None:
    got = commands()
    assert len(got) >= 8
    for command, marker in got:
        assert "(run by tests)" in marker or "(not run here" in marker, command
    assert any(c.startswith("vllm serve") and "--enable-lora" in c and "--max-lora-rank" in c for c, _ in got)


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    server = FakeEngine()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.asyncio
async def test_the_commands_marked_run_by_tests_run(
    dataset_dir: Path,  # noqa: F811
    llama_base: Path,  # noqa: F811
    tmp_path: Path,
    fake: FakeEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    places = {
        "DATASET": str(dataset_dir),
        "/team/base-hf": str(tmp_path / "base-hf"),
        "/team/base": str(llama_base),
        "/team/adapters/": str(tmp_path / "adapters") + "/",
        "~/doubles/alice": str(tmp_path / "doubles" / "alice"),
        "http://gpu-box:8000": fake.url,
    }
    runs = [c for c, marker in commands() if "(run by tests)" in marker]
    assert [c.split()[:2] for c in runs] == [
        ["codedouble", "train"],
        ["codedouble", "train"],
        ["codedouble", "export"],
        ["codedouble", "serve"],
        ["codedouble", "export"],
    ]
    for command in runs:
        for name, value in places.items():
            command = command.replace(name, value)
        args = shlex.split(command)[1:]
        if args[0] == "train":
            finetune = args[args.index("--finetune") + 1]
            # The doc's doubles live in ~/doubles; here the LoRA one is alice's.
            out = places["~/doubles/alice"] if finetune == "lora" else str(tmp_path / "doubles" / "full")
            assert cli.main([*args, "--out", out, *TINY_TRAIN]) == 0
        elif args[0] == "export":
            assert cli.main(args) == 0
            config = json.loads((tmp_path / "adapters" / "alice" / "adapter_config.json").read_text())
            assert config["r"] == 8 and (tmp_path / "base-hf" / "model.safetensors").is_file()
        else:
            monkeypatch.setenv("TEAM_ENGINE_KEY", "sk-doc")
            root = tmp_path / "serve"
            root.mkdir(exist_ok=True)
            artifact = places["~/doubles/alice"]
            client = await start_server(root, tmp_path, *args[1:], "--artifact", artifact, init={"codedouble": ALONE})
            try:
                got = await wait_for_state(client, {"ready", "broken"})
                assert got["state"] == "ready", got
                backend = (await status(client))["backend"]
                assert (backend["kind"], backend["url"], backend["model"]) == ("openai", fake.url, "alice")
            finally:
                await stop_server(client)
    assert re.search(r"\| `url` \| `api_endpoint` \| `url` \| `apiBase` \|", DOC.read_text(encoding="utf-8"))

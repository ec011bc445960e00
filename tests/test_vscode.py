"""The VS Code extension (editors/vscode): it compiles, its node tests pass, and it packages as a .vsix.

VS Code itself cannot be downloaded here, so the extension's logic is tested with node's test runner: unit
tests of its settings and status formatting, and an end-to-end test that starts the real `codedouble serve`
with the extension's own `serverCommand()` and `toInitializationOptions()` and drives it over stdio with
vscode-jsonrpc (what vscode-languageclient is built on). This module trains the double for it (the history of
test_server.py) and insists that the end-to-end test ran, not skipped.

`make test` installs the node modules first (`npm ci`, from package-lock.json); no test reaches the network.
One test, so that xdist never runs two builds of the same folder at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import next_edit_history
import pytest
from test_server import Double, double, server_env  # noqa: F401 - `double` is the module fixture that trains it
from test_snippets import SnippetDouble, snippet_double  # noqa: F401 - the double that ships one snippet

EXTENSION = Path(__file__).resolve().parent.parent / "editors" / "vscode"
VERSION = "0.1.0"


def npm(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run `npm ARGS` in the extension's folder; its output, or the test fails showing it."""
    env = dict(env or os.environ)
    # Nothing may reach the registry: no update check, no audit, and the cache only.
    env.update(
        npm_config_offline="true",
        npm_config_update_notifier="false",
        npm_config_audit="false",
        npm_config_fund="false",
        NO_UPDATE_NOTIFIER="1",
    )
    done = subprocess.run(["npm", *args], cwd=EXTENSION, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"`npm {' '.join(args)}` failed ({done.returncode}):\n{output}"
    return output


@pytest.fixture(scope="module")
def node_modules() -> Path:
    folder = EXTENSION / "node_modules"
    if shutil.which("npm") is None or not (folder / ".installed").exists():
        pytest.fail(
            f"{folder} is not installed: run `make editors/vscode/node_modules/.installed` "
            "(or `make test`), which runs `npm ci` there; needs node >= 20 and npm",
            pytrace=False,
        )
    return folder


def test_the_extension_builds_passes_its_node_tests_and_packages(
    node_modules: Path,
    double: Double,  # noqa: F811 - the `double` fixture, imported above
    snippet_double: SnippetDouble,  # noqa: F811 - the `snippet_double` fixture, imported above
    tmp_path: Path,
) -> None:
    shutil.rmtree(EXTENSION / "out", ignore_errors=True)  # no compiled test outlives its source
    npm("run", "compile")
    assert (EXTENSION / "out" / "extension.js").is_file()

    # The double with the habit of tests/next_edit_history.py (a copy: the module's double stays as trained).
    artifact = tmp_path / "double-with-edits"
    shutil.copytree(double.artifact, artifact)
    next_edit_history.write_patterns(artifact)
    env = server_env(double.root)
    env.update(
        CODEDOUBLE_TEST_ARTIFACT=str(artifact),
        CODEDOUBLE_TEST_JOBS=json.dumps(
            {"before": next_edit_history.UNREWRITTEN, "after": next_edit_history.REWRITTEN}
        ),
        CODEDOUBLE_TEST_REPO=str(double.repo),
        CODEDOUBLE_TEST_PYTHON=sys.executable,
        CODEDOUBLE_TEST_SNIPPET_ARTIFACT=str(snippet_double.artifact),
        CODEDOUBLE_TEST_SNIPPET_REPO=str(snippet_double.repo),
    )
    output = npm("test", env=env, timeout=240)
    # node's spec reporter: every test passed, none skipped, and the end-to-end one is among them.
    assert re.search(r"^\S*\s*pass [1-9]", output, re.M) and re.search(r"\bfail 0\b", output), output
    assert re.search(r"\bskipped 0\b", output), f"a node test was skipped:\n{output}"
    assert re.search(r"^\s*✔ e2e: ", output, re.M), f"the end-to-end test did not pass:\n{output}"
    assert 'e2e completed "ority=HIGH_PRIORITY)"' in output, output
    assert "e2e applied 5 next edits and 2 habits" in output, output
    assert re.search(r"^\s*✔ e2e: the engineer's recurring test shape comes as a Snippet completion item", output, re.M)
    assert 'e2e snippet "def test_parses_epsilon():"' in output, output

    vsix = tmp_path / f"codedouble-{VERSION}.vsix"
    npm("run", "package", "--", "--out", str(vsix))
    assert zipfile.is_zipfile(vsix)
    names = set(zipfile.ZipFile(vsix).namelist())
    assert {
        "extension/package.json",
        "extension/out/extension.js",
        "extension/out/settings.js",
        "extension/out/status.js",
        "extension/out/nextedit.js",
        "extension.vsixmanifest",
    } <= names, sorted(names)
    # The client it needs at run time travels with it; the tests and sources do not.
    assert "extension/node_modules/vscode-languageclient/package.json" in names, sorted(names)
    assert not [n for n in names if n.startswith(("extension/out/test/", "extension/src/"))], sorted(names)

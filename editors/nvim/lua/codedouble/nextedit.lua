-- Next edits: after you change the buffer, the server's proposals to make the same rewrite elsewhere (or one
-- of your usual rewrites from the history) arrive as `refactor.rewrite` code actions; the one nearest after the
-- cursor is shown as a hint at the end of its line. A key applies it and jumps to the next one. Typing on
-- hides it. The same code actions are offered by `vim.lsp.buf.code_action()`.
local M = {}

local hints = require("codedouble.hints")
local NAME = hints.NAME
local KIND = "refactor.rewrite"
local DELAY_MS = 200 -- wait for the edit to settle (a `.` repeat, a run of `x`) before asking
local ns = vim.api.nvim_create_namespace("codedouble_next_edit")

-- Per buffer: timer, request = { client, id }, shown = { action, edit, row, col, client, tick }, applied (the
-- changedtick our own apply left, whose TextChanged is not the user's edit).
local states = hints.new(ns)
local state, get = states.of, states.get
local resolve, client_of = hints.resolve, hints.client_of

--- The hint on screen in `buf`: { text, row, col, title }, or nil.
function M.shown(buf)
  local s = state[resolve(buf)]
  local shown = s and s.shown
  return shown and { text = shown.edit.newText, row = shown.row, col = shown.col, title = shown.action.title } or nil
end

--- Hide the hint, stop the pending timer and cancel the request in flight.
M.dismiss = states.dismiss

-- The action's edit of `uri` (the server sends one TextEdit in `changes`; `documentChanges` is read too).
local function edit_of(action, uri)
  local edit = type(action) == "table" and action.edit
  if type(edit) ~= "table" then
    return nil
  end
  local edits = type(edit.changes) == "table" and edit.changes[uri]
  if type(edits) == "table" and edits[1] then
    return edits[1]
  end
  for _, change in ipairs(edit.documentChanges or {}) do
    if change.textDocument and change.textDocument.uri == uri and change.edits and change.edits[1] then
      return change.edits[1]
    end
  end
  return nil
end

-- (row, byte column) of an LSP position in `buf`.
local function place(buf, client, position)
  local line = vim.api.nvim_buf_get_lines(buf, position.line, position.line + 1, false)[1]
  if not line then
    return nil
  end
  return position.line, vim.str_byteindex(line, client.offset_encoding, position.character, false)
end

--- The proposals of a codeAction answer for `buf`, in buffer order: { action, edit, row, col } each.
function M.proposals(buf, client, actions)
  local uri = vim.uri_from_bufnr(buf)
  local out = {}
  for _, action in ipairs(actions or {}) do
    local edit = action.kind == KIND and edit_of(action, uri)
    local row, col
    if edit then
      row, col = place(buf, client, edit.range.start)
    end
    if row then
      out[#out + 1] = { action = action, edit = edit, row = row, col = col }
    end
  end
  table.sort(out, function(a, b)
    return a.row < b.row or (a.row == b.row and a.col < b.col)
  end)
  return out
end

--- The first proposal at or after (row, col), else the first of all (the search wraps, as `n` does).
function M.pick(proposals, row, col)
  for _, p in ipairs(proposals) do
    if p.row > row or (p.row == row and p.col >= col) then
      return p
    end
  end
  return proposals[1]
end

-- The hint's words: the replacement's first line, and why (the server's title, which says what and why).
local function hint(p)
  local first = vim.split(p.edit.newText, "\n", { plain = true })[1]
  return string.format("↳ %s  (%s)", first, p.action.title)
end

local function show(buf, client, p)
  M.dismiss(buf)
  vim.api.nvim_buf_set_extmark(buf, ns, p.row, 0, {
    virt_text = { { hint(p), "CodedoubleNextEdit" } },
    virt_text_pos = "eol",
    hl_mode = "combine",
  })
  get(buf).shown = {
    action = p.action, edit = p.edit, row = p.row, col = p.col, client = client,
    tick = vim.api.nvim_buf_get_changedtick(buf),
  }
end

-- Ask for the proposals of the whole buffer; `done(client, proposals)` runs only if the buffer has not
-- changed meanwhile.
local function fetch(buf, done)
  local client = client_of(buf)
  if not client then
    return
  end
  local s = get(buf)
  if s.request then
    pcall(s.request.client.cancel_request, s.request.client, s.request.id)
  end
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = { start = { line = 0, character = 0 }, ["end"] = { line = vim.api.nvim_buf_line_count(buf), character = 0 } },
    context = { diagnostics = {}, only = { KIND } },
  }
  local ok, id
  ok, id = client:request("textDocument/codeAction", params, function(err, result)
    if not (s.request and s.request.id == id) then
      return -- superseded or dismissed
    end
    s.request = nil
    if err or not vim.api.nvim_buf_is_valid(buf) or vim.api.nvim_buf_get_changedtick(buf) ~= s.request_tick then
      return
    end
    done(client, M.proposals(buf, client, result))
  end, buf)
  if ok then
    s.request, s.request_tick = { client = client, id = id }, vim.api.nvim_buf_get_changedtick(buf)
  end
end

--- Ask now, and show the proposal nearest after the cursor (in the current window on `buf`).
function M.refresh(buf)
  buf = resolve(buf)
  fetch(buf, function(client, proposals)
    if vim.api.nvim_get_current_buf() ~= buf or vim.fn.mode():match("^i") then
      return -- you moved on, or are typing: a hint now would be in the way
    end
    local cursor = vim.api.nvim_win_get_cursor(0)
    local p = M.pick(proposals, cursor[1] - 1, cursor[2])
    if p then
      show(buf, client, p)
    end
  end)
end

--- After an edit: hide the hint, and ask again once the buffer has been still for a moment.
function M.edited(buf)
  buf = resolve(buf)
  local s = get(buf)
  if s.applied == vim.api.nvim_buf_get_changedtick(buf) then
    return -- our own apply, already followed by its next proposal
  end
  M.dismiss(buf)
  s.timer = s.timer or vim.uv.new_timer()
  s.timer:start(DELAY_MS, 0, vim.schedule_wrap(function()
    M.refresh(buf)
  end))
end

local function jump(buf, client, proposals, row, col)
  local p = M.pick(proposals, row, col)
  if p then
    vim.api.nvim_win_set_cursor(0, { p.row + 1, p.col })
    show(buf, client, p)
  end
end

--- Apply the hint on screen and jump to the next proposal (showing it); with none shown, jump to the one nearest
--- after the cursor. False when there is nothing to do (no server attached).
function M.next(buf)
  buf = resolve(buf)
  if not client_of(buf) then
    return false
  end
  local s = get(buf)
  local shown = s.shown
  if shown and shown.tick == vim.api.nvim_buf_get_changedtick(buf) then
    M.dismiss(buf)
    vim.lsp.util.apply_workspace_edit(shown.action.edit, shown.client.offset_encoding)
    s.applied = vim.api.nvim_buf_get_changedtick(buf)
    fetch(buf, function(client, proposals)
      jump(buf, client, proposals, shown.row, shown.col)
    end)
  else
    local cursor = vim.api.nvim_win_get_cursor(0)
    fetch(buf, function(client, proposals)
      jump(buf, client, proposals, cursor[1] - 1, cursor[2])
    end)
  end
  return true
end

local function attach(buf, options)
  local key = options.keymaps and options.keymaps.next_edit
  if key then
    vim.keymap.set("n", key, "<Plug>(codedouble-next-edit)", { buffer = buf, desc = "codedouble: apply the next edit" })
  end
end

function M.setup(options, group)
  if not options.next_edits then
    return
  end
  vim.api.nvim_set_hl(0, "CodedoubleNextEdit", { link = "DiagnosticHint", default = true })
  vim.keymap.set("n", "<Plug>(codedouble-next-edit)", function()
    M.next(0)
  end, { desc = "codedouble: apply the next edit shown, and jump to the one after" })
  vim.api.nvim_create_autocmd("LspAttach", {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == NAME then
        attach(args.buf, options)
      end
    end,
  })
  for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do
    for buf in pairs(client.attached_buffers) do
      attach(buf, options)
    end
  end
  -- An edit in normal mode, or the end of one made in insert mode, asks (after the pause); typing hides.
  vim.api.nvim_create_autocmd({ "TextChanged", "InsertLeave" }, {
    group = group,
    callback = function(args)
      if client_of(args.buf) then
        M.edited(args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertEnter", "TextChangedI", "BufLeave", "LspDetach" }, {
    group = group,
    callback = function(args)
      M.dismiss(args.buf)
    end,
  })
  vim.api.nvim_create_autocmd("BufWipeout", {
    group = group,
    callback = function(args)
      states.forget(args.buf)
    end,
  })
end

return M

-- Ghost text: the server's inline completion shown after the cursor, accepted with one key (whole, a word or
-- a line). Neovim 0.12+ draws it itself (vim.lsp.inline_completion); on 0.11 this module asks for
-- textDocument/inlineCompletion while you type and draws the answer with extmarks.
--
-- Feedback (README, "codedouble serve"): accepting the whole suggestion runs the item's command
-- (`codedouble.accepted`, executed by the server); a word or a line taken, a suggestion typed over or
-- dismissed is told with the `codedouble/feedback` notification.
local M = {}

local hints = require("codedouble.hints")
local NAME = hints.NAME
local FEEDBACK = "codedouble/feedback"
local ACCEPTED = "codedouble.accepted"
local DELAY_MS = 30 -- coalesces the TextChangedI + CursorMovedI of one keystroke into one request
local ns = vim.api.nvim_create_namespace(NAME)
local builtin = vim.lsp.inline_completion ~= nil -- Neovim 0.12+

-- Per buffer: timer, request = { client, id }, shown = { row, col, lines, client, command, id, tick, before,
-- after } (and its extmark).
local states = hints.new(ns)
local state, get = states.of, states.get
local resolve, client_of = hints.resolve, hints.client_of

--- Whether a suggestion is on screen in `buf` (0: current).
function M.visible(buf)
  buf = resolve(buf)
  return state[buf] ~= nil and state[buf].shown ~= nil
end

--- Whether a suggestion may still come in `buf`: a pause being waited out, or a request in flight.
function M.pending(buf)
  local s = state[resolve(buf)]
  return s ~= nil and (s.request ~= nil or (s.timer ~= nil and s.timer:is_active()))
end

--- The text on screen in `buf`, or nil.
function M.text(buf)
  local s = state[resolve(buf)]
  return s and s.shown and table.concat(s.shown.lines, "\n") or nil
end

--- Hide the suggestion, stop the pending timer and cancel the request in flight.
M.dismiss = states.dismiss

--- The next word of `text`: leading white space (line breaks included), then a name, or else a run of other
--- characters (`ority=HIGH` -> `ority`, then `=`, then `HIGH`).
function M.next_word(text)
  return text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text
end

--- The rest of the line `text` starts on; if it starts with a line break, that break and the next line.
function M.next_line(text)
  if text:sub(1, 1) == "\n" then
    return "\n" .. text:sub(2):match("^[^\n]*")
  end
  return text:match("^[^\n]*")
end

-- The suggestion's id, when its item carries codedouble's accept command.
local function id_of(command)
  local argument = command and command.command == ACCEPTED and type(command.arguments) == "table"
    and command.arguments[1]
  return type(argument) == "table" and argument.id or nil
end

local function report(client, id, params)
  if client and id then
    params.id = id
    pcall(client.notify, client, FEEDBACK, params)
  end
end

--- Tell the server what became of the suggestion on screen in `buf` (a `codedouble/feedback` report).
function M.report(buf, params)
  local shown = state[resolve(buf)] and state[resolve(buf)].shown
  if shown then
    report(shown.client, shown.id, params)
  end
end

local function show(buf, row, col, text, client, command)
  local lines = vim.split(text, "\n", { plain = true })
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[i], "CodedoubleGhost" } }
  end
  vim.api.nvim_buf_set_extmark(buf, ns, row, col, {
    -- "inline" pushes the rest of the line aside, as accepting would.
    virt_text = { { lines[1], "CodedoubleGhost" } },
    virt_text_pos = "inline",
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = "combine",
  })
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, true)[1]
  get(buf).shown = {
    row = row, col = col, lines = lines, client = client, command = command, id = id_of(command),
    tick = vim.api.nvim_buf_get_changedtick(buf), before = line:sub(1, col), after = line:sub(col + 1),
  }
end

-- What became of `shown` now that the buffer or the cursor changed: "typed_over", "dismissed" (the cursor
-- moved away), or nil while it still stands or is being typed as suggested (the next answer continues it).
local function outcome(buf, shown)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local moved = cursor[1] - 1 ~= shown.row or cursor[2] ~= shown.col
  if vim.api.nvim_buf_get_changedtick(buf) == shown.tick then
    return moved and "dismissed" or nil
  end
  if cursor[1] - 1 == shown.row and cursor[2] > shown.col then
    local line = vim.api.nvim_buf_get_lines(buf, shown.row, shown.row + 1, false)[1] or ""
    local typed = line:sub(shown.col + 1, cursor[2])
    if line:sub(1, shown.col) == shown.before and line:sub(cursor[2] + 1) == shown.after
      and shown.lines[1]:sub(1, #typed) == typed then
      return nil
    end
  end
  return "typed_over"
end

--- After a keystroke: report the suggestion on screen as typed over or dismissed, unless it still stands.
function M.settle(buf)
  buf = resolve(buf)
  local shown = state[buf] and state[buf].shown
  local what = shown and outcome(buf, shown)
  if what then
    report(shown.client, shown.id, { event = "rejected", reason = what })
  end
end

--- The user sent the suggestion away (the dismiss key, leaving insert mode or the buffer): tell the server,
--- and hide it.
function M.reject(buf)
  buf = resolve(buf)
  M.report(buf, { event = "rejected", reason = "dismissed" })
  M.dismiss(buf)
end

-- The answer's text from the cursor on (and its item), or nil when it does not fit the line as it is now.
local function suggestion(buf, client, result, row, col)
  local item = result and (result.items or result)[1]
  if not item then
    return nil
  end
  local text = type(item.insertText) == "table" and item.insertText.value or item.insertText
  if type(text) ~= "string" then
    return nil
  end
  if item.range then
    -- The item replaces its range; the part of it before the cursor is already typed.
    if item.range.start.line ~= row then
      return nil
    end
    local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, true)[1]
    local start = vim.str_byteindex(line, client.offset_encoding, item.range.start.character, false)
    local typed = line:sub(start + 1, col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    text = text:sub(#typed + 1)
  end
  if text == "" then
    return nil
  end
  return text, item
end

-- Whether a question asked at `tick` and `cursor` still stands: the user has not typed or moved on meanwhile,
-- and no completion menu is open (its keys may be the same).
local function still_asked(buf, tick, cursor)
  return vim.api.nvim_get_current_buf() == buf and vim.fn.mode():match("^i") ~= nil and vim.fn.pumvisible() == 0
    and vim.api.nvim_buf_get_changedtick(buf) == tick and vim.deep_equal(vim.api.nvim_win_get_cursor(0), cursor)
end

local function request(buf)
  local client = client_of(buf)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  if not client or not still_asked(buf, tick, cursor) then
    return
  end
  local s = get(buf)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = 2 } -- Automatic: asked for while typing, not by the user
  local ok, id
  ok, id = client:request("textDocument/inlineCompletion", params, function(err, result)
    if not (s.request and s.request.id == id) then
      return -- superseded or dismissed
    end
    s.request = nil
    if err or not still_asked(buf, tick, cursor) then
      return
    end
    local text, item = suggestion(buf, client, result, cursor[1] - 1, cursor[2])
    if text then
      show(buf, cursor[1] - 1, cursor[2], text, client, item.command)
    end
  end, buf)
  if ok then
    s.request = { client = client, id = id }
  end
end

--- Ask for a suggestion at the cursor (after a short pause), replacing whatever is shown.
function M.trigger(buf)
  buf = resolve(buf)
  M.dismiss(buf)
  local s = get(buf)
  s.timer = s.timer or vim.uv.new_timer()
  s.timer:start(DELAY_MS, 0, vim.schedule_wrap(function()
    request(buf)
  end))
end

local function insert(buf, row, col, text)
  local lines = vim.split(text, "\n", { plain = true })
  vim.api.nvim_buf_set_text(buf, row, col, row, col, lines)
  vim.api.nvim_win_set_cursor(0, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
end

--- Insert the suggestion at the cursor, then run its command (the server hears of it); false when none is
--- shown.
function M.accept(buf)
  buf = resolve(buf)
  local shown = state[buf] and state[buf].shown
  if not shown then
    return false
  end
  M.dismiss(buf)
  insert(buf, shown.row, shown.col, table.concat(shown.lines, "\n"))
  if shown.command and shown.client then
    pcall(shown.client.exec_cmd, shown.client, shown.command, { bufnr = buf }, function() end)
  end
  return true
end

-- Insert the part of the suggestion `cut` picks; the whole of it is an ordinary accept.
local function accept_part(buf, cut, kind)
  buf = resolve(buf)
  local shown = state[buf] and state[buf].shown
  if not shown then
    return false
  end
  local text = table.concat(shown.lines, "\n")
  local part = cut(text)
  if part == text then
    return M.accept(buf)
  end
  M.dismiss(buf)
  insert(buf, shown.row, shown.col, part)
  report(shown.client, shown.id, { event = "accepted", kind = kind, acceptedChars = vim.fn.strchars(part) })
  return true -- typing on asks again: the server answers the rest from the same suggestion
end

--- Insert the suggestion's next word (M.next_word); false when none is shown.
function M.accept_word(buf)
  return accept_part(buf, M.next_word, "word")
end

--- Insert the rest of the suggestion's current line (M.next_line); false when none is shown.
function M.accept_line(buf)
  return accept_part(buf, M.next_line, "line")
end

-- Neovim 0.12: take a part of the built-in suggestion at the cursor and tell the server; the whole of it is
-- Neovim's own accept, which runs the item's command.
local function builtin_part(cut, kind)
  return vim.lsp.inline_completion.get({
    on_accept = function(item)
      local text = type(item.insert_text) == "string" and item.insert_text or item.insert_text.value
      local part = cut(text)
      local client = vim.lsp.get_client_by_id(item.client_id)
      local cursor = vim.api.nvim_win_get_cursor(0)
      insert(vim.api.nvim_get_current_buf(), cursor[1] - 1, cursor[2], part)
      if part == text then
        if item.command and client then
          pcall(client.exec_cmd, client, item.command, { bufnr = 0 }, function() end)
        end
      else
        report(client, id_of(item.command), { event = "accepted", kind = kind, acceptedChars = vim.fn.strchars(part) })
      end
    end,
  })
end

-- Buffer-local insert-mode keys. Expr mappings, so that without a suggestion the key does what it always
-- did; with one they return a <Cmd>, which may change the buffer (an expr mapping itself may not).
local function map_keys(buf, keymaps)
  local accept, dismiss = keymaps.accept, keymaps.dismiss
  for _, key in ipairs({ { "accept_word", M.next_word, "word" }, { "accept_line", M.next_line, "line" } }) do
    local lhs, cut, kind = keymaps[key[1]], key[2], key[3]
    if lhs then
      vim.keymap.set("i", lhs, function()
        if builtin then
          return builtin_part(cut, kind) and "" or lhs
        end
        return M.visible(buf) and ("<Cmd>lua require('codedouble.ghost')." .. key[1] .. "()<CR>") or lhs
      end, { buffer = buf, expr = true, desc = "codedouble: accept the suggestion's next " .. kind })
    end
  end
  if accept then
    vim.keymap.set("i", accept, function()
      if builtin then
        return vim.lsp.inline_completion.get() and "" or accept
      end
      return M.visible(buf) and "<Cmd>lua require('codedouble.ghost').accept()<CR>" or accept
    end, { buffer = buf, expr = true, desc = "codedouble: accept the suggestion" })
  end
  if dismiss and not builtin then -- 0.12 hides its own suggestion when you type or leave insert mode
    vim.keymap.set("i", dismiss, function()
      return M.visible(buf) and "<Cmd>lua require('codedouble.ghost').reject()<CR>" or dismiss
    end, { buffer = buf, expr = true, desc = "codedouble: dismiss the suggestion" })
  end
end

local function attach(buf, options)
  if builtin then
    vim.lsp.inline_completion.enable(true, { bufnr = buf })
  end
  map_keys(buf, options.keymaps)
end

function M.setup(options, group)
  if not options.ghost_text then
    return
  end
  vim.api.nvim_set_hl(0, "CodedoubleGhost", { link = "Comment", default = true })
  vim.api.nvim_create_autocmd("ColorScheme", {
    group = group,
    callback = function()
      vim.api.nvim_set_hl(0, "CodedoubleGhost", { link = "Comment", default = true })
    end,
  })
  vim.api.nvim_create_autocmd("LspAttach", {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == NAME then
        attach(args.buf, options)
      end
    end,
  })
  -- Buffers attached before this (another setup() call) get the current keys.
  for _, client in ipairs(vim.lsp.get_clients({ name = NAME })) do
    for buf in pairs(client.attached_buffers) do
      attach(buf, options)
    end
  end
  if builtin then
    return
  end
  -- Global autocmds (one set, whatever the number of buffers) that act only where the server is attached.
  vim.api.nvim_create_autocmd({ "InsertEnter", "TextChangedI", "CursorMovedI" }, {
    group = group,
    callback = function(args)
      if client_of(args.buf) then
        M.settle(args.buf)
        M.trigger(args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave", "LspDetach" }, {
    group = group,
    callback = function(args)
      if args.event == "LspDetach" then
        M.dismiss(args.buf)
      else
        M.reject(args.buf)
      end
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

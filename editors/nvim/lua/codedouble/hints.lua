-- What the ghost text (ghost.lua) and the next-edit hint (nextedit.lua) both keep per buffer: the pause being
-- waited out (timer), the request in flight ({ client, id }) and what is on screen (shown), drawn in the
-- caller's namespace. One place for the bookkeeping, so that dismissing one never forgets a part of it.
local M = {}

M.NAME = "codedouble"

--- `buf`, or the current buffer for nil or 0.
function M.resolve(buf)
  return (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
end

--- The codedouble client attached to `buf`, or nil.
function M.client_of(buf)
  return vim.lsp.get_clients({ bufnr = buf, name = M.NAME })[1]
end

--- Per-buffer states drawn in namespace `ns`: `states.of[buf]` (nil until used), `states.get(buf)` (made on
--- first use), `states.dismiss(buf)` (stop the timer, cancel the request, clear the screen) and
--- `states.forget(buf)` (a wiped-out buffer: its timer closed, its state dropped).
function M.new(ns)
  local states = { of = {} }

  function states.get(buf)
    states.of[buf] = states.of[buf] or {}
    return states.of[buf]
  end

  function states.dismiss(buf)
    buf = M.resolve(buf)
    local s = states.of[buf]
    if not s then
      return
    end
    if s.timer then
      s.timer:stop()
    end
    if s.request then
      pcall(s.request.client.cancel_request, s.request.client, s.request.id)
      s.request = nil
    end
    if vim.api.nvim_buf_is_valid(buf) then
      vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
    end
    s.shown = nil
  end

  function states.forget(buf)
    local s = states.of[buf]
    if s and s.timer then
      s.timer:close()
    end
    states.of[buf] = nil
  end

  return states
end

return M

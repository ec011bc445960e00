-- The codedouble language server as a plain Neovim (0.11+) LSP config: with this folder on 'runtimepath',
-- `vim.lsp.enable("codedouble")` is enough to attach it. `require("codedouble").setup()` layers its options
-- over this table and adds the ghost text.
return {
  cmd = { "codedouble", "serve" },
  -- Neovim's names for the languages the double knows (.jsx files are "javascriptreact"), and git's commit
  -- message buffer, where the server drafts the message in your voice.
  filetypes = {
    "python", "javascript", "javascriptreact", "typescript", "typescriptreact", "go", "rust", "java", "gitcommit",
  },
  -- The double is trained per repository; the server finds it from the workspace's git root.
  root_markers = { ".git" },
  -- Server settings: artifact, languages, exclude, maxLines, debounceMs, minConfidence, feedbackLog,
  -- workspaceContext, refuseStale, backend, url, model, apiKeyEnv, timeoutMs, nextEdits, nextEditMinPrecision. An empty dict, because an empty Lua table would go over the wire as a JSON
  -- array, which the server rejects.
  init_options = vim.empty_dict(),
}

-- :CodedoubleStatus works with any codedouble client, also one started by vim.lsp.enable("codedouble")
-- without setup(). setup() defines it too, for configurations that load no plugin/ files (`-u NONE`).
if vim.g.loaded_codedouble then
  return
end
vim.g.loaded_codedouble = true
require("codedouble").create_commands()

; Statement blocks inside definitions that `codedouble snippets` clusters by shape (trainer/snippets/):
; Go's `if err != nil { return …, fmt.Errorf("…: %w", err) }` above all, and its loops.
[
  (if_statement)
  (for_statement)
  (expression_switch_statement)
  (type_switch_statement)
  (select_statement)
  (defer_statement)
] @block

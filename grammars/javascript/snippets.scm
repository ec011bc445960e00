; Statement blocks inside definitions that `codedouble snippets` clusters by shape (trainer/snippets/).
[
  (if_statement)
  (for_statement)
  (for_in_statement)
  (while_statement)
  (try_statement)
  (switch_statement)
] @block

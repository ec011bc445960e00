; Statement blocks inside definitions that `codedouble snippets` clusters by shape (trainer/snippets/):
; the compound statements an engineer writes again and again (a guard, a loop, a context manager, a try).
[
  (if_statement)
  (for_statement)
  (while_statement)
  (with_statement)
  (try_statement)
] @block

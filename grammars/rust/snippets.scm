; Statement blocks inside definitions that `codedouble snippets` clusters by shape (trainer/snippets/).
; In Rust these are expressions: the ones that stand as statements of their own.
(expression_statement
  [
    (if_expression)
    (match_expression)
    (for_expression)
    (while_expression)
    (loop_expression)
  ] @block)

; Statement blocks inside definitions that `codedouble snippets` clusters by shape (trainer/snippets/).
[
  (if_statement)
  (for_statement)
  (enhanced_for_statement)
  (while_statement)
  (try_statement)
  (try_with_resources_statement)
  (switch_expression)
] @block

"""Tree-sitter grammars and the per-language queries (`<lang>/*.scm`) codedouble reads code with."""

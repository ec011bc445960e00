"""Snippets mined from the engineer's history: recurring shapes turned into LSP snippets (`codedouble snippets`)."""

"""`codedouble train`: mined change records → the engineer's double (a small causal LM artifact)."""

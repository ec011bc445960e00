"""codedouble's trainer side: the command line, mining git history (`mining/`) and training a double (`training/`)."""

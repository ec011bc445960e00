"""What a double is, owned by the side that reads it: the prompt format, the artifact's layout and manifest,
the completion corpus, the error every user-facing problem is, and the one way files are replaced.

The trainer writes through these modules and the server reads through them, so the two can never disagree;
nothing here imports the trainer (tests/test_architecture.py walks the imports)."""

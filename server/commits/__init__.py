"""Commit messages in the engineer's voice: the change (`change.py`, `gitdiff.py`), its two sources (the
nearest past commit, `retrieval.py`; the double's model, `model.py`), the engineer's style (`style.py`) and
the draft that joins them (`draft.py`), shared by the command line, the git hook and the language server."""

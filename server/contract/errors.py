"""The one base of every error a user can fix. The command line prints its message and exits with status 2;
anything else is a bug in codedouble and surfaces with its traceback."""

from __future__ import annotations


class CodedoubleError(Exception):
    """A problem with the user's input, data or environment; the message says what is wrong and how to fix it."""

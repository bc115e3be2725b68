"""The project's expected errors: what a user can fix, reported on one line by the scripts."""

from __future__ import annotations


class UserError(Exception):
    """An expected error (bad input, a step not run yet, a wrong flag). Scripts print its message
    on one line (:func:`syntriever.cli.run`); the message names the file (and line) at fault and
    the command to run next."""


class InvalidName(UserError, ValueError):
    """A dataset, split or model name that is not a plain file-system name."""

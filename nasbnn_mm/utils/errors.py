"""The error a user's mistake raises: tools print it as one line.

Tools catch :class:`UserError` (and ``FileNotFoundError``) around their
work and print ``<tool>: error: <message>`` with exit status 2; anything
else is a bug and keeps its traceback.
"""

__all__ = ['UserError', 'CheckpointError']


class UserError(ValueError):
    """Bad input from the user: a file, a field or a value.

    The message is one line that names the file or field, the value and
    what is allowed (or what to do).
    """


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not fit its model."""

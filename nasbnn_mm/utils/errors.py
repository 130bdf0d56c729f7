"""The errors a user's mistake raises, and how tools print them.

A user error is told from a bug by its type, never by where it happens:

* :class:`UserError` (and its subclasses, e.g. :class:`CheckpointError`):
  our validation of a file, a field or a value raises it, with a one-line
  message naming the place, the value and what is allowed;
* ``FileNotFoundError``: a path the user gave does not exist;
* a config type that no registry knows (mmengine's ``KeyError`` "X is not
  in the <scope>::<registry> registry"): a typo in the user's config.

Anything else (a plain ``ValueError``, ``KeyError``, ``RuntimeError``...)
is a bug and keeps its traceback. Tools run their work through
:func:`run_tool`, which prints a user error as one line
``<tool>: error: <message>`` and returns exit status 2.
"""
import re
import sys
from typing import Callable

__all__ = [
    'UserError', 'CheckpointError', 'is_user_error', 'error_line', 'run_tool',
    'USER_ERROR_EXIT'
]

# The status argparse uses for a bad command line.
USER_ERROR_EXIT = 2

# mmengine's build_from_cfg re-raises with "class `X` in path/x.py: ".
_BUILD_PREFIX = re.compile(r'class `(\w+)` in [^:]+: ')
_UNKNOWN_TYPE = re.compile(r'is not in the (\S+) registry')


class UserError(ValueError):
    """Bad input from the user: a file, a field or a value.

    The message is one line that names the file or field, the value and
    what is allowed (or what to do).
    """


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not fit its model."""


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is the user's mistake (see the module docstring)."""
    if isinstance(error, (UserError, FileNotFoundError)):
        return True
    return isinstance(error, KeyError) and bool(
        _UNKNOWN_TYPE.search(str(error)))


def error_line(error: BaseException) -> str:
    """The message of ``error`` on one line.

    mmengine's "class `X` in <file>: " wrappers of nested builds become
    "X: ", an unknown type's message keeps only its name and registry, and
    line breaks become spaces.

    Example:
        >>> error_line(UserError('class `SuperBNN` in /a/b.py: stem: bad'))
        'SuperBNN: stem: bad'
    """
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
        unknown = _UNKNOWN_TYPE.search(text)
        if unknown:
            # keep the classes being built and the unknown type's name
            classes = re.findall(r'class `(\w+)` in ', text)
            name = text[:unknown.start()].split(': ')[-1].strip(' \'"')
            return ': '.join(
                classes +
                [f'type {name!r} is not in the {unknown.group(1)} registry'])
    else:
        text = str(error)
    return ' '.join(_BUILD_PREFIX.sub(r'\1: ', text).split())


def run_tool(tool: str, work: Callable[[], int]) -> int:
    """Run ``work()``; print a user error as one line and return 2.

    Args:
        tool (str): The tool's file name, e.g. ``'train.py'``.
        work (callable): The tool's body; returns its exit status.

    Returns:
        int: ``work()``'s status, or 2 after a user error. Any other
        exception propagates with its traceback.
    """
    try:
        return work()
    except Exception as e:  # noqa: B902 (told apart by is_user_error)
        if not is_user_error(e):
            raise
        print(f'{tool}: error: {error_line(e)}', file=sys.stderr)
        return USER_ERROR_EXIT

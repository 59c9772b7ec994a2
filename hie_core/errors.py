"""The one base class of the errors a user can fix.

A :class:`UserError` is a problem with what the user gave (a file, a folder, a parameter,
a checkpoint), not a bug: its message names the file or value and says what to do. The
command-line entry points (``hie-predict``, ``hie-study``, ``python -m hie_core.synthetic``)
print it as one line, ``<program>: error: <message>``, and exit with status 2, without a
traceback (:func:`exit_on_user_error`). Library code raises the specific subclasses
(:class:`hie_core.data.DatasetError`, :class:`hie_core.io.ImageReadError`, ...), which
also derive from the built-in exception a caller would expect (``ValueError``, ...).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

__all__ = ["UserError", "ConfigError", "exit_on_user_error"]


class UserError(Exception):
    """A problem the user can fix; the message names the file or value and what to do."""


class ConfigError(UserError, ValueError):
    """A parameter has the wrong type or value; the message names the parameter."""


def exit_on_user_error(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a ``main(argv) -> int``: a :class:`UserError` becomes one line on stderr and exit 2."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapper(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except UserError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                return 2

        return wrapper

    return decorate

"""The one base class of the errors a user can fix.

A :class:`UserError` is a problem with what the user gave (a file, a folder, a parameter,
a checkpoint), not a bug: its message names the file or value and says what to do. The
command-line entry points (``hie-predict``, ``hie-study``, ``python -m hie_core.synthetic``)
print it as one line, ``<program>: error: <message>``, and exit with status 2, without a
traceback (:func:`exit_on_user_error`); in a notebook (and so in papermill's report),
:func:`short_notebook_errors` shows it as that one line too, and the cell still fails.
Library code raises the specific subclasses
(:class:`hie_core.data.DatasetError`, :class:`hie_core.io.ImageReadError`, ...), which
also derive from the built-in exception a caller would expect (``ValueError``, ...).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence

__all__ = [
    "UserError",
    "ConfigError",
    "ProblemsError",
    "exit_on_user_error",
    "quiet_closed_pipe",
    "short_notebook_errors",
]


class UserError(Exception):
    """A problem the user can fix; the message names the file or value and what to do."""


class ConfigError(UserError, ValueError):
    """A parameter has the wrong type or value; the message names the parameter."""


class ProblemsError(UserError, ValueError):
    """Several problems found at once; ``str(err)`` lists every one, each naming its file.

    Attributes:
        problems: the problems, one line each.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


#: The exit status of a command whose console closed (``... | head -1``), as a shell reports SIGPIPE.
EXIT_CLOSED_PIPE = 141


def quiet_closed_pipe() -> None:
    """Point stdout at /dev/null (its reader is gone), so later writes and the interpreter's last
    flush into a closed pipe say nothing; without a real stdout (a notebook, a test's capture) nothing
    changes."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor behind stdout: nothing to quieten
        return


def exit_on_user_error(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a ``main(argv) -> int``: a :class:`UserError` becomes one line on stderr and exit 2;
    a closed console (``BrokenPipeError``: the command piped to ``head``) ends quietly with
    ``EXIT_CLOSED_PIPE``."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapper(*args, **kwargs) -> int:
            try:
                status = main(*args, **kwargs)
                sys.stdout.flush()  # a closed console shows here, not in the interpreter's last flush
                return status
            except UserError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                return 2
            except BrokenPipeError:
                quiet_closed_pipe()
                return EXIT_CLOSED_PIPE

        return wrapper

    return decorate


def short_notebook_errors() -> bool:
    """In an IPython kernel, show a :class:`UserError` as one line instead of a traceback.

    The cell still fails (papermill stops and exits non-zero); only the display changes, to
    ``ConfigError: lr must be a finite number, got 'abc'``. Other exceptions keep their full
    traceback, since they are bugs to report. Returns False outside IPython (nothing to do).
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    if shell is None:
        return False

    def one_line(shell, etype, value, tb, tb_offset=None):
        # the cell's error output: one line, without IPython's "An exception has occurred, use %tb"
        # preamble (showtraceback(exception_only=True) adds it, and papermill relays it)
        shell._showtraceback(etype, value, shell.InteractiveTB.get_exception_only(etype, value))
        return []

    shell.set_custom_exc((UserError,), one_line)
    return True

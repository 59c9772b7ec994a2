"""User errors: one line on the command line and in a notebook, a traceback for everything else."""

from __future__ import annotations

import re

import pytest

from hie_core.errors import ConfigError, UserError, exit_on_user_error, short_notebook_errors


def test_command_line_user_error_is_one_line_and_exit_2(capsys):
    @exit_on_user_error("prog")
    def main(argv=None) -> int:
        raise ConfigError("lr must be a finite number, got 'abc'")

    assert main() == 2
    assert capsys.readouterr().err == "prog: error: lr must be a finite number, got 'abc'\n"

    @exit_on_user_error("prog")
    def buggy(argv=None) -> int:
        raise KeyError("a bug, not a user error")

    with pytest.raises(KeyError):
        buggy()


def test_notebook_user_error_is_one_line_and_the_cell_still_fails(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.user_ns["ConfigError"] = ConfigError
        import IPython

        original = IPython.get_ipython
        IPython.get_ipython = lambda: shell
        try:
            assert short_notebook_errors()
        finally:
            IPython.get_ipython = original
        result = shell.run_cell('raise ConfigError("epochs must be a whole number, got 1.5")')
        assert isinstance(result.error_in_exec, UserError)  # the cell failed: papermill stops
        shown = capsys.readouterr()
        text = re.sub(r"\x1b\[[0-9;]*m", "", shown.out + shown.err)  # IPython colours its output
        assert "ConfigError: epochs must be a whole number, got 1.5" in text and "Traceback" not in text
        assert "An exception has occurred" not in text and "%tb" not in text  # IPython's preamble
        result = shell.run_cell("raise KeyError('a bug')")
        shown = capsys.readouterr()
        assert isinstance(result.error_in_exec, KeyError) and "Traceback" in shown.out + shown.err
    finally:
        InteractiveShell.clear_instance()


def test_outside_ipython_nothing_is_installed():
    assert short_notebook_errors() is False

"""Operator command arguments that could only send or show something else than what was asked:
refused before any request, naming the argument (status 2, argparse's for a bad flag)."""

from __future__ import annotations

import pytest

from pipeline.cli.main import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # the push formats make free text a name (a b -> a_b); an operator's name is taken as given or refused
        (["event", "send", "--type", "a b", "--message", "m"], "--type: name 'a b' may contain only"),
        (["event", "send", "--type", "", "--message", "m"], "--type: name must not be empty"),
        (["event", "send", "--type", "deploy", "--message", "m", "--host", "web 1"], "--host: name 'web 1' may"),
        # a label with an empty key
        (["event", "send", "--type", "deploy", "--message", "m", "--tag", ":v"], "--tag[0]: expected KEY:VALUE"),
        # int() took 1_0 as 10
        (["event", "send", "--type", "deploy", "--message", "m", "--status", "1_0"], "must be a status from 0 to"),
        (["event", "send", "--type", "d", "--message", "m", "--status", "4294967296"], "must be a status from 0 to"),
        (["silence", "create", "--check", "c", "--expire", "1_0"], "--expire: must be whole seconds, or -1 for none"),
        (["silence", "create", "--check", "c", "--expire", "-2"], "--expire: must be whole seconds, or -1 for none"),
        # --limit 0 printed "nothing happened in that time" whatever had happened
        (["timeline", "--limit", "0"], "--limit: must be a positive whole number, got '0'"),
    ],
)
def test_arguments_that_would_ask_for_something_else_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = main([*argv, "--api-url", "http://127.0.0.1:9"])  # never reached
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2
    assert message in capsys.readouterr().err

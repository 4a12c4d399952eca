"""The operator commands' output: tables fitted to a width, help on every argument, kinds singular or plural."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.event_filters import EventFilters, silenced
from pipeline.cli.main import build_parser
from pipeline.cli.output import flatten, render_table, silence_ends
from pipeline.cli.silences import parse_duration, parse_moment, silence_rows

ROWS = [["web1", "disk", "2", "x" * 200], ["db", "load", "0", "ok"]]
HEADERS = ["entity", "check", "status", "output"]


def test_a_table_on_a_pipe_keeps_every_cell_whole() -> None:
    assert "x" * 200 in render_table(HEADERS, ROWS)


def test_a_narrow_terminal_cuts_the_widest_column_with_an_ellipsis() -> None:
    lines = render_table(HEADERS, ROWS, width=60).splitlines()
    assert max(len(line) for line in lines) == 60
    assert lines[2].startswith("web1    disk   2       xxx")
    assert lines[2].endswith("x…")


def test_two_wide_columns_share_the_cut_and_keep_their_headers() -> None:
    table = render_table(["a", "bb"], [["y" * 100, "z" * 100]], width=41)
    assert [len(line) for line in table.splitlines()] == [23, 41, 41]
    assert "y" * 18 + "…  " + "z" * 19 + "…" in table


def test_status_colours_only_when_asked() -> None:
    assert "\x1b[" not in render_table(HEADERS, ROWS)
    coloured = render_table(HEADERS, ROWS, colour=True)
    assert "\x1b[31m2" in coloured
    assert "\x1b[32m0" in coloured


def test_an_object_as_fields() -> None:
    assert flatten({"check": {"metadata": {"name": "disk"}, "handlers": ["a", "b"], "output": "l1\nl2"}}) == [
        ["check.metadata.name", "disk"],
        ["check.handlers", "a,b"],
        ["check.output", "l1"],
    ]


def _every_parser(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _every_parser(sub)
    return found


def test_every_argument_of_every_command_has_help() -> None:
    parser, _ = build_parser()
    missing = [
        f"{prog} {action.option_strings or action.dest}"
        for prog, sub in _every_parser(parser)
        for action in sub._actions
        if not action.help and not isinstance(action, argparse._SubParsersAction)
    ]
    assert missing == []


@pytest.mark.parametrize("command", ["get", "delete", "revert"])
def test_listing_commands_take_every_format(command: str) -> None:
    parser, _ = build_parser()
    for argv in (["event", "list"], ["entity", "list"], ["silence", "list"], ["deadletter", "list"], ["timeline"],
                 ["key", "list"], ["get", "checks"], ["event", "info", "e", "c"], ["entity", "info", "e"]):  # fmt: skip
        for fmt in ("table", "json", "yaml"):
            assert parser.parse_args([*argv, "--format", fmt]).format == fmt
    assert parser.parse_args([command, "check", "x"]).kind == "check"


def test_durations_and_moments() -> None:
    assert [parse_duration(t) for t in ("90s", "30m", "2h", "1d", "1h30m", "45")] == [90, 1800, 7200, 86400, 5400, 45]
    with pytest.raises(ValueError, match="2x"):
        parse_duration("2x")
    assert parse_moment("30m", 1000.0) == 2800
    assert parse_moment("1700000000", 0) == 1700000000
    assert parse_moment("2023-11-14T22:13:20+00:00", 0) == 1700000000


def _event(name: str, status: int, **labels: str) -> dict[str, object]:
    return {"entity": {"metadata": {"name": "web1"}, "subscriptions": ["entity:web1", "linux"]},
            "check": {"metadata": {"name": name, "labels": labels}, "status": status}}  # fmt: skip


def test_filters_never_let_a_change_event_through() -> None:
    args = argparse.Namespace(entity="", check="", silenced=None, status=[], label=[])
    assert EventFilters.of(args).match(_event("disk", 2))
    assert not EventFilters.of(args).match(_event("deployment", 0, **{"pipeline.io/event-kind": "change"}))


def test_status_label_and_silence_filters() -> None:
    args = argparse.Namespace(entity="web1", check="", silenced=None, status=["non-ok"], label=["team=ops"])
    wanted = EventFilters.of(args)
    assert wanted.match(_event("disk", 2, team="ops"))
    assert not wanted.match(_event("disk", 0, team="ops"))
    assert not wanted.match(_event("disk", 2, team="dev"))
    with pytest.raises(ValueError, match="--status"):
        EventFilters.of(argparse.Namespace(entity="", check="", silenced=None, status=["bad"], label=[]))
    assert silenced(_event("disk", 2), [{"subscription": "linux", "check": ""}], 0)
    assert silenced(_event("disk", 2), [{"subscription": "", "check": "disk"}], 0)
    assert not silenced(_event("disk", 2), [{"subscription": "linux", "check": "load"}], 0)
    assert not silenced(_event("disk", 2), [{"subscription": "linux", "check": "", "begin": 10}], 5)


@pytest.mark.parametrize("command", [["event", "list", "--help"], ["up", "--help"], ["agent", "--help"]])
def test_help_imports_no_daemon(command: list[str]) -> None:
    """A command's help answers at once: neither trio, httpx nor any daemon module is imported
    for it (each costs 100-250 ms a start; bench/cli_startup.py measures the whole)."""
    probe = (
        "import sys\n"
        "from pipeline.cli.main import main\n"
        f"sys.argv = ['pipeline', *{command!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m in ('trio', 'httpx') or m.startswith(('pipeline.backend.server', 'pipeline.backend.eventd', 'pipeline.agent.sources.')))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stderr, result.stderr[-2000:]


def test_shipped_plugins_come_from_the_source_tree_else_the_installed_share(tmp_path: Path) -> None:
    from pipeline.cli.daemon_flags import default_plugin_dirs

    tree, prefix, user = tmp_path / "tree", tmp_path / "prefix", tmp_path / "user"
    (tree / "checks").mkdir(parents=True)
    for name in ("checks", "handlers", "hooks"):
        (prefix / "share" / "pipeline" / name).mkdir(parents=True)
    (user / "share" / "pipeline" / "hooks").mkdir(parents=True)
    found = default_plugin_dirs(tree, (user, prefix), in_venv=False)
    assert found == [tree / "checks", prefix / "share/pipeline/handlers", user / "share/pipeline/hooks"]
    assert default_plugin_dirs(tree, (), in_venv=True) == [tree / "checks", Path(sys.executable).parent]


def test_store_flag_names_what_it_refuses(tmp_path: Path) -> None:
    from pipeline.core.store_url import check_store
    from pipeline.errors import ValidationError
    from pipeline.store.choose import store_for
    from pipeline.store.postgres import PostgresStore
    from pipeline.store.sqlite import SQLiteStore

    for refused, message in [("mysql://db/x", "mysql:// is not a store pipeline knows"),
                             ("sqlite://", "sqlite:// names no file"),
                             ("postgresql://a b", "not a PostgreSQL URL"),
                             ("host=db dbname=events user=p", "a libpq keyword string is not a path")]:  # fmt: skip
        with pytest.raises(ValidationError, match=message):
            check_store(refused)
    default = store_for(check_store(""), tmp_path, "b1")
    assert isinstance(default, SQLiteStore)
    assert default.path == tmp_path / "events.db"
    assert default.backend == "b1"
    elsewhere = store_for(check_store("sqlite:///var/lib/x.db"), tmp_path, "b1")
    assert isinstance(elsewhere, SQLiteStore)
    assert elsewhere.path == Path("/var/lib/x.db")
    shared = store_for(check_store("postgres://u:secret@db:5433/events"), tmp_path, "b1")
    assert isinstance(shared, PostgresStore)
    assert shared.where == "postgresql://u@db:5433/events"  # named in errors without its password


def test_a_silence_that_ends_past_what_the_clock_converts_is_listed() -> None:
    """A silence's ``expire_at`` may be any int64 (``begin`` plus a long ``expire`` is kept at
    int64's last second): ``silence list`` and ``get silenced`` show it as a number."""
    far = {"metadata": {"name": "linux:*"}, "subscription": "linux", "begin": 1_795_793_235,
           "expire_at": 2**63 - 1, "expire_on_resolve": True}  # fmt: skip
    assert silence_ends(far) == "9223372036854775807 (epoch seconds), resolution"
    assert silence_rows([far])[0][4] == "9223372036854775807 (epoch seconds), resolution"

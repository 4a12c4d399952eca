"""Daemon settings from a YAML file (Sensu's agent.yml habit), overridden by flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.agent.settings import AgentConfig
from pipeline.cli.config_file import config_file_in, file_defaults
from pipeline.cli.main import build_parser, main
from pipeline.errors import ConfigError


def agent_args(tmp_path: Path, text: str, *flags: str) -> object:
    settings = tmp_path / "agent.yml"
    settings.write_text(text)
    parser, daemons = build_parser()
    daemons["agent"].set_defaults(**file_defaults(daemons["agent"], settings))
    return parser.parse_args(["agent", *flags])


def test_settings_are_read_with_the_flags_own_parsing(tmp_path: Path) -> None:
    args = agent_args(
        tmp_path,
        "name: web9\nsubscriptions: [linux, web]\nstatsd-addr: '[::1]:9125'\nstatsd-percentiles: [90, 99.9]\n"
        "statsd-delete-idle: true\nstatsd-flush-interval: 5\nlabels: {team: ops, tier: web}\n",
    )
    assert args.agent_name == "web9"  # type: ignore[attr-defined]
    assert args.subscriptions == ["linux", "web"]  # type: ignore[attr-defined]
    assert args.statsd_addr == ("::1", 9125)  # type: ignore[attr-defined]
    assert args.statsd_percentiles == [90.0, 99.9]  # type: ignore[attr-defined]
    assert args.statsd_delete_idle is True  # type: ignore[attr-defined]
    assert args.statsd_flush_interval == 5.0  # type: ignore[attr-defined]
    assert args.labels == {"team": "ops", "tier": "web"}  # type: ignore[attr-defined]


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    args = agent_args(tmp_path, "name: from-file\nstatsd-addr: 127.0.0.1:9125\n", "--name", "from-flag")
    assert args.agent_name == "from-flag"  # type: ignore[attr-defined]
    assert args.statsd_addr == ("127.0.0.1", 9125)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("statsd-adr: 1\n", "statsd-adr: unknown setting (expected one of annotations, api-addr"),
        ("statsd-addr: nowhere\n", "statsd-addr: expected HOST:PORT, got 'nowhere'"),
        ("statsd-delete-idle: sometimes\n", "statsd-delete-idle: expected true or false, got 'sometimes'"),
        # past 100 the agent's flush read past a timer's values (IndexError); 0 makes no statistic
        ("statsd-percentiles: [90, 150]\n", "statsd-percentiles: a percentile is from -100 to 100 and not 0, got 150"),
        ("statsd-percentiles: [-150]\n", "statsd-percentiles: a percentile is from -100 to 100 and not 0, got -150"),
        ("statsd-percentiles: [0]\n", "statsd-percentiles: a percentile is from -100 to 100 and not 0, got 0"),
        ("statsd-percentiles: [nan]\n", "statsd-percentiles: expected comma-separated numbers, got 'nan'"),
        # Sensu's uint32: a larger one went into the keepalive's check, and the backend refused them all
        (
            "keepalive-warning-timeout: 4294967296\n",
            "keepalive-warning-timeout: must be whole seconds from 0 (never) to 4294967295, got '4294967296'",
        ),
        ("keepalive-interval: 4294967296\n", "keepalive-interval: must be whole seconds from 1 to 4294967295"),
        ("- a list\n", "expected a mapping of setting: value"),
    ],
)
def test_bad_settings_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    settings = tmp_path / "agent.yml"
    settings.write_text(text)
    _, daemons = build_parser()
    with pytest.raises(ConfigError) as info:
        file_defaults(daemons["agent"], settings)
    assert str(info.value).startswith(f"{settings}: {message}")


def test_the_command_refuses_to_start_on_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "agent.yml"
    settings.write_text("nme: x\n")
    assert main(["agent", "--config-file", str(settings)]) == 1
    assert f"pipeline: {settings}: nme: unknown setting" in capsys.readouterr().err


def test_config_file_in_argv() -> None:
    assert config_file_in(["agent", "--config-file", "a.yml"]) == Path("a.yml")
    assert config_file_in(["agent", "--config-file=b.yml"]) == Path("b.yml")
    assert config_file_in(["agent"]) is None


def test_the_percentile_flag_takes_etsys_range_and_refuses_past_it(capsys: pytest.CaptureFixture[str]) -> None:
    parser, _ = build_parser()
    args = parser.parse_args(["agent", "--statsd-percentiles", "90,99.9,-10,100"])
    assert args.statsd_percentiles == [90.0, 99.9, -10.0, 100.0]
    with pytest.raises(SystemExit):
        parser.parse_args(["agent", "--statsd-percentiles", "90,101"])
    assert "a percentile is from -100 to 100 and not 0, got 101 in '90,101'" in capsys.readouterr().err


def test_the_agent_refuses_keepalive_timeouts_sensu_cannot_carry(capsys: pytest.CaptureFixture[str]) -> None:
    """An agent started with ``--keepalive-warning-timeout 4294967296`` ran, and the backend
    refused every keepalive it sent (``check.timeout`` is Sensu's uint32): it looked dead. The
    three keepalive settings take Sensu's uint32, as its agent's flags do."""
    for flag in ("--keepalive-warning-timeout", "--keepalive-critical-timeout"):
        with pytest.raises(SystemExit):
            main(["agent", flag, "4294967296"])
        assert f"{flag}: must be whole seconds from 0 (never) to 4294967295" in capsys.readouterr().err
    _, daemons = build_parser()
    top = daemons["agent"].parse_args(["--keepalive-interval", "4294967295", "--keepalive-warning-timeout",
                                       "4294967295", "--keepalive-critical-timeout", "4294967295"])  # fmt: skip
    assert (top.keepalive_interval, top.keepalive_warning_timeout, top.keepalive_critical_timeout) == (2**32 - 1,) * 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # an empty admin key stopped the admin key file being written, and could never be presented
        (["backend", "--admin-key", ""], "--admin-key: must be a key: not empty, no spaces around it"),
        (["backend", "--ingest-key", " k"], "--ingest-key: must be a key: not empty, no spaces around it"),
        (["backend", "--viewer-key", "k "], "--viewer-key: must be a key: not empty, no spaces around it"),
        (["backend", "--agent-token", ""], "--agent-token: must not be empty"),
        (["backend", "--max-body-size", "0"], "--max-body-size: must be a positive whole number, got '0'"),
        (["backend", "--max-body-size", "-5"], "--max-body-size: must be a positive whole number, got '-5'"),
        (["agent", "--token", ""], "--token: must not be empty"),
        (
            ["backend", "--api-user", "admin:"],
            "--api-user: expected USER:PASSWORD, got 'admin'",
        ),  # was "invalid parse_user value"
        (["backend", "--agent-user", "agent"], "--agent-user: expected USER:PASSWORD, got 'agent'"),
        # a typo left every command in it "not found", run by run
        (["agent", "--plugin-dir", "/no/such/dir"], "--plugin-dir: '/no/such/dir' is not a directory"),
        (["backend", "--plugin-dir", "/no/such/dir"], "--plugin-dir: '/no/such/dir' is not a directory"),
        # port 0 is a listener's "any port": the agent retried it for ever
        (["agent", "--backend-addr", "127.0.0.1:0"], "--backend-addr: expected HOST:PORT with a port from 1 to 65535"),
        (["agent", "--spool-max-bytes", "0"], "--spool-max-bytes: must be a positive whole number, got '0'"),
        (["agent", "--password", ""], "--password: must not be empty"),
        (["agent", "--user", "", "--password", "p"], "--user: must not be empty"),  # the password was dropped
        # one of the two was dropped without a word: the token won, or the lone password was ignored
        (
            ["agent", "--token", "t", "--user", "u", "--password", "p"],
            "give --token or --user with --password, not both",
        ),
        (["agent", "--password", "p"], "--user and --password go together"),
        (["agent", "--user", "u"], "--user and --password go together"),
    ],
)
def test_daemon_flags_that_could_never_work_are_refused_naming_them(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("namespace", "message"), [("", "name must not be empty"), ("a b", "name 'a b' may contain")])
def test_an_agent_namespace_the_backend_cannot_take_is_refused_at_start(namespace: str, message: str) -> None:
    config = AgentConfig(name="web1", backend_addrs=[("127.0.0.1", 8081)], namespace=namespace)
    with pytest.raises(ValueError, match=f"--namespace: {message}"):
        config.validate()

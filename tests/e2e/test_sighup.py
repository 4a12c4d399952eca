"""SIGHUP, from outside: real backend and agent processes reload their configuration, and
``pipeline reload`` does the backend's through the API. Synchronised on log lines."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.e2e.test_kill import Daemon, daemons, free_port
from tests.support import pipeline_command, write_config

pytestmark = pytest.mark.e2e


def check_yaml(name: str, subscription: str) -> str:
    return f"""
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {{name: {name}}}
        spec: {{command: "echo {name}", interval: 1, subscriptions: [{subscription}]}}
        """


def ran(check: str) -> str:
    """The agent's log line for a run of ``check``."""
    return f'"check executed" check={check} '


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.config = write_config(tmp_path / "config", check_yaml("first", "linux"))
        self.transport, self.api = free_port(), free_port()
        self.agent_file = tmp_path / "agent.yml"
        self.write_agent_file("subscriptions: [linux]\nstatsd-flush-interval: 10\n")

    def write_agent_file(self, text: str) -> None:
        self.agent_file.write_text(textwrap.dedent(text))

    def backend(self, started: list[Daemon]) -> Daemon:
        daemon = Daemon(self.tmp / "backend.log", "backend", "--config", str(self.config),
                        "--data", str(self.tmp / "backend"), "--api-addr", f"127.0.0.1:{self.api}",
                        "--transport-addr", f"127.0.0.1:{self.transport}")  # fmt: skip
        started.append(daemon)
        daemon.wait_for_log("backend ready")
        return daemon

    def agent(self, started: list[Daemon]) -> Daemon:
        daemon = Daemon(self.tmp / "agent.log", "agent", "--config-file", str(self.agent_file), "--name", "web1",
                        "--backend-addr", f"127.0.0.1:{self.transport}", "--data", str(self.tmp / "agent"),
                        "--api-addr", "", "--socket-addr", "", "--statsd-addr", "127.0.0.1:0")  # fmt: skip
        started.append(daemon)
        daemon.wait_for_log("connected to backend")
        return daemon

    def reload_command(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(pipeline_command("reload", "--api-url", f"http://127.0.0.1:{self.api}",
                                               "--data", str(self.tmp / "backend")),
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_sighup_reloads_the_backend_config_and_a_broken_file_changes_nothing(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    with daemons() as started:
        backend = setup.backend(started)
        agent = setup.agent(started)
        agent.wait_for_log(ran("first"))

        write_config(setup.config, check_yaml("second", "linux"), "more.yml")
        backend.process.send_signal(signal.SIGHUP)
        backend.wait_for_log('"configuration reloaded"')
        agent.wait_for_log(ran("second"))  # the agent got the new check without a restart

        write_config(setup.config, "type: CheckConfig\napi_version: core/v2\nmetadata: {name: x}\nspec: [", "bad.yml")
        backend.process.send_signal(signal.SIGHUP)
        backend.wait_for_log('"configuration not reloaded: the running configuration stays"')
        refused = setup.reload_command()

        (setup.config / "bad.yml").unlink()
        write_config(setup.config, check_yaml("third", "linux"), "more.yml")
        applied = setup.reload_command()
        agent.wait_for_log(ran("third"))
        assert backend.process.poll() is None
    errors = [line for line in backend.lines if '"configuration error"' in line]
    assert len(errors) == 2  # SIGHUP, then pipeline reload: one line each for the one error
    assert f"file={setup.config / 'bad.yml'}" in errors[0]
    assert "invalid YAML" in errors[0]
    assert refused.returncode == 1
    assert f"{setup.config / 'bad.yml'}: line " in refused.stderr
    assert "configuration not reloaded: 1 error(s)" in refused.stderr
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        f"configuration reloaded from {setup.config}: 1 added, 0 changed, 1 removed",
        "  added CheckConfig default/third",
        "  removed CheckConfig default/second",
    ]


def test_sighup_reloads_the_agent_settings_that_can_change_and_names_the_others(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    write_config(setup.config, check_yaml("webcheck", "web"), "web.yml")
    with daemons() as started:
        setup.backend(started)
        agent = setup.agent(started)
        agent.wait_for_log(ran("first"))

        setup.write_agent_file("subscriptions: [linux, web]\nlabels: {team: ops}\nstatsd-flush-interval: 5\n")
        agent.process.send_signal(signal.SIGHUP)
        agent.wait_for_log('"configuration reloaded"')
        agent.wait_for_log(ran("webcheck"))  # the backend learnt the new subscription

        setup.write_agent_file("subscriptions: [linux, web\n")
        agent.process.send_signal(signal.SIGHUP)
        agent.wait_for_log('"agent configuration not reloaded: the running settings stay"')
        assert agent.process.poll() is None
    reloaded = next(line for line in agent.lines if '"configuration reloaded"' in line)
    assert "applied=subscriptions,labels" in reloaded
    restart = [line for line in agent.lines if "needs a restart" in line]
    assert len(restart) == 1
    assert "setting=statsd-flush-interval" in restart[0]
    failed = next(line for line in agent.lines if "agent configuration not reloaded" in line)
    assert str(setup.agent_file) in failed

"""Which agent settings a reload applies, and the flags it names as needing a restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.agent.reconfigure import config_changes
from pipeline.agent.settings import AgentConfig
from pipeline.agent.statsd import StatsdConfig
from pipeline.tls import TLSFiles


def test_entity_and_keepalive_settings_apply_and_the_rest_is_named_by_flag() -> None:
    old = AgentConfig(name="web1", backend_addrs=[("127.0.0.1", 8081)], statsd=StatsdConfig())
    new = dataclasses.replace(
        old,
        subscriptions=["web"],
        labels={"team": "ops"},
        keepalive_interval=10,
        name="web2",
        backend_addrs=[("10.0.0.1", 8081)],
        statsd=StatsdConfig(flush_interval=5.0),
        tls=TLSFiles(cert_file=Path("agent.pem")),
        heartbeat_timeout=30.0,
        credentials={"token": "t"},
    )
    changes = config_changes(old, new)
    assert changes.reloadable == ["subscriptions", "labels", "keepalive_interval"]
    assert changes.needs_restart == ["name", "backend-addr", "statsd-flush-interval", "heartbeat-timeout",
                                     "user/password/token", "cert-file"]  # fmt: skip


def test_statsd_switched_on_needs_a_restart() -> None:
    old = AgentConfig(name="web1", backend_addrs=[])
    changes = config_changes(old, dataclasses.replace(old, statsd=StatsdConfig()))
    assert changes.needs_restart == ["statsd-addr"]
    assert config_changes(old, dataclasses.replace(old)).reloadable == []

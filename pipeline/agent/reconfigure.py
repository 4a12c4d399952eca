"""Which agent settings a running agent takes on when its configuration is reloaded (SIGHUP).

What describes the agent's entity and its keepalives can change at run time: subscriptions,
labels, annotations, redact, keepalive handlers and timeouts, deregistration. Everything else
(its name and namespace, addresses, credentials, TLS, the spool, StatsD, heartbeats, plugin
directories, the sources and their settings) is bound to a socket, a file or the backend's idea
of who the agent is: a change there is reported by flag name as needing a restart and not applied. Pure.
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: AgentConfig fields applied at run time, and their flags
RELOADABLE = {
    "subscriptions": "subscriptions",
    "labels": "labels",
    "annotations": "annotations",
    "redact": "redact",
    "keepalive_handlers": "keepalive-handlers",
    "keepalive_interval": "keepalive-interval",
    "keepalive_warning_timeout": "keepalive-warning-timeout",
    "keepalive_critical_timeout": "keepalive-critical-timeout",
    "deregister": "deregister",
    "deregistration_handler": "deregistration-handler",
}
#: fields whose change reaches the entity, which the backend learns in the handshake
ENTITY_FIELDS = frozenset(RELOADABLE) - {"keepalive_interval", "keepalive_warning_timeout",
                                         "keepalive_critical_timeout"}  # fmt: skip

#: flags of the fields that need a restart, where the flag is not the field's name
_FLAGS = {
    "name": "name",
    "backend_addrs": "backend-addr",
    "plugin_dirs": "plugin-dir",
    "data_dir": "data",
    "credentials": "user/password/token",
    "sources": "source",
}


@dataclasses.dataclass(slots=True)
class ConfigChanges:
    #: AgentConfig field names that changed and can be applied
    reloadable: list[str]
    #: flags that changed and need a restart
    needs_restart: list[str]


def _flag(path: str) -> str:
    path = path.removeprefix("tls.")  # --cert-file, --key-file, --trusted-ca-file
    path = path.removeprefix("source_settings.")  # --docker-socket, --kubeconfig, --package-paths/-interval
    return _FLAGS.get(path) or path.replace(".", "-").replace("_", "-")


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Paths (``statsd.flush_interval``) of the fields that differ, one level into nested settings."""
    found = []
    for item in dataclasses.fields(old):
        before, after = getattr(old, item.name), getattr(new, item.name)
        if before == after:
            continue
        nested = dataclasses.is_dataclass(before) and dataclasses.is_dataclass(after) and not prefix
        found.extend(_differences(before, after, f"{item.name}.") if nested else [prefix + item.name])
    return found


def config_changes(old: Any, new: Any) -> ConfigChanges:
    """What differs between two AgentConfigs (a dataclass each)."""
    changed = _differences(old, new)
    reloadable = [path for path in changed if path in RELOADABLE]
    needs_restart = [_flag(path) for path in changed if path not in RELOADABLE]
    if old.statsd is None or new.statsd is None:  # StatsD switched on or off
        needs_restart = ["statsd-addr" if flag == "statsd" else flag for flag in needs_restart]
    return ConfigChanges(reloadable, needs_restart)

"""Secrets at the backend's edge: the environment of handler and mutator commands, and the
values each check's agent must be sent.

The ``Env`` provider reads this process's environment when a command needs a value (as Sensu
Go's does), so values live in memory only: never in the store, an event, a log line or the
agent's remembered checks. Checks run on agents: their values travel in the ``checks`` and
``execute`` messages, beside the check (never inside it, so never in its events), and only over
a TLS transport, as Sensu Go sends them only over TLS. A check whose values cannot be given
gets the reason instead; its agent reports it as the check's result (status 3).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pipeline.core.secrets import resolve
from pipeline.errors import SecretUnavailable
from pipeline.logs import get_logger
from pipeline.model import DEFAULT_NAMESPACE, CheckConfig
from pipeline.model.resources import Resources
from pipeline.model.secrets import SecretRef
from pipeline.process import with_env_vars

log = get_logger("backend.secrets")

NO_TLS = "secrets are sent to agents over TLS only, and the backend's agent transport has no TLS (--cert-file)"


def command_environment(
    env: Mapping[str, str],
    env_vars: Sequence[str],
    secrets: Iterable[SecretRef],
    resources: Resources,
    namespace: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A handler's or mutator's environment: ``env``, its ``env_vars``, then its secrets (Sensu
    Go's order for handlers and mutators). Raises SecretUnavailable naming a secret without a value."""
    values = resolve(secrets, resources, namespace or DEFAULT_NAMESPACE, os.environ if environ is None else environ)
    return {**with_env_vars(env, env_vars), **values}


def check_secrets(
    checks: Iterable[CheckConfig],
    resources: Resources,
    *,
    tls: bool,
    on_unavailable: Callable[[CheckConfig, str], None] = lambda check, reason: None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``secrets`` of a ``checks`` or ``execute`` message, by check name: ``{"env": {NAME:
    value}}``, or ``{"error": reason}`` when they cannot be given (``on_unavailable`` is told)."""
    source = os.environ if environ is None else environ
    found: dict[str, dict[str, Any]] = {}
    for check in checks:
        if not check.secrets:
            continue
        namespace = check.metadata.namespace or DEFAULT_NAMESPACE
        try:
            if not tls:
                raise SecretUnavailable(check.secrets[0].name, check.secrets[0].secret, NO_TLS)
            found[check.metadata.name] = {"env": resolve(check.secrets, resources, namespace, source)}
        except SecretUnavailable as exc:
            found[check.metadata.name] = {"error": f"error while getting the check's secrets: {exc}"}
            on_unavailable(check, str(exc))
    return found


def report_unavailable(count: Callable[[], None]) -> Callable[[CheckConfig, str], None]:
    """An ``on_unavailable`` that counts and logs a check whose secrets cannot be sent."""

    def report(check: CheckConfig, reason: str) -> None:
        count()
        log.error("check secrets unavailable", check=check.metadata.name, namespace=check.metadata.namespace,
                  error=reason)  # fmt: skip

    return report

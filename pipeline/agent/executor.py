"""Run one check and turn its result into an event."""

from __future__ import annotations

import dataclasses
import shlex
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from pipeline.assets import AssetCache, AssetMetrics
from pipeline.core.extract import extract
from pipeline.core.hooks import select_hooks
from pipeline.core.limits import Fit, fit_event
from pipeline.core.redact import mask_values
from pipeline.core.thresholds import evaluate
from pipeline.core.tokens import TokenError, entity_scope, substitute_all
from pipeline.errors import AssetError
from pipeline.model import Check, CheckConfig, Entity, Event, Metrics, ObjectMeta, new_event_id
from pipeline.model.asset import Asset
from pipeline.model.check import Hook, HookConfig
from pipeline.model.codec import decode, encode
from pipeline.process import run_command, with_env_vars
from pipeline.wire.limits import MAX_EVENT_BYTES


def copy_entity(entity: Entity) -> Entity:
    return decode(Entity, encode(entity))


#: Event annotation listing the output lines metric extraction could not use, one per line.
OUTPUT_METRIC_ERRORS = "pipeline.io/output_metric_errors"
#: Event label with the number of output bytes cut by ``max_output_size`` (Sensu Go's name).
OUTPUT_TRUNCATED_BYTES = "sensu.io/output_truncated_bytes"
#: Timeout of the stand-in hook that reports a missing or broken hook (Sensu Go's value).
SYNTHETIC_HOOK_TIMEOUT = 5


def truncate_output(event: Event, limit: int) -> None:
    """Cut ``check.output`` to ``limit`` bytes, saying so in the output and in a label."""
    assert event.check is not None
    raw = event.check.output.encode()
    if len(raw) <= limit:
        return
    kept = raw[:limit].decode(errors="ignore")
    cut = len(raw) - len(kept.encode())
    event.check.output = kept + f"\n[output truncated: {cut} bytes over max_output_size {limit}]\n"
    event.metadata.labels[OUTPUT_TRUNCATED_BYTES] = str(cut)


class CheckExecutor:
    """Runs checks for one agent entity and builds their events."""

    def __init__(
        self,
        entity: Entity,
        env: Mapping[str, str],
        *,
        wall_clock: Callable[[], float] = time.time,
        on_extraction_errors: Callable[[CheckConfig, list[str]], None] = lambda config, errors: None,
        on_fit: Callable[[Event, Fit], None] = lambda event, fit: None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        asset_cache: AssetCache | None = None,
    ) -> None:
        self.entity = entity
        self.on_extraction_errors = on_extraction_errors
        self.on_fit = on_fit
        self.max_event_bytes = max_event_bytes
        #: The hook configurations the backend sent, by name.
        self.hooks: dict[str, HookConfig] = {}
        #: The assets the backend sent with the checks, by name.
        self.assets: dict[str, Asset] = {}
        self.asset_cache = asset_cache or AssetCache(
            None, lambda: encode(self.entity), AssetMetrics.create(CollectorRegistry(), "pipeline_agent")
        )
        #: The values of the checks' secrets the backend sent (``{env: ...}`` or ``{error: ...}``), by
        #: check name: in memory only.
        self.secrets: dict[str, dict[str, Any]] = {}
        self.env = dict(env)
        self._wall_clock = wall_clock
        self._sequence: dict[str, int] = {}

    def next_sequence(self, check_name: str) -> int:
        """Sensu's per-check sequence number, starting at 1."""
        value = self._sequence.get(check_name, 0) + 1
        self._sequence[check_name] = value
        return value

    async def execute(self, config: CheckConfig, issued: int, proxy: Entity | None = None) -> Event:
        """Run ``config.command`` and return the event carrying its result.

        As in Sensu Go: tokens are substituted first (a failure gives status 3 and says which
        token), then the command runs, metrics are extracted, thresholds applied. The event
        reports the command as written, not as substituted, so secrets in labels stay out.
        With ``proxy`` (a proxy request's entity) the check's tokens are that entity's and the
        result is about it (``proxy_entity_name``); hooks keep the agent's tokens, as in Sensu Go.
        """
        scope = self._token_scope
        if proxy is not None:
            config = dataclasses.replace(config, proxy_entity_name=proxy.metadata.name)
            scope = entity_scope(encode(proxy))
        try:
            resolved = decode(CheckConfig, substitute_all(encode(config), scope))
        except TokenError as exc:
            return self.failure(config, issued, f"error while substituting check tokens: {exc}")
        secrets = self._secret_values(config)
        if isinstance(secrets, str):
            return self.failure(config, issued, secrets)
        try:
            env = await self._environment(resolved.runtime_assets)
        except AssetError as exc:  # Sensu Go's words; the cache has counted and logged it
            return self.failure(config, issued, f"error getting assets for check: {exc}")
        check = self._new_check(resolved, issued)
        check.command = config.command
        stdin = self._stdin_payload(check) if config.stdin else None
        result = await run_command(
            resolved.command,
            timeout=resolved.timeout,
            stdin=stdin,
            env=with_env_vars({**env, **secrets}, resolved.env_vars),  # Sensu Go's order: env_vars last
        )
        check.status = result.status
        check.output = mask_values(result.output, secrets.values())
        check.duration = round(result.duration, 6)
        event = self._event(check)
        if resolved.output_metric_format or resolved.output_metric_handlers:
            self._extract_metrics(resolved, event)
            self._apply_thresholds(resolved, event)
        names = select_hooks(resolved.check_hooks, check.status)
        if names:
            check.hooks = [await self._run_hook(name, event) for name in names]
        if resolved.discard_output:
            check.output = ""
        if resolved.max_output_size:
            truncate_output(event, resolved.max_output_size)
        # After max_output_size (Sensu's own cut), the event must still fit the maximum event size.
        fit = fit_event(event, self.max_event_bytes)
        if fit.changed:
            self.on_fit(event, fit)
        return event

    def _secret_values(self, config: CheckConfig) -> dict[str, str] | str:
        """The check's secrets by environment variable, or why there are none (its result's output)."""
        if not config.secrets:
            return {}
        entry = self.secrets.get(config.metadata.name)
        if entry is None:
            return ("error while getting the check's secrets: the backend has not sent them (they are kept in "
                    "memory only: after a restart they come with the backend's next checks)")  # fmt: skip
        if "error" in entry:
            return str(entry["error"])
        values: dict[str, str] = entry["env"]
        return values

    async def _run_hook(self, name: str, event: Event) -> Hook:
        """Run one hook; a missing or unsubstitutable hook reports why, as Sensu Go does."""
        hook = self.hooks.get(name)
        try:
            if hook is None:
                raise LookupError("no HookConfig of that name")
            resolved = decode(HookConfig, substitute_all(encode(hook), self._token_scope))
        except (LookupError, TokenError) as exc:
            hook = resolved = HookConfig(
                metadata=ObjectMeta(name=name, namespace=self._namespace),
                command=f"echo {shlex.quote(f'hook {name}: {exc}')}; exit 2",
                timeout=SYNTHETIC_HOOK_TIMEOUT,
            )
        try:
            env = await self._environment(resolved.runtime_assets)
        except AssetError as exc:
            resolved = HookConfig(
                metadata=hook.metadata,
                command=f"echo {shlex.quote(f'error getting assets for hook: {exc}')}; exit 3",
                timeout=SYNTHETIC_HOOK_TIMEOUT,
            )
            env = self.env
        executed = int(self._wall_clock())
        stdin = event.to_json() if resolved.stdin else None
        result = await run_command(resolved.command, timeout=resolved.timeout, stdin=stdin, env=env)
        return Hook(
            metadata=hook.metadata,
            command=hook.command,  # as written: substituted tokens may hold secrets
            timeout=hook.timeout,
            stdin=hook.stdin,
            runtime_assets=list(hook.runtime_assets),
            duration=round(result.duration, 6),
            executed=executed,
            output=result.output,
            status=result.status,
        )

    async def _environment(self, runtime_assets: list[str]) -> dict[str, str]:
        """The command's environment: the agent's, with the assets' bin, lib and include on the paths."""
        if not runtime_assets:
            return self.env
        return await self.asset_cache.environment(self.env, runtime_assets, self.assets.get)

    def _new_check(self, config: CheckConfig, issued: int) -> Check:
        check = Check.from_config(config)
        check.issued = issued
        check.executed = int(self._wall_clock())
        check.processed_by = self.entity.metadata.name
        return check

    def failure(self, config: CheckConfig, issued: int, output: str) -> Event:
        """Sensu's agent-side failure: status 3 and an output that says why."""
        check = self._new_check(config, issued)
        check.status = 3
        check.output = output
        return self._event(check)

    @property
    def _token_scope(self) -> dict[str, Any]:
        return entity_scope(encode(self.entity))

    def _apply_thresholds(self, config: CheckConfig, event: Event) -> None:
        assert event.check is not None
        assert event.metrics is not None
        result = evaluate(event.check.status, event.metrics.points, config.output_metric_thresholds)
        event.check.status = result.status
        event.metadata.annotations.update(result.annotations)

    def _extract_metrics(self, config: CheckConfig, event: Event) -> None:
        """Sensu's rule: a format or metric handlers give the event a ``metrics`` object."""
        assert event.check is not None
        event.metrics = Metrics(handlers=list(config.output_metric_handlers))
        if not config.output_metric_format:
            return
        # every parser refuses, with its line, a value or timestamp an event cannot carry
        extraction = extract(
            config.output_metric_format, event.check.output, event.check.executed, config.output_metric_tags
        )
        event.metrics.points = extraction.points
        if extraction.errors:
            event.metadata.annotations[OUTPUT_METRIC_ERRORS] = "\n".join(extraction.errors)
            self.on_extraction_errors(config, extraction.errors)

    def _stdin_payload(self, check: Check) -> bytes:
        # Sensu writes the event (entity plus check, no output yet) to the command's stdin.
        return Event(entity=self.entity, check=check, metadata=ObjectMeta(namespace=self._namespace)).to_json()

    @property
    def _namespace(self) -> str:
        return self.entity.metadata.namespace

    def _event(self, check: Check) -> Event:
        if not check.metadata.namespace:
            check.metadata.namespace = self._namespace
        return Event(
            timestamp=int(self._wall_clock()),
            entity=copy_entity(self.entity),
            check=check,
            metadata=ObjectMeta(namespace=self._namespace),
            id=new_event_id(),
            sequence=self.next_sequence(check.metadata.name),
            pipelines=list(check.pipelines),
        )

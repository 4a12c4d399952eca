"""Run one check and turn its result into an event."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from pipeline.model import Check, CheckConfig, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.codec import decode, encode
from pipeline.process import run_command, with_env_vars


def copy_entity(entity: Entity) -> Entity:
    return decode(Entity, encode(entity))


class CheckExecutor:
    """Runs checks for one agent entity and builds their events."""

    def __init__(
        self,
        entity: Entity,
        env: Mapping[str, str],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.entity = entity
        self.env = dict(env)
        self._wall_clock = wall_clock
        self._sequence: dict[str, int] = {}

    def next_sequence(self, check_name: str) -> int:
        """Sensu's per-check sequence number, starting at 1."""
        value = self._sequence.get(check_name, 0) + 1
        self._sequence[check_name] = value
        return value

    async def execute(self, config: CheckConfig, issued: int) -> Event:
        """Run ``config.command`` and return the event carrying its result."""
        check = Check.from_config(config)
        check.issued = issued
        check.executed = int(self._wall_clock())
        check.processed_by = self.entity.metadata.name
        stdin = self._stdin_payload(check) if config.stdin else None
        result = await run_command(
            config.command,
            timeout=config.timeout,
            stdin=stdin,
            env=with_env_vars(self.env, config.env_vars),
        )
        check.status = result.status
        check.output = result.output
        check.duration = round(result.duration, 6)
        return self._event(check)

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

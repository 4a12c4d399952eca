"""The agent transport's messages, typed, sans I/O.

Each frame (see :mod:`pipeline.wire.protocol`) is one msgpack map with a ``type`` key; each type
is one frozen dataclass here. :func:`decode_message` is the edge: it turns a decoded map into
its message, checking every field's type and range, and raises :class:`MessageError` naming
``<type>.<field>`` otherwise; :func:`encode_message` gives the map back, key for key as
version 1 peers write it. Maps a model type decodes (events, CheckConfig, HookConfig, Asset,
Entity) stay maps (or an event's msgpack bytes) here: the model decodes them later, each on
its own, so that one bad check or event is refused alone. Unknown keys are ignored, so that a
newer peer may add optional fields. The handshake carries :data:`PROTOCOL_VERSION` so that
either side can refuse a peer it does not understand.

Agent -> backend:
    ``hello``   {version, agent, namespace, subscriptions, entity, [heartbeat_timeout],
                [user, password] or [token]}: first frame of a connection. The backend closes
                a connection that says nothing for ``heartbeat_timeout`` seconds.
    ``events``  {events: [event, ...]}: a batch of Sensu v2 events, each either msgpack bytes of
                the event map (what the agent sends: the bytes it spooled, packed once) or the map.
    ``keepalive`` {event}: the agent is alive (an event whose check is ``keepalive``); never
                spooled, never queued behind events.
    ``deregister`` {id}: remove this agent's entity and events (a clean stop with
                ``deregister``); acknowledged with an ``ack`` of ``id``.
Either way:
    ``ping`` {} / ``pong`` {}: heartbeats; a connection silent past its heartbeat timeout is dead.
Backend -> agent:
    ``welcome`` {version, backend}: the handshake was accepted.
    ``checks``  {checks: [CheckConfig dict, ...], hooks: [HookConfig dict, ...], [assets: [Asset dict,
                ...]], [secrets]}: the full set of checks the agent must run, the hooks they name
                and the assets both name (sent after ``welcome`` and again whenever it changes).
                ``secrets`` {check name: {env: {NAME: value}} or {error: reason}}: the values of the
                checks' ``secrets`` (only over TLS), or why there are none; kept in memory only.
    ``execute`` {check: CheckConfig dict, hooks: [HookConfig dict, ...], [assets: [Asset dict, ...]],
                [entity: Entity dict], [secrets]}: run this check once, now, whatever its schedule
                (Sensu's ad hoc execution, asked for through the API, and each run of a check the
                backend schedules: round robin, proxy requests). With ``entity`` (a proxy check's
                entity), the check's tokens are those of that entity and the result is about it
                (``check.proxy_entity_name``); ``secrets`` is the check's own entry as in ``checks``.
    ``ack``     {ids: [event id, ...], rejected: [{id, error, [reason]}, ...]}: these events are
                durably stored (or were rejected and never will be); the agent may forget them.
                A rejected event is final: the agent must not send it again. ``reason`` is there
                when the event was valid but the agent may not write it: ``namespace`` (another
                namespace than the agent's), ``other_agent`` (about another agent's entity) or
                ``not_proxy`` (about an entity that is neither the agent's nor a proxy), or
                ``store`` (the backend's store refused what it holds); an invalid event has
                no ``reason``.
    ``error``   {message}: the backend refuses the connection and closes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pipeline.errors import MessageError

PROTOCOL_VERSION = 1
#: The longest heartbeat timeout an agent may ask for, in seconds (a day).
MAX_HEARTBEAT_TIMEOUT = 86400.0

HELLO, WELCOME, CHECKS, EVENTS, ACK, ERROR = "hello", "welcome", "checks", "events", "ack", "error"
KEEPALIVE, DEREGISTER, PING, PONG, EXECUTE = "keepalive", "deregister", "ping", "pong", "execute"

#: A model object as it travels: a map the model decodes later.
Map: TypeAlias = dict[str, Any]
#: An event as it travels: its msgpack bytes (what the agent sends) or its map.
EventData: TypeAlias = bytes | dict[str, Any]
#: One check's secrets: ``{"env": {NAME: value}}``, or ``{"error": reason}`` when it has none.
SecretEntry: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame of a connection (agent -> backend)."""

    agent: str
    namespace: str
    subscriptions: tuple[str, ...]
    entity: Map
    #: seconds of silence after which the backend drops the connection (None: its default)
    heartbeat_timeout: float | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None
    version: int = PROTOCOL_VERSION

    @property
    def credentials(self) -> dict[str, str]:
        """``{user, password}`` or ``{token}``: what the agent authenticates with, as sent."""
        found = {"user": self.user, "password": self.password, "token": self.token}
        return {name: value for name, value in found.items() if value is not None}

    def heartbeat_timeout_or(self, default: float) -> float:
        return default if self.heartbeat_timeout is None else float(self.heartbeat_timeout)


@dataclass(frozen=True, slots=True)
class Welcome:
    """The handshake was accepted (backend -> agent)."""

    backend: str
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Checks:
    """The full set of checks the agent must run, the hooks and assets they name, their secrets."""

    checks: tuple[Map, ...]
    hooks: tuple[Map, ...] = ()
    assets: tuple[Map, ...] = ()
    #: by check name (only over TLS); never written to disk
    secrets: dict[str, SecretEntry] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Execute:
    """Run this check once, now (for the proxy ``entity`` if given)."""

    check: Map
    hooks: tuple[Map, ...] = ()
    assets: tuple[Map, ...] = ()
    entity: Map | None = None
    secrets: SecretEntry | None = None


@dataclass(frozen=True, slots=True)
class Events:
    """A batch of events (agent -> backend)."""

    events: tuple[EventData, ...]


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event the backend refused for good: ``reason`` is set when it was valid but the agent
    may not write it (``namespace``, ``other_agent``, ``not_proxy``) or the store refused it
    (``store``), empty when it was invalid."""

    id: str
    error: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Ack:
    """These events are stored, or refused for good: the agent may forget them."""

    ids: tuple[str, ...]
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True, slots=True)
class Error:
    """The backend refuses the connection and closes it."""

    message: str


@dataclass(frozen=True, slots=True)
class Keepalive:
    """The agent is alive: an event whose check is ``keepalive``."""

    event: EventData


@dataclass(frozen=True, slots=True)
class Deregister:
    """Remove this agent's entity and events; acknowledged with an ``ack`` of ``id``."""

    id: str


@dataclass(frozen=True, slots=True)
class Ping:
    """A heartbeat: answer with a pong."""


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to a ping."""


Message: TypeAlias = Hello | Welcome | Checks | Execute | Events | Ack | Error | Keepalive | Deregister | Ping | Pong


def message_type(message: Message) -> str:
    """The wire ``type`` of a message (``welcome``, ``ack``...), for errors that name it."""
    return type(message).__name__.lower()


def encode_message(message: Message) -> dict[str, Any]:
    """The map of ``message``, with the keys in the order version 1 peers write them."""
    match message:
        case Hello():
            out: dict[str, Any] = {"type": HELLO, "version": message.version, "agent": message.agent,
                                   "namespace": message.namespace, "subscriptions": list(message.subscriptions),
                                   "entity": message.entity}  # fmt: skip
            if message.heartbeat_timeout is not None:
                out["heartbeat_timeout"] = message.heartbeat_timeout
            return out | message.credentials
        case Welcome():
            return {"type": WELCOME, "version": message.version, "backend": message.backend}
        case Checks():
            out = {"type": CHECKS, "checks": list(message.checks), "hooks": list(message.hooks),
                   "assets": list(message.assets)}  # fmt: skip
            if message.secrets:
                out["secrets"] = message.secrets
            return out
        case Execute():
            out = {"type": EXECUTE, "check": message.check, "hooks": list(message.hooks),
                   "assets": list(message.assets)}  # fmt: skip
            if message.entity is not None:
                out["entity"] = message.entity
            if message.secrets:
                out["secrets"] = message.secrets
            return out
        case Events():
            return {"type": EVENTS, "events": list(message.events)}
        case Ack():
            rejected = [{"id": r.id, "error": r.error, "reason": r.reason} if r.reason else
                        {"id": r.id, "error": r.error} for r in message.rejected]  # fmt: skip
            return {"type": ACK, "ids": list(message.ids), "rejected": rejected}
        case Error():
            return {"type": ERROR, "message": message.message}
        case Keepalive():
            return {"type": KEEPALIVE, "event": message.event}
        case Deregister():
            return {"type": DEREGISTER, "id": message.id}
        case Ping():
            return {"type": PING}
        case Pong():
            return {"type": PONG}


def _name(value: Any) -> str:
    return type(value).__name__


class _Fields:
    """The fields of one decoded map, each taken with its type checked (errors name ``<type>.<field>``)."""

    def __init__(self, kind: str, raw: dict[Any, Any]) -> None:
        self.kind, self.raw = kind, raw

    def wrong(self, name: str, reason: str) -> MessageError:
        return MessageError(f"{self.kind}.{name}: {reason}", f"{self.kind}.{name}")

    def string(self, name: str) -> str:
        value = self.raw[name]
        if not isinstance(value, str):
            raise self.wrong(name, f"expected a string, got {_name(value)}")
        return value

    def optional_string(self, name: str) -> str | None:
        return None if name not in self.raw else self.string(name)

    def integer(self, name: str) -> int:
        value = self.raw[name]
        if type(value) is not int:  # a version of True is not 1
            raise self.wrong(name, f"expected an integer, got {_name(value)}")
        return value

    def map(self, name: str) -> Map:
        value = self.raw[name]
        if not isinstance(value, dict):
            raise self.wrong(name, f"expected a map, got {_name(value)}")
        return value

    def maps(self, name: str) -> tuple[Map, ...]:
        value = self.raw.get(name, [])  # only ``assets`` is optional; the others are required
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.wrong(name, "expected a list of maps")
        return tuple(value)

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.raw[name]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.wrong(name, "expected a list of strings")
        return tuple(value)

    def event(self, name: str) -> EventData:
        value = self.raw[name]
        if not isinstance(value, (bytes, dict)):
            raise self.wrong(name, f"expected an event (msgpack bytes or a map), got {_name(value)}")
        return value


def _heartbeat_timeout(fields: _Fields) -> float | None:
    """A finite number of seconds in (0, :data:`MAX_HEARTBEAT_TIMEOUT`], kept as sent (an int stays
    an int, so that the message encodes to the same bytes again)."""
    if "heartbeat_timeout" not in fields.raw:
        return None
    value = fields.raw["heartbeat_timeout"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fields.wrong("heartbeat_timeout", f"expected a number of seconds, got {_name(value)}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not 0 < seconds <= MAX_HEARTBEAT_TIMEOUT:  # NaN fails this too
        shown = seconds if math.isfinite(seconds) or math.isnan(seconds) else value
        raise fields.wrong("heartbeat_timeout", f"{shown!r} is out of range (0..{MAX_HEARTBEAT_TIMEOUT:.0f} seconds)")
    return value


def _secret_entry(fields: _Fields, name: str, entry: Any) -> SecretEntry:
    if isinstance(entry, dict) and set(entry) == {"error"} and isinstance(entry["error"], str):
        return {"error": entry["error"]}
    env = entry.get("env") if isinstance(entry, dict) and set(entry) == {"env"} else None
    if isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return {"env": dict(env)}
    raise fields.wrong(name, "expected {env: {NAME: value}} or {error: reason}")


def _checks_secrets(fields: _Fields) -> dict[str, SecretEntry]:
    found = fields.raw.get("secrets", {})
    if not isinstance(found, dict):
        raise fields.wrong("secrets", "expected a map of check names")
    return {name: _secret_entry(fields, f"secrets.{name}", entry) for name, entry in found.items()}


def _rejected(fields: _Fields) -> tuple[Rejected, ...]:
    value = fields.raw["rejected"]
    if not isinstance(value, list):
        raise fields.wrong("rejected", f"expected a list, got {_name(value)}")
    records = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise fields.wrong(f"rejected[{i}]", f"expected a map, got {_name(item)}")
        record = _Fields(f"{fields.kind}.rejected[{i}]", item)
        if "id" not in item or "error" not in item:
            raise record.wrong("id" if "id" not in item else "error", "missing")
        reason = record.optional_string("reason") or ""
        records.append(Rejected(record.string("id"), record.string("error"), reason))
    return tuple(records)


def _events(fields: _Fields) -> tuple[EventData, ...]:
    value = fields.raw["events"]
    if not isinstance(value, list) or not all(isinstance(item, (bytes, dict)) for item in value):
        raise fields.wrong("events", "expected a list of events (msgpack bytes or maps)")
    return tuple(value)


def _hello(f: _Fields) -> Hello:
    return Hello(version=f.integer("version"), agent=f.string("agent"), namespace=f.string("namespace"),
                 subscriptions=f.strings("subscriptions"), entity=f.map("entity"),
                 heartbeat_timeout=_heartbeat_timeout(f), user=f.optional_string("user"),
                 password=f.optional_string("password"), token=f.optional_string("token"))  # fmt: skip


def _checks(f: _Fields) -> Checks:
    return Checks(f.maps("checks"), f.maps("hooks"), f.maps("assets"), _checks_secrets(f))


def _execute(f: _Fields) -> Execute:
    entity = None if "entity" not in f.raw else f.map("entity")
    secrets = None if "secrets" not in f.raw else _secret_entry(f, "secrets", f.raw["secrets"])
    return Execute(f.map("check"), f.maps("hooks"), f.maps("assets"), entity, secrets)


#: Each type's required fields (beyond ``type``) and how its map becomes the message.
_DECODERS: dict[str, tuple[tuple[str, ...], Callable[[_Fields], Message]]] = {
    HELLO: (("version", "agent", "namespace", "subscriptions", "entity"), _hello),
    WELCOME: (("version", "backend"), lambda f: Welcome(version=f.integer("version"), backend=f.string("backend"))),
    CHECKS: (("checks", "hooks"), _checks),
    EXECUTE: (("check", "hooks"), _execute),
    EVENTS: (("events",), lambda f: Events(_events(f))),
    ACK: (("ids", "rejected"), lambda f: Ack(f.strings("ids"), _rejected(f))),
    ERROR: (("message",), lambda f: Error(f.string("message"))),
    KEEPALIVE: (("event",), lambda f: Keepalive(f.event("event"))),
    DEREGISTER: (("id",), lambda f: Deregister(f.string("id"))),
    PING: ((), lambda f: Ping()),
    PONG: ((), lambda f: Pong()),
}
#: Required fields of each message type, beyond ``type``.
MESSAGE_FIELDS: dict[str, tuple[str, ...]] = {kind: required for kind, (required, _) in _DECODERS.items()}


def decode_message(raw: Any) -> Message:
    """The message a decoded frame holds, every field checked; raises :class:`MessageError`."""
    if not isinstance(raw, dict):
        raise MessageError(f"expected a message map, got {_name(raw)}")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _DECODERS:
        raise MessageError(f"unknown message type {kind!r}", "type")
    required, build = _DECODERS[kind]
    missing = [name for name in required if name not in raw]
    if missing:
        raise MessageError(f"{kind} message lacks {', '.join(missing)}", f"{kind}.{missing[0]}")
    return build(_Fields(kind, raw))

"""The agent transport's wire protocol, sans I/O.

A connection is a byte stream of frames; each frame is a 4-byte big-endian length followed by
one msgpack map with a ``type`` key. Every message type and its fields are listed here, and
the handshake carries :data:`PROTOCOL_VERSION` so that either side can refuse a peer it does
not understand.

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
                ``not_proxy`` (about an entity that is neither the agent's nor a proxy); an
                invalid event has no ``reason``.
    ``error``   {message}: the backend refuses the connection and closes it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

PROTOCOL_VERSION = 1

#: Frames larger than this are a protocol error: the connection is closed, not the daemon.
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: How deep a frame's maps and lists may nest. An event in an ``events`` frame nests about 70
#: deep at most (the model's records, and 64 levels of JSON carried as it is); anything deeper
#: is refused before any code walks it recursively (a ``repr`` of it would raise RecursionError).
MAX_FRAME_DEPTH = 100
#: The longest heartbeat timeout an agent may ask for, in seconds (a day).
MAX_HEARTBEAT_TIMEOUT = 86400.0

HELLO, WELCOME, CHECKS, EVENTS, ACK, ERROR = "hello", "welcome", "checks", "events", "ack", "error"
KEEPALIVE, DEREGISTER, PING, PONG, EXECUTE = "keepalive", "deregister", "ping", "pong", "execute"

#: Required fields of each message type, beyond ``type``.
MESSAGE_FIELDS: dict[str, tuple[str, ...]] = {
    HELLO: ("version", "agent", "namespace", "subscriptions", "entity"),
    WELCOME: ("version", "backend"),
    CHECKS: ("checks", "hooks"),
    EXECUTE: ("check", "hooks"),
    EVENTS: ("events",),
    ACK: ("ids", "rejected"),
    ERROR: ("message",),
    KEEPALIVE: ("event",),
    DEREGISTER: ("id",),
    PING: (),
    PONG: (),
}

_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """The byte stream or a message breaks the protocol (the connection must be closed)."""


def encode_frame(message: dict[str, Any]) -> bytes:
    """One framed message, ready to write."""
    body: bytes = msgpack.packb(message, use_bin_type=True)
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    return _LENGTH.pack(len(body)) + body


def validate_message(message: Any) -> dict[str, Any]:
    """Check that a decoded frame is a known message with its required fields."""
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a message map, got {type(message).__name__}")
    kind = message.get("type")
    required = MESSAGE_FIELDS.get(kind) if isinstance(kind, str) else None
    if required is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    missing = [name for name in required if name not in message]
    if missing:
        raise ProtocolError(f"{kind} message lacks {', '.join(missing)}")
    return message


def check_depth(value: Any, limit: int = MAX_FRAME_DEPTH) -> None:
    """Raise ProtocolError when maps and lists in ``value`` nest deeper than ``limit`` (walked
    with a stack of its own, not by recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()  # keys are strings: strict_map_key
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise ProtocolError(f"frame nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


def hello_heartbeat_timeout(message: dict[str, Any], default: float) -> float:
    """The heartbeat timeout a ``hello`` asks for (``default`` when it asks for none); a value
    that is not a finite number of seconds in (0, :data:`MAX_HEARTBEAT_TIMEOUT`] is refused."""
    value = message.get("heartbeat_timeout", default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"hello.heartbeat_timeout: expected a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not 0 < seconds <= MAX_HEARTBEAT_TIMEOUT:  # NaN fails this too
        shown = seconds if math.isfinite(seconds) or math.isnan(seconds) else value
        raise ProtocolError(
            f"hello.heartbeat_timeout: {shown!r} is out of range (0..{MAX_HEARTBEAT_TIMEOUT:.0f} seconds)"
        )
    return seconds


def check_execute(message: dict[str, Any]) -> None:
    """The fields of an ``execute`` have their types: the check and the entity maps, the hooks a
    list of maps (what is inside each is decoded and validated by the model)."""
    if not isinstance(message["check"], dict):
        raise ProtocolError(f"execute.check: expected a map, got {type(message['check']).__name__}")
    hooks = message["hooks"]
    if not isinstance(hooks, list) or not all(isinstance(h, dict) for h in hooks):
        raise ProtocolError("execute.hooks: expected a list of maps")
    if "entity" in message and not isinstance(message["entity"], dict):
        raise ProtocolError(f"execute.entity: expected a map, got {type(message['entity']).__name__}")
    assets = message.get("assets", [])
    if not isinstance(assets, list) or not all(isinstance(a, dict) for a in assets):
        raise ProtocolError("execute.assets: expected a list of maps")


def check_hello(message: dict[str, Any]) -> None:
    """The fields of a ``hello`` have their types (a ``version`` of ``True`` is not 1)."""
    if type(message["version"]) is not int:
        raise ProtocolError(f"hello.version: expected an integer, got {type(message['version']).__name__}")
    for name in ("agent", "namespace"):
        if not isinstance(message[name], str):
            raise ProtocolError(f"hello.{name}: expected a string, got {type(message[name]).__name__}")
    subscriptions = message["subscriptions"]
    if not isinstance(subscriptions, list) or not all(isinstance(s, str) for s in subscriptions):
        raise ProtocolError("hello.subscriptions: expected a list of strings")


@dataclass(slots=True)
class FrameDecoder:
    """Accumulates received bytes and yields complete messages."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add received bytes; return every message now complete, in order."""
        self._buffer += data
        messages = []
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if length > self.max_frame_bytes:
                raise ProtocolError(f"frame of {length} bytes exceeds the limit of {self.max_frame_bytes}")
            end = start + _LENGTH.size + length
            if len(buffer) < end:
                break
            body = memoryview(buffer)[start + _LENGTH.size : end]
            start = end
            try:
                decoded = msgpack.unpackb(body, raw=False, strict_map_key=True)
            except (ValueError, msgpack.UnpackException) as exc:
                raise ProtocolError(f"malformed msgpack frame: {exc}") from None
            finally:
                body.release()
            check_depth(decoded)
            messages.append(validate_message(decoded))
        del buffer[:start]  # consumed frames are dropped once per feed, not once per frame
        return messages

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)


def hello(
    agent: str,
    namespace: str,
    subscriptions: list[str],
    entity: dict[str, Any],
    *,
    heartbeat_timeout: float | None = None,
    credentials: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``credentials``: ``{user, password}`` or ``{token}``."""
    message: dict[str, Any] = {
        "type": HELLO,
        "version": PROTOCOL_VERSION,
        "agent": agent,
        "namespace": namespace,
        "subscriptions": subscriptions,
        "entity": entity,
    }
    if heartbeat_timeout is not None:
        message["heartbeat_timeout"] = heartbeat_timeout
    message.update(credentials or {})
    return message


def welcome(backend: str) -> dict[str, Any]:
    return {"type": WELCOME, "version": PROTOCOL_VERSION, "backend": backend}


def checks(
    configs: list[dict[str, Any]],
    hooks: list[dict[str, Any]] | None = None,
    assets: list[dict[str, Any]] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"type": CHECKS, "checks": configs, "hooks": hooks or [], "assets": assets or []}
    if secrets:
        message["secrets"] = secrets
    return message


def execute(
    check: dict[str, Any],
    hooks: list[dict[str, Any]],
    assets: list[dict[str, Any]] | None = None,
    entity: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``entity``: the proxy entity the check runs for (tokens, ``proxy_entity_name``)."""
    message: dict[str, Any] = {"type": EXECUTE, "check": check, "hooks": hooks, "assets": assets or []}
    if entity is not None:
        message["entity"] = entity
    if secrets:
        message["secrets"] = secrets
    return message


def _check_secret_entry(entry: Any, path: str) -> dict[str, Any]:
    if isinstance(entry, dict) and set(entry) == {"error"} and isinstance(entry["error"], str):
        return {"error": entry["error"]}
    env = entry.get("env") if isinstance(entry, dict) and set(entry) == {"env"} else None
    if isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return {"env": dict(env)}
    raise ProtocolError(f"{path}: expected {{env: {{NAME: value}}}} or {{error: reason}}")


def secrets_of_checks(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``secrets`` of a ``checks`` message, checked (an absent one is empty)."""
    found = message.get("secrets", {})
    if not isinstance(found, dict):
        raise ProtocolError("checks.secrets: expected a map of check names")
    return {name: _check_secret_entry(entry, f"checks.secrets.{name}") for name, entry in found.items()}


def secrets_of_execute(message: dict[str, Any]) -> dict[str, Any] | None:
    """The ``secrets`` entry of an ``execute`` message, checked (None when it has none)."""
    return None if "secrets" not in message else _check_secret_entry(message["secrets"], "execute.secrets")


def events(batch: Sequence[bytes | dict[str, Any]]) -> dict[str, Any]:
    return {"type": EVENTS, "events": list(batch)}


def ack(ids: list[str], rejected: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"type": ACK, "ids": ids, "rejected": rejected or []}


def error(message: str) -> dict[str, Any]:
    return {"type": ERROR, "message": message}


def keepalive(event: bytes) -> dict[str, Any]:
    return {"type": KEEPALIVE, "event": event}


def deregister(request_id: str) -> dict[str, Any]:
    return {"type": DEREGISTER, "id": request_id}


def ping() -> dict[str, Any]:
    return {"type": PING}


def pong() -> dict[str, Any]:
    return {"type": PONG}

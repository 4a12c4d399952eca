"""A Kubernetes API server on 127.0.0.1 for the kubernetes source's tests, speaking TLS and the
API's list and watch of core/v1 events and get/create/replace of coordination.k8s.io/v1 Leases
as a real API server does: chunked JSON lines, one resourceVersion counter (etcd's revision)
shared by every object, bookmarks, a watch from a compacted resourceVersion answered by an ERROR
event with code 410, 409 Conflict on a stale Lease write, 401 without the token.

The shapes are those of a real cluster's answers (``kubectl get events -o json`` on minikube and
kubeadm clusters, their watch streams, the API concepts page's bookmark and 410 examples).
"""

from __future__ import annotations

import base64
import copy
import json
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio
import trustme

TOKEN = "eyJhbGciOiJSUzI1NiJ9.test-service-account-token"


def event_object(
    name: str,
    reason: str,
    message: str,
    *,
    type: str = "Normal",
    kind: str = "Pod",
    namespace: str = "default",
    container: str | None = "web",
    node: str = "worker-1",
    count: int = 1,
    at: str = "2024-11-17T10:19:47Z",
) -> dict[str, Any]:
    """A core/v1 Event as the kubelet records one (resourceVersion set by the server)."""
    involved: dict[str, Any] = {
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "uid": str(uuid.uuid4()),
        "apiVersion": "v1",
        "resourceVersion": "369",
    }
    if kind != "Pod" or container is None:
        involved.pop("resourceVersion")
    if container is not None and kind == "Pod":
        involved["fieldPath"] = f"spec.containers{{{container}}}"
    if kind == "Node":
        involved.pop("namespace")
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "name": f"{name}.{uuid.uuid4().hex[:16]}",
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "resourceVersion": "",
            "creationTimestamp": at,
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": count,
        "type": type,
        "eventTime": None,
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    }


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


@dataclass
class _Waiter:
    predicate: Callable[[], bool]
    done: trio.Event = field(default_factory=trio.Event)


class FakeCluster:
    """The API server's state and its test controls (add, modify, bookmark, drop, expire)."""

    def __init__(self) -> None:
        self.revision = 1000
        self.compacted = 0
        self.events: dict[str, dict[str, Any]] = {}
        #: (revision, watch type, object) of every change to events, for watches to replay
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self._watchers: set[trio.MemorySendChannel[tuple[str, Any]]] = set()
        self._waiters: list[_Waiter] = []

    # -- test controls ------------------------------------------------------------------------

    def _bump(self) -> str:
        self.revision += 1
        return str(self.revision)

    def _changed(self) -> None:
        for waiter in list(self._waiters):
            if waiter.predicate():
                waiter.done.set()
                self._waiters.remove(waiter)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate()`` holds after some request or change (no polling)."""
        if predicate():
            return
        waiter = _Waiter(predicate)
        self._waiters.append(waiter)
        await waiter.done.wait()

    def _notify(self, message: tuple[str, Any]) -> None:
        for channel in list(self._watchers):
            try:
                channel.send_nowait(message)
            except trio.WouldBlock:  # pragma: no cover - a test's watch never falls this far behind
                raise AssertionError("a watch fell behind") from None

    def add(self, obj: dict[str, Any], *, quietly: bool = False) -> dict[str, Any]:
        """Store a new event (ADDED); ``quietly``: without telling the open watches, as if the
        change happened while a watch was expired."""
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._bump()
        kind = "MODIFIED" if obj["metadata"]["uid"] in self.events else "ADDED"
        self.events[obj["metadata"]["uid"]] = obj
        self.history.append((self.revision, kind, obj))
        if not quietly:
            self._notify(("event", (kind, obj)))
        self._changed()
        return obj

    def repeat(self, obj: dict[str, Any], *, quietly: bool = False) -> dict[str, Any]:
        """The same event happening again: count + 1, a new resourceVersion (MODIFIED)."""
        again = copy.deepcopy(self.events[obj["metadata"]["uid"]])
        again["count"] += 1
        return self.add(again, quietly=quietly)

    def delete(self, obj: dict[str, Any]) -> None:
        gone = self.events.pop(obj["metadata"]["uid"])
        gone = copy.deepcopy(gone)
        gone["metadata"]["resourceVersion"] = self._bump()
        self.history.append((self.revision, "DELETED", gone))
        self._notify(("event", ("DELETED", gone)))

    def bookmark(self) -> str:
        """Every open watch gets a BOOKMARK at the current revision."""
        self._notify(("bookmark", str(self.revision)))
        return str(self.revision)

    def drop(self) -> None:
        """Every open watch's connection breaks (no final chunk)."""
        self._notify(("drop", None))

    def garbage(self, line: bytes) -> None:
        self._notify(("raw", line))

    def expire(self) -> None:
        """etcd compacts: every revision so far is gone; open watches get ERROR 410 (as the API
        server sends when its watch cache no longer holds a watcher's position)."""
        self.compacted = self.revision
        self._notify(("gone", None))

    @property
    def watch_requests(self) -> list[dict[str, list[str]]]:
        return [query for method, path, query in self.requests if path == "/api/v1/events" and "watch" in query]

    # -- serving ------------------------------------------------------------------------------

    async def serve(self, stream: trio.abc.Stream) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _read_request(connection, stream)
                if request is None:
                    return
                if not await self._answer(connection, stream, request, body):
                    return
                if connection.our_state is h11.MUST_CLOSE:
                    return
                connection.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def _answer(self, connection: h11.Connection, stream: trio.abc.Stream, request: h11.Request,
                      body: bytes) -> bool:  # fmt: skip
        target = urlsplit(request.target.decode())
        query = parse_qs(target.query)
        method = request.method.decode()
        self.requests.append((method, target.path, query))
        self._changed()
        headers = dict(request.headers)
        if headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
            await _send_json(connection, stream, 401, _status(401, "Unauthorized", "Unauthorized"))
            return True
        if target.path == "/api/v1/events" and query.get("watch") == ["true"]:
            return await self._watch(connection, stream, query)
        if target.path == "/api/v1/events" and method == "GET":
            items = sorted(self.events.values(), key=lambda e: int(e["metadata"]["resourceVersion"]))
            await _send_json(connection, stream, 200, {"kind": "EventList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(self.revision)}, "items": items})  # fmt: skip
            return True
        if target.path.startswith("/apis/coordination.k8s.io/v1/namespaces/"):
            code, answer = self._lease(method, target.path, body)
            await _send_json(connection, stream, code, answer)
            return True
        await _send_json(
            connection, stream, 404, _status(404, "NotFound", "the server could not find the requested resource")
        )
        return True

    def _lease(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = path.split("/")  # ['', 'apis', 'coordination.k8s.io', 'v1', 'namespaces', ns, 'leases', name?]
        namespace, name = parts[5], (parts[7] if len(parts) > 7 else "")
        missing = _status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
        if method == "GET":
            found = self.leases.get((namespace, name))
            return (200, found) if found else (404, missing)
        lease = json.loads(body)
        name = lease["metadata"]["name"]
        stored = self.leases.get((namespace, name))
        if method == "POST" and stored is not None:
            return 409, _status(409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists')
        if method == "PUT" and stored is None:
            return 404, missing
        if method == "PUT" and lease["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            return 409, _status(409, "Conflict", f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": '
                                "the object has been modified; please apply your changes to the latest version and try again")  # fmt: skip
        lease["metadata"].update(
            resourceVersion=self._bump(), uid=(stored or {}).get("metadata", {}).get("uid", str(uuid.uuid4()))
        )
        self.leases[(namespace, name)] = lease
        self._changed()
        return (201 if method == "POST" else 200), lease

    async def _watch(self, connection: h11.Connection, stream: trio.abc.Stream, query: dict[str, list[str]]) -> bool:
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        timeout = int(query.get("timeoutSeconds", ["1800"])[0])
        await stream.send_all(connection.send(h11.Response(status_code=200, headers=[
            ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])))  # fmt: skip
        if since < self.compacted:
            await _line(connection, stream, {"type": "ERROR", "object": _status(
                410, "Expired", f"too old resource version: {since} ({self.revision})")})  # fmt: skip
            await stream.send_all(connection.send(h11.EndOfMessage()))
            return True
        send, receive = trio.open_memory_channel[tuple[str, Any]](1000)
        self._watchers.add(send)
        self._changed()
        try:
            for revision, kind, obj in self.history:
                if revision > since:
                    await _line(connection, stream, {"type": kind, "object": obj})
            with trio.move_on_after(timeout):
                async for what, detail in receive:
                    if what == "event":
                        await _line(connection, stream, {"type": detail[0], "object": detail[1]})
                    elif what == "bookmark":
                        await _line(connection, stream, {"type": "BOOKMARK", "object": {
                            "kind": "Event", "apiVersion": "v1", "metadata": {"resourceVersion": detail}}})  # fmt: skip
                    elif what == "raw":
                        await stream.send_all(connection.send(h11.Data(data=detail)))
                    elif what == "gone":
                        await _line(connection, stream, {"type": "ERROR", "object": _status(
                            410, "Expired", f"too old resource version: {since} ({self.revision})")})  # fmt: skip
                        break
                    elif what == "drop":
                        return False  # the connection closes with the body unfinished
            await stream.send_all(connection.send(h11.EndOfMessage()))
            return True
        finally:
            self._watchers.discard(send)


async def _read_request(connection: h11.Connection, stream: trio.abc.Stream) -> tuple[h11.Request | None, bytes]:
    request, body = None, b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data and request is None:
                return None, b""
            connection.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, body
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


async def _line(connection: h11.Connection, stream: trio.abc.Stream, obj: dict[str, Any]) -> None:
    await stream.send_all(connection.send(h11.Data(data=json.dumps(obj).encode() + b"\n")))


async def _send_json(connection: h11.Connection, stream: trio.abc.Stream, code: int, obj: dict[str, Any]) -> None:
    body = json.dumps(obj).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    await stream.send_all(connection.send(h11.Response(status_code=code, headers=headers)))
    await stream.send_all(connection.send(h11.Data(data=body)))
    await stream.send_all(connection.send(h11.EndOfMessage()))


@dataclass
class Served:
    cluster: FakeCluster
    server: str
    ca: trustme.CA


async def serve_cluster(cluster: FakeCluster, ca: trustme.CA, *, task_status: trio.TaskStatus[Served]) -> None:
    """Serve ``cluster`` over TLS on 127.0.0.1 (a certificate of ``ca`` for that address)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    ssl_listeners = [trio.SSLListener(listener, context, https_compatible=True) for listener in listeners]
    async with trio.open_nursery() as nursery:
        task_status.started(Served(cluster, f"https://127.0.0.1:{port}", ca))
        await trio.serve_listeners(cluster.serve, ssl_listeners, handler_nursery=nursery)


def write_kubeconfig(path: Path, served: Served, *, namespace: str = "monitoring") -> Path:
    """A kubeconfig as kubeadm writes one, with the CA inline and a service account's token."""
    ca_data = base64.b64encode(served.ca.cert_pem.bytes()).decode()
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {ca_data}
    server: {served.server}
  name: test-cluster
contexts:
- context:
    cluster: test-cluster
    namespace: {namespace}
    user: pipeline-agent
  name: pipeline-agent@test-cluster
current-context: pipeline-agent@test-cluster
preferences: {{}}
users:
- name: pipeline-agent
  user:
    token: {TOKEN}
""")
    return path

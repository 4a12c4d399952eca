"""The little of the Kubernetes API the kubernetes source speaks, over httpx: where the cluster is
and how to authenticate (a kubeconfig file or the pod's service account), list and watch of
core/v1 events, and get/create/replace of a coordination.k8s.io/v1 Lease.

Plain HTTP rather than the official ``kubernetes`` client: that client is synchronous (urllib3;
a watch would hold a thread for its whole life under trio) and pulls in a dozen packages
(google-auth, requests-oauthlib, websocket-client, ...); ``kubernetes_asyncio`` runs on asyncio
only. httpx is already pipeline's HTTP client, runs on trio, and streams a watch's chunked JSON
lines; the four calls needed here are a few lines each.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml

from pipeline.errors import ConfigError, KubernetesError
from pipeline.logs import get_logger

log = get_logger("agent.sources.kubernetes")

EVENTS_PATH = "/api/v1/events"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: the page size of a list (the API server's own default chunking is 500 too)
LIST_LIMIT = 500


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Where a cluster's API server is and how to talk to it."""

    server: str
    tls: ssl.SSLContext
    #: the namespace the agent's Lease lives in (the context's or the pod's own)
    namespace: str = "default"
    #: the kubeconfig's cluster name, as the kubernetes.cluster.name label (None in a pod)
    cluster: str | None = None
    token: str | None = None
    #: a token file is read again for every request: the kubelet rotates bound tokens
    token_file: Path | None = None

    def headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file is not None:
            token = self.token_file.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}


# -- configuration ------------------------------------------------------------------------------


def _named(config: Mapping[str, Any], section: str, name: str, file: str) -> dict[str, Any]:
    for index, entry in enumerate(config.get(section) or []):
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(section[:-1])
            if not isinstance(body, dict):
                raise ConfigError(file, f"{section}[{index}].{section[:-1]}: expected a mapping")
            return body
    raise ConfigError(file, f"{section}: no entry named {name!r}")


def _path(value: Any, base: Path) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def _tls_context(cluster: dict[str, Any], user: dict[str, Any], base: Path, file: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cluster.get("certificate-authority-data"):
        pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context.load_verify_locations(cadata=pem)
    elif cluster.get("certificate-authority"):
        context.load_verify_locations(cafile=str(_path(cluster["certificate-authority"], base)))
    if cluster.get("insecure-skip-tls-verify"):
        # kubectl allows it; say so loudly, once
        log.warning("kubernetes TLS verification is off", kubeconfig=file)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _load_client_cert(context, user, base)
    return context


def _load_client_cert(context: ssl.SSLContext, user: dict[str, Any], base: Path) -> None:
    if user.get("client-certificate-data") and user.get("client-key-data"):
        # ssl loads a key pair only from files: write them where only this process can read
        with tempfile.TemporaryDirectory() as directory:
            cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.touch(mode=0o600)
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            context.load_cert_chain(str(cert), str(key))
    elif user.get("client-certificate") and user.get("client-key"):
        context.load_cert_chain(str(_path(user["client-certificate"], base)), str(_path(user["client-key"], base)))


def load_kubeconfig(path: Path) -> ClusterConfig:
    """The current context of a kubeconfig file: server, CA, client certificate or token.

    Credential plugins (``exec``, ``auth-provider``) and basic auth are refused by name: the agent
    runs no programs to get a token; give it a service account token or a client certificate.
    """
    file = str(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(file, f"cannot read the kubeconfig: {exc}") from None
    if not isinstance(config, dict) or not config.get("current-context"):
        raise ConfigError(file, "current-context: the kubeconfig names no current context")
    context = _named(config, "contexts", str(config["current-context"]), file)
    cluster_name = str(context.get("cluster") or "")
    cluster = _named(config, "clusters", cluster_name, file)
    user = _named(config, "users", str(context.get("user") or ""), file) if context.get("user") else {}
    for unsupported in ("exec", "auth-provider", "username"):
        if unsupported in user:
            raise ConfigError(file, f"users[{context.get('user')}].user.{unsupported}: not supported by pipeline (yet)")
    if not cluster.get("server"):
        raise ConfigError(file, f"clusters[{cluster_name}].cluster.server: missing")
    base = path.parent
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        tls=_tls_context(cluster, user, base, file),
        namespace=str(context.get("namespace") or "default"),
        cluster=cluster_name or None,
        token=str(user["token"]) if user.get("token") else None,
        token_file=_path(user["tokenFile"], base) if user.get("tokenFile") else None,
    )


def load_in_cluster(env: Mapping[str, str], account: Path = SERVICE_ACCOUNT) -> ClusterConfig:
    """The pod's own service account: KUBERNETES_SERVICE_HOST/PORT, its token, CA and namespace."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("KUBERNETES_SERVICE_HOST", "not in a pod: give the agent a kubeconfig (--kubeconfig PATH)")
    context = ssl.create_default_context(cafile=str(account / "ca.crt"))
    namespace_file = account / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.exists() else "default"
    server_host = f"[{host}]" if ":" in host else host
    return ClusterConfig(
        server=f"https://{server_host}:{port}", tls=context, namespace=namespace, token_file=account / "token"
    )


def discover(kubeconfig: Path | None, env: Mapping[str, str] | None = None) -> ClusterConfig:
    """The kubeconfig the agent was given, else the pod's service account."""
    if kubeconfig is not None:
        return load_kubeconfig(kubeconfig)
    return load_in_cluster(os.environ if env is None else env)


# -- the API --------------------------------------------------------------------------------------

WatchHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


class KubeAPI:
    """list/watch of events and the Lease calls, on one httpx client (one connection pool)."""

    def __init__(self, config: ClusterConfig, *, watch_seconds: int = 300) -> None:
        self.config = config
        self.watch_seconds = watch_seconds
        self._http = httpx.AsyncClient(
            base_url=config.server,
            verify=config.tls,
            timeout=httpx.Timeout(10.0),
            headers={"Accept": "application/json", "User-Agent": "pipeline-agent"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.config.server}{path}"
        try:
            return await self._http.request(method, path, headers=self.config.headers(), **kwargs)
        except httpx.HTTPError as exc:
            raise KubernetesError(url, "connect", f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    def _body(response: httpx.Response, *, ok: tuple[int, ...]) -> dict[str, Any]:
        url = str(response.url)
        if response.status_code not in ok:
            reason = "gone" if response.status_code == 410 else "http"
            detail = f"HTTP {response.status_code}: {response.text[:300]}"
            raise KubernetesError(url, reason, detail, status=response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise KubernetesError(url, "bad_json", f"an answer that is not JSON: {response.text[:200]!r}") from None
        if not isinstance(body, dict):
            raise KubernetesError(url, "bad_json", f"expected a JSON object, got {type(body).__name__}")
        return body

    async def list_events(self) -> tuple[list[dict[str, Any]], str]:
        """Every event of the cluster, page by page, and the list's resourceVersion to watch from."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": LIST_LIMIT}
        while True:
            body = self._body(await self._request("GET", EVENTS_PATH, params=params), ok=(200,))
            page, metadata = body.get("items") or [], body.get("metadata") or {}
            if not isinstance(page, list) or not isinstance(metadata, dict):
                raise KubernetesError(EVENTS_PATH, "bad_json", "an EventList without items or metadata")
            items.extend(page)
            if not metadata.get("continue"):
                return items, str(metadata.get("resourceVersion") or "")
            params["continue"] = metadata["continue"]

    async def watch_events(self, resource_version: str, handle: WatchHandler) -> int:
        """Watch events from ``resource_version`` with bookmarks, calling ``handle(type, object)``
        for each; returns the number of watch events when the server ends the watch (its
        ``timeoutSeconds``). Raises KubernetesError: ``gone`` (410, as HTTP or as an ERROR event),
        ``watch_error``, ``bad_json``, ``disconnect`` (the stream broke), ``http``, ``connect``."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        # bookmarks come about once a minute; a stream silent far past its timeout is dead
        timeout = httpx.Timeout(10.0, read=self.watch_seconds + 30.0)
        url = f"{self.config.server}{EVENTS_PATH}"
        try:
            async with self._http.stream(
                "GET", EVENTS_PATH, params=params, headers=self.config.headers(), timeout=timeout
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._body(response, ok=(200,))
                return await self._read_watch(url, response, handle)
        except httpx.ConnectError as exc:
            raise KubernetesError(url, "connect", f"{type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise KubernetesError(url, "disconnect", f"the watch broke: {type(exc).__name__}: {exc}") from None

    @staticmethod
    async def _read_watch(url: str, response: httpx.Response, handle: WatchHandler) -> int:
        count = 0
        lines = response.aiter_lines()
        try:
            async for line in lines:
                if not line.strip():
                    continue
                kind, obj = _watch_event(url, line)
                if kind == "ERROR":
                    code = obj.get("code")
                    reason = "gone" if code == 410 else "watch_error"
                    detail = f"watch ERROR {code} {obj.get('reason')}: {obj.get('message')}"
                    raise KubernetesError(url, reason, detail, status=code if isinstance(code, int) else None)
                count += 1
                await handle(kind, obj)
        finally:
            await _finish(response, lines)
        return count

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        response = await self._request("GET", _lease_path(namespace, name))
        return None if response.status_code == 404 else self._body(response, ok=(200,))

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The created Lease, or None when another agent created it first (409)."""
        response = await self._request("POST", _lease_path(namespace), json=body)
        return None if response.status_code == 409 else self._body(response, ok=(200, 201))

    async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The replaced Lease, or None when it changed since it was read (409)."""
        response = await self._request("PUT", _lease_path(namespace, name), json=body)
        return None if response.status_code == 409 else self._body(response, ok=(200,))


async def _finish(response: httpx.Response, lines: AsyncIterator[str]) -> None:
    """Close a watch left early (an ERROR line, a cancellation while handling an event) and run
    httpx's chain of async generators under ``aiter_lines`` to their end. Closing only the outer
    one (``aclosing``) leaves the inner ones suspended until the garbage collector finds them,
    and trio warns of each."""
    with trio.CancelScope(shield=True):
        await response.aclose()
        try:
            async for _ in lines:
                pass
        except Exception:  # the closed stream's own error: what ends the chain
            return


def _lease_path(namespace: str, name: str = "") -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{path}/{name}" if name else path


def _watch_event(url: str, line: str) -> tuple[str, dict[str, Any]]:
    """(type, object) of one watch line, or KubernetesError ``bad_json`` naming the line."""
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise KubernetesError(url, "bad_json", f"a watch line that is not JSON ({exc}): {line[:200]!r}") from None
    if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not isinstance(item.get("object"), dict):
        raise KubernetesError(url, "bad_json", f"a watch line without type and object: {line[:200]!r}")
    return item["type"], item["object"]

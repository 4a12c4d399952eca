"""The operator commands' HTTP client: one request on ``http.client``, the standard library's.

httpx (the daemons' and the tests' client) costs about 150 ms to import, a third of a command's
budget of half a second: a command sends one or a few requests and needs none of its pooling,
so it speaks HTTP/1.1 with the standard library instead (BENCHMARKS.md, "The command line").
"""

from __future__ import annotations

import http.client
import json as jsonlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit


class ClientError(Exception):
    """The backend could not be reached or did not answer in time (the OS or HTTP error as text)."""


@dataclass(slots=True)
class Sent:
    method: str
    url: str


@dataclass(slots=True)
class Response:
    """What the commands read of an answer (httpx's names, so the code reads the same)."""

    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    request: Sent = field(default_factory=lambda: Sent("", ""))

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    json: Any = None,
    params: dict[str, str] | None = None,
    content: str | bytes | None = None,
) -> Response:
    """One request; ClientError when the backend is unreachable or silent past ``timeout``."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if params:
        path += ("&" if "?" in path else "?") + urlencode(params)
    body = jsonlib.dumps(json).encode() if json is not None else content
    sent = dict(headers or {})
    if json is not None:
        sent["Content-Type"] = "application/json"
    connection = _connection(parts.scheme, parts.netloc, timeout)
    try:
        connection.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=sent)
        answer = connection.getresponse()
        return Response(answer.status, answer.read(), {k.lower(): v for k, v in answer.getheaders()},
                        Sent(method, url))  # fmt: skip
    except (OSError, http.client.HTTPException) as exc:
        raise ClientError(str(exc) or type(exc).__name__) from None
    finally:
        connection.close()


def _connection(scheme: str, netloc: str, timeout: float) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(netloc, timeout=timeout)  # the system's CAs, as curl uses
    if scheme != "http":
        raise ClientError(f"expected an http:// or https:// URL, got {scheme or 'none'}://")
    return http.client.HTTPConnection(netloc, timeout=timeout)

"""Asset archives built in the test, and a small HTTP server on 127.0.0.1 that counts requests."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCRIPT = b'#!/bin/sh\necho "mycheck OK from the asset $*"\n'


def tarball(files: dict[str, bytes] | None = None, *, compressed: bool = True) -> bytes:
    """A tar(.gz) archive of ``files`` (``bin/mycheck`` printing a line, by default), each executable."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compressed else "w") as tar:
        for name, data in (files or {"bin/mycheck": SCRIPT}).items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


@dataclass
class AssetServer:
    """Serves ``files`` by path; counts the requests and keeps the headers of each."""

    files: dict[str, bytes]
    url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@contextmanager
def asset_server(files: dict[str, bytes]) -> Iterator[AssetServer]:
    served = AssetServer(files)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append((self.path, dict(self.headers)))
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def free_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"

"""Serve an ASGI app with hypercorn's trio worker, reporting the bound address when ready."""

from __future__ import annotations

import functools

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.types import ASGIApp


def address_of(url: str) -> tuple[str, int]:
    """``"http://127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; IPv6 hosts lose their brackets."""
    hostport = url.split("://", 1)[1]
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


async def serve_app(
    app: ASGIApp,
    address: tuple[str, int],
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``address`` (port 0 picks a free port) until cancelled."""
    host, port = address
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    try:
        # Bind here first, so that a port in use is reported with its address.
        probe = trio.socket.socket(trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET)
        probe.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        with probe:
            await probe.bind((host, port))
    except OSError as exc:
        raise OSError(exc.errno, f"HTTP on {host}:{port}: {exc.strerror}") from exc
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(functools.partial(serve, app, config, mode="asgi"))  # type: ignore[arg-type]
        task_status.started(address_of(urls[0]))

"""A handler written on the sensu-plugin package's SensuHandler receives our events unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
import trio

from tests.support import REPO, EventPipe, admin_headers, loopback_backend, write_config

pytestmark = pytest.mark.e2e

HANDLER = REPO / "tests" / "plugins" / "sensu_plugin_handler.py"


async def test_a_sensu_plugin_handler_reads_our_events(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "records.fifo")
    config = write_config(tmp_path / "config", f"""
        type: Handler
        api_version: core/v2
        metadata: {{name: legacy}}
        spec:
          type: pipe
          command: {sys.executable} {HANDLER} {pipe.path}
          timeout: 30
        """)  # fmt: skip
    event = {"entity": {"metadata": {"name": "web1"}},
             "check": {"metadata": {"name": "disk"}, "status": 2, "output": "disk full", "handlers": ["legacy"]}}  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, config)
            addresses = await nursery.start(backend.run)
            records = []
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                for _ in range(2):
                    response = await client.post("/api/core/v2/namespaces/default/events", json=event)
                    assert response.status_code == 201
                    records.append(await pipe.next_event())
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert records == [
        {"entity": "web1", "check": "disk", "status": 2, "output": "disk full", "occurrences": n} for n in (1, 2)
    ]

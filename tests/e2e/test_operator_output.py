"""What anyone holding a key wrote (a check's output) reaches the operator's terminal through
``pipeline event list`` and ``timeline``: escape sequences and other control characters are
shown escaped, never sent to the terminal raw. (Key names are refused unless printable.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from tests.support import admin_headers, loopback_backend, pipeline_command, write_config

pytestmark = pytest.mark.e2e

#: retitles the terminal window, turns the text red, and a carriage return to overwrite the line
HOSTILE = "\x1b]0;pwned\x07\x1b[31mRED\x1b[0m\u202e"


async def test_event_list_and_timeline_escape_what_peers_wrote(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    outputs = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            headers = admin_headers(backend)
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                event = {"entity": {"metadata": {"name": "px"}, "entity_class": "proxy"},
                         "check": {"metadata": {"name": "esc"}, "status": 1, "output": HOSTILE}}  # fmt: skip
                assert (await client.post("/api/core/v2/namespaces/default/events", json=event)).status_code == 201
            key = headers["Authorization"].removeprefix("Key ")
            for command in (("event", "list"), ("timeline",)):
                result = await trio.run_process(pipeline_command(*command, "--api-url", url, "--api-key", key),
                                                capture_stdout=True, capture_stderr=True, check=False)  # fmt: skip
                outputs.append((command, result.returncode, result.stdout.decode()))
            nursery.cancel_scope.cancel()
    for command, code, text in outputs:
        assert code == 0, (command, text)
        assert not [c for c in text if not c.isprintable() and c not in " \n"], (command, text)
        assert "\\x1b]0;pwned\\x07\\x1b[31mRED\\x1b[0m\\u202e" in text, (command, text)

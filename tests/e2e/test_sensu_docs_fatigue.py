"""The fatigue-check-filter as its README configures it in Sensu Go (Asset, EventFilter with
``runtime_assets``, Handler, CheckConfig), loaded unchanged but for the asset's URL and checksum
and the handler's command: the filter runs the asset's ``lib/fatigue_check.js``.

The asset here is a tarball built by the test holding a ``lib/fatigue_check.js`` of its own (every
fourth occurrence), so that the events let through prove the asset's function ran, not the
built-in one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.asset_support import asset_server, sha512, tarball
from tests.support import EVENT_FILE_HANDLER, EventPipe, loopback_backend, served, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"

EVERY_FOURTH = b"function fatigue_check(event) { return event.check.occurrences % 4 === 0; }\n"


def documented(url: str, sha: str, capture: str) -> str:
    return f"""
        ---
        type: Asset
        api_version: core/v2
        metadata:
          name: fatigue-check-filter
          namespace: default
        spec:
          sha512: {sha}
          url: {url}
        ---
        type: EventFilter
        api_version: core/v2
        metadata:
          name: fatigue_check
          namespace: default
        spec:
          action: allow
          expressions:
          - fatigue_check(event)
          runtime_assets:
          - fatigue-check-filter
        ---
        type: Handler
        api_version: core/v2
        metadata:
          namespace: default
          name: email
        spec:
          type: pipe
          command: {capture}
          timeout: 10
          filters:
          - is_incident
          - not_silenced
          - fatigue_check
        ---
        type: CheckConfig
        api_version: core/v2
        metadata:
          name: linux-cpu-check
          namespace: default
          annotations:
            fatigue_check/occurrences: '3'
            fatigue_check/interval: '900'
            fatigue_check/allow_resolution: 'false'
        spec:
          command: check-cpu -w 90 c 95
          handlers:
          - email
          interval: 60
          publish: true
          runtime_assets:
          subscriptions:
          - linux
        """


async def test_the_fatigue_check_filter_as_its_readme_configures_it_runs_the_asset_s_function(tmp_path: Path) -> None:
    archive = tarball({"lib/fatigue_check.js": EVERY_FOURTH})
    pipe = EventPipe(tmp_path / "events.fifo")
    command = f"{EVENT_FILE_HANDLER} {pipe.path}"  # the README's sensu-email-handler, here writing to a pipe
    with asset_server({"/fatigue-check.tar.gz": archive}) as server:
        url = f"{server.url}/fatigue-check.tar.gz"
        config = write_config(tmp_path / "config", documented(url, sha512(archive), command))
        async with served(loopback_backend(tmp_path, config), seconds=60) as backend:
            failing = {"check": {"metadata": {"name": "linux-cpu-check", "annotations": {
                "fatigue_check/occurrences": "3", "fatigue_check/interval": "900"}},
                "status": 2, "output": "CPU 97%", "interval": 60, "handlers": ["email"]}}  # fmt: skip
            for _ in range(12):
                answer = await backend.client.put(f"{NS}/events/web1/linux-cpu-check", json=failing)
                assert answer.status_code == 201, answer.text
            handled = [await pipe.next_event() for _ in range(3)]
    await pipe.aclose()
    # the asset's function (every fourth), not the built-in one (the third, then every 15)
    assert sorted(e["check"]["occurrences"] for e in handled) == [4, 8, 12]
    assert server.count("/fatigue-check.tar.gz") == 1

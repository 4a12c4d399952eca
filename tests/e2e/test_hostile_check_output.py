"""A check's output is whatever the command printed: metric lines with a timestamp past int64 or
a value that is not finite used to stop the agent (msgpack overflowed while sizing the event)
or get the whole result refused by the backend. Each such line is skipped with a reason, and
the result and the good points are delivered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.agent import executor
from pipeline.core.limits import Fit
from pipeline.model import Event
from tests.e2e.test_agent import with_agent
from tests.support import EventPipe

pytestmark = pytest.mark.e2e

OUTPUTS = {
    "graphite_plaintext": r"big 1 99999999999999999999999\ninf Inf 1700000000\nlong 1 " + "9" * 5000 + r"\ngood 2 1700000000",
    "opentsdb_line": r"big 99999999999999999999999 1 host=a\ninf 1700000000 -Inf host=a\ngood 1700000000 2 host=b",
    "prometheus_text": r"big 1 99999999999999999999999999\ninf +Inf\noverflow 1e400\ngood 2",
    "nagios_perfdata": r"OK | inf=Inf;1;2 overflow=1e400 good=2",
}  # fmt: skip


@pytest.mark.parametrize("output_format", sorted(OUTPUTS))
async def test_metric_lines_past_every_range_are_skipped_and_the_result_delivered(
    tmp_path: Path, output_format: str
) -> None:
    check = f"""
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {{name: hostile}}
        spec:
          command: printf '{OUTPUTS[output_format]}'
          interval: 1
          subscriptions: [web]
          handlers: [capture]
          output_metric_format: {output_format}
        """
    event = await with_agent(tmp_path, check, EventPipe.next_event)
    assert event["check"]["metadata"]["name"] == "hostile"
    assert [p["name"] for p in event["metrics"]["points"]] == ["good"]
    errors = event["metadata"]["annotations"]["pipeline.io/output_metric_errors"]
    assert "out of range" in errors or "not a finite number" in errors, errors


async def test_a_result_that_cannot_be_built_is_reported_and_the_agent_runs_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fit = executor.fit_event

    def fit_or_fail(event: Event, limit: int) -> Fit:
        if event.check_name == "broken":
            raise RuntimeError("a bug in building this result")
        return real_fit(event, limit)

    monkeypatch.setattr(executor, "fit_event", fit_or_fail)
    checks = "".join(
        f"""
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {{name: {name}}}
        spec: {{command: echo {name}, interval: 1, subscriptions: [web], handlers: [capture]}}
        """
        for name in ("broken", "fine")
    )

    async def both(pipe: EventPipe) -> dict[str, dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        while len(seen) < 2:
            event = await pipe.next_event()
            seen[event["check"]["metadata"]["name"]] = event
        return seen

    seen = await with_agent(tmp_path, checks, both)
    assert seen["broken"]["check"]["status"] == 3
    assert seen["broken"]["check"]["output"] == "the agent could not build this result: a bug in building this result"
    assert seen["fine"]["check"]["output"] == "fine\n"

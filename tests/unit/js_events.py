"""Events for the JavaScript filter and mutator tests, built from Sensu JSON."""

from __future__ import annotations

from typing import Any

from pipeline.model import Event

# Monday 5 March 2018 18:51:53 UTC, the example of Sensu's query expressions reference
MONDAY_EVENING = 1_520_275_913


def make_event(
    *,
    check: bool = True,
    metrics: bool = False,
    status: int = 0,
    occurrences: int = 1,
    name: str = "check-cpu",
    entity_labels: dict[str, str] | None = None,
    check_labels: dict[str, str] | None = None,
    check_annotations: dict[str, str] | None = None,
    entity_annotations: dict[str, str] | None = None,
    os: str = "linux",
    timestamp: int = MONDAY_EVENING,
    executed: int | None = None,
    history: list[int] | None = None,
    **check_fields: Any,
) -> Event:
    data: dict[str, Any] = {
        "timestamp": timestamp,
        "entity": {
            "entity_class": "agent",
            "metadata": {"name": "web1", "namespace": "default"},
            "system": {"hostname": "web1.example.com", "os": os, "platform": "debian"},
            "subscriptions": ["linux", "entity:web1"],
        },
    }
    if entity_labels is not None:
        data["entity"]["metadata"]["labels"] = entity_labels
    if entity_annotations is not None:
        data["entity"]["metadata"]["annotations"] = entity_annotations
    if check:
        statuses = history if history is not None else [status]
        data["check"] = {
            "metadata": {"name": name, "namespace": "default"},
            "command": "check-cpu.rb -w 75 -c 90",
            "interval": 60,
            "status": status,
            "occurrences": occurrences,
            "occurrences_watermark": occurrences,
            "executed": executed if executed is not None else timestamp,
            "output": "CPU OK - 12%",
            "history": [
                {"status": s, "executed": timestamp - 60 * (len(statuses) - 1 - i)} for i, s in enumerate(statuses)
            ],
            **check_fields,
        }
        if check_labels is not None:
            data["check"]["metadata"]["labels"] = check_labels
        if check_annotations is not None:
            data["check"]["metadata"]["annotations"] = check_annotations
    if metrics:
        data["metrics"] = {
            "handlers": ["influxdb"],
            "points": [{"name": "cpu.user", "value": 12.5, "timestamp": timestamp}],
        }
    return Event.from_dict(data)

"""Sensu Go's own documentation examples of EventFilters and Pipelines (6.10, "Event filters
reference"), loaded as they are written and meaning what the documentation says."""

from __future__ import annotations

from pathlib import Path

import trio

from pipeline.config.loader import load_path
from pipeline.core.filtering import JavaScriptFilters
from pipeline.core.stages import StageRef
from pipeline.model import Check, Entity, Event, ObjectMeta
from pipeline.model.forms import EventForms

DOCS = r"""
---
type: EventFilter
api_version: core/v2
metadata:
  name: filter_minimum
spec:
  action: allow
  expressions:
  - event.check.occurrences == 1
---
type: EventFilter
api_version: core/v2
metadata:
  name: metrics-checks-only
spec:
  action: allow
  expressions:
  - event.check.name.match(/metrics$/)
---
type: EventFilter
api_version: core/v2
metadata:
  name: us-west-events
spec:
  action: allow
  expressions:
  - event.entity.labels.region.match(/us-west-\b[1-3]\b/)
---
type: Pipeline
api_version: core/v2
metadata:
  name: incident_alerts
spec:
  workflows:
  - name: slack_alerts
    filters:
    - name: is_incident
      type: EventFilter
      api_version: core/v2
    - name: not_silenced
      type: EventFilter
      api_version: core/v2
    handler:
      name: slack
      type: Handler
      api_version: core/v2
---
type: Pipeline
api_version: core/v2
metadata:
  name: metrics_pipeline
spec:
  workflows:
  - name: influxdb_metrics
    filters:
    - name: has_metrics
      type: EventFilter
      api_version: core/v2
    handler:
      name: influxdb
      type: Handler
      api_version: core/v2
"""


def event(check: str = "disk", occurrences: int = 1, region: str = "us-west-2") -> Event:
    return Event(
        entity=Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default",
                                                                labels={"region": region})),
        check=Check(metadata=ObjectMeta(name=check, namespace="default"), status=2, occurrences=occurrences),
        metadata=ObjectMeta(namespace="default"),
    )  # fmt: skip


def test_the_documentation_s_filters_and_pipelines_load_as_written_and_filter_as_documented(tmp_path: Path) -> None:
    (tmp_path / "docs.yml").write_text(DOCS)
    loaded = load_path(tmp_path)
    assert loaded.errors == []
    # the pipelines name handlers these examples do not define: warnings, as resources arrive in any order
    warnings = [w.message for w in loaded.warnings]
    assert warnings[:2] == ["spec.workflows[0].handler: no Handler 'slack'",
                            "spec.workflows[0].handler: no Handler 'influxdb'"]  # fmt: skip
    # and a true one: on an entity without a region label the expression throws, and Sensu Go then
    # skips it, so such an entity's events pass this allow filter
    expression = r"event.entity.labels.region.match(/us-west-\b[1-3]\b/)"
    assert warnings[2:] == [
        f"spec.expressions[0]: {expression!r} fails on every sample event: "
        "TypeError: cannot read property 'match' of undefined"
    ]
    filters = JavaScriptFilters(loaded.resources.filters)

    def passes(name: str, e: Event) -> bool:
        outcome = trio.run(filters.filter, StageRef(name, "default"), EventForms(e), 0)
        assert outcome.errors == []
        return outcome.passed

    assert passes("filter_minimum", event(occurrences=1))
    assert not passes("filter_minimum", event(occurrences=2))
    assert passes("metrics-checks-only", event(check="disk-metrics"))
    assert not passes("metrics-checks-only", event(check="disk"))
    assert passes("us-west-events", event(region="us-west-3"))
    assert not passes("us-west-events", event(region="us-east-1"))

"""The data model: events, entities, checks, metrics and the resources operators write."""

from pipeline.model.check import FAILING, FLAPPING, PASSING, Check, CheckConfig, CheckHistory
from pipeline.model.entity import Entity, Network, NetworkInterface, System, entity_subscription
from pipeline.model.event import Event
from pipeline.model.event_ids import new_event_id
from pipeline.model.meta import DEFAULT_NAMESPACE, ObjectMeta, ResourceReference
from pipeline.model.metrics import MetricPoint, Metrics, MetricTag

__all__ = [
    "DEFAULT_NAMESPACE",
    "FAILING",
    "FLAPPING",
    "PASSING",
    "Check",
    "CheckConfig",
    "CheckHistory",
    "Entity",
    "Event",
    "MetricPoint",
    "MetricTag",
    "Metrics",
    "Network",
    "NetworkInterface",
    "ObjectMeta",
    "ResourceReference",
    "System",
    "entity_subscription",
    "new_event_id",
]

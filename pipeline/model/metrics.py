"""Metrics carried by an event: points with tags, and the handlers that want them."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.model.codec import INT64, field


@dataclass(slots=True)
class MetricTag:
    name: str = field("", omitempty=True)
    value: str = field("", omitempty=True)


@dataclass(slots=True)
class MetricPoint:
    """One sample. ``timestamp`` is in seconds everywhere in pipeline (Sensu mixes units)."""

    name: str = field("", omitempty=True)
    value: float = field(0.0)
    timestamp: int = field(0, bounds=INT64)
    tags: list[MetricTag] = field([])


@dataclass(slots=True)
class Metrics:
    handlers: list[str] = field([])
    points: list[MetricPoint] = field([])

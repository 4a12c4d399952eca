"""What a metric parser returns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipeline.model import MetricPoint, MetricTag


@dataclass(slots=True)
class Extraction:
    points: list[MetricPoint] = field(default_factory=list)
    #: One readable message per line (or item) that could not be used.
    errors: list[str] = field(default_factory=list)

    def reject(self, number: int, line: str, reason: str) -> None:
        shown = line if len(line) <= 80 else line[:77] + "..."
        self.errors.append(f"line {number}: {shown!r}: {reason}")


def copy_tags(tags: Iterable[MetricTag]) -> list[MetricTag]:
    """Fresh tag objects, so that points never share mutable tags."""
    return [MetricTag(t.name, t.value) for t in tags]


def lines(output: str) -> list[tuple[int, str]]:
    """Numbered non-blank lines, stripped; a last line without a newline counts too."""
    return [(n, text.strip()) for n, text in enumerate(output.splitlines(), start=1) if text.strip()]


def key_value_tags(items: Sequence[str]) -> list[MetricTag]:
    """Tags written as ``key=value`` items; ValueError naming the first bad one."""
    tags = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or "=" in value:
            raise ValueError(f"tag {item!r} is not key=value")
        tags.append(MetricTag(key, value))
    return tags

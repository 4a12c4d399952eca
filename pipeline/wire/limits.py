"""Sizes that keep one large event from stalling delivery, and the byte batching of frames. Pure.

One maximum event size, :data:`MAX_EVENT_BYTES`, counted on the event's msgpack encoding (what
the agent spools and sends, its entity included). Every place an event enters the agent holds
it to that: the local API and socket refuse a larger one, a check's output is cut so that its
event fits, a StatsD flush is split into several events. The transport then packs ``events``
frames by bytes as well as by count (:func:`plan_frame`), so that no frame comes near
:data:`~pipeline.wire.protocol.MAX_FRAME_BYTES`; an event that still does not fit (spooled by
an older version, say) is set aside rather than sent.

Why 1 MiB: it is the body the agent's HTTP API and the client socket already accept, it holds
a check output at the executor's 1 MiB output cap once ``max_output_size`` or the fit has cut
it, and sixteen of them still fit one frame, so the frame limit is never the binding one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.wire.protocol import MAX_FRAME_BYTES

#: The largest event, as msgpack bytes, that the agent accepts, spools and sends.
MAX_EVENT_BYTES = 1024 * 1024
#: Bytes of events one ``events`` frame carries at most: several events per frame, any one
#: event that keeps to :data:`MAX_EVENT_BYTES` alone, and well below the frame limit.
FRAME_EVENT_BYTES = 4 * 1024 * 1024
#: What an ``events`` frame adds around its events, at most: the map, its ``type`` and
#: ``events`` keys and the array header.
FRAME_OVERHEAD = 64
#: What msgpack adds around one event's bytes in that array, at most (a bin 32 header).
PER_EVENT_OVERHEAD = 5

assert MAX_EVENT_BYTES + PER_EVENT_OVERHEAD <= FRAME_EVENT_BYTES
assert FRAME_EVENT_BYTES + FRAME_OVERHEAD <= MAX_FRAME_BYTES


def too_large_message(size: int, limit: int = MAX_EVENT_BYTES) -> str:
    """The words every refusal uses, naming the size and the limit."""
    return f"event of {size} bytes exceeds the maximum event size of {limit} bytes"


@dataclass(slots=True)
class FramePlan:
    """What to do with the first ``consumed`` of a run of spooled events."""

    #: indexes of the events to send in this frame, in order
    send: list[int] = field(default_factory=list)
    #: indexes of the events too large to send at all
    too_large: list[int] = field(default_factory=list)
    #: how many events the plan covers; the rest wait for the next frame
    consumed: int = 0


def plan_frame(
    sizes: Sequence[int],
    *,
    max_count: int,
    max_bytes: int = FRAME_EVENT_BYTES,
    max_event: int = MAX_EVENT_BYTES,
) -> FramePlan:
    """Take events, oldest first, while the frame stays within ``max_count`` and ``max_bytes``.

    An event over ``max_event`` is never sent: it is planned to be set aside and does not stop
    the events behind it. The first sendable event always goes, so the plan always progresses.
    """
    plan = FramePlan()
    used = 0
    for index, size in enumerate(sizes):
        if size > max_event:
            plan.too_large.append(index)
        else:
            cost = size + PER_EVENT_OVERHEAD
            if plan.send and (len(plan.send) >= max_count or used + cost > max_bytes):
                break
            plan.send.append(index)
            used += cost
        plan.consumed = index + 1
    return plan


def frame_bytes_bound(sizes: Sequence[int]) -> int:
    """The most bytes an ``events`` frame of events of these sizes can take (for checks and tests)."""
    return FRAME_OVERHEAD + sum(size + PER_EVENT_OVERHEAD for size in sizes)

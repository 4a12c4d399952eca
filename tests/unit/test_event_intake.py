"""What the events API journals: a submission's record decodes to the event that was taken, and
bodies small enough to skip measuring their event cannot make one over the maximum size."""

from __future__ import annotations

import json

import msgpack
import pytest

from pipeline.backend.api.events import RECORD_VERSION, event_of_record, prepare_event, small_body
from pipeline.wire.limits import MAX_EVENT_BYTES

BODY = json.dumps({"entity": {"metadata": {"name": "db1"}},
                   "check": {"metadata": {"name": "disk"}, "status": 2, "output": "full"}}).encode()  # fmt: skip


def test_a_record_decodes_to_the_event_taken() -> None:
    taken, _ = prepare_event(BODY, "default", now=1_800_000_000.5)
    record = msgpack.packb([RECORD_VERSION, BODY, "default", None, None, taken.id, 1_800_000_000.5])
    again = event_of_record(record)
    assert again.id == taken.id
    assert again.check is not None
    assert again.check.executed == 1_800_000_000
    assert again.timestamp == 1_800_000_000  # taken then, though stored later
    again.timestamp = taken.timestamp
    assert again.to_dict() == taken.to_dict()


@pytest.mark.parametrize("record", [b"\x01", msgpack.packb([99, BODY, "default", None, None, "x", 0.0]),
                                    msgpack.packb([RECORD_VERSION, b"{", "default", None, None, "x", 0.0])])  # fmt: skip
def test_a_record_that_does_not_decode_is_a_value_error(record: bytes) -> None:
    with pytest.raises(ValueError, match="record"):
        event_of_record(record)


def test_the_worst_expanding_small_body_stays_under_the_maximum_event() -> None:
    # empty metric points expand the most: each ``{}`` becomes a whole point
    head = b'{"entity": {"metadata": {"name": "db1"}}, "metrics": {"points": ['
    count = 1
    while small_body(len(head) + 3 * (count + 1) + 3):
        count += 1
    body = head + b",".join([b"{}"] * count) + b"]}}"
    assert small_body(len(body))
    event, _ = prepare_event(body, "default", now=1_800_000_000)
    assert len(event.to_msgpack()) <= MAX_EVENT_BYTES

"""Event ids: UUIDs of version 7 (RFC 9562) in their canonical form, made in increasing order.

Why version 7, where Sensu Go makes random (version 4) ones: both stores index every stored
event's id (``event_log``'s UNIQUE id). A random id goes to a random page of that index, so each
event stored dirtied a page of it, read back first once the index outgrows the cache. A version 7
id begins with the millisecond it was made, so the ids of a batch go one after the other at the
end of the index, on a few pages. Measured (``bench/api_events.py``, four clients, 10,000
results, strace): the SQLite WAL pages written fell from 1.96 to 1.60 an event and the page reads
from 2,879 to 7; the store thread's CPU from 24-27 to 20-23 µs a result (four alternated rounds).
Clients see no difference: sensuctl, handlers and the API take an id as an opaque UUID string.

Layout (RFC 9562, section 5.7): 48 bits of Unix time in milliseconds, the version, 12 bits that
count the ids made within a millisecond (its method 1, a counter; past 4,096 it carries into the
time, which then runs ahead of the clock rather than back), the variant and 62 random bits. The
ids of one process increase even when the clock goes back: a batch starts past the last one.

Made ahead, 256 at a time, and popped one per event: one ``getrandom`` system call per 256 ids
rather than one per id (under load each system call is a point where the process may lose its
core: in the events bench's backend ``os.urandom(16)`` took 12 µs a call on average, against 0.4
alone). Threads may take ids at once (``list.pop`` is atomic); two threads filling the pool at
the same moment may interleave two batches, whose ids are still unique by their random bits.
"""

from __future__ import annotations

import os
import time

#: Ids made at once.
BATCH = 256
_ids: list[str] = []
#: Time and counter (``millisecond << 12 | count``) the next batch starts at, at the earliest.
_next_stamp = 0


def new_event_id() -> str:
    """A version 7 UUID in its canonical form, greater than every one this process made before."""
    try:
        return _ids.pop()
    except IndexError:
        _ids.extend(_made_ids(BATCH))
        return _ids.pop()


def _made_ids(count: int) -> list[str]:
    """``count`` ids, the greatest first (the pool is popped from its end)."""
    global _next_stamp
    first = max(time.time_ns() // 1_000_000 << 12, _next_stamp)
    _next_stamp = first + count
    raw = bytearray(os.urandom(16 * count))
    for at, stamp in zip(range(0, 16 * count, 16), range(first + count - 1, first - 1, -1), strict=True):
        # 48 bits of milliseconds, then the version (7) and the 12-bit counter
        raw[at : at + 8] = ((stamp >> 12) << 16 | 0x7000 | (stamp & 0xFFF)).to_bytes(8, "big")
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # RFC 9562's variant
    text = raw.hex()
    return [f"{text[i : i + 8]}-{text[i + 8 : i + 12]}-{text[i + 12 : i + 16]}-{text[i + 16 : i + 20]}-"
            f"{text[i + 20 : i + 32]}" for i in range(0, 32 * count, 32)]  # fmt: skip


# A forked child must not hand out its parent's ids (the same ids in two processes).
os.register_at_fork(after_in_child=_ids.clear)

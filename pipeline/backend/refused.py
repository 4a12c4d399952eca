"""Events the store refused for what they hold, kept as files for the operator.

A journaled event was answered 201 before it was stored. If the store then refuses it (a
constraint or trigger the operator added, a value past a column's range), writing it again
can never succeed, and keeping it in the journal would offer it again every second and hold
every read behind it for ever. It is set aside here instead: one file per event in
``<data dir>/intake/refused/``, named by when it was set aside and by its id
(``20261127T171502.123456789Z-<id>.json``: the names sort oldest first), holding the event's
JSON as the events API takes it (once the cause is mended, ``curl -d @<file>
.../namespaces/<namespace>/events`` stores it); the newest :data:`KEPT` are kept. The log
line and ``pipeline_journal_set_aside`` say when one is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from pipeline.model import Event

#: Files kept at most; past it, the oldest are deleted (a store refusing every event must not fill the disk).
KEPT = 1000
#: An event id used as it is for its file's name; any other is named by its digest.
_PLAIN_ID = re.compile(r"[0-9A-Za-z_-][0-9A-Za-z_.-]{0,127}")


def file_name(event_id: str, now_ns: int) -> str:
    seconds, fraction = divmod(now_ns, 1_000_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"{stamp}.{fraction:09d}Z-{_id_part(event_id)}"


def _id_part(event_id: str) -> str:
    """The end of the file's name, which tells the event (an id that is not plain, by its digest)."""
    if not _PLAIN_ID.fullmatch(event_id):
        event_id = hashlib.sha256(event_id.encode(errors="surrogatepass")).hexdigest()
    return f"{event_id}.json"


def event_json(event: Event) -> bytes:
    """The event as the events API takes it; numbers past what orjson writes (64 bits) as Python's json does."""
    try:
        return event.to_json()
    except (TypeError, ValueError):
        return json.dumps(event.to_dict()).encode()


class RefusedEvents:
    """The directory of set-aside events (written from a worker thread: these are blocking calls)."""

    def __init__(self, directory: Path, *, durable: bool = False, kept: int = KEPT) -> None:
        self.directory = directory
        self.durable = durable
        self.kept = kept

    def keep(self, event: Event, now_ns: int) -> tuple[Path, int]:
        """Write ``event``'s file (durably with a ``durable`` store: it replaces a journal record
        that was), named for ``now_ns`` (wall clock); its path, and how many older files were
        deleted to stay within ``kept``. An event set aside already (a crash came before the
        journal forgot it, and the replay was refused again) keeps its file. Raises OSError."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ending = "Z-" + _id_part(event.id)
        for name in os.listdir(self.directory):
            if name.endswith(ending):
                return self.directory / name, 0
        path = self.directory / file_name(event.id, now_ns)
        partial = path.with_name(path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            data = event_json(event)
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
        if self.durable:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return path, self._prune()

    def _prune(self) -> int:
        files = sorted(name for name in os.listdir(self.directory) if name.endswith(".json"))
        if len(files) <= self.kept:
            return 0
        for old in files[: len(files) - self.kept]:
            (self.directory / old).unlink(missing_ok=True)
        return len(files) - self.kept

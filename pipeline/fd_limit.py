"""The open-files limit of a daemon: its soft limit raised to the hard one at start.

A shell commonly starts a process with a soft limit of 1,024 descriptors under a far higher
hard one. Each agent connected to a backend holds a descriptor, as do the store, the journal
and every handler's pipes: with the soft limit, the thousandth agent could not connect, and a
handler could not be started, while the system would allow many more. Go raises the soft limit
to the hard one in every program it builds (since Go 1.19), Sensu Go's backend and agent
included; a daemon here does the same, once, at start. The commands it runs (checks, hooks,
handlers) inherit the raised limit.
"""

from __future__ import annotations

import resource


def raise_open_files_limit() -> tuple[int, int] | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; ``(before, after)`` when it was raised,
    None when it already was there or the system refused (the limit then stays as it was)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return None  # an unlimited hard limit is not a number to set the soft one to (Linux: nr_open)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return None
    return soft, hard

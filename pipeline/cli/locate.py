"""Where the local backend is: a state file the backend writes when it is ready.

``pipeline backend`` and ``pipeline up`` write ``backend.json`` (its API URL, its data
directory made absolute, its process id) in the user's state directory, and remove it when
they stop. Operator commands given no ``--api-url`` and no ``--data`` read it, so
``pipeline event list`` finds the backend and its ``admin.key`` from any directory, whatever
``--data`` and ``--api-addr`` (port 0 included) the backend was started with. A per-user
default data directory would also have found the key, but not a backend started with another
``--data`` or port, and it would have moved the data of everyone used to ``./data``.

The state directory is ``$PIPELINE_STATE_DIR``, else ``$XDG_STATE_HOME/pipeline``, else
``~/.local/state/pipeline``. A file naming a process that is gone is ignored.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_API_URL = "http://127.0.0.1:8080"
STATE_FILE = "backend.json"


def state_dir() -> Path:
    if os.environ.get("PIPELINE_STATE_DIR"):
        return Path(os.environ["PIPELINE_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pipeline"


def record_running(api_url: str, data_dir: Path) -> Path | None:
    """Name this process's backend in the state file (None when it cannot be written: the
    commands then need --api-url and --data, as before)."""
    path = state_dir() / STATE_FILE
    record = {"api_url": api_url, "data": str(data_dir.resolve()), "pid": os.getpid()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record) + "\n")
        temporary.replace(path)
    except OSError:
        return None
    return path


def forget_running() -> None:
    """Remove the state file if it still names this process (another backend may have started since)."""
    path = state_dir() / STATE_FILE
    record = _read(path)
    if record is not None and record.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def running() -> dict[str, Any] | None:
    """The backend the state file names, if its process is alive."""
    record = _read(state_dir() / STATE_FILE)
    if record is None or not isinstance(record.get("pid"), int):
        return None
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return record


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def resolve_backend(args: argparse.Namespace) -> None:
    """Fill ``args.api_url`` and ``args.data`` left unset: from the running backend's state file
    (its data only when the URL is its own), else the defaults (127.0.0.1:8080, ./data)."""
    record = running() if getattr(args, "api_url", None) is None or getattr(args, "data", None) is None else None
    if getattr(args, "api_url", None) is None:
        args.api_url = str(record["api_url"]) if record else DEFAULT_API_URL
    if getattr(args, "data", None) is None:
        same = record is not None and args.api_url.rstrip("/") == str(record["api_url"]).rstrip("/")
        args.data = Path(record["data"]) if same and record else Path("data")

"""What every test shares: a state directory of its own for the daemons and commands it runs,
and the databases several backends share.

``pipeline backend`` and ``pipeline up`` name themselves in ``$PIPELINE_STATE_DIR/backend.json``
and the operator commands read it (pipeline/cli/locate.py). Without this, a test's daemon would
write into the developer's ``~/.local/state/pipeline`` and a test's command could find the
developer's own backend there. One directory per test process (xdist workers each have theirs);
a test that looks at the file sets a directory of its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store_support import KINDS, StoreFactory, database

_STATE_DIR = tempfile.mkdtemp(prefix="pipeline-test-state-")
os.environ["PIPELINE_STATE_DIR"] = _STATE_DIR


@pytest.fixture(scope="session", autouse=True)
def _remove_state_dir() -> Iterator[None]:
    yield
    shutil.rmtree(_STATE_DIR, ignore_errors=True)


@pytest.fixture(params=KINDS)
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A new database several backends share, of each kind: what makes a store on it for a
    backend (SQLite: its one writer is the lock; PostgreSQL: advisory locks)."""
    with database(request.param, tmp_path, shared=True) as factory:
        yield factory

"""What pipeline ships with: the configuration ``pipeline up`` and ``pipeline backend`` run
when no ``--config`` is given (``config/``: the checks of the local agent, their hooks, the
handlers), inside the package so that the commands work from any directory and from a wheel."""

from __future__ import annotations

from pathlib import Path

#: The shipped resource directory.
CONFIG_DIR = Path(__file__).resolve().parent / "config"

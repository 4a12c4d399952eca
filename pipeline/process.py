"""Run a command with a timeout; when its execution ends, nothing it started is left running.

Checks, hooks, pipe mutators and pipe handlers all run through :func:`run_command`. The
command runs through ``/bin/sh -c`` in a new session and in a containment scope (a cgroup of
its own, or the fallback, see :mod:`pipeline.containment`). On timeout (or cancellation of the
caller) the scope gets SIGTERM, the shell a grace period, then everything left SIGKILL. When
the shell exits by itself, whatever it left running in the background is SIGKILLed at once,
as systemd does with a service's cgroup (Sensu Go leaves such children running forever): an
execution ends with its shell. A command that must start a long-lived daemon hands it to the
service manager (``systemctl start``), whose processes are not ours.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from pipeline.containment import Scope
from pipeline.containment import current as current_containment

TIMED_OUT_OUTPUT = "Execution timed out\n"
#: Sensu's status for a command that ran past its timeout.
TIMED_OUT_STATUS = 2
#: Output beyond this many bytes is discarded (a safety cap; checks set their own lower limit).
DEFAULT_OUTPUT_CAP = 1024 * 1024
#: How long a timed-out command has between SIGTERM and SIGKILL.
TERMINATE_GRACE = 1.0
#: Input up to this size is written into the stdin pipe before the spawn (the pipe's buffer is
#: grown past its default where needed: an unprivileged process may go to
#: /proc/sys/fs/pipe-max-size, 1 MiB by default); larger input is fed by a task as it is read.
PREFILL_LIMIT = 1024 * 1024
DEFAULT_PIPE_SIZE = 65536
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


@dataclass(slots=True, frozen=True)
class CommandResult:
    """What a command did: exit status, combined stdout and stderr, and how long it ran."""

    status: int
    output: str
    duration: float
    timed_out: bool = False
    truncated_bytes: int = 0


async def _terminate(process: trio.Process, scope: Scope) -> None:
    """SIGTERM everything in the scope, give the shell a moment, then SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    scope.signal_all(signal.SIGTERM)
    with trio.move_on_after(TERMINATE_GRACE):
        await process.wait()
    await scope.kill_all()
    await process.wait()


class _Capture:
    """Output read so far, kept outside the reading task so a timeout does not lose it."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.dropped = 0

    async def read_all(self, stream: trio.abc.ReceiveStream) -> None:
        while data := bytes(await stream.receive_some(65536)):
            room = max(self.cap - self.kept, 0)
            if room:
                self.chunks.append(data[:room])
                self.kept += min(room, len(data))
            self.dropped += max(len(data) - room, 0)

    @property
    def output(self) -> bytes:
        return b"".join(self.chunks)


async def run_command(
    command: str,
    *,
    timeout: float = 0,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    output_cap: int = DEFAULT_OUTPUT_CAP,
) -> CommandResult:
    """Run ``command`` with ``/bin/sh -c``. ``timeout`` 0 means none.

    On timeout the status is 2 and the output is ``"Execution timed out\\n"`` followed by any
    partial output, as Sensu Go reports it. Exit by signal N gives status 128+N, as a shell does.
    """
    started = trio.current_time()
    prefilled = _prefilled_stdin(stdin)
    scope = current_containment().open_scope()
    try:
        process = await trio.lowlevel.open_process(
            scope.argv(command),
            stdin=_stdin_argument(stdin, prefilled),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=scope.environment(env),
            start_new_session=True,
        )
    except BaseException:
        with trio.CancelScope(shield=True):
            await scope.close()
        raise
    finally:
        if prefilled is not None:
            os.close(prefilled)  # the child has its copy
    scope.started(process.pid)
    capture = _Capture(output_cap)
    timed_out = False
    try:
        with trio.move_on_after(timeout if timeout > 0 else math.inf) as deadline:
            async with trio.open_nursery() as nursery:
                if process.stdin is not None:  # too large to be written in advance
                    assert stdin is not None
                    nursery.start_soon(_feed_stdin, process, stdin)
                assert process.stdout is not None
                nursery.start_soon(capture.read_all, process.stdout)
                await process.wait()
                # The shell is done: what it left behind goes too, which also ends the output.
                await scope.leader_exited()
        timed_out = deadline.cancelled_caught
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                await _terminate(process, scope)
            await scope.close()
        if process.stdout is not None:
            await process.stdout.aclose()
    duration = trio.current_time() - started
    text = capture.output.decode("utf-8", errors="replace")
    if timed_out:
        return CommandResult(TIMED_OUT_STATUS, TIMED_OUT_OUTPUT + text, duration, True, capture.dropped)
    code = process.returncode
    assert code is not None  # the process was waited for above
    status = code if code >= 0 else 128 - code
    return CommandResult(status, text, duration, False, capture.dropped)


def _prefilled_stdin(data: bytes | None) -> int | None:
    """The read end of a pipe already holding all of ``data`` and closed for writing, or None
    when there is no input or it does not fit the pipe's buffer.

    Written before the spawn, the input costs one copy into the kernel: no task to feed it,
    no wakeup of a reader blocked on it, nothing to register with the event loop. Most
    events are a few kilobytes, under the 64 KiB a pipe holds by default.
    """
    if data is None or len(data) > PREFILL_LIMIT:
        return None
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    # Never block the event loop: a pipe may hold less than its default (a user over
    # pipe-user-pages-soft gets smaller ones); a short write falls back to feeding by a task.
    os.set_blocking(write_end, False)
    try:
        if len(data) > DEFAULT_PIPE_SIZE:
            fcntl.fcntl(write_end, F_SETPIPE_SZ, len(data))
        if os.write(write_end, data) != len(data):
            raise OSError(errno.EAGAIN, "pipe buffer smaller than its size said")
    except OSError:  # BlockingIOError included: the pipe is smaller than its size said
        os.close(read_end)
        return None
    finally:
        os.close(write_end)
    return read_end


def _stdin_argument(data: bytes | None, prefilled: int | None) -> int:
    if prefilled is not None:
        return prefilled
    return subprocess.DEVNULL if data is None else subprocess.PIPE


async def _feed_stdin(process: trio.Process, data: bytes) -> None:
    assert process.stdin is not None
    try:
        await process.stdin.send_all(data)
    except trio.BrokenResourceError:
        pass  # the command did not read all of its input; that is its business
    finally:
        await process.stdin.aclose()


def plugin_environment(plugin_dirs: Sequence[Path], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for checks and handlers: ``base`` with ``plugin_dirs`` first on PATH."""
    env = dict(os.environ if base is None else base)
    dirs = [str(d) for d in plugin_dirs]
    env["PATH"] = os.pathsep.join([*dirs, env.get("PATH", os.defpath)])
    return env


def with_env_vars(env: Mapping[str, str], env_vars: Sequence[str]) -> dict[str, str]:
    """``env`` plus a check's ``env_vars`` (``KEY=VALUE`` strings, Sensu's format)."""
    merged = dict(env)
    for item in env_vars:
        key, sep, value = item.partition("=")
        if sep and key:
            merged[key] = value
    return merged

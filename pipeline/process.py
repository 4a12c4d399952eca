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
import fcntl
import os
import select
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
#: /proc/sys/fs/pipe-max-size, 1 MiB by default); the rest of larger input is fed as it is read.
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


class _Execution:
    """One command's process and its pipes, watched by one wait of the event loop.

    The shell's exit (a pidfd), its output and, for input larger than the pipe holds, room in
    its stdin are registered in an epoll set of our own; the event loop waits for that one
    descriptor. Most commands are done after a single wait (exit and end of output together),
    with no task, nursery or stream object per pipe: at a few hundred commands a second those
    were most of this process's CPU per command.
    """

    def __init__(self, stdin: bytes | None, cap: int) -> None:
        self.popen: subprocess.Popen[bytes] | None = None
        self.chunks: list[bytes] = []
        self.cap = cap
        self.kept = 0
        self.dropped = 0
        self.exited = False
        self.eof = False
        self.epoll = select.epoll(3)
        self.output = self._output_write = self.stdin_read = self.stdin_write = self.exit_fd = -1
        self.pending = memoryview(b"")
        try:
            self.output, self._output_write = os.pipe2(os.O_CLOEXEC)
            self.stdin_read, self.stdin_write, self.pending = _stdin_pipe(stdin)
            self.epoll.register(self.output, select.EPOLLIN)
            if self.stdin_write >= 0:
                self.epoll.register(self.stdin_write, select.EPOLLOUT)
        except BaseException:
            self.close()
            raise

    async def spawn(self, argv: list[str], env: dict[str, str]) -> int:
        """Start the shell (in a worker thread: the fork waits for the child's exec); its pid."""
        stdin = subprocess.DEVNULL if self.stdin_read < 0 else self.stdin_read
        try:
            popen = await trio.to_thread.run_sync(self._popen, argv, stdin, env)
        finally:
            # The child has its copies.
            os.close(self._output_write)
            self._output_write = -1
            if self.stdin_read >= 0:
                os.close(self.stdin_read)
                self.stdin_read = -1
        self.popen = popen
        self.exit_fd = _exit_fd(popen.pid)
        self.epoll.register(self.exit_fd, select.EPOLLIN)
        return popen.pid

    def _popen(self, argv: list[str], stdin: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdin=stdin, stdout=self._output_write, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip

    async def complete(self, scope: Scope) -> None:
        """Until the shell exits, then what it left behind goes too (which also ends the
        output), then until the output ends."""
        await self.until_exited()
        await scope.leader_exited()
        await self.until_output_ends()

    async def until_exited(self) -> None:
        while not self.exited:
            await self._step()

    async def until_output_ends(self) -> None:
        while not self.eof:
            await self._step()

    async def _step(self) -> None:
        await trio.lowlevel.wait_readable(self.epoll.fileno())
        for fd, _ in self.epoll.poll(0):
            if fd == self.output:
                self._read()
            elif fd == self.exit_fd:
                self.exited = True
                self.epoll.unregister(fd)
                assert self.popen is not None
                self.popen.wait()  # reaps it at once: it has exited
            elif fd == self.stdin_write:
                self._feed()

    def _read(self) -> None:
        # Readable, so one read does not block; more waiting is seen at the next poll.
        data = os.read(self.output, 65536)
        if not data:
            self.eof = True
            self.epoll.unregister(self.output)
            return
        room = max(self.cap - self.kept, 0)
        if room:
            self.chunks.append(data[:room])
            self.kept += min(room, len(data))
        self.dropped += max(len(data) - room, 0)

    def _feed(self) -> None:
        try:
            written = os.write(self.stdin_write, self.pending[:DEFAULT_PIPE_SIZE])
        except BlockingIOError:
            return
        except BrokenPipeError:
            written = len(self.pending)  # the command did not read all of its input; its business
        self.pending = self.pending[written:]
        if not self.pending:
            self.epoll.unregister(self.stdin_write)
            os.close(self.stdin_write)
            self.stdin_write = -1

    async def terminate(self, scope: Scope) -> None:
        """SIGTERM everything in the scope, give the shell a moment, then SIGKILL whatever is left."""
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        scope.signal_all(signal.SIGTERM)
        with trio.move_on_after(TERMINATE_GRACE):
            await self.until_exited()
        await scope.kill_all()
        await self.until_exited()

    def close(self) -> None:
        # Only this task waited on these, and never on one it is closing: no notify_closing needed.
        for fd in (self.output, self._output_write, self.stdin_read, self.stdin_write, self.exit_fd):
            if fd >= 0:
                os.close(fd)
        self.output = self._output_write = self.stdin_read = self.stdin_write = self.exit_fd = -1
        self.epoll.close()

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


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
    execution = _Execution(stdin, output_cap)
    scope: Scope | None = None
    try:
        scope = current_containment().open_scope()
        scope.started(await execution.spawn(scope.argv(command), scope.environment(env)))
    except BaseException:
        execution.close()
        if scope is not None:
            with trio.CancelScope(shield=True):
                await scope.close()
        raise
    timed_out = False
    try:
        if timeout > 0:
            with trio.move_on_after(timeout) as deadline:
                await execution.complete(scope)
            timed_out = deadline.cancelled_caught
        else:  # no scope to enter and leave: most handlers and many checks set no timeout
            await execution.complete(scope)
    finally:
        # Most executions end with nothing left to kill: no shielded scope to enter for that.
        if not (execution.exited and scope.release_now()):
            with trio.CancelScope(shield=True):
                if not execution.exited:
                    await execution.terminate(scope)
                await scope.close()
        execution.close()
    duration = trio.current_time() - started
    text = execution.text
    if timed_out:
        return CommandResult(TIMED_OUT_STATUS, TIMED_OUT_OUTPUT + text, duration, True, execution.dropped)
    assert execution.popen is not None
    code = execution.popen.returncode
    assert code is not None  # the process was waited for above
    status = code if code >= 0 else 128 - code
    return CommandResult(status, text, duration, False, execution.dropped)


def _stdin_pipe(data: bytes | None) -> tuple[int, int, memoryview]:
    """(read end for the child, write end still to feed or -1, what is left to write); -1, -1
    when there is no input.

    As much as the pipe holds is written before the spawn (grown past its default 64 KiB up
    to PREFILL_LIMIT): one copy into the kernel and the write end closed, so most events need
    no feeding, no wakeup of a reader blocked on them. What does not fit is fed as the
    command reads it.
    """
    if data is None:
        return -1, -1, memoryview(b"")
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    # Never block the event loop: a pipe may hold less than its default (a user over
    # pipe-user-pages-soft gets smaller ones); what does not fit is fed later.
    try:
        os.set_blocking(write_end, False)
        if len(data) > DEFAULT_PIPE_SIZE:
            with contextlib.suppress(OSError):
                fcntl.fcntl(write_end, F_SETPIPE_SZ, min(len(data), PREFILL_LIMIT))
        try:
            written = os.write(write_end, data) if data else 0
        except BlockingIOError:
            written = 0
    except BaseException:
        os.close(read_end)
        os.close(write_end)
        raise
    if written == len(data):
        os.close(write_end)
        return read_end, -1, memoryview(b"")
    return read_end, write_end, memoryview(data)[written:]


def _exit_fd(pid: int) -> int:
    """A descriptor that becomes readable when process ``pid`` (our child) exits: its pidfd
    (Linux 5.3+), else the read end of a pipe a worker thread closes once waitid sees it exit
    (without reaping it: Popen.wait does that)."""
    with contextlib.suppress(OSError, AttributeError):
        return os.pidfd_open(pid)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)

    def watch() -> None:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        finally:
            os.close(write_end)

    trio.lowlevel.start_thread_soon(watch, lambda _: None)
    return read_end


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

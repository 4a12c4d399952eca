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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import outcome
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
#: How long the worker thread that spawned a command goes on waiting for it (exit, output,
#: nothing left behind) before it hands the wait to the event loop: most commands are done by
#: then, and a long-running one holds no thread.
THREAD_WAIT = 0.25
#: After the shell exited and what it left was killed, seconds until the scope is looked at
#: again while the output stays open, doubling up to RESCAN_MAX (see _Execution.complete).
RESCAN_FIRST = 0.05
RESCAN_MAX = 1.0
#: Commands waited for in worker threads at once (each holds its thread at most THREAD_WAIT
#: past its spawn); beyond that, a command's thread only spawns it, under trio's default
#: thread limiter, and the event loop waits for it. 16, the handler runner's processes at
#: once: an agent saturated with 800 checks a second did worse with 64 such threads (more of
#: them contending for the interpreter lock with the loop), as well with 16 as before. A count,
#: not a CapacityLimiter of our own: its acquire and release were about 5 % of the loop's CPU
#: per command.
THREADS = 16
_waiting_threads = 0


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

    That wait is first done by the worker thread that spawns the command, blocking on the set
    (with an eventfd in it by which a cancellation interrupts it), for up to THREAD_WAIT: a
    command done by then (most) costs the event loop's thread one hop and no wakeup of its
    own. On a busy machine the loop's one thread gets a core's share like any other thread;
    each wakeup per command it needed was a wait in the run queue, which is how the pipe
    handlers fell behind a plain spawn loop there. What is not done in the thread is waited
    for by the loop as before.
    """

    def __init__(self, stdin: bytes | None, cap: int) -> None:
        self.popen: subprocess.Popen[bytes] | None = None
        self.spawned = 0.0
        self.stdin = stdin
        self.chunks: list[bytes] = []
        self.cap = cap
        self.kept = 0
        self.dropped = 0
        self.exited = False
        self.eof = False
        #: The worker thread found the scope empty once the shell was reaped (see Scope.left_nothing).
        self.cleared = False
        #: Whether the worker thread's wait was interrupted (the caller was cancelled).
        self.woken = False
        self.output = self._output_write = self.stdin_read = self.stdin_write = self.exit_fd = self.wake = -1
        self.pending = memoryview(b"")
        # Made in the worker thread, with the rest (pipes, the input); None until then.
        self.epoll: select.epoll | None = None

    def _open(self) -> select.epoll:
        self.epoll = epoll = select.epoll(4)
        self.wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)  # a cancellation writes to it
        epoll.register(self.wake, select.EPOLLIN)
        self.output, self._output_write = os.pipe2(os.O_CLOEXEC)
        self.stdin_read, self.stdin_write, self.pending = _stdin_pipe(self.stdin)
        epoll.register(self.output, select.EPOLLIN)
        if self.stdin_write >= 0:
            epoll.register(self.stdin_write, select.EPOLLOUT)
        return epoll

    async def start(self, command: str, env: Mapping[str, str] | None, scope: Scope, timeout: float) -> None:
        """Spawn the shell in a worker thread, which then waits for it for up to THREAD_WAIT
        or the command's ``timeout`` (see the class); a cancellation of the caller interrupts
        that wait."""
        global _waiting_threads
        if _waiting_threads >= THREADS:
            await trio.to_thread.run_sync(self._run, command, env, scope, 0.0)
            return
        await trio.lowlevel.checkpoint_if_cancelled()  # as to_thread does: no spawn once cancelled
        _waiting_threads += 1
        try:
            wait = min(THREAD_WAIT, timeout) if timeout > 0 else THREAD_WAIT
            await _in_thread(lambda: self._run(command, env, scope, wait), self._interrupt)
        finally:
            _waiting_threads -= 1

    def _run(self, command: str, env: Mapping[str, str] | None, scope: Scope, wait: float) -> None:
        """In a worker thread: spawn (the fork waits for the child's exec), then wait up to
        ``wait``; once all is done, the descriptors are closed here too (run_command's
        close() then has nothing to do)."""
        epoll = self._open()
        stdin = subprocess.DEVNULL if self.stdin_read < 0 else self.stdin_read
        try:
            popen = self._popen(scope.argv(command), stdin, scope.environment(env))
        finally:
            # The child has its copies.
            os.close(self._output_write)
            self._output_write = -1
            if self.stdin_read >= 0:
                os.close(self.stdin_read)
                self.stdin_read = -1
        self.popen = popen
        self.spawned = time.monotonic()  # a timeout runs from here
        scope.started(popen.pid)
        self.exit_fd = _exit_fd(popen.pid)
        epoll.register(self.exit_fd, select.EPOLLIN)
        until = time.monotonic() + wait
        while not self.exited and self._block(epoll, until):
            pass
        if not self.exited or self.woken or not scope.left_nothing():
            return
        self.cleared = True  # nothing else can hold the output's write end: its end is near
        while not self.eof and self._block(epoll, until):
            pass
        if self.eof:
            self.close()

    def _block(self, epoll: select.epoll, until: float) -> bool:
        """One blocking wait of the worker thread; False once it must hand over to the loop."""
        left = until - time.monotonic()
        if left <= 0 or self.woken:
            return False
        self._dispatch(epoll, epoll.poll(left))
        return not self.woken

    def _interrupt(self) -> None:
        # Flag first: a thread that has not made its eventfd yet sees the flag before it waits.
        self.woken = True
        wake = self.wake
        if wake >= 0:
            with contextlib.suppress(OSError):
                os.eventfd_write(wake, 1)

    def _popen(self, argv: list[str], stdin: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdin=stdin, stdout=self._output_write, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip

    async def complete(self, scope: Scope) -> None:
        """Until the shell exits, then what it left behind goes too (which also ends the
        output), then until the output ends. While the output stays open after that, what is
        left is looked for again, at growing intervals: a scan of ``/proc`` (the fallback
        containment) can miss a process caught between ``setsid`` and its exec (its environment
        unreadable for a moment, its shell gone), which would hold the output until the timeout."""
        await self.until_exited()
        if self.cleared:
            await self.until_output_ends()
            return
        await scope.leader_exited()
        wait = RESCAN_FIRST
        while not self.eof:
            with trio.move_on_after(wait):
                await self.until_output_ends()
            if not self.eof:
                await scope.leader_exited()
                wait = min(wait * 2, RESCAN_MAX)

    async def until_exited(self) -> None:
        while not self.exited:
            await self._step()

    async def until_output_ends(self) -> None:
        while not self.eof:
            await self._step()

    async def _step(self) -> None:
        assert self.epoll is not None  # made before the spawn
        await trio.lowlevel.wait_readable(self.epoll.fileno())
        self._dispatch(self.epoll, self.epoll.poll(0))

    def _dispatch(self, epoll: select.epoll, ready: list[tuple[int, int]]) -> None:
        for fd, _ in ready:
            if fd == self.wake:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self.wake)
                self.woken = True
            elif fd == self.output:
                self._read(epoll)
            elif fd == self.exit_fd:
                self.exited = True
                epoll.unregister(fd)
                assert self.popen is not None
                self.popen.wait()  # reaps it at once: it has exited
            elif fd == self.stdin_write:
                self._feed(epoll)

    def _read(self, epoll: select.epoll) -> None:
        # Readable, so one read does not block; more waiting is seen at the next poll.
        data = os.read(self.output, 65536)
        if not data:
            self.eof = True
            epoll.unregister(self.output)
            return
        room = max(self.cap - self.kept, 0)
        if room:
            self.chunks.append(data[:room])
            self.kept += min(room, len(data))
        self.dropped += max(len(data) - room, 0)

    def _feed(self, epoll: select.epoll) -> None:
        try:
            written = os.write(self.stdin_write, self.pending[:DEFAULT_PIPE_SIZE])
        except BlockingIOError:
            return
        except BrokenPipeError:
            written = len(self.pending)  # the command did not read all of its input; its business
        self.pending = self.pending[written:]
        if not self.pending:
            epoll.unregister(self.stdin_write)
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
        # Only this execution waited on these, and never on one it is closing: no
        # notify_closing needed. Each is forgotten before it is closed: a cancellation's
        # interrupt (on the loop's thread) must never write to a number reused meanwhile.
        fds = (self.output, self._output_write, self.stdin_read, self.stdin_write, self.exit_fd, self.wake)
        self.output = self._output_write = self.stdin_read = self.stdin_write = self.exit_fd = self.wake = -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)
        if self.epoll is not None:
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
        await execution.start(command, env, scope, timeout)
    except BaseException:
        execution.close()
        if scope is not None:
            with trio.CancelScope(shield=True):
                await scope.close()
        raise
    timed_out = False
    try:
        if timeout > 0:
            # What the spawning thread waited of it counts (the thread itself stops at the timeout).
            with trio.move_on_after(max(timeout - (time.monotonic() - execution.spawned), 0.0)) as deadline:
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


async def _in_thread(fn: Callable[[], None], interrupt: Callable[[], None]) -> None:
    """Run ``fn`` in a worker thread and wait for it; a cancellation calls ``interrupt`` (which
    makes ``fn`` return soon) and is raised at the caller's next checkpoint, once ``fn`` returned."""
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()

    def deliver(result: outcome.Outcome[None]) -> None:
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)

    def abort(_: object) -> trio.lowlevel.Abort:
        interrupt()
        return trio.lowlevel.Abort.FAILED

    trio.lowlevel.start_thread_soon(fn, deliver)
    await trio.lowlevel.wait_task_rescheduled(abort)


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

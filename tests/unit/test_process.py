"""Commands run through /bin/sh with a timeout that kills the whole process group."""

from __future__ import annotations

import os
import signal

import pytest
import trio

from pipeline.process import TIMED_OUT_OUTPUT, plugin_environment, run_command, with_env_vars
from tests.support import wait_for_exit


async def test_exit_status_and_combined_output() -> None:
    result = await run_command("echo out; echo err >&2; exit 3")
    assert result.status == 3
    assert result.output == "out\nerr\n"
    assert not result.timed_out


async def test_stdin_is_delivered() -> None:
    result = await run_command("cat", stdin=b'{"a": 1}')
    assert result.output == '{"a": 1}'


@pytest.mark.parametrize("size", [100_000, 3 * 1024 * 1024])
async def test_large_stdin_is_delivered_whole(size: int) -> None:
    """Past 64 KiB the pipe is grown to hold it; past 1 MiB a task feeds it as it is read."""
    result = await run_command("wc -c", stdin=b"x" * size)
    assert result.output.strip() == str(size)


async def test_unread_stdin_does_not_fail_the_command() -> None:
    for size in (10, 3 * 1024 * 1024):
        assert (await run_command("exit 0", stdin=b"x" * size)).status == 0


async def test_timeout_reports_sensu_status_and_kills_the_whole_group(tmp_path: trio.Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The shell starts a grandchild that would outlive a kill of the shell alone.
    result = await run_command(f"echo partial; sleep 60 & echo $! > {pidfile}; wait", timeout=0.5)
    assert result.timed_out
    assert result.status == 2
    assert result.output == TIMED_OUT_OUTPUT + "partial\n"
    await wait_for_exit(int(pidfile.read_text()))


async def test_killed_by_signal_reports_128_plus_signal() -> None:
    result = await run_command("kill -TERM $$")
    assert result.status == 128 + signal.SIGTERM


async def test_output_beyond_the_cap_is_dropped_and_counted() -> None:
    result = await run_command("head -c 5000 /dev/zero", output_cap=1000)
    assert len(result.output) == 1000
    assert result.truncated_bytes == 4000


async def test_environment_and_plugin_path(tmp_path: trio.Path) -> None:
    plugin = tmp_path / "my_check"
    plugin.write_text('#!/bin/sh\necho "plugin $GREETING"\n')
    plugin.chmod(0o755)
    env = with_env_vars(plugin_environment([tmp_path]), ["GREETING=hello", "IGNORED"])
    result = await run_command("my_check", env=env)
    assert result.output == "plugin hello\n"


async def test_output_larger_than_a_pipe_holds_is_read_while_the_command_runs() -> None:
    """The command blocks writing until it is read: its exit can only come after the reads."""
    result = await run_command("head -c 300000 /dev/zero; echo done >&2", output_cap=400_000)
    assert len(result.output) == 300_005
    assert result.output.endswith("done\n")


async def test_a_cancelled_caller_leaves_nothing_running(tmp_path: trio.Path) -> None:
    pidfile = tmp_path / "child.pid"
    with trio.move_on_after(0.5) as cancelled:
        await run_command(f"sleep 60 & echo $! > {pidfile}; wait")
    assert cancelled.cancelled_caught
    await wait_for_exit(int(pidfile.read_text()))


async def test_without_pidfds_exit_and_timeout_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux before 5.3 has no pidfd_open: a thread's waitid tells the shell's exit instead."""

    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr("os.pidfd_open", no_pidfd)
    assert (await run_command("echo hi; exit 4")).status == 4
    result = await run_command("echo partial; sleep 60", timeout=0.3)
    assert (result.timed_out, result.output) == (True, TIMED_OUT_OUTPUT + "partial\n")


async def _pid_from(fifo: str) -> int:
    """The pid a command writes into ``fifo``, once it has (the FIFO becomes readable then)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        await trio.lowlevel.wait_readable(fd)
        return int(os.read(fd, 64))
    finally:
        os.close(fd)


async def test_a_cancellation_interrupts_the_spawning_threads_wait(
    tmp_path: trio.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker thread that spawned a command waits for it; a cancelled caller does not wait
    until that wait runs out (60 s here), and nothing of the command is left running."""
    monkeypatch.setattr("pipeline.process.THREAD_WAIT", 60.0)
    fifo = str(tmp_path / "pid")
    os.mkfifo(fifo)
    found: list[int] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def cancel_once_started() -> None:
                found.append(await _pid_from(fifo))
                nursery.cancel_scope.cancel()

            nursery.start_soon(cancel_once_started)
            nursery.start_soon(run_command, f"sleep 60 & echo $! > {fifo}; wait")
    await wait_for_exit(found[0])


async def test_a_timeout_interrupts_the_spawning_threads_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipeline.process.THREAD_WAIT", 60.0)
    with trio.fail_after(10):
        result = await run_command("echo partial; sleep 60", timeout=0.2)
    assert (result.timed_out, result.output) == (True, TIMED_OUT_OUTPUT + "partial\n")


async def test_a_command_outlasting_the_threads_wait_is_waited_for_by_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pipeline.process.THREAD_WAIT", 0.0)  # the thread only spawns
    result = await run_command("cat; sleep 0.1; echo done; exit 5", stdin=b"in ")
    assert (result.status, result.output) == (5, "in done\n")


async def test_beyond_the_threads_count_a_thread_only_spawns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipeline.process.THREADS", 0)
    assert (await run_command("echo hi; exit 4")).status == 4
    result = await run_command("echo partial; sleep 60", timeout=0.3)
    assert (result.timed_out, result.output) == (True, TIMED_OUT_OUTPUT + "partial\n")


async def test_an_already_cancelled_caller_spawns_nothing(tmp_path: trio.Path) -> None:
    marker = tmp_path / "ran"
    with trio.CancelScope() as scope:
        scope.cancel()
        await run_command(f"touch {marker}")
    assert not marker.exists()

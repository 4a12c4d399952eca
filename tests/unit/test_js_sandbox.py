"""The JavaScript sandbox: runaways and memory bombs are stopped and reported, nothing outside
the ECMAScript built-ins is reachable, one evaluation cannot change the next, and evaluation
works from several threads at once (pipeline/core/js/engine.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.core.js import Limits, compile_filter
from pipeline.errors import PipelineError, ScriptError, ScriptOutOfMemory, ScriptTimeout
from tests.unit.js_events import MONDAY_EVENING, make_event

NOW = MONDAY_EVENING


def evaluate(expression: str, limits: Limits | None = None) -> tuple[bool, list[ScriptError]]:
    verdict = compile_filter([expression], "spec.expressions", limits=limits).evaluate(make_event(status=2), NOW)
    return verdict.passed, verdict.errors


def still_works() -> None:
    assert evaluate("event.check.status === 2 && hour(7323) === 2") == (True, [])


@pytest.mark.parametrize(
    "runaway",
    ["while (true) {}", "for (;;) { Math.random(); }", "(function f() { while (1) { f; } })()", "while (event) {}"],
)
def test_a_runaway_is_stopped_at_the_time_limit_and_reported(runaway: str) -> None:
    started = time.monotonic()
    passed, errors = evaluate(runaway, Limits(time=0.05))
    elapsed = time.monotonic() - started
    assert elapsed < 2.0  # QuickJS checks its clock every few thousand instructions
    assert passed  # skipped, as Sensu Go skips an expression that fails
    assert len(errors) == 1
    error = errors[0]
    assert isinstance(error, ScriptTimeout)
    assert isinstance(error, PipelineError)
    assert (error.source, error.limit) == (runaway, 0.05)
    assert "stopped after the time limit of 0.05 s" in str(error)
    still_works()


@pytest.mark.parametrize(
    "bomb",
    [
        "var a = []; while (true) a.push(1)",
        "var s = 'x'; while (true) s = s + s",
        "var grow = []; while (true) grow.push(new Array(100000).join('y'))",
        "globalThis.kept = []; for (;;) kept.push({a: [1, 2, 3], b: 'filler filler filler'})",
    ],
)
def test_a_memory_bomb_is_stopped_at_the_memory_limit_and_the_next_evaluation_works(bomb: str) -> None:
    passed, errors = evaluate(bomb, Limits(time=5.0, memory=8 << 20))
    assert passed
    assert len(errors) == 1
    assert isinstance(errors[0], ScriptOutOfMemory), errors[0]
    assert errors[0].limit == 8 << 20
    still_works()
    # what the bomb kept in a global is gone with its context
    assert evaluate("typeof kept === 'undefined' && typeof a === 'undefined'") == (True, [])


def test_deep_recursion_is_an_error_not_a_crash() -> None:
    passed, errors = evaluate("(function f(n) { return f(n + 1) + 1; })(0)")
    assert passed
    assert errors[0].message == "InternalError: stack overflow"
    still_works()


@pytest.mark.parametrize(
    "name",
    [
        "require",
        "process",
        "std",
        "os",
        "module",
        "exports",
        "fetch",
        "XMLHttpRequest",
        "print",
        "setTimeout",
        "Deno",
        "Bun",
        "python",
    ],
)
def test_nothing_but_the_ecmascript_built_ins_is_reachable(name: str) -> None:
    assert evaluate(f"typeof {name} === 'undefined' && typeof globalThis.{name} === 'undefined'") == (True, [])


def test_console_is_there_as_in_sensu_s_engine_and_writes_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    # Sensu's assets log on their error paths; Otto has console.log, so they then return false
    logged = "console.log('failed to get check annotations:') === undefined && console.error('x') === undefined"
    assert evaluate(logged) == (True, [])
    assert capfd.readouterr() == ("", "")
    assert evaluate("console.log = function () { return 1; }; console.log() === undefined") == (True, [])


def test_modules_cannot_be_imported() -> None:
    with pytest.raises(Exception, match="SyntaxError"):
        compile_filter(["import os from 'os'; true"], "spec.expressions")
    # a dynamic import is a promise that nothing ever settles: no module loader, no job queue run
    loaded = "var r = 'none'; import('os').then(function () { r = 'loaded'; }, function () { r = 'refused'; }); r"
    assert evaluate(loaded + " === 'none'") == (True, [])
    assert evaluate("typeof r === 'undefined' || r === 'none'") == (True, [])
    still_works()


def test_an_expression_cannot_change_what_the_next_one_sees() -> None:
    assert evaluate("hour = function () { return 99; }; weekday = null; true")[0]
    assert evaluate("JSON.parse = function () { return {check: {status: 0}}; }; true")[0]
    assert evaluate("event.check.status = 0; event.check.labels.injected = 'yes'; true")[0]
    assert evaluate(
        "hour(7323) === 2 && weekday(0) === 4 && event.check.status === 2 && event.check.labels.injected === undefined"
    ) == (True, [])


def test_evaluation_works_from_several_threads_at_once() -> None:
    # the integrator may evaluate in worker threads: each thread has its own context
    expression = (
        "event.check.status != 0 && event.entity.labels.environment === 'production' && event.check.occurrences <= 3"
    )
    compiled = compile_filter([expression], "spec.expressions")
    events = [
        (make_event(status=2, occurrences=1, entity_labels={"environment": "production"}), True),
        (make_event(status=2, occurrences=9, entity_labels={"environment": "production"}), False),
        (make_event(status=2, occurrences=1, entity_labels={"environment": "staging"}), False),
        (make_event(status=0, occurrences=1), False),
    ]
    start = threading.Barrier(8)

    def work(offset: int) -> int:
        start.wait(timeout=10)
        wrong = 0
        for i in range(300):
            event, expected = events[(i + offset) % len(events)]
            verdict = compiled.evaluate(event, NOW)
            wrong += verdict.passed is not expected or bool(verdict.errors)
        return wrong

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(work, range(8), timeout=60)) == [0] * 8


def test_a_runaway_in_one_thread_does_not_stop_another() -> None:
    started, done = threading.Event(), threading.Event()
    outcome: list[object] = []

    def runaway() -> None:
        started.set()
        outcome.append(evaluate("while (true) {}", Limits(time=1.0)))
        done.set()

    thread = threading.Thread(target=runaway)
    thread.start()
    try:
        assert started.wait(timeout=10)
        for _ in range(50):
            still_works()
        # QuickJS lets go of the GIL while it runs: these ran while the runaway was spinning
        assert not done.is_set()
    finally:
        thread.join(timeout=10)
    assert done.is_set()
    assert isinstance(outcome[0][1][0], ScriptTimeout)  # type: ignore[index]

"""Filter expression evaluations per second on one core: each embedded JavaScript engine that is
installed, pipeline's own evaluator (pipeline.core.js), and the peer, a plain Python lambda
doing the same three comparisons.

Every engine gets the same work per evaluation: the event's JSON text as Sensu Go synthesizes it
for filters (a realistic check event of ~3.5 KB: entity with system facts and labels, check with
21 history entries, labels and annotations) goes into the engine, is parsed there, and the
typical three-clause expression

    event.check.status != 0 && event.entity.labels.environment === 'production'
        && event.check.occurrences <= 3

is evaluated to a boolean that comes back to Python. The event's JSON is made once (as the
backend makes it once per event, not once per filter), so the figures include passing the
event in but not encoding it. The peer parses the event's JSON with json.loads each time.

pipeline.core.js is measured from the Event model (synthesis and JSON included in every
evaluation): it sends an expression only the parts of the event its paths reach (see
pipeline/core/js/synth.py). "whole event" is its worst case, an expression that names `event`
alone (as `fatigue_check(event)` does) and so gets the whole synthesized event.

Engines not installed are reported as such; install them with
``pip install quickjs mini-racer dukpy js2py pythonmonkey``.

Usage: python -m bench.js_filters [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from bench.table import Row, record
from pipeline.model import Event

EXPRESSION = (
    "event.check.status != 0 && event.entity.labels.environment === 'production' && event.check.occurrences <= 3"
)


def realistic_event() -> Event:
    data: dict[str, Any] = {
        "timestamp": 1_800_000_000,
        "id": "4e9f2f5c-2b8a-4f8e-9d0a-6f3c1a2b7c9d",
        "entity": {
            "entity_class": "agent",
            "metadata": {
                "name": "web-01.example.com",
                "namespace": "default",
                "labels": {"environment": "production", "team": "web", "region": "eu-west-1"},
                "annotations": {"runbook": "https://wiki.example.com/web"},
            },
            "system": {
                "hostname": "web-01",
                "os": "linux",
                "platform": "debian",
                "platform_family": "debian",
                "platform_version": "12.5",
                "arch": "amd64",
                "network": {
                    "interfaces": [
                        {"name": "lo", "addresses": ["127.0.0.1/8", "::1/128"]},
                        {
                            "name": "eth0",
                            "mac": "52:54:00:12:34:56",
                            "addresses": ["10.0.0.11/24", "fe80::5054:ff:fe12:3456/64"],
                        },
                    ]
                },
            },
            "subscriptions": ["linux", "web", "entity:web-01.example.com"],
            "last_seen": 1_800_000_000,
            "sensu_agent_version": "6.10.0",
        },
        "check": {
            "metadata": {
                "name": "check-disk",
                "namespace": "default",
                "labels": {"severity": "high"},
                "annotations": {"fatigue_check/occurrences": "3", "fatigue_check/interval": "3600"},
            },
            "command": "check_disk -w 20% -c 10% -p /",
            "handlers": ["slack", "pagerduty"],
            "interval": 60,
            "subscriptions": ["linux"],
            "timeout": 30,
            "publish": True,
            "executed": 1_800_000_000,
            "issued": 1_800_000_000,
            "duration": 0.021,
            "output": "DISK CRITICAL - free space: / 1843 MB (9% inode=91%);| /=18276MB;16125;18140;0;20156\n",
            "status": 2,
            "state": "failing",
            "occurrences": 2,
            "occurrences_watermark": 2,
            "history": [{"status": 0 if i < 19 else 2, "executed": 1_800_000_000 - 60 * (20 - i)} for i in range(21)],
            "total_state_change": 5,
            "last_ok": 1_799_999_880,
        },
    }
    return Event.from_dict(data)


def peer_lambda() -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e["check"]["status"] != 0
        and e["entity"]["metadata"].get("labels", {}).get("environment") == "production"
        and e["check"]["occurrences"] <= 3
    )


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Evaluations per second of ``fn`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(50):
        fn()
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        n += 200
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


# -- one setup per engine: each returns a no-argument evaluation of EXPRESSION on the event ------


def setup_quickjs(event_json: str) -> Callable[[], object]:
    import quickjs

    context = quickjs.Context()
    context.set_time_limit(0.1)
    context.set_memory_limit(32 << 20)
    context.eval("function run(src, e) { globalThis.event = JSON.parse(e); return !!(0, eval)(src); }")
    run = context.get("run")
    return lambda: run(EXPRESSION, event_json)


def setup_mini_racer(event_json: str) -> Callable[[], object]:
    from py_mini_racer import MiniRacer

    racer = MiniRacer()
    racer.eval("function run(src, e) { globalThis.event = JSON.parse(e); return !!(0, eval)(src); }")
    return lambda: racer.call("run", EXPRESSION, event_json, timeout=100)


def setup_dukpy(event_json: str) -> Callable[[], object]:
    import dukpy

    interpreter = dukpy.JSInterpreter()
    code = "var event = JSON.parse(dukpy['e']); !!(0, eval)(dukpy['src'])"
    return lambda: interpreter.evaljs(code, e=event_json, src=EXPRESSION)


def setup_js2py(event_json: str) -> Callable[[], object]:
    import js2py

    run = js2py.eval_js("(function (src, e) { event = JSON.parse(e); return !!eval(src); })")
    return lambda: run(EXPRESSION, event_json)


def setup_pythonmonkey(event_json: str) -> Callable[[], object]:
    import pythonmonkey

    run = pythonmonkey.eval("(function (src, e) { globalThis.event = JSON.parse(e); return !!(0, eval)(src); })")
    return lambda: run(EXPRESSION, event_json)


ENGINES: dict[str, Callable[[str], Callable[[], object]]] = {
    "quickjs (QuickJS)": setup_quickjs,
    "mini-racer (V8)": setup_mini_racer,
    "dukpy (Duktape)": setup_dukpy,
    "pythonmonkey (SpiderMonkey)": setup_pythonmonkey,
    "js2py (JS translated to Python)": setup_js2py,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    args = parser.parse_args()

    from pipeline.core.js import compile_filter, filter_input

    event = realistic_event()
    # what Sensu Go's filters see (metadata lifted, empty fields present), as the engines get it
    event_json = filter_input(event).json()
    print(f"synthesized event JSON: {len(event_json)} bytes; expression: {EXPRESSION}")

    as_dict = json.loads(event.to_json())
    peer = peer_lambda()
    peer_parsed = rate(lambda: peer(as_dict), args.seconds)
    event_bytes = event.to_json()
    peer_from_json = rate(lambda: peer(json.loads(event_bytes)), args.seconds)
    print(f"{'peer: Python lambda on a parsed dict':44} {peer_parsed:>12,.0f} /s")
    print(f"{'peer: Python lambda, json.loads each time':44} {peer_from_json:>12,.0f} /s   (the peer below)")

    rows: list[tuple[str, float | None, str]] = []
    for name, setup in ENGINES.items():
        try:
            evaluate = setup(event_json)
            if evaluate() is not True:
                raise AssertionError(f"{name} answered {evaluate()!r}, expected True")
        except ImportError as exc:
            rows.append((name, None, f"not installed ({exc.name})"))
            continue
        seconds = args.seconds if "js2py" not in name else min(args.seconds, 1.0)
        rows.append((name, rate(evaluate, seconds), ""))

    now = 1_800_000_030.0
    compiled = compile_filter([EXPRESSION], "spec.expressions")
    assert compiled.evaluate(event, now).passed
    rows.append(("pipeline.core.js, from the Event", rate(lambda: compiled.evaluate(event, now), args.seconds), ""))
    # the same clauses behind a helper: the expression names `event` alone, so gets all of it
    whole = compile_filter([f"(function (event) {{ return {EXPRESSION}; }})(event)"], "spec.expressions")
    assert whole.evaluate(event, now).passed
    rows.append(("pipeline.core.js, whole event", rate(lambda: whole.evaluate(event, now), args.seconds), ""))

    for name, figure, note in rows:
        if figure is None:
            print(f"{name:44} {'-':>12}      {note}")
        else:
            print(f"{name:44} {figure:>12,.0f} /s   {figure / peer_from_json:6.2f}x the peer")
            if name.startswith("pipeline"):
                record(Row("js_filters", name, figure, "evaluations/s", "Python lambda + json.loads", peer_from_json))


if __name__ == "__main__":
    main()

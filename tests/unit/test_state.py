"""Check state exactly as Sensu Go 6.x computes it, plus detectable flapping transitions."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.state import HISTORY_LIMIT, apply_result, total_state_change
from pipeline.model import Check, CheckHistory, ObjectMeta


def result(status: int, executed: int = 0, low: int = 0, high: int = 0) -> Check:
    return Check(
        metadata=ObjectMeta(name="c"),
        status=status,
        executed=executed,
        low_flap_threshold=low,
        high_flap_threshold=high,
    )


def run(statuses: list[int], low: int = 0, high: int = 0) -> list[Check]:
    """Every stored check after each result of ``statuses`` (executed = 1000 + index)."""
    states: list[Check] = []
    for i, status in enumerate(statuses):
        states.append(apply_result(result(status, 1000 + i, low, high), states[-1] if states else None))
    return states


def history(statuses: list[int]) -> list[CheckHistory]:
    return [CheckHistory(s, i) for i, s in enumerate(statuses)]


def toggles(mask: list[bool]) -> list[int]:
    """21 statuses whose 20 transitions change exactly where ``mask`` is true."""
    statuses = [0]
    for change in mask:
        statuses.append(1 - statuses[-1] if change else statuses[-1])
    return statuses


def test_sensu_occurrences_and_watermark_table() -> None:
    # Sensu Go's integration test and documentation: (status, occurrences, watermark).
    table = [(0, 1, 1), (0, 2, 2), (1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 1, 3), (2, 2, 3), (2, 3, 3),
             (2, 4, 4), (0, 1, 4), (2, 1, 1)]  # fmt: skip
    states = run([s for s, _, _ in table])
    assert [(c.status, c.occurrences, c.occurrences_watermark) for c in states] == table


def test_sensu_flapping_vector_gives_34() -> None:
    assert total_state_change(history([0, 0, 0, 1, 2, 3, 3, 3, 3, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 2, 2])) == 34


def test_nothing_until_21_results_and_maximum_98() -> None:
    assert total_state_change(history([0, 1] * 10)) == 0
    assert total_state_change(history([i % 2 for i in range(21)])) == 98  # float64 would give 99


def test_float32_arithmetic_of_go_is_reproduced() -> None:
    # The weights of these transitions add up to 9.4000...02: Go's float32 gives 46, float64 47.
    mask = [False, True, True, True, False, True, True, True, True, True,
            False, False, False, True, False, False, True, False, False, False]  # fmt: skip
    assert total_state_change(history(toggles(mask))) == 46


def test_history_keeps_the_last_21() -> None:
    states = run(list(range(30)))
    assert [h.status for h in states[-1].history] == list(range(9, 30))
    assert states[-1].history[-1] == CheckHistory(29, 1029)


def test_state_and_last_ok() -> None:
    states = run([0, 1, 2, 0])
    assert [c.state for c in states] == ["passing", "failing", "failing", "passing"]
    assert [c.last_ok for c in states] == [1000, 1000, 1000, 1003]


def test_flapping_state_start_and_end_are_each_reported_once() -> None:
    statuses = [0] * 5 + [0, 1] * 10 + [0] * 25
    states = run(statuses, low=10, high=30)
    flapping = [c.state == "flapping" for c in states]
    assert any(flapping)
    starts = [i for i, c in enumerate(states) if c.is_flapping_start]
    ends = [i for i, c in enumerate(states) if c.is_flapping_end]
    assert starts == [flapping.index(True)]
    assert ends == [len(flapping) - flapping[::-1].index(True)]
    # last_ok is frozen while flapping, as in Sensu Go.
    first = starts[0]
    assert all(c.last_ok == states[first - 1].last_ok for c in states[first : ends[0]])


def test_no_flapping_unless_both_thresholds_are_set() -> None:
    alternating = [i % 2 for i in range(25)]
    assert all(c.state != "flapping" for c in run(alternating, low=0, high=30))
    assert all(c.state != "flapping" for c in run(alternating, low=10, high=0))
    assert run(alternating, low=10, high=30)[-1].state == "flapping"


def test_inputs_are_not_changed() -> None:
    previous = run([0, 1])[-1]
    incoming = result(2, 5000)
    before = (copy.deepcopy(previous), copy.deepcopy(incoming))
    merged = apply_result(incoming, previous)
    assert (previous, incoming) == before
    assert merged.history is not previous.history


def reference_model(statuses: list[int]) -> list[tuple[int, int, int]]:
    """A direct restatement of Sensu's rules over the full, uncapped sequence."""
    out = []
    occurrences = watermark = 0
    for i, status in enumerate(statuses):
        occurrences = occurrences + 1 if i > 0 and statuses[i - 1] == status else 1
        if i > 0 and status != 0 and statuses[i - 1] == 0:
            watermark = 1
        elif occurrences > watermark:
            watermark += 1
        window = statuses[max(0, i - 20) : i + 1]
        if len(window) < 21:
            tsc = 0
        else:
            weights = [0.80 + 0.02 * k for k in range(20)]
            changes = sum(w for k, w in enumerate(weights) if window[k + 1] != window[k])
            tsc = int(changes * 5 + 1e-9) if changes * 5 < 98.5 else 98
        out.append((occurrences, watermark, tsc))
    return out


@given(st.lists(st.integers(0, 3), min_size=1, max_size=60))
def test_invariants_against_a_reference_model(statuses: list[int]) -> None:
    states = run(statuses, low=20, high=40)
    expected = reference_model(statuses)
    for i, (check, (occurrences, watermark, tsc)) in enumerate(zip(states, expected, strict=True)):
        assert len(check.history) == min(i + 1, HISTORY_LIMIT)
        assert [h.status for h in check.history] == statuses[max(0, i - 20) : i + 1]
        assert (check.occurrences, check.occurrences_watermark) == (occurrences, watermark)
        assert abs(check.total_state_change - tsc) <= 1  # the reference ignores float32 rounding
        assert 0 <= check.total_state_change <= 98
        assert check.state == (
            "flapping" if check.total_state_change >= 40 else "passing" if statuses[i] == 0 else "failing"
        )
        if check.status != 0:
            assert check.occurrences_watermark >= check.occurrences


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_first_result_merges_with_itself(status: int) -> None:
    first = apply_result(result(status, 1000), None)
    assert first.history == [CheckHistory(status, 1000)]
    assert (first.occurrences, first.occurrences_watermark) == (1, 1)
    assert first.last_ok == (1000 if status == 0 else 0)
    assert not first.is_flapping_start

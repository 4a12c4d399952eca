"""Check state exactly as Sensu Go 6.x computes it, plus detectable flapping transitions."""

from __future__ import annotations

import copy
import ctypes
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.state import HISTORY_LIMIT, apply_result, is_flapping, total_state_change
from pipeline.model import FAILING, FLAPPING, PASSING, Check, CheckHistory, ObjectMeta

# Sensu's fixtures flap at 20/60 (core/v2 FixtureCheckConfig).
LOW, HIGH = 20, 60


def result(status: int, executed: int = 0, low: int = 0, high: int = 0, **fields: object) -> Check:
    check = Check(metadata=ObjectMeta(name="c"), status=status, executed=executed)
    check.low_flap_threshold, check.high_flap_threshold = low, high
    for name, value in fields.items():
        setattr(check, name, value)
    return check


def run(statuses: list[int], low: int = 0, high: int = 0) -> list[Check]:
    """The stored check after each result of ``statuses``; result ``i`` ran at ``1000 + i``."""
    states: list[Check] = []
    for i, status in enumerate(statuses):
        states.append(apply_result(result(status, 1000 + i, low, high), states[-1] if states else None))
    return states


def history(statuses: list[int]) -> list[CheckHistory]:
    return [CheckHistory(status, i) for i, status in enumerate(statuses)]


def toggles(changes: str) -> list[int]:
    """21 statuses whose 20 transitions (oldest first) change where ``changes`` has a 1."""
    statuses = [0]
    for change in changes:
        statuses.append(1 - statuses[-1] if change == "1" else statuses[-1])
    return statuses


# -- Sensu Go's own test vectors ----------------------------------------------------------------


def test_sensu_occurrences_and_watermark_table() -> None:
    # sensu-go's integration test and the docs' table: (status, occurrences, watermark).
    table = [(0, 1, 1), (0, 2, 2), (1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 1, 3), (2, 2, 3), (2, 3, 3),
             (2, 4, 4), (0, 1, 4), (2, 1, 1)]  # fmt: skip
    states = run([status for status, _, _ in table])
    assert [(c.status, c.occurrences, c.occurrences_watermark) for c in states] == table


def test_occurrences_stay_at_the_top_of_int64() -> None:
    """A first result brings its own counts: one past int64 was stored, and then refused by every
    read of the check (its event 201'd, then never listed)."""
    top = 2**63 - 1
    first = apply_result(result(2, 1000, occurrences=top, occurrences_watermark=top, history=history([2])), None)
    assert (first.occurrences, first.occurrences_watermark) == (top, top)
    assert apply_result(result(2, 1001), first).occurrences == top


def test_sensu_total_state_change_vectors() -> None:
    # core/v2 flapping_test.go TestTotalStateChange.
    assert total_state_change([CheckHistory()] * 20) == 0
    assert total_state_change(history([0] * 21)) == 0
    assert total_state_change(history([0, 0, 0, 1, 2, 3, 3, 3, 3, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 2, 2])) == 34


@pytest.mark.parametrize(
    ("low", "high", "total", "flapping"),
    [
        (0, 0, 99, False),  # low_flap_threshold not configured
        (10, 0, 99, False),  # high_flap_threshold not configured
        (10, 30, 35, True),  # check is now flapping
        (10, 30, 30, True),  # the high threshold itself counts
        (10, 30, 5, False),  # check is not flapping
        # Sensu's "still flapping" case (15 > low) needs history[].flapping, which Sensu never sets.
        (10, 30, 15, False),
    ],
)
def test_sensu_is_flapping_vectors(low: int, high: int, total: int, flapping: bool) -> None:
    assert is_flapping(result(0, low=low, high=high), total) is flapping


def test_sensu_merge_with_appends_the_new_result() -> None:
    # core/v2 check_test.go TestMergeWith: a full previous history, an incoming one that is empty.
    previous = result(1, 100, LOW, HIGH, history=[CheckHistory(0, 40 - i) for i in range(21)], state=PASSING)
    merged = apply_result(result(0, 101, LOW, HIGH), previous)
    assert len(merged.history) == HISTORY_LIMIT
    assert merged.history[20] == CheckHistory(0, 101)
    assert merged.history[:20] == previous.history[1:]


def test_sensu_check_merge_flaps_at_98() -> None:
    # core/v2 check_test.go TestCheckMerge: every transition changes status.
    previous = result(0, 100, LOW, HIGH, history=history([1 - i % 2 for i in range(21)]))
    previous.occurrences = previous.occurrences_watermark = 1
    merged = apply_result(result(0, 101, LOW, HIGH), previous)
    assert (merged.total_state_change, merged.state) == (98, FLAPPING)
    assert (merged.occurrences, merged.occurrences_watermark) == (1, 1)


# -- total_state_change: Go's float32 arithmetic -------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "go", "float64"),
    [
        ("11111111111111111111", 98, 99),  # the maximum: weights sum to 19.8
        ("00111111101100100000", 46, 47),  # weights sum to 9.4: float32 rounds down
        ("00001111100000000000", 22, 23),  # 4.6
        ("10111111111100010000", 56, 55),  # 11.2: float32 rounds up
        ("11111111111100010001", 66, 65),  # 13.2
        ("11111111111111110000", 76, 76),  # 15.2: the same either way
    ],
)
def test_go_float32_arithmetic_is_reproduced(changes: str, go: int, float64: int) -> None:
    statuses = toggles(changes)
    weights = accumulated_weights()
    plain = sum(w for w, c in zip(weights, changes, strict=True) if c == "1")
    assert int(plain / 20 * 100) == float64  # what a float64 port would store
    assert total_state_change(history(statuses)) == go


def test_alternating_statuses_give_the_maximum_98() -> None:
    assert total_state_change(history([i % 2 for i in range(21)])) == 98
    assert total_state_change(history([i % 4 for i in range(21)])) == 98  # any change counts, not only to OK


def test_nothing_until_21_results() -> None:
    assert total_state_change(history([i % 2 for i in range(20)])) == 0
    assert [c.total_state_change for c in run([i % 2 for i in range(21)])][-2:] == [0, 98]


def test_newer_changes_weigh_more() -> None:
    assert total_state_change(history([0] * 20 + [1])) == 5  # weight 1.18
    assert total_state_change(history([0] + [1] * 20)) == 4  # weight 0.80


# -- history, state, last_ok ---------------------------------------------------------------------


def test_history_keeps_the_last_21_results() -> None:
    states = run([i % 4 for i in range(30)])
    assert [len(c.history) for c in states] == [min(i + 1, 21) for i in range(30)]
    assert states[-1].history == [CheckHistory(i % 4, 1000 + i) for i in range(9, 30)]


def test_a_first_result_appends_to_the_history_it_carries() -> None:
    carried = history([2, 2, 1])
    first = apply_result(result(0, 50, history=carried), None)
    assert first.history == [*carried, CheckHistory(0, 50)]
    assert first.occurrences == 1  # the run is counted on the carried history too
    longer = apply_result(result(0, 50, history=history([1] * 30)), None)
    assert longer.history == [*history([1] * 30)[-20:], CheckHistory(0, 50)]  # capped, unlike Sensu


def test_a_first_result_that_carries_a_flapping_history() -> None:
    first = apply_result(result(0, 50, LOW, HIGH, history=history([i % 2 for i in range(20)])), None)
    assert (first.state, first.total_state_change) == (FLAPPING, 98)
    assert first.is_flapping_start
    assert not first.is_flapping_end
    assert first.last_ok == 50  # Sensu sets last_ok before merging a passing first result


def test_the_next_result_ignores_the_history_it_carries() -> None:
    previous = run([1, 1])[-1]
    merged = apply_result(result(1, 2000, history=history([0] * 10)), previous)
    assert merged.history == [*previous.history, CheckHistory(1, 2000)]
    assert merged.occurrences == 3


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_first_result(status: int) -> None:
    first = apply_result(result(status, 1000), None)
    assert first.history == [CheckHistory(status, 1000)]
    assert (first.occurrences, first.occurrences_watermark) == (1, 1)
    assert first.state == (PASSING if status == 0 else FAILING)
    assert first.last_ok == (1000 if status == 0 else 0)
    assert (first.is_flapping_start, first.is_flapping_end) == (False, False)


def test_state_and_last_ok_follow_the_status() -> None:
    states = run([1, 0, 1, 2, 0, 0])
    assert [c.state for c in states] == [FAILING, PASSING, FAILING, FAILING, PASSING, PASSING]
    assert [c.last_ok for c in states] == [0, 1001, 1001, 1001, 1004, 1005]


# -- flapping ------------------------------------------------------------------------------------

# 21 OK results, 12 results alternating 1/0, then OK again. total_state_change climbs to 64
# at index 32, reaches 54 (>= 50) at index 30 and falls to 49 at index 41.
FLAP = [0] * 21 + [1, 0] * 6 + [0] * 25


def test_flap_start_and_end_are_each_reported_once() -> None:
    states = run(FLAP, low=10, high=50)
    assert [i for i, c in enumerate(states) if c.state == FLAPPING] == list(range(30, 41))
    assert [i for i, c in enumerate(states) if c.is_flapping_start] == [30]
    assert [i for i, c in enumerate(states) if c.is_flapping_end] == [41]
    # Sensu's low threshold has no hysteresis effect: 49 is above it, yet the flap is over.
    assert (states[41].total_state_change, states[41].state) == (49, PASSING)


def test_last_ok_is_frozen_while_flapping() -> None:
    states = run(FLAP, low=10, high=50)
    assert [c.last_ok for c in states[28:43]] == [1028] * 13 + [1041, 1042]


def test_a_new_flap_episode_starts_again() -> None:
    statuses = FLAP + [1, 0] * 6
    states = run(statuses, low=10, high=50)
    starts = [i for i, c in enumerate(states) if c.is_flapping_start]
    ends = [i for i, c in enumerate(states) if c.is_flapping_end]
    assert (len(starts), len(ends)) == (2, 1)
    assert starts[0] < ends[0] < starts[1]


def test_a_flapping_previous_without_thresholds_now_ends_the_flap() -> None:
    previous = run(FLAP[:31], low=10, high=50)[-1]
    assert previous.state == FLAPPING
    merged = apply_result(result(1, 5000), previous)  # the operator removed the thresholds
    assert (merged.state, merged.is_flapping_end, merged.is_flapping_start) == (FAILING, True, False)


@pytest.mark.parametrize(("low", "high"), [(0, 30), (10, 0), (0, 0)])
def test_a_zero_threshold_disables_flapping(low: int, high: int) -> None:
    states = run([i % 2 for i in range(25)], low=low, high=high)
    assert all(c.state != FLAPPING and not c.is_flapping_start for c in states)
    assert states[-1].total_state_change == 98  # still computed
    assert run([i % 2 for i in range(25)], low=10, high=30)[-1].state == FLAPPING


# -- purity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_previous", [False, True])
def test_inputs_are_not_changed(with_previous: bool) -> None:
    previous = run([0, 1])[-1] if with_previous else None
    incoming = result(2, 5000, history=history([1, 1]))
    before = (copy.deepcopy(previous), copy.deepcopy(incoming))
    merged = apply_result(incoming, previous)
    assert (previous, incoming) == before
    assert merged is not incoming
    assert merged.history is not incoming.history
    assert previous is None or merged.history is not previous.history


# -- properties against an independent model ---------------------------------------------------


def accumulated_weights() -> list[float]:
    """Go's weights: 0.80 plus 0.02 added once per transition, with float64 rounding."""
    weights = [0.80]
    while len(weights) < 20:
        weights.append(weights[-1] + 0.02)
    return weights


def model_total(window: list[int]) -> int:
    """Go's formula, with float32 done through C's ``float`` instead of ``struct``."""
    if len(window) < 21:
        return 0
    changes = 0.0
    for weight, older, newer in zip(accumulated_weights(), window, window[1:], strict=False):
        if older != newer:
            changes += weight
    c_float = ctypes.c_float
    return int(c_float(c_float(c_float(changes).value / 20).value * 100).value)


@dataclass
class Expected:
    occurrences: int
    watermark: int
    total: int
    state: str
    last_ok: int


def run_length(statuses: list[int], end: int) -> int:
    """How many results up to ``end`` (inclusive) share ``statuses[end]``, counting all of them."""
    start = end
    while start > 0 and statuses[start - 1] == statuses[end]:
        start -= 1
    return end - start + 1


def model(statuses: list[int], low: int, high: int) -> list[Expected]:
    """Sensu's outcome restated directly: no counters carried, everything from the full sequence.

    The watermark is the longest run since the last OK -> non-OK change (or the start).
    """
    out: list[Expected] = []
    last_ok = 0
    for i, status in enumerate(statuses):
        incident_start = max([j for j in range(1, i + 1) if statuses[j] != 0 and statuses[j - 1] == 0], default=0)
        watermark = max(run_length(statuses, j) for j in range(incident_start, i + 1))
        total = model_total(statuses[max(0, i - 20) : i + 1])
        if low and high and total >= high:
            state = FLAPPING
        else:
            state = PASSING if status == 0 else FAILING
            last_ok = 1000 + i if status == 0 else last_ok
        out.append(Expected(run_length(statuses, i), watermark, total, state, last_ok))
    return out


# Runs of one status, so that both long runs and rapid changes occur.
runs = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5)), min_size=1, max_size=30)
thresholds = st.tuples(st.integers(0, 40), st.integers(0, 100))


@given(runs, thresholds)
def test_state_matches_the_model(run_spec: list[tuple[int, int]], limits: tuple[int, int]) -> None:
    statuses = [status for status, length in run_spec for _ in range(length)]
    low, high = limits
    states = run(statuses, low, high)
    for i, (check, want) in enumerate(zip(states, model(statuses, low, high), strict=True)):
        assert [h.status for h in check.history] == statuses[max(0, i - 20) : i + 1]
        assert len(check.history) == min(i + 1, HISTORY_LIMIT)
        assert check.occurrences == want.occurrences >= 1
        assert check.occurrences_watermark == want.watermark >= check.occurrences
        assert check.total_state_change == want.total
        assert 0 <= check.total_state_change <= 98
        assert (check.state, check.last_ok) == (want.state, want.last_ok)
        was_flapping = i > 0 and states[i - 1].state == FLAPPING
        assert check.is_flapping_start == (check.state == FLAPPING and not was_flapping)
        assert check.is_flapping_end == (was_flapping and check.state != FLAPPING)


@given(st.lists(st.integers(0, 3), min_size=21, max_size=21))
def test_total_state_change_matches_the_model(statuses: list[int]) -> None:
    assert total_state_change(history(statuses)) == model_total(statuses)


@given(st.integers(0, 2**20 - 1))
def test_every_change_pattern_matches_the_model(bits: int) -> None:
    statuses = toggles(format(bits, "020b"))
    assert 0 <= total_state_change(history(statuses)) == model_total(statuses) <= 98

"""Numbers in text are ASCII digits wherever they are read, as Go's strconv and time read them.

Python's ``str.isdigit`` and a regular expression's ``\\d`` also take ``²`` (which ``int`` then
refuses: a crash where a refusal was due) and other scripts' digits such as ``٣`` (which ``int``
reads as 3: a "yes" where Sensu Go says no). Each reader below refuses both, naming what is
wrong, and still takes the ASCII form.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from pipeline.backend.api.health import health_timeout
from pipeline.backend.dashboard.problems import ProblemQuery
from pipeline.backend.dashboard.views.problems import query_of
from pipeline.backend.sessions import parse_lifetime
from pipeline.cli.addresses import parse_address, parse_floats, positive_float
from pipeline.cli.daemon_flags import keepalive_interval, keepalive_timeout, positive_int
from pipeline.cli.event_filters import EventFilters
from pipeline.cli.silences import parse_duration as silence_duration
from pipeline.config.loader import load_path
from pipeline.core.hooks import select_hooks
from pipeline.core.host.oom import parse_context
from pipeline.core.schedule import ScheduleError
from pipeline.core.schedule import parse_duration as go_duration
from pipeline.errors import HostRecordError, ValidationError
from pipeline.model.check import CheckConfig
from pipeline.model.codec import decode
from pipeline.model.go_float import parse_go_float
from pipeline.model.subdue import parse_rfc3339
from pipeline.model.time_window import parse_kitchen

SUPERSCRIPT_TWO = "\u00b2"
ARABIC_INDIC_THREE = "\u0663"


def _status_filter(text: str) -> object:
    return EventFilters.of(argparse.Namespace(entity="", check="", silenced=None, status=[text], label=[]))


#: (reader, its ASCII form with {} where the digit goes, what it gives for 3, what it raises, and
#: the words of the refusal: its own, not ``int``'s "invalid literal")
READERS: list[tuple[str, Callable[[str], Any], str, Any, type[Exception], str]] = [
    ("time window", parse_kitchen, "{}:00PM", 15 * 3600, ValueError, "expected a time"),
    ("RFC 3339", lambda t: parse_rfc3339(t).hour, "2027-01-15T0{}:00:00Z", 3, ValueError, "expected RFC 3339"),
    ("session lifetime", lambda t: parse_lifetime(t, 86400), "{}m", 180.0, ValueError, "expected a duration"),
    ("Go duration", go_duration, "{}m", 180.0, ScheduleError, "invalid duration"),
    ("/health timeout", lambda t: health_timeout({"timeout": t}), "{}", 3, ValueError, "timeout: expected"),
    ("HOST:PORT", parse_address, "127.0.0.1:{}", ("127.0.0.1", 3), argparse.ArgumentTypeError, "expected HOST:PORT"),
    ("silence duration", silence_duration, "{}m", 180, ValueError, "expected a duration"),
]


@pytest.mark.parametrize(("name", "read", "form", "three", "refusal", "words"), READERS, ids=[r[0] for r in READERS])
@pytest.mark.parametrize("digit", [SUPERSCRIPT_TWO, ARABIC_INDIC_THREE], ids=["superscript", "arabic-indic"])
def test_a_digit_of_another_script_is_refused_and_an_ascii_one_read(
    name: str, read: Callable[[str], Any], form: str, three: Any, refusal: type[Exception], words: str, digit: str
) -> None:
    assert read(form.format("3")) == three
    with pytest.raises(refusal, match=words):
        read(form.format(digit))


@pytest.mark.parametrize("digit", [SUPERSCRIPT_TWO, ARABIC_INDIC_THREE], ids=["superscript", "arabic-indic"])
def test_the_problems_page_takes_such_a_page_or_status_as_no_filter_not_a_failure(digit: str) -> None:
    """The dashboard's problems page: an unreadable page is the first, as any text there is."""
    encoded = digit.encode().hex("%").upper()
    query = query_of(Request({"type": "http", "query_string": f"page=%{encoded}&status=%{encoded}".encode(),
                              "headers": []}))  # fmt: skip
    assert (query.page, query.status) == (1, digit)
    assert not query.status_matches(SimpleNamespace(status=3))  # type: ignore[arg-type]
    assert ProblemQuery(status="3").status_matches(SimpleNamespace(status=3))  # type: ignore[arg-type]


@pytest.mark.parametrize("digit", [SUPERSCRIPT_TWO, ARABIC_INDIC_THREE], ids=["superscript", "arabic-indic"])
def test_a_status_filter_of_another_script_is_refused_naming_the_flag(digit: str) -> None:
    with pytest.raises(ValueError, match="--status"):
        _status_filter(digit)


@pytest.mark.parametrize("digit", [SUPERSCRIPT_TWO, ARABIC_INDIC_THREE], ids=["superscript", "arabic-indic"])
def test_a_hook_type_of_another_script_is_refused_naming_the_field(digit: str) -> None:
    spec = {"metadata": {"name": "disk", "namespace": "default"}, "command": "true", "interval": 10,
            "subscriptions": ["linux"]}  # fmt: skip
    decode(CheckConfig, {**spec, "check_hooks": [{"3": ["restart"]}]}).validate()
    with pytest.raises(ValidationError, match=r"check_hooks\[0\]\..*hook type must be 0-255"):
        decode(CheckConfig, {**spec, "check_hooks": [{digit: ["restart"]}]}).validate()


def test_a_config_file_with_such_a_hook_type_is_an_error_naming_it_not_a_crash(tmp_path: Path) -> None:
    """The backend's config directory: the file, the document and the field, not a traceback."""
    (tmp_path / "check.yaml").write_text(
        "type: CheckConfig\napi_version: core/v2\nmetadata:\n  name: disk\nspec:\n  command: 'true'\n"
        f"  interval: 10\n  subscriptions: [linux]\n  check_hooks:\n    - '{SUPERSCRIPT_TWO}': [restart]\n",
        encoding="utf-8",
    )
    (error,) = load_path(tmp_path).errors
    assert "check.yaml" in str(error)
    assert "check_hooks[0]" in str(error)
    assert "hook type must be 0-255" in str(error)


@pytest.mark.parametrize("digit", [SUPERSCRIPT_TWO, ARABIC_INDIC_THREE], ids=["superscript", "arabic-indic"])
def test_an_agent_given_such_a_hook_type_runs_no_hook_for_it(digit: str) -> None:
    """Refused where checks are configured; an agent handed one anyway (an older backend) matches
    nothing by it rather than failing the check."""
    assert select_hooks([{digit: ["odd"], "3": ["three"]}], 3) == ["three"]


@pytest.mark.parametrize("digit", [SUPERSCRIPT_TWO, ARABIC_INDIC_THREE], ids=["superscript", "arabic-indic"])
def test_a_kernel_oom_line_with_such_a_pid_is_a_bad_record(digit: str) -> None:
    assert parse_context("oom-kill:constraint=CONSTRAINT_NONE,task=java,pid=3,uid=0").pid == 3
    with pytest.raises(HostRecordError):
        parse_context(f"oom-kill:constraint=CONSTRAINT_NONE,task=java,pid={digit},uid=0")


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1_0", ARABIC_INDIC_THREE, SUPERSCRIPT_TWO, "0", "-2", ""])
def test_a_seconds_flag_is_a_finite_positive_number_in_ascii(text: str) -> None:
    """``float`` and ``int`` would take ``nan``, ``inf``, ``1_0`` and ``٣``: an agent started with
    ``--heartbeat-interval nan`` ran, and its heartbeat would have had no meaning."""
    assert positive_float("2.5") == 2.5
    assert positive_int("30") == 30
    assert keepalive_interval("30") == 30
    assert keepalive_timeout("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
        positive_float(text)
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(text)
    with pytest.raises(argparse.ArgumentTypeError):
        keepalive_interval(text)
    if text not in ("0", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            keepalive_timeout(text)
    if text not in ("0", "-2", ""):  # numbers, and an empty item is none: a list's range is the caller's
        with pytest.raises(argparse.ArgumentTypeError, match="comma-separated numbers"):
            parse_floats(f"90,{text}")


#: The characters of Go's float syntax and their look-alikes: dotless and dotted capital i, the
#: long s, the Kelvin sign, other scripts' digits, a superscript, a fullwidth digit.
GO_FLOAT_ALPHABET = "0123456789.eE+-_infaINFA\u0131\u0130\u017f\u212a\u0663\u00b2\uff11"


def test_the_go_float_reader_never_raises_on_any_short_text() -> None:
    """Every text of up to three of those characters (about 30,800, each tried): a float, or None,
    never an exception from ``float`` behind the pattern (inf with a dotless i raised once). It reads
    what ``float`` reads, and only ASCII text."""
    for size in range(4):
        for letters in itertools.product(GO_FLOAT_ALPHABET, repeat=size):
            text = "".join(letters)
            value = parse_go_float(text)
            if value is not None:
                assert text.isascii(), text
                assert value == float(text) or (math.isnan(value) and math.isnan(float(text))), text


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
def test_the_go_float_reader_never_raises(text: str) -> None:
    value = parse_go_float(text)
    assert value is None or isinstance(value, float)


@given(st.from_regex(r"[+-]?[0-9]{1,6}(\.[0-9]{0,4})?([eE][+-]?[0-9]{1,2})?", fullmatch=True))
def test_the_go_float_reader_reads_an_ascii_decimal_as_float_does(text: str) -> None:
    assert parse_go_float(text) == float(text)


@given(
    st.sampled_from(["inf", "-Inf", "infinity", "NaN", "1e5", "2.5"]),
    st.integers(0, 8),
    st.sampled_from("\u0131\u0130\u017f\u212a\u0663\u00b2"),
)
def test_a_go_float_with_one_look_alike_character_is_refused(word: str, at: int, odd: str) -> None:
    """``inf`` with a dotless or a dotted capital i, the long s, the Kelvin sign, ``٣``, ``²``: case
    folding and ``float`` take some of them; Go's ParseFloat none."""
    text = word[:at] + odd + word[at + 1 :]
    assert parse_go_float(text) is None
